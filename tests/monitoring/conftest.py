"""What the report tests share: drift, findings and skew over one synthetic table pair."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from featureledger.monitoring import (
    Monitor,
    MonitorContext,
    check_freshness,
    compute_stats,
    drift,
    evaluate_monitor,
    skew,
)
from featureledger.monitoring.stats import bins_of

NOW = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(4)
    n = 1500
    ref = pa.table(
        {
            "amount": rng.lognormal(3.0, 1.0, n),
            "count": rng.integers(0, 9, n),
            "country": rng.choice(["DE", "FR", "US"], n),
            "flag": np.zeros(n),
            "empty": pa.array([None] * n, pa.float64()),
        }
    )
    cur = pa.table(
        {
            "amount": rng.lognormal(3.5, 1.0, n),
            "count": rng.integers(0, 9, n),
            "country": rng.choice(["DE", "FR", "US", "IT"], n),
            "flag": np.ones(n),
            "empty": pa.array([None] * n, pa.float64()),
        }
    )
    rs = compute_stats(ref)
    cs = compute_stats(cur, reference_bins=bins_of(rs))
    report = drift(
        rs, cs, reference_id="training_dataset/fraud@v1/2", current_id="feature_group/tx@v1#7"
    )
    findings = [
        evaluate_monitor(
            Monitor("amount_psi", "feature_group/tx", "psi", action="block"),
            report,
            MonitorContext(now=NOW),
        ),
        check_freshness(
            Monitor("tx_fresh", "feature_group/tx", "event_age", warn="1h", alert="1d"),
            newest_event_time=NOW - timedelta(hours=3),
            now=NOW,
        ),
    ]
    logged = pa.table({"k": np.arange(100), "amount": np.arange(100, dtype=float)})
    served = logged.set_column(1, "amount", pa.array(np.arange(100, dtype=float) * 1.1))
    sk = skew(logged, served, ["k"], ["amount"])
    return report, findings, sk, rs, cs
