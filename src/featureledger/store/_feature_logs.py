"""Feature logs: served rows written off the request path, read back for drift and skew."""

from __future__ import annotations

import uuid
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions import FeatureView
from featureledger.errors import NotFoundError
from featureledger.offline.logs import REQUEST_ID, REQUEST_TIME, VIEW_VERSION, FeatureLogWriter
from featureledger.store._catalog import Catalog
from featureledger.store._tables import Tables


class FeatureLogs:
    """One log writer per served view version; reads flush them first."""

    def __init__(self, *, tables: Tables, catalog: Catalog) -> None:
        self.tables = tables
        self.catalog = catalog
        self._writers: dict[str, FeatureLogWriter] = {}

    def log_served(self, fv: FeatureView, out: pa.Table, when: datetime) -> None:
        n = out.num_rows
        logged = out.append_column(REQUEST_ID, pa.array([str(uuid.uuid4())] * n))
        logged = logged.append_column(
            REQUEST_TIME, pa.array([when] * n, pa.timestamp("us", tz="UTC"))
        )
        logged = logged.append_column(VIEW_VERSION, pa.array([str(fv.identity(fv.version))] * n))
        self.writer(fv).log(logged)

    def writer(self, fv: FeatureView) -> FeatureLogWriter:
        key = f"{fv.name}@v{fv.version or 1}"
        if key not in self._writers:
            table = self.tables.feature_log(fv.name, fv.version or 1)
            self._writers[key] = FeatureLogWriter(table.path)
        return self._writers[key]

    def flush(self) -> None:
        """Write every served row logged so far (logging itself never waits)."""
        for writer in self._writers.values():
            writer.flush()

    def read(
        self,
        view: str | FeatureView,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        major: int | None = None,
    ) -> pa.Table:
        """Served rows logged for ``view`` (its latest major version, or ``major``) with
        start <= request time < end."""
        fv = self.catalog.get_feature_view(view, major)
        self.flush()
        table = self.tables.feature_log(fv.name, fv.version or 1)
        if not table.exists():
            raise NotFoundError(
                f"feature_view/{fv.name} has no feature log yet; serve it with "
                "get_online_features(..., log=True)"
            )
        rows = table.read(table.latest_version())
        times = rows.column(REQUEST_TIME)
        if start is not None:
            rows = rows.filter(pc.greater_equal(times, pa.scalar(start, times.type)))
            times = rows.column(REQUEST_TIME)
        if end is not None:
            rows = rows.filter(pc.less(times, pa.scalar(end, times.type)))
        return rows
