"""Reading pinned snapshots as Daft dataframes, and the small helpers the engine shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from featureledger.errors import StorageError

if TYPE_CHECKING:
    import daft

    from featureledger.storage import Storage


def remote(uri: str) -> bool:
    scheme = urlsplit(uri).scheme
    return len(scheme) > 1 and scheme != "file"


def daft_schema(schema: pa.Schema) -> dict[str, Any]:
    import daft

    return {f.name: daft.DataType.from_arrow_type(f.type) for f in schema}


#: credentials among `Storage.storage_options`
SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def shipped_options(storage: Storage, ship_secrets: bool) -> dict[str, str]:
    """The storage options a query carries to whoever runs it: on Ray the plan goes to the
    workers, which take credentials from their own environment (docs/scale-out.md), so the
    driver's are left out; the native runner runs in this process and keeps them."""
    opts = dict(storage.storage_options)
    return opts if ship_secrets else {k: v for k, v in opts.items() if k not in SECRETS}


def io_config(storage: Storage | None, ship_secrets: bool = True) -> Any:
    """Daft's object-store settings from the repository's storage (None on local disk).

    The same options deltalake commits with (`Storage.storage_options`), so Daft's readers
    reach the table as the writer did; without ``ship_secrets`` credentials come from the
    environment of the process reading (a Ray worker's own)."""
    if storage is None or storage.local:
        return None
    from daft.io import IOConfig, S3Config

    opts = shipped_options(storage, ship_secrets)
    endpoint = opts.get("AWS_ENDPOINT_URL")
    allow_http = opts.get("AWS_ALLOW_HTTP") == "true"
    return IOConfig(
        s3=S3Config(
            region_name=opts.get("AWS_REGION"),
            endpoint_url=endpoint,
            key_id=opts.get("AWS_ACCESS_KEY_ID"),
            access_key=opts.get("AWS_SECRET_ACCESS_KEY"),
            session_token=opts.get("AWS_SESSION_TOKEN"),
            use_ssl=not allow_http,
            # moto_server and MinIO serve buckets by path, not by virtual host
            force_virtual_addressing=False,
        )
    )


def scan(
    files: Sequence[str],
    schema: pa.Schema,
    storage: Storage | None,
    io: Any = None,
    ship_secrets: bool = True,
) -> daft.DataFrame:
    """The snapshot ``(files, schema)`` as a lazy dataframe in ``schema``: files written
    before a column was added read it as NULL, narrower stored types are widened; an empty
    snapshot is an empty frame.

    Daft's own Parquet reader is used when every file can take it. Files written by
    delta-rs' merge and optimize (DataFusion) carry ``string_view`` in their embedded Arrow
    schema, which Daft 0.7 refuses ("Unsupported Arrow DataType: Utf8View", a known Daft
    gap); snapshots holding such files, and snapshots in object storage (whose footers the
    driver would have to fetch to tell), are read by `SnapshotSource`: one task per file,
    run on the workers, reading it with pyarrow.
    """
    import daft

    from featureledger.offline.daft.source import SnapshotSource

    if not files:
        return daft.from_arrow(schema.empty_table())
    if remote(files[0]):
        if storage is None or storage.local:
            raise StorageError(
                f"{files[0]} is in object storage but this engine was built without a "
                "storage to reach it; pass storage=open_storage(url, options)",
                uri=files[0],
            )
        return SnapshotSource(list(files), schema, shipped_options(storage, ship_secrets)).read()
    if all(_daft_reads(f) for f in files):
        return daft.read_parquet(
            list(files), schema=daft_schema(schema), infer_schema=False, io_config=io
        )
    return SnapshotSource(list(files), schema, None).read()


#: footers already checked (data files are immutable: a path is never rewritten)
_readable: dict[str, bool] = {}


def _daft_reads(path: str) -> bool:
    found = _readable.get(path)
    if found is None:
        import pyarrow.parquet as pq

        try:
            stored = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid):
            return False  # let the pyarrow source read it, or fail with its error
        found = not any(_has_view(f.type) for f in stored)
        if len(_readable) > 100_000:
            _readable.clear()
        _readable[path] = found
    return found


def _has_view(t: pa.DataType) -> bool:
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return _has_view(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_view(t.field(i).type) for i in range(t.num_fields))
    return False


def dataset_files(data: Any) -> list[str] | None:
    """The Parquet file URIs of a ``pyarrow.dataset`` on local disk or S3, else None."""
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

    if not isinstance(data, pads.FileSystemDataset) or not isinstance(
        data.format, pads.ParquetFileFormat
    ):
        return None
    if isinstance(data.filesystem, pafs.LocalFileSystem):
        return list(data.files)
    if isinstance(data.filesystem, pafs.S3FileSystem):
        return [f"s3://{f}" for f in data.files]
    return None


def zero_signs(c: Any) -> Any:
    """A float expression with -0.0 made 0.0. Daft compares floats in total order
    (-0.0 < 0.0, -0.0 != 0.0), DuckDB and IEEE hold them equal; ``abs`` is the one
    operation seen to drop the sign (Daft folds ``x + 0.0`` away)."""
    from daft import lit
    from daft.functions import when

    return when(c.abs() == lit(0.0), lit(0.0)).otherwise(c)


def positions(n: int) -> pa.Array:
    import numpy as np

    return pa.array(np.arange(n, dtype=np.int64))


def to_arrow(frame: daft.DataFrame, schema: pa.Schema) -> pa.Table:
    """Collect ``frame`` as one Arrow table in ``schema`` (its column types, in order)."""
    out = frame.to_arrow()
    if out.num_rows == 0 and not out.schema.names:
        return schema.empty_table()
    return out.select(schema.names).cast(schema)
