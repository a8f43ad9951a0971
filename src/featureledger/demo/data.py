"""Deterministic card-transaction data for the demo, docs and tests (vectorized numpy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

START = datetime(2025, 1, 1, tzinfo=UTC)
_US_PER_HOUR = 3_600_000_000
_TS = pa.timestamp("us", tz="UTC")
_CHANNELS = np.array(["web", "app", "branch", "partner"])
_COUNTRIES = np.array(["DE", "FR", "NL", "ES", "IT", "PL"])
_CATEGORIES = np.array(["grocery", "travel", "electronics", "fuel", "gaming", "fashion"])


def _ts(hours: np.ndarray) -> pa.Array:
    base = int(START.timestamp() * 1_000_000)
    return pa.array(base + (hours * _US_PER_HOUR).astype(np.int64), pa.int64()).cast(_TS)


def generate(
    *,
    users: int = 400,
    merchants: int = 60,
    days: int = 30,
    transactions: int = 5_000,
    seed: int = 7,
) -> dict[str, pa.Table]:
    """Tables ``user_profile``, ``user_txn_stats``, ``merchant_stats`` and ``transactions``.

    Every user gets a stats snapshot every 6 hours, every merchant one per day; the
    ``transactions`` table is the entity frame (with the ``is_fraud`` label).
    """
    rng = np.random.default_rng(seed)
    user_ids = np.arange(1, users + 1, dtype=np.int64)
    merchant_ids = np.arange(1, merchants + 1, dtype=np.int64) + 1000

    profile = pa.table(
        {
            "user_id": user_ids,
            "signup_channel": _CHANNELS[rng.integers(0, len(_CHANNELS), users)],
            "home_country": _COUNTRIES[rng.integers(0, len(_COUNTRIES), users)],
            "credit_limit": rng.choice([500.0, 1000.0, 2500.0, 5000.0], users),
        }
    )

    # a snapshot every 6 hours per user, with some users skipping snapshots
    hours = np.arange(0, days * 24, 6)
    grid_u, grid_h = np.meshgrid(user_ids, hours, indexing="ij")
    uu, hh = grid_u.ravel(), grid_h.ravel().astype(np.float64)
    keep = rng.random(len(uu)) > 0.15
    uu, hh = uu[keep], hh[keep]
    spend = rng.gamma(2.0, 40.0, len(uu))
    count = rng.poisson(3, len(uu)).astype(np.int64)
    user_stats = pa.table(
        {
            "user_id": uu,
            "event_timestamp": _ts(hh),
            # computed within the hour after the window closes
            "created_timestamp": _ts(hh + rng.uniform(0.05, 1.0, len(uu))),
            "txn_count_24h": count,
            "txn_amount_24h": np.round(spend * count, 2),
            "avg_amount_7d": np.round(spend, 2),
            "distinct_merchants_7d": rng.integers(1, 12, len(uu)).astype(np.int64),
        }
    )

    mdays = np.arange(days, dtype=np.float64) * 24
    grid_m, grid_d = np.meshgrid(merchant_ids, mdays, indexing="ij")
    mm, dd = grid_m.ravel(), grid_d.ravel()
    base_rate = rng.beta(1, 60, merchants)
    merchant_stats = pa.table(
        {
            "merchant_id": mm,
            "event_timestamp": _ts(dd),
            "fraud_rate_30d": np.round(
                np.repeat(base_rate, days) * rng.uniform(0.8, 1.2, len(mm)), 5
            ),
            "txn_count_30d": rng.integers(50, 5000, len(mm)).astype(np.int64),
            "category": np.repeat(_CATEGORIES[rng.integers(0, len(_CATEGORIES), merchants)], days),
        }
    )

    t_hours = np.sort(rng.uniform(0, days * 24, transactions))
    t_users = rng.choice(user_ids, transactions)
    t_merch = rng.choice(merchant_ids, transactions)
    amount = np.round(rng.gamma(2.0, 45.0, transactions), 2)
    risk = base_rate[t_merch - 1001] * 8 + (amount > 250) * 0.05
    transactions_t = pa.table(
        {
            "transaction_id": np.arange(1, transactions + 1, dtype=np.int64),
            "user_id": t_users,
            "merchant_id": t_merch,
            "event_timestamp": _ts(t_hours),
            "amount": amount,
            "is_fraud": rng.random(transactions) < risk,
        }
    )
    return {
        "user_profile": profile,
        "user_txn_stats": user_stats,
        "merchant_stats": merchant_stats,
        "transactions": transactions_t,
    }


def corrections(stats: pa.Table, *, share: float = 0.02, seed: int = 11) -> pa.Table:
    """Late restatements of some user snapshots: same key and event time, later created_time."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(stats.num_rows, max(1, int(stats.num_rows * share)), replace=False))
    fixed = stats.take(pa.array(idx))
    created = fixed.column("created_timestamp").cast(pa.int64()).to_numpy() + 6 * _US_PER_HOUR
    amount = fixed.column("txn_amount_24h").to_numpy() * rng.uniform(0.5, 1.5, len(idx))
    fixed = fixed.set_column(
        fixed.schema.get_field_index("created_timestamp"),
        "created_timestamp",
        pa.array(created, pa.int64()).cast(_TS),
    )
    return fixed.set_column(
        fixed.schema.get_field_index("txn_amount_24h"),
        "txn_amount_24h",
        pa.array(np.round(amount, 2)),
    )


def bad_batch(stats: pa.Table, *, rows: int = 40, broken: int = 3, seed: int = 5) -> pa.Table:
    """A later hourly load in which ``broken`` rows carry negative amounts (a sign bug)."""
    rng = np.random.default_rng(seed)
    # one row for each of the last ``rows`` users, so no key repeats in the batch
    firsts = np.unique(stats.column("user_id").to_numpy(), return_index=True)[1]
    last = stats.take(pa.array(firsts[-rows:]))
    hours = np.full(rows, 31 * 24 * 1.0)  # one hour past the generated month
    batch = last.set_column(
        last.schema.get_field_index("event_timestamp"), "event_timestamp", _ts(hours)
    ).set_column(
        last.schema.get_field_index("created_timestamp"), "created_timestamp", _ts(hours + 0.5)
    )
    amount = batch.column("txn_amount_24h").to_numpy().copy()
    amount[rng.choice(rows, broken, replace=False)] *= -1
    return batch.set_column(
        batch.schema.get_field_index("txn_amount_24h"), "txn_amount_24h", pa.array(amount)
    )


#: the channels of the FTI story's transactions: its slices
FTI_CHANNELS = ("in_store", "online")


def fti_transactions(
    tables: dict[str, pa.Table],
    *,
    transactions: int = 6_000,
    seed: int = 13,
    first_id: int = 100_001,
    online_share: tuple[float, float] = (0.3, 0.3),
    # from the second day: every group of the view has data by then
    hours: tuple[float, float] | None = (24.0, 30 * 24.0),
) -> pa.Table:
    """An entity frame for the FTI story: keys, time, ``amount``, the helper column
    ``channel`` and the label ``is_fraud`` (the existing tables are not changed).

    Fraud in store follows the merchant's fraud rate; online it follows the amount against
    the card's credit limit, which a model without ``amount`` cannot see. The online share
    moves linearly from ``online_share[0]`` to ``[1]`` over the rows (a population shift).
    ``hours=None`` gives no event time (a stream scored now).
    """
    rng = np.random.default_rng(seed)
    stats = tables["merchant_stats"]
    mids = stats.column("merchant_id").to_numpy()
    rates = stats.column("fraud_rate_30d").to_numpy()
    merchant_ids = np.unique(mids)
    # the merchant's mean 30-day fraud rate: what its daily rows scatter around
    mean_rate = np.bincount(np.searchsorted(merchant_ids, mids), weights=rates) / np.bincount(
        np.searchsorted(merchant_ids, mids)
    )
    profile = tables["user_profile"]
    user_ids = profile.column("user_id").to_numpy()
    limits = profile.column("credit_limit").to_numpy()

    n = transactions
    users = rng.choice(user_ids, n)
    merchants = rng.choice(merchant_ids, n)
    share = np.linspace(online_share[0], online_share[1], n)
    online = rng.random(n) < share
    amount = np.round(np.where(online, rng.gamma(2.0, 150.0, n), rng.gamma(2.0, 45.0, n)), 2)
    rate = mean_rate[np.searchsorted(merchant_ids, merchants)] * rng.uniform(0.8, 1.2, n)
    limit = limits[np.searchsorted(user_ids, users)]
    risk = np.where(online, 0.03 + 0.5 * (amount / limit > 0.4), np.minimum(rate * 12, 0.7))
    columns: dict[str, Any] = {
        "transaction_id": np.arange(first_id, first_id + n, dtype=np.int64),
        "user_id": users,
        "merchant_id": merchants,
    }
    if hours is not None:
        columns["event_timestamp"] = _ts(np.sort(rng.uniform(hours[0], hours[1], n)))
    columns["amount"] = amount
    columns["channel"] = np.array(FTI_CHANNELS)[online.astype(int)]
    columns["is_fraud"] = rng.random(n) < risk
    return pa.table(columns)
