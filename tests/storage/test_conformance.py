"""One suite for every Storage backend: local folders and S3 (a real moto_server)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger.config import RepoConfig
from featureledger.errors import ConfigError, StorageError
from featureledger.storage import Storage, is_remote, object_sha256, open_storage
from featureledger.storage.s3 import S3Storage

from .conftest import CREDENTIALS, REGION, make_bucket, s3_options


def test_storage_satisfies_the_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)
    assert storage.local == (storage.name == "local")
    assert storage.uri("a", "b.txt").startswith(storage.root)
    assert storage.uri("a", "b.txt").endswith("a/b.txt")


def test_objects_round_trip(storage: Storage) -> None:
    uri = storage.uri("artifacts", "model.bin")
    assert not storage.exists(uri) and storage.info(uri) is None
    storage.write_bytes(uri, b"\x00weights\xff")
    assert storage.exists(uri)
    assert storage.read_bytes(uri) == b"\x00weights\xff"
    info = storage.info(uri)
    assert info is not None and info.size == 9 and info.mtime_ns
    storage.write_bytes(uri, b"v2")  # replacing is allowed for small objects
    assert storage.read_bytes(uri) == b"v2"
    assert object_sha256(storage, uri) == hashlib.sha256(b"v2").hexdigest()


def test_list_and_delete(storage: Storage) -> None:
    for name in ("t/a.json", "t/sub/b.json", "u/c.json"):
        storage.write_bytes(storage.uri(name), name.encode())
    assert storage.list(storage.uri("t")) == [storage.uri("t/a.json"), storage.uri("t/sub/b.json")]
    assert storage.list(storage.uri("nothing-here")) == []
    storage.delete(storage.uri("t/a.json"))
    assert storage.list(storage.uri("t")) == [storage.uri("t/sub/b.json")]
    storage.delete(storage.uri("t"))  # a prefix: everything under it
    assert storage.list(storage.uri("t")) == []
    assert storage.exists(storage.uri("u/c.json"))
    storage.delete(storage.uri("missing.json"))  # no error


def test_missing_object_is_a_clear_error(storage: Storage) -> None:
    uri = storage.uri("absent.bin")
    with pytest.raises(StorageError, match=r"absent\.bin does not exist") as info:
        storage.read_bytes(uri)
    assert info.value.uri == uri


def test_arrow_filesystem_reads_parquet_written_through_it(storage: Storage) -> None:
    table = pa.table({"k": [1, 2, 3], "v": ["a", "b", None]})
    uri = storage.uri("frames", "entities.parquet")
    fs = storage.arrow_filesystem()
    fs.create_dir(storage.arrow_path(storage.uri("frames")))
    pq.write_table(table, storage.arrow_path(uri), filesystem=fs)
    assert pq.read_table(storage.arrow_path(uri), filesystem=fs).equals(table)
    assert storage.list(storage.uri("frames")) == [uri]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=4096), name=st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True))
def test_any_bytes_round_trip_with_their_checksum(storage: Storage, data: bytes, name: str) -> None:
    uri = storage.uri("prop", f"{name}.bin")
    storage.write_bytes(uri, data)
    assert storage.read_bytes(uri) == data
    assert object_sha256(storage, uri) == hashlib.sha256(data).hexdigest()
    info = storage.info(uri)
    assert info is not None and info.size == len(data)


def test_open_storage_picks_the_backend_by_scheme(tmp_path: Path) -> None:
    assert open_storage(str(tmp_path)).name == "local"
    assert open_storage(f"file://{tmp_path}").root == str(tmp_path)
    assert open_storage("s3://bucket/prefix/", {"region": REGION}).root == "s3://bucket/prefix"
    assert is_remote("s3://b/p") and not is_remote(str(tmp_path))
    with pytest.raises(ConfigError, match="no storage backend for gs://"):
        open_storage("gs://bucket/x")
    with pytest.raises(ConfigError, match="unknown S3 storage option"):
        open_storage("s3://bucket", {"password": "x"})


def test_s3_reads_endpoint_region_and_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, s3_endpoint: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["secret_access_key"])
    bucket = make_bucket(s3_endpoint)
    storage = open_storage(f"s3://{bucket}/x")
    assert isinstance(storage, S3Storage)
    assert storage.endpoint_url == s3_endpoint and storage.region == "eu-west-3"
    assert storage.allow_http  # an http:// endpoint allows plain HTTP
    options = storage.storage_options
    assert options["AWS_ENDPOINT_URL"] == s3_endpoint and options["AWS_ALLOW_HTTP"] == "true"
    storage.write_bytes(storage.uri("o.txt"), b"hi")
    assert storage.read_bytes(storage.uri("o.txt")) == b"hi"


def test_s3_credentials_are_never_shown(s3_endpoint: str) -> None:
    secret = CREDENTIALS["secret_access_key"]
    storage = open_storage("s3://no-such-bucket-here/x", s3_options(s3_endpoint))
    assert secret not in repr(storage) and CREDENTIALS["access_key_id"] not in repr(storage)
    with pytest.raises(StorageError) as info:
        storage.read_bytes(storage.uri("o.txt"))
    assert secret not in str(info.value)
    # an unreachable endpoint: the error names the endpoint and what to check, not secrets
    dead = open_storage(
        "s3://bucket/x", {**s3_options("http://127.0.0.1:9"), "secret_access_key": secret}
    )
    with pytest.raises(StorageError) as info:
        dead.write_bytes(dead.uri("o.txt"), b"x")
    assert "127.0.0.1:9" in str(info.value) and secret not in str(info.value)


def test_config_takes_s3_paths_and_refuses_secrets_in_the_file(tmp_path: Path) -> None:
    config = RepoConfig.from_dict(
        {
            "offline": {"path": "s3://bucket/repo/offline"},
            "training_path": "s3://bucket/repo/training/",
            "storage": {"endpoint": "http://127.0.0.1:9000", "region": "eu-west-1"},
        }
    )
    assert config.location(tmp_path, config.offline.path) == "s3://bucket/repo/offline"
    assert config.location(tmp_path, config.training_path) == "s3://bucket/repo/training"
    assert config.location(tmp_path, ".featureledger/offline") == os.path.join(
        str(tmp_path), ".featureledger/offline"
    )
    assert config.storage.to_options() == {
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-1",
    }
    with pytest.raises(ConfigError, match=r"look like credentials.*AWS_SECRET_ACCESS_KEY"):
        RepoConfig.from_dict({"storage": {"options": {"AWS_SECRET_ACCESS_KEY": "x"}}})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['storage.secret'\]"):
        RepoConfig.from_dict({"storage": {"secret": "x"}})
