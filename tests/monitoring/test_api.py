"""The public surface of featureledger.monitoring, and the metrics written once."""

from __future__ import annotations

import featureledger.contracts as contracts
import featureledger.contracts.stats as contract_stats
import featureledger.monitoring as monitoring
from featureledger.monitoring import metrics


def test_every_public_name_resolves_and_is_listed_once():
    assert len(set(monitoring.__all__)) == len(monitoring.__all__)
    for name in monitoring.__all__:
        assert getattr(monitoring, name) is not None, name


def test_contracts_use_the_monitoring_metrics():
    for name in ("psi", "psi_categorical", "ks_statistic", "PSI_EPSILON"):
        assert getattr(contract_stats, name) is getattr(metrics, name)
    assert contracts.psi is metrics.psi
