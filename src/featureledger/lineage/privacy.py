"""Classification through pipelines: a column computed from a private column is private.

A feature group fed by a pipeline from another group (`GroupSource`) inherits, column by
column, the strongest classification of the source columns it is computed from:

- no transform: each column is the same-named source column;
- a SQL transform: the columns sqlglot's column lineage finds (`sql_column_lineage`);
  when sqlglot is missing or cannot follow the query, every source column (so a query
  we cannot read never loses a label);
- a Python transform: the columns its ``inputs`` declares for that output; for an output
  it does not declare, the same-named source column when it is a key or time column of
  the group, else every source column.

A column the transform names in ``declassify`` keeps its declared classification, and the
reason is recorded. Labels are never lowered otherwise: a column declared ``pii`` stays
``pii`` whatever it is derived from. The source group's own labels are resolved the same
way first, so classification follows chains of pipelines. Pure: groups come from a
``lookup`` function, so apply (staged definitions) and serving (the catalog) share it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from featureledger.definitions import FeatureGroup
from featureledger.definitions.pipeline import GroupSource, PythonTransform, SQLTransform
from featureledger.errors import FeatureLedgerError
from featureledger.lineage.facts import sql_column_lineage

#: columns of these classifications are served only for a matching purpose
PRIVATE = ("pii", "sensitive")

#: strength of each label when several sources meet (higher wins)
_RANK = {"public": 0, "internal": 1, "sensitive": 2, "pii": 3}

Lookup = Callable[[str, int | None], FeatureGroup]


@dataclass(frozen=True)
class Label:
    """The effective classification of one column and where it comes from."""

    classification: str
    #: ``group.column`` of each private source column it is derived from
    derived_from: tuple[str, ...] = ()
    #: the declared reason a transform declassified it ("" when it did not)
    declassified: str = ""

    def why(self, group: str, column: str) -> str:
        """One line for `show` and refusals."""
        if self.declassified:
            return (
                f"{group}.{column}: {self.classification}, declassified by its pipeline "
                f"(from {', '.join(self.derived_from)}): {self.declassified}"
            )
        if self.derived_from:
            return (
                f"{group}.{column}: {self.classification}, derived by its pipeline from "
                f"{', '.join(self.derived_from)}"
            )
        return f"{group}.{column}: {self.classification} (declared)"


def effective_classification(
    fg: FeatureGroup, lookup: Lookup, *, _seen: tuple[str, ...] = ()
) -> dict[str, Label]:
    """Every column of ``fg`` -> its `Label`, following the pipeline that feeds it."""
    declared = {c.name: Label(c.classification) for c in fg.columns}
    src = fg.source
    if not isinstance(src, GroupSource) or src.group in _seen or src.group == fg.name:
        return declared
    try:
        upstream = lookup(src.group, src.major)
    except FeatureLedgerError:  # not registered: the pipeline cannot run either
        return declared
    up = effective_classification(upstream, lookup, _seen=(*_seen, fg.name))
    private_up = {n: lab for n, lab in up.items() if lab.classification in PRIVATE}
    if not private_up:
        return declared
    reads = _column_inputs(fg, [c.name for c in upstream.columns])
    declassify: Mapping[str, str] = fg.transform.declassify if fg.transform else {}
    out = dict(declared)
    for name, label in declared.items():
        hits = [c for c in reads(name) if c in private_up]
        if not hits:
            continue
        sources = tuple(f"{upstream.name}.{c}" for c in hits)
        if name in declassify:
            out[name] = Label(label.classification, sources, declassify[name])
            continue
        strongest = max((private_up[c].classification for c in hits), key=_RANK.__getitem__)
        if _RANK[strongest] > _RANK[label.classification]:
            out[name] = Label(strongest, sources)
    return out


def _column_inputs(fg: FeatureGroup, source_columns: list[str]) -> Callable[[str], list[str]]:
    """A function: output column of ``fg`` -> the source columns it is computed from."""
    transform = fg.transform
    if transform is None:
        return lambda name: [name] if name in source_columns else []
    if isinstance(transform, SQLTransform):
        found = sql_column_lineage(transform.query, source_columns)
        return lambda name: found[name][0] if name in found else list(source_columns)
    assert isinstance(transform, PythonTransform)
    declared = transform.inputs
    # keys and times the source has under the same name are taken as passed through (a
    # pipeline keeps its entity and its clock); declare them in ``inputs`` to say otherwise
    carried = {c for c in (*fg.unique_key, fg.created_time) if c and c in source_columns}

    def reads(name: str) -> list[str]:
        if name in declared:
            return list(declared[name])
        return [name] if name in carried else list(source_columns)

    return reads
