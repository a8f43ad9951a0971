"""Fixtures for the storage suite: local folders and a real S3 server.

The S3 server is ``moto_server`` (from ``moto[server]``, a dev dependency) run as a
separate process on a free port, one per xdist worker and test session. It must not
run inside the test process: its server thread deadlocks delta-rs writes there.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from featureledger.storage import Storage, open_storage

#: moto accepts any credentials; these only have to be present
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing-secret-0123"}
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/moto-api/", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto_server process started for this session (one per xdist worker)."""
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = log_path.open("wb")
    proc: subprocess.Popen[bytes] | None = None
    endpoint = ""
    for _attempt in range(3):  # another process may take the free port first
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and not _answers(endpoint):
            time.sleep(0.05)
        if proc.poll() is None and _answers(endpoint):
            break
        proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        log.close()
        pytest.fail(
            "moto_server did not start; is moto[server] installed (pip install -e '.[dev]')? "
            f"Its log: {log_path}: {log_path.read_text()[-2000:]}",
            pytrace=False,
        )
    try:
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def s3_options(endpoint: str) -> dict[str, Any]:
    return {"endpoint_url": endpoint, "region": REGION, **CREDENTIALS}


def make_bucket(endpoint: str) -> str:
    """A new empty bucket on the server; its name."""
    import boto3  # installed with moto

    name = f"fl-{uuid.uuid4().hex[:16]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_storage(s3_endpoint: str) -> Storage:
    """Storage under a prefix of a fresh bucket."""
    return open_storage(f"s3://{make_bucket(s3_endpoint)}/repo", s3_options(s3_endpoint))


@pytest.fixture
def local_storage(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "store"))


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Each conformance test runs once per backend."""
    return request.getfixturevalue(f"{request.param}_storage")  # type: ignore[no-any-return]


def make_s3_repo(repo: Path, endpoint: str, **settings: Any) -> str:
    """A repository at ``repo`` whose tables live in a fresh bucket; the bucket's name.

    ``settings`` are further top-level config entries; credentials stay in the environment
    (the `aws_env` fixture).
    """
    import yaml

    from featureledger import FeatureStore

    FeatureStore.init(repo).close()
    config = yaml.safe_load((repo / "featureledger.yaml").read_text())
    bucket = make_bucket(endpoint)
    config["offline"]["path"] = f"s3://{bucket}/team/offline"
    config["storage"] = {"endpoint": endpoint, "region": REGION}
    for key, value in settings.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    (repo / "featureledger.yaml").write_text(yaml.safe_dump(config))
    return bucket


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's credentials in the environment (child processes inherit them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["secret_access_key"])
