"""A small but complete set of books, the feature server (with the UI under /ui) serving it
from a thread, and a real headless Chromium driven by selenium through Debian's
chromedriver (both installed by scripts/install-services.sh).

One repository, server and browser per xdist worker and module (tests/conftest.py, rules 1-4):
the server binds a free loopback port, the browser gets its own profile folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.contracts.gates import MetricGate
from featureledger.definitions.contract import Contract, Range
from featureledger.definitions.split import Split
from featureledger.monitoring.monitors import Monitor
from featureledger.server import create_app
from serving import start_uvicorn

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"], owner="identity-team", description="A customer")
ACTIVITY = FeatureGroup(
    "activity",
    USER,
    features=[Field("spend", "float64"), Field("visits", "int64")],
    owner="growth",
    description="Daily spend and visits per user",
    tags={"domain": "growth"},
    licenses=["internal"],
    policy="quarantine",
    contract=Contract("activity", rules=[Range("visits", 0, 1000)]),
)
PROFILE = FeatureGroup(
    "profile",
    USER,
    features=[Field("email", "string", classification="pii"), Field("age", "int64")],
    owner="identity-team",
    description="Who the user is",
)
SCORING = FeatureView(
    "scoring",
    [ACTIVITY, PROFILE],
    purpose="fraud scoring",
    use="internal",
    owner="risk",
    description="What the fraud model reads",
)
#: the (shown) e-mail addresses: no page may show them to a token without the purpose
EMAILS = [f"person{i}@example.org" for i in range(40)]
N = 400


@dataclass
class Books:
    url: str  # the UI's base URL (the feature server's /ui)
    store: FeatureStore
    reader: str  # reads every view, no purpose: private values stay hidden
    purposeful: str  # reader with the purpose of `scoring`: sees them
    writer: str

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


def activity(seed: int, shift: float, n: int = N) -> pa.Table:
    rng = np.random.default_rng(seed)
    visits = rng.integers(0, 50, n) + int(shift)
    return pa.table(
        {
            "user_id": np.arange(n),
            "event_timestamp": [T0 + timedelta(days=seed)] * n,
            "spend": rng.normal(100 + shift, 15, n),
            "visits": visits,
        }
    )


def build(path: Path) -> FeatureStore:
    """Three data versions of `activity` (the last shifted, with two rows quarantined), a
    profile with PII, a training set, a model behind a gate, a deployment, drift findings."""
    store = FeatureStore.init(path)
    store.apply([USER, ACTIVITY, PROFILE, SCORING])
    store.ingest("activity", activity(1, 0.0), note="first load")
    store.ingest("activity", activity(2, 0.0), note="day two")
    bad = activity(3, 60.0).to_pylist()
    bad[0]["visits"] = -5
    bad[1]["visits"] = 5000
    store.ingest("activity", pa.Table.from_pylist(bad), note="shifted upstream")
    store.ingest(
        "profile",
        {
            "user_id": list(range(len(EMAILS))),
            "event_timestamp": [T0] * len(EMAILS),
            "email": EMAILS,
            "age": [20 + i for i in range(len(EMAILS))],
        },
    )
    frame = pa.table({"user_id": list(range(40)), "event_timestamp": [T0 + timedelta(days=4)] * 40})
    td = store.training_data("scoring", frame, split=Split.random(0.75, 0.25, seed=3))
    artifact = path.parent / "model.bin"
    artifact.write_text("weights")
    store.register_model(
        "fraud",
        artifact,
        training_dataset=td,
        metrics={"auc": [0.81, 0.83, 0.82]},
        gates=[MetricGate("auc", min=0.7)],
    )
    store.deploy("fraud_api", "fraud", reason="first release")
    # a second version tried on a fifth of the users, and a challenger scoring in the shadow
    store.register_model("fraud", artifact, training_dataset=td, metrics={"auc": [0.84]})
    store.canary("fraud_api", "fraud", 2, weight=0.2, reason="try v2")
    store.register_model("fraud_simple", artifact, training_dataset=td)
    store.shadow("fraud_api", "fraud_simple", reason="challenger")
    store.run_monitors(
        [
            Monitor("spend_psi", "feature_group/activity", "psi", features=("spend",)),
            Monitor("visits_psi", "feature_group/activity", "psi", features=("visits",)),
        ]
    )
    store.wait_for_stats()
    return store


@pytest.fixture(scope="module")
def books(
    tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Books]:
    store = build(tmp_path_factory.mktemp("ui") / "repo")
    reader = store.create_token("reader", all_views=True)
    purposeful = store.create_token("reader", all_views=True, purpose="fraud scoring")
    writer = store.create_token("writer", all_views=True)
    server, thread, url = start_uvicorn(create_app(store), free_port)
    try:
        yield Books(url + "/ui", store, reader, purposeful, writer)
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        f"{names[0]} is not installed: run scripts/install-services.sh (Debian packages "
        "'chromium' and 'chromium-driver'), which installs every program the suite needs"
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium, 1280 x 900, its own profile; Debian's binaries, never a download
    (selenium is given both paths, so Selenium Manager has nothing to fetch)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_binary("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: docs/ui/ when UI_SCREENSHOTS=1 (`make ui-screenshots`, to
    refresh the checked-in pictures), else a temporary folder (a test run leaves the tree
    clean)."""
    if os.environ.get("UI_SCREENSHOTS") == "1":
        out = Path(__file__).resolve().parents[2] / "docs" / "ui"
        out.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path_factory.mktemp("screenshots")
