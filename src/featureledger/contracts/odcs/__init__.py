"""Contracts as YAML: featureledger's own form and Open Data Contract Standard (ODCS) v3.

featureledger's form (``apiVersion: featureledger/v1``) keeps the ODCS skeleton -- one
``schema`` object whose ``properties`` are the columns, quality rules under the column they
check or under the object, SLOs under ``slaProperties`` -- and writes rules in its own
compact vocabulary (``rule: range``, ``min: 0``), so a file reads back to an equal
`Contract`. docs/contracts.md documents it.

`to_odcs` writes strict ODCS v3.1.0 for other tools (datacontract-cli and friends): each
rule in ODCS terms where ODCS has them (library metrics ``nullValues``, ``invalidValues``,
``duplicateValues``, ``rowCount``; ``type: sql`` queries; SLA properties ``freshness`` and
``latency``) or as ``type: custom, engine: featureledger``, and every item also carries
its exact featureledger form in ``customProperties`` (an SLA item's on the contract, keyed by
the item's ``id``, since ODCS admits none on SLA items) so `from_odcs` restores it unchanged.
`from_odcs` also reads hand-written ODCS v3.0/v3.1 documents, mapping what it can enforce.
"""

from featureledger.contracts.odcs.common import (
    API_VERSION,
    ODCS_API_VERSION,
    RULE_PROPERTY,
    SLOS_PROPERTY,
    TAGS_PROPERTY,
    rule_from_dict,
    rule_to_dict,
)
from featureledger.contracts.odcs.native import (
    contract_from_dict,
    contract_from_yaml,
    contract_to_dict,
    contract_to_yaml,
    load_contract,
    read_contract,
)
from featureledger.contracts.odcs.reader import OdcsImport, from_odcs, import_odcs
from featureledger.contracts.odcs.writer import to_odcs, to_odcs_dict

__all__ = [
    "API_VERSION",
    "ODCS_API_VERSION",
    "RULE_PROPERTY",
    "SLOS_PROPERTY",
    "TAGS_PROPERTY",
    "OdcsImport",
    "contract_from_dict",
    "contract_from_yaml",
    "contract_to_dict",
    "contract_to_yaml",
    "from_odcs",
    "import_odcs",
    "load_contract",
    "read_contract",
    "rule_from_dict",
    "rule_to_dict",
    "to_odcs",
    "to_odcs_dict",
]
