"""The storage port: where tables, training sets and artifacts live.

A `Storage` is rooted at one URI (a local folder or ``s3://bucket/prefix``). Its object
methods take full URIs, as `uri` builds them and as Delta lists data files, so a file
listed by a Delta snapshot can be read back without translation. Delta Lake itself
gets `storage_options`; pyarrow (datasets handed to DuckDB) gets `arrow_filesystem`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow.fs as pafs


@dataclass(frozen=True)
class ObjectInfo:
    """Size and modification time of one stored object."""

    uri: str
    size: int
    #: nanoseconds since the epoch; object stores keep whole seconds
    mtime_ns: int | None


@runtime_checkable
class Storage(Protocol):
    """A root of stored objects (local folder or object-store prefix)."""

    #: "local" or "s3": the key of `STORAGES` that built it
    name: str
    #: the root URI: an absolute path for local storage, ``s3://bucket/prefix`` otherwise
    root: str

    @property
    def local(self) -> bool:
        """True when objects are files on this machine (writers may use `flock`)."""
        ...

    @property
    def storage_options(self) -> dict[str, str]:
        """Options for deltalake's object store (may hold credentials: never log them)."""
        ...

    def uri(self, *parts: str) -> str:
        """The URI of ``parts`` under the root."""
        ...

    def read_bytes(self, uri: str) -> bytes: ...

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write (or replace) a small object in one request."""
        ...

    def exists(self, uri: str) -> bool: ...

    def info(self, uri: str) -> ObjectInfo | None:
        """Size and modification time, or None when the object does not exist."""
        ...

    def list(self, uri: str) -> list[str]:
        """URIs of every object under ``uri`` (recursively), sorted; [] when none."""
        ...

    def delete(self, uri: str) -> None:
        """Delete an object, or every object under a prefix; missing ones are ignored."""
        ...

    def arrow_filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem reaching this storage's objects."""
        ...

    def arrow_path(self, uri: str) -> str:
        """``uri`` as a path for `arrow_filesystem`."""
        ...


def object_sha256(storage: Storage, uri: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of an object's bytes, streamed through the storage."""
    h = hashlib.sha256()
    with storage.arrow_filesystem().open_input_stream(storage.arrow_path(uri)) as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
