"""The store's own files on S3: artifacts keep the hash they had on local disk, and
Parquet written through the storage reads back equal."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger.config import RepoConfig
from featureledger.hashing import artifact_sha256
from featureledger.storage import open_storage
from featureledger.store._files import StoreFiles

from .conftest import make_bucket, s3_options

#: path parts chosen so that string order and path-component order differ ("a-b" < "a/b")
PART = st.sampled_from(["a", "a-b", "a.b", "b", "A", "a_b", "z9"])
TREES = st.dictionaries(
    st.lists(PART, min_size=1, max_size=3).map(tuple), st.binary(max_size=64), max_size=6
)


def _files(endpoint: str) -> StoreFiles:
    storage = open_storage(f"s3://{make_bucket(endpoint)}/repo", s3_options(endpoint))
    return StoreFiles(config=RepoConfig(), repo=Path("/nonexistent"), storage=storage)


def _write_tree(root: Path, tree: dict[tuple[str, ...], bytes]) -> None:
    root.mkdir(parents=True)
    for parts, body in tree.items():
        # a file cannot also be a folder: skip entries whose path runs through a file
        target = root.joinpath(*parts)
        if any(root.joinpath(*parts[:i]).is_file() for i in range(1, len(parts))):
            continue
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES)
def test_an_uploaded_folder_hashes_as_it_did_on_disk(
    s3_endpoint: str, tree: dict[tuple[str, ...], bytes]
) -> None:
    files = _files(s3_endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "artifact"
        _write_tree(source, tree)
        (source / "always").write_bytes(b"x")  # an empty folder is no artifact
        digest = artifact_sha256(source)
        target = files.model_uri(digest, "artifact")
        files.put(source, target)
        assert files.sha256(target) == digest
        files.put(source, target)  # complete already: nothing is uploaded again
        assert files.sha256(target) == digest


def test_parquet_round_trip_and_an_interrupted_upload_is_redone(s3_endpoint: str) -> None:
    files = _files(s3_endpoint)
    table = pa.table({"k": pa.array(range(1000), pa.int64()), "s": [str(i) for i in range(1000)]})
    uri = files.training_uri("view", 1, "entities-x.parquet")
    files.write_parquet(table, uri)
    assert files.exists(uri) and files.read_parquet(uri).equals(table)
    assert files.dataset(uri).to_table().equals(table)
    with files.parquet_writer(files.join(files.training_root, "out.parquet"), table.schema) as w:
        w.write_table(table)
    assert files.read_parquet(files.join(files.training_root, "out.parquet")).equals(table)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "model.bin"
        source.write_bytes(b"weights")
        target = files.model_uri(uuid.uuid4().hex, "model.bin")
        storage = files._storage(target)
        storage.write_bytes(target, b"half")  # a crashed upload: no completion marker
        files.put(source, target)
        assert storage.read_bytes(target) == b"weights"
