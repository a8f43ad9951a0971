"""S3-compatible object storage (AWS S3, MinIO, moto_server, ...).

Delta Lake reaches it through deltalake's own object store (`storage_options`); small
objects, checksums and the Arrow datasets handed to DuckDB go through
`pyarrow.fs.S3FileSystem`. Credentials come from the options given in code or from
the standard ``AWS_*`` environment variables; they are kept in memory only, never
shown by `repr`, and scrubbed from error messages.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from featureledger.errors import ConfigError, StorageError
from featureledger.storage.base import ObjectInfo

#: option name -> environment variables read when it is not given (first set wins)
_ENV = {
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "allow_http": ("AWS_ALLOW_HTTP",),
    "access_key_id": ("AWS_ACCESS_KEY_ID",),
    "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "session_token": ("AWS_SESSION_TOKEN",),
}
#: options S3Storage understands; `extra` passes further deltalake options through
OPTIONS = (*_ENV, "extra")
SECRETS = ("access_key_id", "secret_access_key", "session_token")


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class S3Storage:
    """Objects under ``s3://bucket/prefix``; URIs are ``s3://bucket/key``."""

    name = "s3"

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("s3", "s3a") or not parts.netloc:
            raise ConfigError(f"{url!r} is not an S3 URL; write it as s3://bucket/prefix")
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"unknown S3 storage option(s) {unknown}; known: {list(OPTIONS)}")
        for key, names in _ENV.items():
            if opts.get(key) in (None, ""):
                opts[key] = next((os.environ[n] for n in names if os.environ.get(n)), None)
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.root = f"s3://{self.bucket}" + (f"/{prefix}" if prefix else "")
        self.endpoint_url: str | None = opts["endpoint_url"]
        self.region: str = opts["region"] or "us-east-1"
        allow_http = opts["allow_http"]
        self.allow_http = (
            _truthy(allow_http)
            if allow_http is not None
            else bool(self.endpoint_url and self.endpoint_url.startswith("http://"))
        )
        self._secrets = {k: opts[k] for k in SECRETS if opts.get(k)}
        self._extra = {str(k): str(v) for k, v in (opts.get("extra") or {}).items()}
        self._fs: pafs.S3FileSystem | None = None

    def __repr__(self) -> str:
        # credentials stay out of reprs, logs and tracebacks
        return f"S3Storage({self.root!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def local(self) -> bool:
        return False

    @property
    def storage_options(self) -> dict[str, str]:
        out = {"AWS_REGION": self.region}
        if self.endpoint_url:
            out["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.allow_http:
            out["AWS_ALLOW_HTTP"] = "true"
        names = {
            "access_key_id": "AWS_ACCESS_KEY_ID",
            "secret_access_key": "AWS_SECRET_ACCESS_KEY",
            "session_token": "AWS_SESSION_TOKEN",
        }
        out.update({names[k]: v for k, v in self._secrets.items()})
        out.update(self._extra)
        return out

    def uri(self, *parts: str) -> str:
        tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
        return f"{self.root}/{tail}" if tail else self.root

    # -- objects ------------------------------------------------------------------------------
    def arrow_filesystem(self) -> pafs.FileSystem:
        if self._fs is None:
            endpoint = scheme = None
            if self.endpoint_url:
                split = urlsplit(self.endpoint_url)
                scheme = split.scheme or ("http" if self.allow_http else "https")
                endpoint = split.netloc or split.path
            self._fs = pafs.S3FileSystem(
                access_key=self._secrets.get("access_key_id"),
                secret_key=self._secrets.get("secret_access_key"),
                session_token=self._secrets.get("session_token"),
                region=self.region,
                endpoint_override=endpoint,
                scheme=scheme or "https",
            )
        return self._fs

    def arrow_path(self, uri: str) -> str:
        split = urlsplit(uri)
        if split.scheme not in ("s3", "s3a"):
            raise StorageError(f"{uri} is not an s3:// URI of {self.root}", uri=uri)
        return split.netloc + split.path

    @contextlib.contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError as exc:
            raise StorageError(f"{uri} does not exist", uri=uri) from exc
        except OSError as exc:
            raise StorageError(
                f"object storage request for {uri} failed at "
                f"{self.endpoint_url or 'AWS S3'}: {self._scrub(str(exc))}. Check the "
                "endpoint, the bucket and the AWS_* credentials in the environment.",
                uri=uri,
                retryable=True,
            ) from None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets.values():
            text = text.replace(secret, "***")
        return text

    def read_bytes(self, uri: str) -> bytes:
        with (
            self._errors(uri),
            self.arrow_filesystem().open_input_stream(self.arrow_path(uri)) as fh,
        ):
            return bytes(fh.read())

    def write_bytes(self, uri: str, data: bytes) -> None:
        with (
            self._errors(uri),
            self.arrow_filesystem().open_output_stream(self.arrow_path(uri)) as fh,
        ):
            fh.write(data)

    def info(self, uri: str) -> ObjectInfo | None:
        with self._errors(uri):
            found = self.arrow_filesystem().get_file_info(self.arrow_path(uri))
        if found.type != pafs.FileType.File:
            return None
        return ObjectInfo(uri, int(found.size or 0), found.mtime_ns)

    def exists(self, uri: str) -> bool:
        with self._errors(uri):
            found = self.arrow_filesystem().get_file_info(self.arrow_path(uri))
        return found.type != pafs.FileType.NotFound

    def list(self, uri: str) -> list[str]:
        selector = pafs.FileSelector(
            self.arrow_path(uri).rstrip("/"), recursive=True, allow_not_found=True
        )
        with self._errors(uri):
            found = self.arrow_filesystem().get_file_info(selector)
        return sorted(f"s3://{f.path}" for f in found if f.type == pafs.FileType.File)

    def delete(self, uri: str) -> None:
        fs, path = self.arrow_filesystem(), self.arrow_path(uri)
        with self._errors(uri):
            kind = fs.get_file_info(path).type
            if kind == pafs.FileType.File:
                fs.delete_file(path)
            elif kind == pafs.FileType.Directory:
                fs.delete_dir(path)
