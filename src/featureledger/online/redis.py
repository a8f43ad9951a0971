"""The production online store: Redis (``pip install 'featureledger[redis]'``).

Key layout (``prefix`` defaults to ``fl``; docs/serving.md):

- ``<prefix>:tables``: a set of the table keys holding data;
- ``<prefix>:<table_key>:gen``: the table's generation ``g``, the pointer to its live
  namespace ``<prefix>:<table_key>:<g>:``; a number new for each copy (from the counter
  ``<prefix>:generations``). Every read fetches it in the same ``MGET`` as the rows, so a
  reader notices at once when another process deleted or replaced the table;
- ``<prefix>:<table_key>:<g>:meta``: a hash with ``keys`` (the key columns' Arrow schema),
  ``schema:<id>`` (each feature schema rows were written with, id as 8 hex digits),
  ``v:<source version>`` -> id, ``vid:<id>`` -> source version, ``vseq``;
- ``<prefix>:<table_key>:<g>:r:<key bytes>``: one string per entity,
  ``event time (8 bytes, big-endian, offset by 2**63) | source version id (u32 big-endian) |
  flr1 row blob`` (see `featureledger.online.codec`);
- ``<prefix>:builds``: ``<table_key>|<g>`` -> build id of each unfinished `replace`, whose
  namespace is written before the pointer moves to it; ``<prefix>:dropping``: namespaces the
  pointer has left, deleted after the switch (kept here until then, so a kill mid-way
  leaves a record for the next `replace` or `discard_build` to finish).

Writes run a Lua script over up to ``batch_keys`` entities per call, pipelined, which
replaces a value only if the new event time is >= the stored one, atomically. Reads are a
single ``MGET`` (the generation, then the rows). Values carry no Redis expiry: the TTL is
applied on read, against the caller's ``now``, exactly as offline. Redis Cluster is not
supported (the write script touches keys of many hash slots).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from featureledger.errors import ConfigError, FeatureLedgerError, NotFoundError
from featureledger.online.base import Rows, check_build, check_table_key
from featureledger.online.codec import (
    Bytes,
    Chunk,
    RowSchema,
    TableLayout,
    assemble,
    check_features,
    concat_rows,
    encode_key,
    encode_keys,
    encoded_chunks,
    gather,
    key_columns_for_read,
    ranges,
    schema_from_bytes,
    schema_to_bytes,
)
from featureledger.online.point import decode_one, point_key

_HEADER = 12
_OFFSET = np.uint64(1 << 63)
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# Replace each entity's value unless the stored event time is greater. Times are compared
# as two unsigned 32-bit halves: Lua numbers are doubles, and string comparison would
# depend on the server's collation locale. KEYS[1] guards the write: the table's pointer
# (ARGV[1] 'g': it must still hold ARGV[2]) or the builds hash (ARGV[1] 'b': field ARGV[3]
# must still hold ARGV[2]); otherwise nothing is written and -1 tells the caller, so rows
# never land in a namespace that was swapped out or discarded.
_WRITE = """
local check
if ARGV[1] == 'g' then
  check = redis.call('GET', KEYS[1])
else
  check = redis.call('HGET', KEYS[1], ARGV[3])
end
if check ~= ARGV[2] then
  return -1
end
local n = 0
for i = 2, #KEYS do
  local new = ARGV[i + 2]
  local cur = redis.call('GETRANGE', KEYS[i], 0, 7)
  local put = cur == ''
  if not put then
    local ch, cl = struct.unpack('>I4I4', cur)
    local nh, nl = struct.unpack('>I4I4', new)
    put = nh > ch or (nh == ch and nl >= cl)
  end
  if put then
    redis.call('SET', KEYS[i], new)
    n = n + 1
  end
end
return n
"""

# Register a table (keys schema, feature schema) and intern a source version, atomically,
# in the live namespace (created if missing) or, with ARGV[7], in build generation ARGV[7].
# KEYS: generation key, tables set, generation counter;
# ARGV: table key, key base, keys schema, schema field, schema, version, build generation.
_ENSURE = """
local g = ARGV[7]
if g == '' then
  g = redis.call('GET', KEYS[1])
  if not g then
    g = tostring(redis.call('INCR', KEYS[3]))
    redis.call('SET', KEYS[1], g)
    redis.call('SADD', KEYS[2], ARGV[1])
  end
end
local meta = ARGV[2] .. ':' .. g .. ':meta'
local keys = redis.call('HGET', meta, 'keys')
if not keys then
  keys = ARGV[3]
  redis.call('HSET', meta, 'keys', keys)
end
redis.call('HSETNX', meta, ARGV[4], ARGV[5])
local id = redis.call('HGET', meta, 'v:' .. ARGV[6])
if not id then
  id = tostring(redis.call('HINCRBY', meta, 'vseq', 1))
  redis.call('HSET', meta, 'v:' .. ARGV[6], id, 'vid:' .. id, ARGV[6])
end
return {g, keys, redis.call('HGET', meta, ARGV[4]), id}
"""

# The live generation and its metadata, read together. KEYS[1]: generation key; ARGV[1]:
# key base.
_LOAD = """
local g = redis.call('GET', KEYS[1])
if not g then
  return false
end
return {g, redis.call('HGETALL', ARGV[1] .. ':' .. g .. ':meta')}
"""

# Point the table at build generation ARGV[2] and queue the old namespace for deletion.
# KEYS: generation key, tables set, builds hash, dropping hash; ARGV: table key, build
# generation, build id. Returns the old generation (false if none), or -1 when the build
# was discarded meanwhile.
_SWAP = """
local field = ARGV[1] .. '|' .. ARGV[2]
if redis.call('HGET', KEYS[3], field) ~= ARGV[3] then
  return -1
end
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], field)
if old then
  redis.call('HSET', KEYS[4], ARGV[1] .. '|' .. old, '1')
end
return old
"""

# Delete a table: drop its pointer and queue its namespace for deletion. KEYS: generation
# key, tables set, dropping hash; ARGV: table key.
_DELETE = """
local old = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
if old then
  redis.call('HSET', KEYS[3], ARGV[1] .. '|' .. old, '1')
end
return old
"""


def _client_module() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the Redis online store needs the redis client: pip install 'featureledger[redis]' "
            "(or pip install 'redis>=5')"
        ) from exc
    return redis


def _split_records(records: list[bytes]) -> tuple[np.ndarray, np.ndarray, Bytes]:
    """Event times, version ids and row blobs of stored records (header documented above)."""
    if len(records) <= 16:  # plain Python is faster than numpy for a few records
        times = np.array(
            [int.from_bytes(r[:8], "big") - (1 << 63) for r in records], dtype=np.int64
        )
        versions = np.array([int.from_bytes(r[8:12], "big") for r in records], dtype=np.int64)
        return times, versions, Bytes.from_list([r[_HEADER:] for r in records])
    joined = Bytes.from_list(records)
    starts = joined.offsets[:-1]
    times = (
        gather(joined.data, starts, 8).view(">u8").reshape(-1).astype(np.uint64) ^ _OFFSET
    ).view(np.int64)
    versions = gather(joined.data, starts + 8, 4).view(">u4").reshape(-1).astype(np.int64)
    lengths = joined.lengths - _HEADER
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return times, versions, Bytes(offsets, joined.data[ranges(starts + _HEADER, lengths)])


class RedisOnlineStore:
    """Online store in a Redis server (``redis://host:port/db`` or host/port)."""

    name = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        prefix: str = "fl",
        batch_keys: int = 1_000,
        client: Any = None,
    ) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ConfigError(
                f"Redis key prefix {prefix!r} is not allowed: use 1-64 letters, digits or '_.-'"
            )
        redis = _client_module()
        self._own = client is None
        if client is None:
            client = redis.Redis.from_url(url) if url else redis.Redis(host=host, port=port, db=db)
        self._r = client
        self.prefix = prefix
        self._batch_keys = batch_keys
        self._write_script = client.register_script(_WRITE)
        self._ensure_script = client.register_script(_ENSURE)
        self._load_script = client.register_script(_LOAD)
        self._swap_script = client.register_script(_SWAP)
        self._delete_script = client.register_script(_DELETE)
        self._layouts: dict[str, TableLayout] = {}
        self._versions: dict[str, dict[int, str]] = {}
        self._generations: dict[str, bytes] = {}
        self._where = url or f"redis://{host}:{port}/{db}"

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self._where!r}, prefix={self.prefix!r})"

    def _base(self, table_key: str) -> str:
        return f"{self.prefix}:{table_key}"

    def _gen_key(self, table_key: str) -> str:
        return f"{self.prefix}:{table_key}:gen"

    def _row_prefix(self, table_key: str, generation: bytes | None = None) -> bytes:
        """Where the rows of ``generation`` (default: the one this client last loaded) live."""
        gen = generation if generation is not None else self._generations.get(table_key, b"")
        return f"{self.prefix}:{table_key}:".encode() + gen + b":r:"

    def _redis_keys(self, prefix: bytes, key_bytes: Bytes) -> list[bytes]:
        head_bytes = np.frombuffer(prefix, dtype=np.uint8)
        n = len(key_bytes)
        head = Bytes.fixed(np.broadcast_to(head_bytes, (n, len(head_bytes))).copy())
        return concat_rows([head, key_bytes], n).to_pylist()

    # -- metadata ------------------------------------------------------------------------------
    def _load(self, table_key: str) -> TableLayout | None:
        found = self._load_script(keys=[self._gen_key(table_key)], args=[self._base(table_key)])
        if not found or not found[1]:
            self._forget(table_key)
            return None
        generation, flat = found
        meta = dict(zip(flat[::2], flat[1::2], strict=True))
        layout = TableLayout(schema_from_bytes(meta[b"keys"]))
        versions = {}
        for name, value in meta.items():
            if name.startswith(b"schema:"):
                layout.add(schema_from_bytes(value))
            elif name.startswith(b"vid:"):
                versions[int(name[4:])] = value.decode()
        self._layouts[table_key] = layout
        self._versions[table_key] = versions
        self._generations[table_key] = generation
        return layout

    def _forget(self, table_key: str) -> None:
        self._layouts.pop(table_key, None)
        self._versions.pop(table_key, None)
        self._generations.pop(table_key, None)

    def _layout_for(self, table_key: str, feature_names: Sequence[str]) -> TableLayout:
        layout = self._layout(table_key)
        if not layout.types.keys() >= set(feature_names):
            layout = self._reload(table_key)  # another process may have added them
            check_features(layout, feature_names, table_key)
        return layout

    def _layout(self, table_key: str) -> TableLayout:
        layout = self._layouts.get(table_key)
        if layout is None:
            check_table_key(table_key)
            layout = self._load(table_key)
            if layout is None:
                raise NotFoundError(
                    f"online table {table_key!r} does not exist in {self!r}; materialize it first"
                )
        return layout

    def _reload(self, table_key: str) -> TableLayout:
        layout = self._load(table_key)
        if layout is None:
            raise NotFoundError(f"online table {table_key!r} was deleted while being read")
        return layout

    def _version_names(self, table_key: str, ids: Sequence[int]) -> list[str]:
        known = self._versions.get(table_key, {})
        if any(i not in known for i in ids):
            self._load(table_key)
            known = self._versions.get(table_key, {})
        return [known[i] for i in ids]

    # -- the port ------------------------------------------------------------------------------
    def write(
        self,
        table_key: str,
        rows: Rows,
        key_columns: Sequence[str],
        *,
        event_time_column: str | None,
        source_version: str,
        atomic: bool = False,
    ) -> int:
        check_table_key(table_key)
        return self._write(
            table_key, rows, key_columns, event_time_column, source_version, atomic=atomic
        )

    def _write(
        self,
        table_key: str,
        rows: Rows,
        key_columns: Sequence[str],
        event_time_column: str | None,
        source_version: str,
        *,
        atomic: bool = False,
        build: tuple[bytes, str] | None = None,
    ) -> int:
        """Write into the live namespace, or into build generation ``build[0]`` (``build[1]``)."""
        if not isinstance(source_version, str) or not source_version:
            raise ValueError("source_version must be a non-empty string")
        plan: list[Any] = []  # the last (keys, row schema, generation), for a retry

        def prepare(keys: pa.Schema, row_schema: RowSchema) -> tuple[pa.Schema, int]:
            gen = b"" if build is None else build[0]
            stored, vid, generation = self._ensure(table_key, keys, row_schema, source_version, gen)
            plan[:] = [keys, row_schema, generation]
            return stored, vid

        # atomic: every chunk's script goes into one MULTI/EXEC, run at the end
        pipe = self._r.pipeline(transaction=True) if atomic else None
        changed = 0
        for chunk, version in encoded_chunks(rows, key_columns, event_time_column, prepare):
            while True:
                got = self._put(table_key, chunk, version, plan[2], build, pipe)
                if got >= 0:
                    changed += got
                    break
                if build is not None:
                    raise FeatureLedgerError(
                        f"online table {table_key!r}: build {build[1]!r} was discarded by "
                        "another process while it was written; run the materialization again"
                    )
                # the table was replaced or deleted meanwhile: write into its live copy
                _, version, generation = self._ensure(
                    table_key, plan[0], plan[1], source_version, b""
                )
                plan[2] = generation
        if pipe is not None:
            results = [int(c) for c in pipe.execute()]
            if any(c < 0 for c in results):
                raise FeatureLedgerError(
                    f"online table {table_key!r} was replaced or deleted by another process "
                    "during an atomic write; nothing was written; run it again"
                )
            changed = sum(results)
        return changed

    def _ensure(
        self,
        table_key: str,
        keys: pa.Schema,
        row_schema: RowSchema,
        source_version: str,
        build_generation: bytes,
    ) -> tuple[pa.Schema, int, bytes]:
        field = f"schema:{row_schema.id:08x}"
        generation, stored_keys, stored_schema, vid = self._ensure_script(
            keys=[
                self._gen_key(table_key),
                f"{self.prefix}:tables",
                f"{self.prefix}:generations",
            ],
            args=[
                table_key,
                self._base(table_key),
                schema_to_bytes(keys),
                field,
                schema_to_bytes(row_schema.schema),
                source_version,
                build_generation,
            ],
        )
        if not schema_from_bytes(stored_schema).equals(row_schema.schema):
            raise FeatureLedgerError(
                f"online table {table_key!r}: two feature schemas share the id "
                f"{row_schema.id:08x} (a 32-bit hash collision); rename a feature or use a "
                "new table key"
            )
        layout = TableLayout(schema_from_bytes(stored_keys))
        layout.check_keys(keys, table_key)
        if not build_generation:
            self._load(table_key)  # the live layout, with every schema, for reads
        return layout.keys, int(vid), generation

    def _put(
        self,
        table_key: str,
        chunk: Chunk,
        version_id: int,
        generation: bytes,
        build: tuple[bytes, str] | None,
        pipe: Any = None,
    ) -> int:
        """Write one chunk into ``generation``; -1 when its guard failed (see _WRITE)."""
        n = len(chunk)
        times = (chunk.times.view(np.uint64) ^ _OFFSET).astype(">u8").view(np.uint8)
        vid = np.frombuffer(version_id.to_bytes(4, "big"), dtype=np.uint8)
        header = np.empty((n, _HEADER), dtype=np.uint8)
        header[:, :8] = times.reshape(n, 8)
        header[:, 8:] = vid
        records = concat_rows([Bytes.fixed(header), chunk.rows], n).to_pylist()
        keys = self._redis_keys(self._row_prefix(table_key, generation), chunk.keys)
        if build is None:
            guard, args = self._gen_key(table_key), [b"g", generation, b""]
        else:
            field = f"{table_key}|{build[0].decode()}".encode()
            guard, args = f"{self.prefix}:builds", [b"b", build[1].encode(), field]
        own = pipe is None
        if own:
            pipe = self._r.pipeline(transaction=False)
        step = self._batch_keys
        for i in range(0, n, step):
            self._write_script(
                keys=[guard, *keys[i : i + step]], args=[*args, *records[i : i + step]], client=pipe
            )
        if not own:
            return 0  # counted when the caller executes the pipeline
        results = [int(c) for c in pipe.execute()]
        if any(c < 0 for c in results):
            return -1  # all or none: the guard cannot change within one pipeline here
        return sum(results)

    def replace(
        self,
        table_key: str,
        rows: Rows,
        key_columns: Sequence[str],
        *,
        event_time_column: str | None,
        source_version: str,
        build: str,
    ) -> int:
        """Write ``rows`` into a new namespace, then move the table's pointer to it in one
        script (readers see the old copy or the new one) and delete the old namespace."""
        check_table_key(table_key)
        check_build(build)
        self._sweep()
        generation = str(self._r.incr(f"{self.prefix}:generations")).encode()
        field = f"{table_key}|{generation.decode()}"
        self._r.hset(f"{self.prefix}:builds", field, build)
        changed = self._write(
            table_key,
            rows,
            key_columns,
            event_time_column,
            source_version,
            build=(generation, build),
        )
        if not self._r.exists(f"{self._base(table_key)}:{generation.decode()}:meta"):
            # the input had no schema: the table goes
            self._r.hdel(f"{self.prefix}:builds", field)
            self.delete_table(table_key)
            return changed
        old = self._swap_script(
            keys=[
                self._gen_key(table_key),
                f"{self.prefix}:tables",
                f"{self.prefix}:builds",
                f"{self.prefix}:dropping",
            ],
            args=[table_key, generation, build],
        )
        if old == -1:
            raise FeatureLedgerError(
                f"online table {table_key!r}: build {build!r} was discarded by another process "
                "before it was swapped in; run the materialization again"
            )
        self._load(table_key)  # the new copy's layout: reads take the fast path at once
        self._sweep()
        return changed

    def builds(self) -> list[tuple[str, str]]:
        found = []
        for field, build in self._r.hgetall(f"{self.prefix}:builds").items():
            table_key, _, _ = field.decode().rpartition("|")
            found.append((table_key, build.decode()))
        return sorted(found)

    def discard_build(self, table_key: str, build: str) -> None:
        check_table_key(table_key)
        check_build(build)
        builds = f"{self.prefix}:builds"
        for field, value in self._r.hgetall(builds).items():
            name, _, generation = field.decode().rpartition("|")
            if name == table_key and value.decode() == build:
                # unregistered first: a writer still at work then fails its guard
                self._r.hdel(builds, field)
                self._drop_namespace(table_key, generation)
        self._sweep()

    def _sweep(self) -> None:
        """Delete the namespaces the pointer has left (a kill may have interrupted that)."""
        dropping = f"{self.prefix}:dropping"
        for field in self._r.hkeys(dropping):
            table_key, _, generation = field.decode().rpartition("|")
            self._drop_namespace(table_key, generation)
            self._r.hdel(dropping, field)

    def _drop_namespace(self, table_key: str, generation: str) -> None:
        pattern = f"{self._base(table_key)}:{generation}:*".encode()
        pending: list[bytes] = []
        for key in self._r.scan_iter(match=pattern, count=10_000):
            pending.append(key)
            if len(pending) >= 10_000:
                self._r.unlink(*pending)
                pending.clear()
        if pending:
            self._r.unlink(*pending)

    def read(
        self,
        table_key: str,
        keys: pa.Table,
        feature_names: Sequence[str],
        *,
        now: datetime,
        ttl: timedelta | None,
        _retry: bool = True,
    ) -> pa.Table:
        layout = self._layout_for(table_key, feature_names)
        n = keys.num_rows
        columns = key_columns_for_read(keys, layout.keys)
        if n == 1:
            # the serving hot path: one key, encoded without numpy
            key = encode_key(columns, layout.key_specs)
            asked = np.zeros(1 if key is not None else 0, dtype=np.int64)
            redis_keys = [] if key is None else [self._row_prefix(table_key) + key]
        else:
            key_bytes, valid = encode_keys(columns, layout.key_specs)
            if valid is None:
                asked = np.arange(n, dtype=np.int64)
            else:
                asked = np.flatnonzero(valid)
                key_bytes = key_bytes.take(asked)
            redis_keys = self._redis_keys(self._row_prefix(table_key), key_bytes)
        generation, *values = self._r.mget([self._gen_key(table_key), *redis_keys])
        if generation != self._generations.get(table_key):
            self._forget(table_key)
            if generation is None or not _retry:
                raise NotFoundError(
                    f"online table {table_key!r} does not exist in {self!r} (deleted by "
                    "another process?); materialize it first"
                )
            # recreated by another process: read again with its current layout
            return self.read(table_key, keys, feature_names, now=now, ttl=ttl, _retry=False)
        found = [v for v in values if v is not None]
        hit = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
        times, versions, blobs = _split_records(found)
        return assemble(
            layout,
            n,
            asked[hit] if len(found) < len(values) else asked,
            times,
            versions,
            blobs,
            feature_names,
            now=now,
            ttl=ttl,
            version_names=lambda ids: self._version_names(table_key, ids),
            reload=lambda: self._reload(table_key),
        )

    def read_one(
        self,
        table_key: str,
        key: Sequence[object],
        feature_names: tuple[str, ...],
        *,
        now: datetime,
        ttl: timedelta | None,
    ) -> tuple[tuple[object, ...], tuple[pa.DataType, ...]] | None:
        """One entity's features as Python values (`featureledger.online.point`), or None
        when `read` must answer instead."""
        layout = self._layouts.get(table_key)
        encoded = point_key(layout, key, feature_names)
        if encoded is None:
            return None
        assert layout is not None
        generation, record = self._r.mget(
            [self._gen_key(table_key), self._row_prefix(table_key) + encoded]
        )
        if generation != self._generations.get(table_key):
            return None  # deleted or recreated by another process: `read` deals with it
        if record is None:
            return decode_one(layout, None, None, feature_names, now=now, ttl=ttl)
        time = int.from_bytes(record[:8], "big") - (1 << 63)
        return decode_one(layout, time, record[_HEADER:], feature_names, now=now, ttl=ttl)

    def delete_table(self, table_key: str) -> None:
        check_table_key(table_key)
        # readers see the deletion from the pointer's removal on; the rows go after it
        self._delete_script(
            keys=[self._gen_key(table_key), f"{self.prefix}:tables", f"{self.prefix}:dropping"],
            args=[table_key],
        )
        self._forget(table_key)
        self._sweep()

    def tables(self) -> list[str]:
        return sorted(m.decode() for m in self._r.smembers(f"{self.prefix}:tables"))

    def close(self) -> None:
        if self._own:
            self._r.close()
