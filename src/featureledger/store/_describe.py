"""What `show` prints about an identity, built from registry records alone: shared by the
store and by the light catalog (`_light`), so both print the same thing."""

from __future__ import annotations

from typing import Any

from featureledger.definitions.identity import VersionId
from featureledger.errors import NotFoundError
from featureledger.registry.base import DataVersion, DefinitionRecord, TrainingDatasetRecord


def data_version(dv: DataVersion) -> dict[str, Any]:
    return {
        "identity": str(dv.identity),
        "operation": dv.operation,
        "rows": dv.rows,
        "rows_added": dv.rows_added,
        "rows_removed": dv.rows_removed,
        "content_hash": str(dv.content),
        "schema_hash": dv.schema_hash,
        "files": dv.files,
        "run": dv.run_id,
        "user": dv.user,
        "created_at": dv.created_at.isoformat(),
        "note": dv.note,
    }


def definition(ident: VersionId, rec: DefinitionRecord) -> dict[str, Any]:
    """An entity or a feature view."""
    shown = ident if ident.kind == "entity" else rec.identity
    return {"identity": str(shown), "version": rec.semver, "definition": rec.spec}


#: what each slowly-changing-dimension type means here (decision rule: docs/concepts.md)
SCD_MEANING = {
    0: "static: no event time, one row per key (immutable reference data)",
    2: "history: event time, every version kept offline (batch training)",
    4: "history offline and the latest row online (real-time serving)",
}


def group(
    ident: VersionId,
    rec: DefinitionRecord,
    versions: list[DataVersion],
    uri: str,
    scd_type: int,
    classification: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A feature group (``versions`` already synced with its table at ``uri``; its SCD type
    and the classification of its columns, derived through pipelines), or one of its data
    versions when ``ident`` names one (which needs neither)."""
    if ident.data is None:
        latest = versions[-1] if versions else None
        return {
            "identity": str(VersionId("feature_group", rec.name, rec.major)),
            "version": rec.semver,
            "definition": rec.spec,
            "scd_type": {"type": scd_type, "meaning": SCD_MEANING[scd_type]},
            "latest_data_version": None if latest is None else data_version(latest),
            "storage": uri,
            "classification": classification,
        }
    return data_version_of(ident, versions)


def data_version_of(ident: VersionId, versions: list[DataVersion]) -> dict[str, Any]:
    """The data version ``ident`` names, among a group's ``versions``."""
    found = next((v for v in versions if v.version == ident.data), None)
    if found is None:
        newest = f"latest is #{versions[-1].version}" if versions else "none is recorded"
        raise NotFoundError(f"{ident} does not exist; {newest}")
    return data_version(found)


def training_dataset(ident: VersionId, records: list[TrainingDatasetRecord]) -> dict[str, Any]:
    if ident.number is not None:
        records = [r for r in records if r.number == ident.number]
    if not records:
        raise NotFoundError(f"{ident} is not recorded")
    r = records[-1]
    if ident.split is not None:
        split = r.params.get("split", {})
        part = split.get("parts", {}).get(ident.split)
        if part is None:
            raise NotFoundError(f"{ident} does not exist; parts: {list(split.get('parts', {}))}")
        return {
            "identity": str(ident),
            "part_of": str(r.identity),
            "content_hash": part["content"],
            "rows": part["rows"],
            "split": split["spec"],
            "gap_seconds": split["gap_seconds"],
            "columns": r.columns,
            "pins": r.pins,
            "run": r.run_id,
            "created_at": r.created_at.isoformat(),
        }
    return {
        "identity": str(r.identity),
        "pins": r.pins,
        "entity_hash": r.entity_hash,
        "content_hash": str(r.content),
        "rows": r.rows,
        "columns": r.columns,
        "entity_path": r.entity_path,
        "output_path": r.output_path,
        "run": r.run_id,
        "user": r.user,
        "created_at": r.created_at.isoformat(),
        "params": r.params,
    }
