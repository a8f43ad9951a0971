"""Storage backends: local disk (default) and S3-compatible object storage."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from featureledger.errors import ConfigError
from featureledger.storage.base import ObjectInfo, Storage, object_sha256


def _local(url: str, options: Mapping[str, Any]) -> Storage:
    from featureledger.storage.local import LocalStorage

    # the options say how to reach an object store; a local path needs none, and a
    # repository may set them for its s3:// paths while its tables stay local
    return LocalStorage(url)


def _s3(url: str, options: Mapping[str, Any]) -> Storage:
    from featureledger.storage.s3 import S3Storage

    return S3Storage(url, options)


#: URL scheme -> factory; backends import their drivers lazily
STORAGES: dict[str, Callable[[str, Mapping[str, Any]], Storage]] = {
    "": _local,
    "file": _local,
    "s3": _s3,
    "s3a": _s3,
}


def is_remote(url: str) -> bool:
    """Whether ``url`` names an object store rather than a local path."""
    return urlsplit(str(url)).scheme not in ("", "file")


def open_storage(url: str, options: Mapping[str, Any] | None = None) -> Storage:
    """The storage rooted at ``url``: a local path, ``file://...`` or ``s3://bucket/prefix``."""
    scheme = urlsplit(str(url)).scheme
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    factory = STORAGES.get(scheme)
    if factory is None:
        raise ConfigError(
            f"no storage backend for {scheme}:// URLs ({url}); use a local path or "
            f"one of {sorted(s for s in STORAGES if s)}"
        )
    return factory(str(url), options or {})


__all__ = ["STORAGES", "ObjectInfo", "Storage", "is_remote", "object_sha256", "open_storage"]
