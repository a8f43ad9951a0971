"""Distribution distances used by `Distribution` rules.

They are written once, in `featureledger.monitoring.metrics` (the monitoring layer sits
below contracts); this module keeps the names contracts have always imported.
"""

from __future__ import annotations

from featureledger.monitoring.metrics import PSI_EPSILON, ks_statistic, psi, psi_categorical

__all__ = ["PSI_EPSILON", "ks_statistic", "psi", "psi_categorical"]
