"""Serving from the offline store while the online store is down (``online.fallback: offline``).

The values served are those of the data version each group last materialized (the
registry's record), read with the point-in-time join at the request time, so they are what
the online store held (TTLs applied alike) unless it was written to since by a push. The
result is flagged ``source="offline-fallback"``. A group never materialized has nothing to
fall back to: the original `OnlineStoreUnavailable` is raised.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from featureledger.definitions import FeatureView
from featureledger.errors import OnlineStoreUnavailable
from featureledger.offline.base import ROW_COLUMN, PitSource
from featureledger.offline.conform import conform_entities, to_arrow
from featureledger.store._online import OnlineFeatures, OnlineService
from featureledger.transforms.on_demand import apply_on_demand

#: the request time given to the point-in-time join as each entity row's timestamp
_AT = "__fl_served_at"

FALLBACK_SOURCE = "offline-fallback"


def offline_fallback(
    online: OnlineService,
    view: str | FeatureView,
    entity_rows: Any,
    *,
    cause: OnlineStoreUnavailable,
    now: datetime | None = None,
    request_data: Any = None,
) -> OnlineFeatures:
    """The features `get_online_features` would have served, from the offline store."""
    fv = online.catalog.get_feature_view(view)  # not serving_plan: it asks the online store
    where = f"offline fallback for feature_view/{fv.name}@v{fv.version or 1}"
    when = now or datetime.now(UTC)
    if isinstance(entity_rows, list):
        entity_rows = pa.Table.from_pylist(entity_rows)
    raw = to_arrow(entity_rows, where=where)
    if request_data is not None:
        extra = to_arrow(request_data, where=where)
        for name in extra.column_names:
            raw = raw.append_column(name, extra.column(name))
    groups = [(src, online.catalog.get_feature_group(src.group, src.major)) for src in fv.sources]
    key_types = {
        src.join_key_map.get(k.name, k.name): k.arrow_type
        for src, fg in groups
        for k in fg.key_fields
    }
    raw = raw.append_column(_AT, pa.array([when] * raw.num_rows, pa.timestamp("us", "UTC")))
    entities = conform_entities(raw, key_types, _AT, where=where, naive="error")
    entities = entities.append_column(
        ROW_COLUMN, pa.array(np.arange(entities.num_rows, dtype=np.int64))
    )
    store_name = online.store_name()
    sources = []
    for src, fg in groups:
        major = fg.version or 1
        version = online.registry.last_materialized(fg.name, major, store_name)
        if version is None:  # nothing was served from this group yet: nothing to fall back to
            raise cause
        table = online.tables.table(fg.name, major)
        sources.append(
            PitSource(
                files=table.files(version),
                schema=table.schema(version),
                keys=fg.primary_key,
                entity_keys=[src.join_key_map.get(k, k) for k in fg.primary_key],
                event_time=fg.event_time,
                ttl_us=None if fg.ttl is None else fg.ttl // timedelta(microseconds=1),
                features=[(f, fv.output_name(src, f)) for f in src.features],
            )
        )
    joined = online.engine.pit_join(
        entities, _AT, sources, strategy=online.config.offline.pit_strategy
    ).read_all()
    out = joined.drop_columns([c for c in (_AT, ROW_COLUMN) if c in joined.column_names])
    types = {
        fv.output_name(src, f): fg.arrow_schema.field(f).type
        for src, fg in groups
        for f in src.features
    }
    out = pa.table(
        {
            name: out.column(name).cast(types[name]) if name in types else out.column(name)
            for name in out.column_names
        }
    )
    if fv.on_demand:
        out = apply_on_demand(out, fv.on_demand, where=where)
    return OnlineFeatures(out, source=FALLBACK_SOURCE)
