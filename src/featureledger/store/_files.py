"""Files the store keeps beside its tables: training-set entity frames and outputs, model
artifacts and rejected batches.

They live on local disk under the repository, or, when the repository's tables are in
object storage (``offline.path: s3://...``), beside the tables under prefixes no group
table can take (``fl-training/``, ``fl-models/``, ``fl-rejected/``: names hold no ``-``),
so every machine of a team reads the same ones. ``training_path: s3://...`` puts training
sets in a place of their own. Pointer files, feature logs, the online store and
``apply.lock`` stay local (docs/storage.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from featureledger.config import STATE_DIR, RepoConfig, is_remote_path
from featureledger.hashing import artifact_sha256
from featureledger.storage import Storage, is_remote, object_sha256, open_storage

if TYPE_CHECKING:
    import pyarrow.dataset as pads

#: object written after the last file of an uploaded folder: the upload is complete
_COMPLETE = ".complete"


class StoreFiles:
    """Where the store's own files go, and reading and writing them there."""

    def __init__(self, *, config: RepoConfig, repo: Path, storage: Storage) -> None:
        self._options = config.storage.to_options()
        self._remote: Storage | None = None if storage.local else storage
        remote = not storage.local
        training = config.training_path
        if is_remote_path(training):
            self.training_root = training.rstrip("/")
        elif remote and training == RepoConfig.training_path:
            self.training_root = storage.uri("fl-training")
        else:
            self.training_root = str(config.resolve(repo, training))
        state = repo / STATE_DIR
        self.models_root = storage.uri("fl-models") if remote else str(state / "models")
        self.rejected_root = storage.uri("fl-rejected") if remote else str(state / "rejected")

    # -- locations ------------------------------------------------------------------------------
    @staticmethod
    def join(root: str, *parts: str) -> str:
        if is_remote(root):
            return "/".join([root.rstrip("/"), *parts])
        return os.path.join(root, *parts)

    def training_uri(self, view: str, major: int, name: str) -> str:
        return self.join(self.training_root, view, f"v{major}", name)

    def model_uri(self, digest: str, name: str) -> str:
        return self.join(self.models_root, digest, name)

    def rejected_uri(self, group: str, major: int, run_id: str) -> str:
        return self.join(self.rejected_root, group, f"v{major}", f"{run_id}.parquet")

    def output_uri(self, output: str | Path) -> str:
        """A user-given output location: an object-store URI as it is, a path made absolute."""
        text = str(output)
        return text.rstrip("/") if is_remote_path(text) else str(Path(text).resolve())

    def _storage(self, uri: str) -> Storage:
        """The object storage reaching ``uri`` (every s3:// URI shares the endpoint options)."""
        if self._remote is None:
            bucket = uri.split("://", 1)[1].split("/", 1)[0]
            self._remote = open_storage(f"s3://{bucket}", self._options)
        return self._remote

    # -- Parquet --------------------------------------------------------------------------------
    def write_parquet(self, table: pa.Table, uri: str) -> None:
        if not is_remote(uri):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, uri)
            return
        storage = self._storage(uri)
        pq.write_table(table, storage.arrow_path(uri), filesystem=storage.arrow_filesystem())

    def parquet_writer(self, uri: str, schema: pa.Schema) -> pq.ParquetWriter:
        """A streaming writer; the object appears when the writer is closed."""
        if not is_remote(uri):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            return pq.ParquetWriter(uri, schema)
        storage = self._storage(uri)
        return pq.ParquetWriter(
            storage.arrow_path(uri), schema, filesystem=storage.arrow_filesystem()
        )

    def read_parquet(self, uri: str) -> pa.Table:
        if not is_remote(uri):
            return pq.read_table(uri)
        storage = self._storage(uri)
        return pq.read_table(storage.arrow_path(uri), filesystem=storage.arrow_filesystem())

    def dataset(self, uri: str) -> pads.Dataset:
        import pyarrow.dataset as pads  # here: listing commands never read a dataset

        if not is_remote(uri):
            return pads.dataset(uri, format="parquet")
        storage = self._storage(uri)
        return pads.dataset(
            storage.arrow_path(uri), format="parquet", filesystem=storage.arrow_filesystem()
        )

    # -- objects --------------------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        return self._storage(uri).exists(uri) if is_remote(uri) else Path(uri).exists()

    def read_bytes(self, uri: str) -> bytes:
        return self._storage(uri).read_bytes(uri) if is_remote(uri) else Path(uri).read_bytes()

    def put(self, source: Path, uri: str) -> None:
        """Copy a file or folder to ``uri`` unless a complete copy is there already."""
        if not is_remote(uri):
            target = Path(uri)
            if target.exists():
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".partial")
            if source.is_dir():
                shutil.copytree(source, tmp)
            else:
                shutil.copy2(source, tmp)
            tmp.rename(target)
            return
        storage = self._storage(uri)
        # objects appear one by one: a marker written last tells a complete upload from
        # one a crashed process left half done (which is then uploaded again)
        marker = f"{uri.rsplit('/', 1)[0]}/.{uri.rsplit('/', 1)[1]}{_COMPLETE}"
        if storage.exists(marker):
            return
        pafs.copy_files(
            str(source),
            storage.arrow_path(uri),
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=storage.arrow_filesystem(),
        )
        storage.write_bytes(marker, b"")

    def sha256(self, uri: str) -> str:
        """`hashing.artifact_sha256` of a file or folder, wherever it is stored."""
        if not is_remote(uri):
            return artifact_sha256(uri)
        storage = self._storage(uri)
        if storage.info(uri) is not None:
            return object_sha256(storage, uri)
        prefix = uri.rstrip("/") + "/"
        # the same order as artifact_sha256's sorted local paths: by path components
        items = sorted(
            (PurePosixPath(u[len(prefix) :]), u) for u in storage.list(uri) if u.startswith(prefix)
        )
        h = hashlib.sha256()
        for rel, item in items:
            h.update(rel.as_posix().encode() + b"\0")
            h.update(object_sha256(storage, item).encode() + b"\n")
        return h.hexdigest()
