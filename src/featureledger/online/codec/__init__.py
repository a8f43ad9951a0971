"""Key and row encodings shared by the online stores, vectorized over Arrow batches.

Both encodings are documented in docs/serving.md ("Encoding"); in short:

**Key bytes** (one per entity; equal keys give equal bytes, and for integer, date and
timestamp keys byte order is value order, so a key-sorted source inserts in B-tree order).
Key columns are concatenated in declared order: bool as one byte; integers, dates and
timestamps big-endian, signed ones with the sign bit flipped; a string or binary as its
bytes, preceded by its length as a big-endian u32 unless it is the last key column.

**Row blob** ``flr1``: ``schema id (u32 LE) | validity bitmap (one bit per feature, LSB
first) | fixed section | variable section``. The fixed section holds every fixed-width
feature in schema order, little-endian (bool as one byte 0/1, date32 as i32 days, timestamp
as i64 microseconds; zeros under a null). The variable section holds, in schema order, a
cell per string/binary feature (``u32 LE length | bytes``) and per list feature
(``u32 LE count | one validity byte per element | u32 LE length per element if the element
type is string/binary | element bytes``). A null cell is an empty one. Floats are stored as
their IEEE-754 bits, so NaN payloads and -0.0 come back as written.

The schema id is 32 bits of BLAKE2b over the feature names and types, so a store can hold
rows written under several schemas of one table (a column added by a minor version) and
decode each with its own layout; a feature missing from a row's schema reads as NULL.
"""

from featureledger.online.codec.buffers import Bytes, concat_rows, gather, ranges
from featureledger.online.codec.keys import (
    encode_key,
    encode_keys,
    key_columns_for_read,
    key_schema,
)
from featureledger.online.codec.reads import assemble, check_features, micros
from featureledger.online.codec.rows import (
    RowSchema,
    schema_fingerprint,
    schema_from_bytes,
    schema_to_bytes,
)
from featureledger.online.codec.tables import (
    CHUNK_ROWS,
    NO_TIME,
    Chunk,
    Prepare,
    TableLayout,
    batches,
    encode_chunk,
    encoded_chunks,
    plan_write,
)

__all__ = [
    "CHUNK_ROWS",
    "NO_TIME",
    "Bytes",
    "Chunk",
    "Prepare",
    "RowSchema",
    "TableLayout",
    "assemble",
    "batches",
    "check_features",
    "concat_rows",
    "encode_chunk",
    "encode_key",
    "encode_keys",
    "encoded_chunks",
    "gather",
    "key_columns_for_read",
    "key_schema",
    "micros",
    "plan_write",
    "ranges",
    "schema_fingerprint",
    "schema_from_bytes",
    "schema_to_bytes",
]
