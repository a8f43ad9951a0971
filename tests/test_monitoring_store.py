"""Statistics, drift and reports through the store: kept per identity, comparable across
versions, and readable as a self-contained HTML page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
GROUP = FeatureGroup(
    "g", USER, features=[Field("x", "float64"), Field("c", "string")], ttl=timedelta(days=1)
)


def batch(start: int, n: int, shift: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "user_id": np.arange(start, start + n),
            "event_timestamp": [T0] * n,
            "x": rng.normal(shift, 1.0, n),
            "c": rng.choice(
                ["a", "b", "c"], n, p=[0.6, 0.3, 0.1] if shift == 0 else [0.1, 0.3, 0.6]
            ),
        }
    )


def make(tmp_path: Path) -> FeatureStore:
    store = FeatureStore.init(tmp_path / "repo")
    store.apply([USER, GROUP, FeatureView("v", [GROUP])])
    store.ingest("g", batch(0, 5000, 0.0, 1))  # 1
    store.ingest("g", batch(0, 5000, 0.0, 2), mode="overwrite")  # 2: same distribution
    store.ingest("g", batch(0, 5000, 2.0, 3), mode="overwrite")  # 3: shifted
    return store


def test_stats_are_computed_once_and_kept(tmp_path: Path) -> None:
    store = make(tmp_path)
    stats = store.stats("feature_group/g@v1#1")
    assert stats["x"].count == 5000 and stats["c"].count == 5000
    assert store.registry.get_stats("feature_group/g@v1#1") is not None
    assert store.stats("feature_group/g@v1#1") == stats
    assert store.stats("feature_group/g") == store.stats("feature_group/g@v1#3")


def test_drift_between_versions_fires_only_when_the_distribution_moved(tmp_path: Path) -> None:
    store = make(tmp_path)
    same = store.drift("feature_group/g@v1#1", "feature_group/g@v1#2")
    moved = store.drift("feature_group/g@v1#1", "feature_group/g@v1#3")
    assert same.features["x"].status == "ok"
    assert moved.features["x"].status == "alert"
    assert moved.features["c"].status == "alert"
    assert "x" in moved.drifted and "x" not in same.drifted


def test_drift_between_a_training_set_and_a_version(tmp_path: Path) -> None:
    store = make(tmp_path)
    entities = pa.table({"user_id": np.arange(2000), "event_timestamp": [T0] * 2000})
    td = store.training_data("v", entities, versions={"g": 1})
    report = store.drift(str(td.identity), "feature_group/g@v1#3", features=["x"])
    assert report.features["x"].status == "alert"


def test_report_is_self_contained_html_with_a_plot_per_feature(tmp_path: Path) -> None:
    store = make(tmp_path)
    out = store.report(
        "feature_group/g@v1#1",
        "feature_group/g@v1#3",
        tmp_path / "r.html",
        png_dir=tmp_path / "png",
    )
    html = out.read_text()

    class Images(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.srcs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                self.srcs.append(dict(attrs).get("src") or "")

    parser = Images()
    parser.feed(html)
    assert len(parser.srcs) >= 2 and all(
        s.startswith("data:image/png;base64,") for s in parser.srcs
    )
    assert "http://" not in html and "https://" not in html.replace("https://www.w3.org", "")
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == ["c.png", "x.png"]
    assert all((tmp_path / "png" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
