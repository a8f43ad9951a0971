"""Builds index ``kb`` over and over until killed (tests/llm/test_crash.py)."""

from __future__ import annotations

import sys

from featureledger import FeatureStore
from featureledger.llm.chunking import Chunker, word_windows

if __name__ == "__main__":
    store = FeatureStore(sys.argv[1])
    small = Chunker("small", word_windows, {"size": 20, "overlap": 5})
    print("ready", flush=True)
    while True:
        store.llm.build_index("kb", "docs", chunker=small)
