"""Full rebuilds beside the live copy (`OnlineStore.replace`), for SQLite and a real Redis.

What a user would notice: readers never see a hole or a mix of two copies while a rebuild
runs in another handle (another process); a build that was interrupted is listed and can
be discarded without touching the live copy; an atomic write lands whole or not at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pyarrow as pa
import pytest

from featureledger.errors import InvalidNameError, NotFoundError
from featureledger.online import OnlineStore

from .test_conformance import T0, keys, read, rows, scores, write

N = 3000


def _table(value: float, n: int = N) -> pa.Table:
    return rows(list(range(n)), [value] * n, [T0] * n)


def _batches(value: float, n: int = N, size: int = 500) -> Iterator[pa.RecordBatch]:
    yield from _table(value, n).to_batches(max_chunksize=size)


def _replace(store: OnlineStore, data: object, build: str = "b1", version: str = "v#2") -> int:
    return store.replace(
        "u", data, ["user_id"], event_time_column="ts", source_version=version, build=build
    )  # type: ignore[arg-type]


def test_replace_swaps_in_a_whole_new_copy(online: OnlineStore) -> None:
    write(online, _table(1.0, 10))
    write(online, rows([99], [5.0], [T0]))  # an entity the new copy does not have
    assert _replace(online, _table(2.0, 5)) == 5
    assert scores(read(online, keys(0, 4, 5, 99))) == [2.0, 2.0, None, None]
    assert online.tables() == ["u"]
    assert online.builds() == []


def test_replace_creates_a_missing_table_and_keeps_older_rows_of_the_input(
    online: OnlineStore,
) -> None:
    # the rebuild is a fresh copy: an older event time than the old copy's still lands
    write(online, rows([1], [1.0], [T0]))
    earlier = T0.replace(year=2024)
    _replace(online, rows([1], [7.0], [earlier]))
    got = read(online, keys(1))
    assert scores(got) == [7.0]
    _replace(online, rows([2], [3.0], [T0]), build="other", version="v#3")
    assert scores(read(online, keys(1, 2))) == [None, 3.0]


def test_an_interrupted_build_is_listed_and_discarded_without_touching_the_live_copy(
    online: OnlineStore,
) -> None:
    write(online, _table(1.0, 20))

    def dying() -> Iterator[pa.RecordBatch]:
        yield from _batches(2.0, 20, 5)
        raise KeyboardInterrupt  # stands for a kill: nothing after it runs

    with pytest.raises(KeyboardInterrupt):
        _replace(online, dying(), build="run-1")
    assert online.builds() == [("u", "run-1")]
    assert online.tables() == ["u"]
    assert scores(read(online, keys(0, 19))) == [1.0, 1.0]  # the old copy, whole
    online.discard_build("u", "run-1")
    online.discard_build("u", "run-1")  # a missing build is no error
    assert online.builds() == []
    assert scores(read(online, keys(0, 19))) == [1.0, 1.0]


def test_build_ids_are_checked(online: OnlineStore) -> None:
    with pytest.raises(InvalidNameError):
        _replace(online, _table(1.0, 1), build="a b")
    with pytest.raises(InvalidNameError):
        online.discard_build("u", "")


def test_a_reader_sees_the_old_copy_or_the_new_one_never_a_mix_or_a_hole(
    make_store: Callable[[], OnlineStore],
) -> None:
    writer, reader = make_store(), make_store()
    write(writer, _table(0.0))
    every = keys(*range(N))
    seen: set[tuple[float | None, ...]] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def watch() -> None:
        try:
            while not stop.is_set():
                values = scores(read(reader, every))
                seen.add(tuple(sorted(set(values), key=lambda v: (v is None, v))))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for round_ in range(1, 4):
            _replace(writer, _batches(float(round_)), build=f"r{round_}", version=f"v#{round_}")
    finally:
        stop.set()
        thread.join()
    assert not errors
    # each read saw exactly one copy: one distinct value, never None, never two values
    assert all(len(s) == 1 and s[0] is not None for s in seen), seen
    assert scores(read(reader, keys(0, N - 1))) == [3.0, 3.0]


def test_an_atomic_write_lands_whole_or_not_at_all(online: OnlineStore) -> None:
    write(online, _table(1.0, 20))

    def dying() -> Iterator[pa.RecordBatch]:
        yield from _batches(2.0, 10, 5)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        online.write(
            "u", dying(), ["user_id"], event_time_column="ts", source_version="v#2", atomic=True
        )
    assert scores(read(online, keys(0, 9))) == [1.0, 1.0]
    online.write(
        "u",
        _batches(2.0, 10, 5),
        ["user_id"],
        event_time_column="ts",
        source_version="v#2",
        atomic=True,
    )
    assert scores(read(online, keys(0, 9, 10))) == [2.0, 2.0, 1.0]


def test_a_plain_write_after_another_handle_replaced_the_table_goes_to_the_new_copy(
    make_store: Callable[[], OnlineStore],
) -> None:
    a, b = make_store(), make_store()
    write(a, _table(1.0, 5))
    assert scores(read(a, keys(0))) == [1.0]  # a caches the layout of the first copy
    _replace(b, _table(2.0, 5))
    write(a, rows([7], [9.0], [T0]))
    assert scores(read(b, keys(0, 7))) == [2.0, 9.0]


def test_deleting_a_table_leaves_no_build_and_reads_say_not_found(online: OnlineStore) -> None:
    _replace(online, _table(1.0, 5))
    online.delete_table("u")
    assert online.tables() == []
    with pytest.raises(NotFoundError):
        read(online, keys(0))
