"""A store with a small corpus of three topics, and its index."""

from __future__ import annotations

import random

import pytest

from featureledger import FeatureStore
from featureledger.llm import CorpusContract
from featureledger.llm.chunking import Chunker, word_windows

TOPICS = {
    "cats": "cat kitten meow purr whiskers feline litter mouse",
    "dogs": "dog puppy bark woof leash canine bone fetch",
    "cars": "car engine wheel drive road motor brake fuel",
}
SMALL = Chunker("small", word_windows, {"size": 20, "overlap": 5})


def documents(n: int = 60, seed: int = 0) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        topic = list(TOPICS)[i % 3]
        words = TOPICS[topic].split()
        out.append(
            {
                "doc_id": f"d{i:03d}",
                "text": " ".join(rnd.choice(words) for _ in range(40)),
                "source_uri": f"https://example.org/{topic}/{i}",
                "license": "cc-by-nc-4.0" if i % 10 == 0 else "cc-by-4.0",
                "metadata": {"topic": topic},
            }
        )
    return out


@pytest.fixture
def kb(store: FeatureStore) -> FeatureStore:
    """Corpus ``docs`` (60 documents, one version) and index ``kb`` built over it."""
    store.llm.create_corpus(
        "docs",
        contract=CorpusContract(licenses=["cc-by-4.0", "cc-by-nc-4.0"], pii_detectors=["email"]),
    )
    store.llm.add_documents("docs", documents())
    store.llm.build_index("kb", "docs", chunker=SMALL)
    return store
