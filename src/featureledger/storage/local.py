"""Local-disk storage: the embedded default."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow.fs as pafs

from featureledger.errors import StorageError
from featureledger.storage.base import ObjectInfo


class LocalStorage:
    """Objects as files under one folder; URIs are absolute paths."""

    name = "local"

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        if text.startswith("file://"):
            text = text[len("file://") :]
        self.root = str(Path(text).resolve())

    def __repr__(self) -> str:
        return f"LocalStorage({self.root!r})"

    @property
    def local(self) -> bool:
        return True

    @property
    def storage_options(self) -> dict[str, str]:
        return {}

    def uri(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def _path(self, uri: str) -> Path:
        return Path(uri[len("file://") :] if uri.startswith("file://") else uri)

    def read_bytes(self, uri: str) -> bytes:
        try:
            return self._path(uri).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"{uri} does not exist", uri=uri) from exc

    def write_bytes(self, uri: str, data: bytes) -> None:
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        # write then rename, so readers never see half an object (as on an object store)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def exists(self, uri: str) -> bool:
        return self._path(uri).exists()

    def info(self, uri: str) -> ObjectInfo | None:
        try:
            st = os.stat(self._path(uri))
        except FileNotFoundError:
            return None
        return ObjectInfo(uri, st.st_size, st.st_mtime_ns)

    def list(self, uri: str) -> list[str]:
        base = self._path(uri)
        if base.is_file():
            return [str(base)]
        if not base.is_dir():
            return []
        return sorted(str(p) for p in base.rglob("*") if p.is_file())

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def arrow_filesystem(self) -> pafs.FileSystem:
        # imported here: reading the registry with a LocalStorage at hand needs no PyArrow
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem()

    def arrow_path(self, uri: str) -> str:
        return str(self._path(uri))
