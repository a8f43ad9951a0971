"""The scale-out offline engine: Daft over the Parquet files of pinned Delta snapshots, on
Daft's native runner or on a Ray cluster (``offline.ray_address``).

One module per concern: `engine` (the `DaftEngine` class), `pit` (point-in-time joins and
training data written by the workers), `files` (an ingest's data files written by the
workers), `diff` (snapshot comparison), `runner` (Daft's
process-wide runner), `_frames` (snapshot scans, object-store settings). Daft and Ray are
imported here only: the rest of the package never sees them.
"""

from featureledger.offline.daft.engine import DaftEngine

__all__ = ["DaftEngine"]
