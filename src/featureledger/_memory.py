"""Process-wide memory settings a store applies when it opens.

numpy asks the kernel for transparent huge pages (``madvise(MADV_HUGEPAGE)``) on every large
array. Where the kernel then backs each fault with a fresh 2 MiB page (``defrag: madvise``,
and in virtual machines that back guest memory lazily) a fault costs milliseconds, and the
short-lived arrays of a point-in-time join or an ingest fault in hundreds of them: size l
with few rows per key, 600 huge-page faults and 1.1 s of system time of a 3.2 s join
(docs/benchmarks.md). Small pages cost a few microseconds each, so featureledger turns the
advice off unless the user has chosen with numpy's own ``NUMPY_MADVISE_HUGEPAGE``.
"""

from __future__ import annotations

import os


def settle_numpy_hugepages() -> bool | None:
    """Turn numpy's huge-page advice off unless ``NUMPY_MADVISE_HUGEPAGE`` is set; returns
    the previous setting (None when left alone)."""
    if os.environ.get("NUMPY_MADVISE_HUGEPAGE") is not None:
        return None
    try:
        from numpy._core.multiarray import (  # type: ignore[attr-defined]
            _set_madvise_hugepage,
        )
    except ImportError:  # a numpy without the switch: nothing to change
        return None
    return bool(_set_madvise_hugepage(False))
