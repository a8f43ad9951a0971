"""Licence gates: which uses each data licence allows, and the check training data runs.

The table below is a conservative default for common licences; a repository adds or
overrides entries under ``licenses:`` in featureledger.yaml (licence -> allowed uses).
It encodes a policy, not legal advice: adjust it to what your counsel says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

USES = ("research", "internal", "commercial")

BUILTIN: dict[str, tuple[str, ...]] = {
    "internal": ("research", "internal", "commercial"),
    "proprietary": ("research", "internal", "commercial"),
    "public-domain": USES,
    "cc0-1.0": USES,
    "cc-by-4.0": USES,
    "cc-by-sa-4.0": USES,
    "odbl-1.0": USES,
    "cc-by-nc-4.0": ("research", "internal"),
    "cc-by-nc-sa-4.0": ("research", "internal"),
    "research-only": ("research",),
    "no-ml": (),
}


def license_table(
    overrides: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, tuple[str, ...]]:
    table = dict(BUILTIN)
    for name, uses in (overrides or {}).items():
        table[name.lower()] = tuple(uses)
    return table


def license_problems(
    inputs: Mapping[str, Sequence[str]],
    use: str | None,
    table: Mapping[str, Sequence[str]],
) -> list[str]:
    """Why a training set with these inputs (identity -> licences) may not serve ``use``."""
    carried = {ident: sorted(set(lics)) for ident, lics in inputs.items() if lics}
    if not carried:
        return []
    if use is None:
        listed = "; ".join(f"{i}: {', '.join(lics)}" for i, lics in carried.items())
        return [
            f"inputs carry licences ({listed}) but the view declares no use; set use= "
            f"on the view to one of {', '.join(USES)}"
        ]
    problems = []
    for ident, lics in carried.items():
        for lic in lics:
            allowed = table.get(lic.lower())
            if allowed is None:
                problems.append(
                    f"{ident} carries licence {lic!r}, which featureledger.yaml does not "
                    "describe; add it under licenses: with the uses it allows"
                )
            elif use not in allowed:
                problems.append(
                    f"{ident} carries licence {lic!r}, which does not allow use {use!r} "
                    f"(it allows: {', '.join(allowed) or 'nothing'})"
                )
    return problems
