"""Data contracts: evaluate batches against a `Contract`, read and write contract YAML
(featureledger's form and ODCS v3), and classify contract changes.

The contract model itself lives in `featureledger.definitions.contract` (pure
dataclasses); it is re-exported here so ``from featureledger.contracts import ...`` is
the one import users need.
"""

from featureledger.contracts.compat import classify_contract_change
from featureledger.contracts.evaluate import evaluate
from featureledger.contracts.odcs import (
    OdcsImport,
    contract_from_yaml,
    contract_to_yaml,
    from_odcs,
    import_odcs,
    load_contract,
    read_contract,
    to_odcs,
)
from featureledger.contracts.report import FAILED_RULES_COLUMN, RuleResult, ValidationReport
from featureledger.contracts.stats import ks_statistic, psi, psi_categorical
from featureledger.definitions.contract import (
    AllowedValues,
    Cardinality,
    Check,
    Column,
    ColumnType,
    Contract,
    Distribution,
    Freshness,
    IngestionDelay,
    MaxNullFraction,
    NotNull,
    Range,
    Regex,
    RowCount,
    Rule,
    Severity,
    Unique,
)
from featureledger.errors import ContractViolation

__all__ = [
    "FAILED_RULES_COLUMN",
    "AllowedValues",
    "Cardinality",
    "Check",
    "Column",
    "ColumnType",
    "Contract",
    "ContractViolation",
    "Distribution",
    "Freshness",
    "IngestionDelay",
    "MaxNullFraction",
    "NotNull",
    "OdcsImport",
    "Range",
    "Regex",
    "RowCount",
    "Rule",
    "RuleResult",
    "Severity",
    "Unique",
    "ValidationReport",
    "classify_contract_change",
    "contract_from_yaml",
    "contract_to_yaml",
    "evaluate",
    "from_odcs",
    "import_odcs",
    "ks_statistic",
    "load_contract",
    "psi",
    "psi_categorical",
    "read_contract",
    "to_odcs",
]
