"""Build release-0.1-repo.tar.gz: a repository made by featureledger 0.1, before migrations.

Run with the code of that release (commit 657b840, schema_version 2 in fl_meta) importable:
    PYTHONPATH=<checkout of 657b840>/src python make_release_repo.py
The upgrade test (tests/registry/test_migrations.py) opens a copy with the current code.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

T0 = datetime(2024, 1, 1, tzinfo=UTC)
OUT = Path(__file__).parent / "release-0.1-repo.tar.gz"


def main() -> None:
    os.environ["FEATURELEDGER_USER"] = "release"
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        store = FeatureStore.init(repo, project="release")
        user = Entity("user", join_keys=["user_id"])
        stats = FeatureGroup("stats", user, features=[Field("clicks", "int64")])
        store.apply([user, stats, FeatureView("fraud", [stats])])
        for day in range(2):
            store.ingest(
                "stats",
                {
                    "user_id": [1, 2, 3],
                    "event_timestamp": [T0 + timedelta(days=day)] * 3,
                    "clicks": [day, day + 1, day + 2],
                },
            )
        frame = pa.table({"user_id": [1, 2], "event_timestamp": [T0 + timedelta(days=3)] * 2})
        first = store.training_data("fraud", frame)
        store.training_data("fraud", frame)
        artifact = Path(tmp) / "model.bin"
        artifact.write_text("weights")
        store.register_model("fraud_model", artifact, training_dataset=first, metrics={"auc": 0.9})
        store.deploy("fraud_api", "fraud_model")
        store.create_token("reader", ["fraud"], purpose="release fixture")
        store.close()
        store.registry.engine.dispose()  # checkpoints the WAL into registry.db
        with tarfile.open(OUT, "w:gz") as tar:
            tar.add(repo, arcname="repo")


if __name__ == "__main__":
    main()
