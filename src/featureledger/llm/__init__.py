"""LLM artifacts under the same books (docs/llm.md): corpus documents and their gate,
chunkers, embedding functions, the vector index, retrieval metrics. Pure logic apart from
the vector index files; the store's services (store/_corpora.py, store/_indexes.py) record
them."""

from featureledger.llm.chunking import Chunker, chunk_documents, word_windows
from featureledger.llm.documents import CorpusContract, conform_documents, gate_documents
from featureledger.llm.embedding import Embedder, FittedEmbedder, FunctionEmbedder, HashingSVD

__all__ = [
    "Chunker",
    "CorpusContract",
    "Embedder",
    "FittedEmbedder",
    "FunctionEmbedder",
    "HashingSVD",
    "chunk_documents",
    "conform_documents",
    "gate_documents",
    "word_windows",
]
