"""Corpora: versioned document collections (docs/llm.md#corpora).

A corpus is a static feature group keyed by ``doc_id`` and tagged as a corpus, so its
documents live in a Delta table written by the project's writer: each batch is one data
version with its content hash, audit entry, time travel, diff, rollback, verification and
crash repair, exactly as for features. The corpus contract (kept as a tag) gates what
enters; refused documents are written under ``rejected/`` with their reasons first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions import Entity, FeatureGroup, Field
from featureledger.errors import DataError, NotFoundError
from featureledger.llm.documents import (
    COLUMNS,
    CorpusContract,
    conform_documents,
    diff_documents,
    gate_documents,
)
from featureledger.registry import DataVersion, RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._data import DataService
from featureledger.store._definitions import DefinitionService
from featureledger.store._files import StoreFiles
from featureledger.versioning.provenance import current_user

#: the tag marking a feature group as a corpus, and the one keeping its contract
KIND_TAG = "featureledger.kind"
CONTRACT_TAG = "featureledger.corpus_contract"
DOCUMENT = Entity("document", join_keys=[Field("doc_id", "string")])


@dataclass(frozen=True)
class CorpusWrite:
    """What adding documents did: the new version (None if nothing changed), how many
    entered, and the refused ones with their reasons (also kept at ``rejected_path``)."""

    version: DataVersion | None
    accepted: int
    rejected: pa.Table
    rejected_path: str | None


def corpus_group(
    name: str,
    contract: CorpusContract | None = None,
    *,
    licenses: Sequence[str] = (),
    description: str = "",
    owner: str = "",
) -> FeatureGroup:
    """The feature group that stores corpus ``name``."""
    tags = {KIND_TAG: "corpus"}
    if contract is not None:
        tags[CONTRACT_TAG] = json.dumps(contract.to_dict(), sort_keys=True)
    return FeatureGroup(
        name,
        entity=DOCUMENT,
        features=[Field(n, t) for n, t in COLUMNS[1:]],
        event_time=None,
        tags=tags,
        licenses=licenses,
        description=description or f"corpus {name}",
        owner=owner,
    )


class CorpusService:
    """Create corpora, add and forget documents, read versions and diff them."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        catalog: Catalog,
        definitions: DefinitionService,
        data: DataService,
        files: StoreFiles,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.definitions = definitions
        self.data = data
        self.files = files

    def create(
        self,
        name: str,
        *,
        contract: CorpusContract | None = None,
        licenses: Sequence[str] = (),
        description: str = "",
        owner: str = "",
    ) -> FeatureGroup:
        """Create corpus ``name`` (or change its contract: a patch version)."""
        group = corpus_group(
            name, contract, licenses=licenses, description=description, owner=owner
        )
        self.definitions.apply([DOCUMENT, group])
        return self.get(name)

    def get(self, name: str) -> FeatureGroup:
        try:
            fg = self.catalog.get_feature_group(name)
        except NotFoundError:
            raise NotFoundError(
                f"corpus {name!r} does not exist; create it with store.llm.create_corpus"
            ) from None
        if fg.tags.get(KIND_TAG) != "corpus":
            raise DataError(f"feature_group/{name} is a feature group, not a corpus")
        return fg

    def names(self) -> list[str]:
        groups = self.registry.definitions("feature_group")
        return sorted({d.name for d in groups if d.spec.get("tags", {}).get(KIND_TAG) == "corpus"})

    def contract(self, name: str) -> CorpusContract | None:
        raw = self.get(name).tags.get(CONTRACT_TAG)
        return None if raw is None else CorpusContract.from_dict(json.loads(raw))

    def add(self, name: str, documents: Any, *, note: str = "") -> CorpusWrite:
        """Add or replace documents (by ``doc_id``) as one new corpus version; documents
        the contract refuses are kept with their reasons, never silently dropped."""
        fg = self.get(name)
        where = f"add documents to corpus {name}"
        default = fg.licenses[0] if len(fg.licenses) == 1 else ""
        docs = conform_documents(documents, default_license=default, where=where)
        accepted, rejected = gate_documents(docs, self.contract(name))
        path = None
        if rejected.num_rows:
            # refused documents are made durable before anything is published
            path = self.files.rejected_uri(name, fg.version or 1, uuid.uuid4().hex)
            self.files.write_parquet(rejected, path)
            self.registry.audit(
                current_user(),
                "corpus-reject",
                f"corpus/{name}",
                {"documents": rejected.num_rows, "kept_at": path},
            )
        version = None
        if accepted.num_rows:
            version = self.data.ingest(fg, accepted, mode="upsert", note=note)
        return CorpusWrite(version, accepted.num_rows, rejected, path)

    def documents(
        self, name: str, *, version: int | None = None, as_of: datetime | None = None
    ) -> pa.Table:
        """The documents of one corpus version (latest by default), ordered by doc_id."""
        rows = self.data.read(self.get(name), version=version, as_of=as_of)
        return rows.select([n for n, _ in COLUMNS]).sort_by("doc_id")

    def latest(self, name: str) -> DataVersion:
        fg = self.get(name)
        return self.data.records.latest(fg.name, fg.version or 1)

    def versions(self, name: str) -> list[DataVersion]:
        fg = self.get(name)
        return self.registry.data_versions(fg.name, fg.version or 1)

    def diff(self, name: str, old: int, new: int | None = None) -> dict[str, list[str]]:
        """Documents added, removed and changed from version ``old`` to ``new`` (latest)."""
        return diff_documents(self.documents(name, version=old), self.documents(name, version=new))

    def forget(self, name: str, doc_ids: Iterable[str], *, reason: str) -> DataVersion:
        """A new corpus version without ``doc_ids`` (older versions keep them until vacuum)."""
        ids = sorted(set(doc_ids))
        docs = self.documents(name)
        present = set(docs.column("doc_id").to_pylist())
        missing = [d for d in ids if d not in present]
        if missing:
            raise NotFoundError(f"corpus {name}: no document(s) {missing} in its latest version")
        keep = pc.invert(pc.is_in(docs.column("doc_id"), value_set=pa.array(ids, pa.string())))
        return self.data.ingest(
            self.get(name), docs.filter(keep), mode="overwrite", note=f"forget {ids}: {reason}"
        )
