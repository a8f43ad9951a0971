"""Online stores: the latest feature values per entity, for low-latency serving.

One port (`OnlineStore`, in base.py), two backends passing one shared suite
(tests/online/): `SQLiteOnlineStore` (embedded default) and `RedisOnlineStore`
(production; its client library is imported only when a store is created).
"""

from featureledger.online.base import (
    EVENT_TIME_COLUMN,
    SOURCE_VERSION_COLUMN,
    OnlineStore,
    PointReader,
    check_table_key,
)
from featureledger.online.redis import RedisOnlineStore
from featureledger.online.sqlite import SQLiteOnlineStore

#: backends by the name used in featureledger.yaml
ONLINE_STORES: dict[str, type[OnlineStore]] = {
    "sqlite": SQLiteOnlineStore,
    "redis": RedisOnlineStore,
}

__all__ = [
    "EVENT_TIME_COLUMN",
    "ONLINE_STORES",
    "SOURCE_VERSION_COLUMN",
    "OnlineStore",
    "PointReader",
    "RedisOnlineStore",
    "SQLiteOnlineStore",
    "check_table_key",
]
