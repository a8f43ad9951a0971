"""`featureledger init --example`: the quickstart's definitions and data files, so that
docs/quickstart.md runs as written.

The data is the demo's deterministic card-fraud month (`featureledger.demo.data`), cut to
the quickstart's columns; docs/quickstart.md describes each file.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from featureledger.demo import data

#: file name -> what it holds, as docs/quickstart.md lists them
FILES = {
    "features.py": "the definitions: entities user and merchant, three groups, the view fraud",
    "profiles.parquet": "user_profile rows: user_id, signup_channel, credit_limit",
    "merchant-stats-2025-01.parquet": "merchant_stats rows: merchant_id, event_timestamp, "
    "fraud_rate_30d",
    "stats-2025-01.parquet": "user_txn_stats rows: user_id, event_timestamp, "
    "created_timestamp, txn_count_24h, txn_amount_24h",
    "corrections.csv": "restated user_txn_stats rows: same key and event time, later "
    "created_timestamp",
    "transactions.parquet": "the entity frame: transaction_id, user_id, merchant_id, "
    "event_timestamp, amount, is_fraud",
}


def write_example(repo: Path) -> list[Path]:
    """Write the quickstart's files into ``repo``; refuse to overwrite any of them."""
    from featureledger.errors import ConfigError

    existing = [name for name in FILES if (repo / name).exists()]
    if existing:
        raise ConfigError(
            f"{repo} already has {', '.join(existing)}; `init --example` never overwrites "
            "files. Use a new folder."
        )
    tables = data.generate()
    stats = tables["user_txn_stats"].select(
        ["user_id", "event_timestamp", "created_timestamp", "txn_count_24h", "txn_amount_24h"]
    )
    fixes = data.corrections(stats)
    written = [repo / "features.py"]
    written[0].write_text((Path(__file__).parent / "features.py").read_text())
    parquet = {
        "profiles.parquet": tables["user_profile"].select(
            ["user_id", "signup_channel", "credit_limit"]
        ),
        "merchant-stats-2025-01.parquet": tables["merchant_stats"].select(
            ["merchant_id", "event_timestamp", "fraud_rate_30d"]
        ),
        "stats-2025-01.parquet": stats,
        "transactions.parquet": tables["transactions"],
    }
    for name, table in parquet.items():
        pq.write_table(table, repo / name)
        written.append(repo / name)
    # CSV times as ISO 8601 with the zone, the form a spreadsheet export would carry
    times = {
        name: pc.strftime(fixes.column(name), format="%Y-%m-%dT%H:%M:%S+00:00")
        for name in ("event_timestamp", "created_timestamp")
    }
    csv = pa.table({n: times.get(n, fixes.column(n)) for n in fixes.column_names})
    pacsv.write_csv(csv, repo / "corrections.csv")
    written.append(repo / "corrections.csv")
    return written
