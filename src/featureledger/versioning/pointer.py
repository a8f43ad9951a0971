"""Pointer files: small YAML files that pin one version, committed beside training code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from featureledger.errors import DataError

FORMAT = 1
SUFFIX = ".fl.yaml"


def pointer_path(path: str | Path) -> Path:
    """Where `write_pointer` writes for ``path`` (the suffix added when missing)."""
    target = Path(path)
    if not target.name.endswith(SUFFIX):
        target = target.with_name(target.name + SUFFIX)
    return target


def write_pointer(path: str | Path, data: dict[str, Any]) -> Path:
    target = pointer_path(path)
    body = {"featureledger_pointer": FORMAT, **data}
    target.write_text(
        "# featureledger pointer: `featureledger checkout` materializes and verifies this data\n"
        + yaml.safe_dump(body, sort_keys=False)
    )
    return target


def read_pointer(path: str | Path) -> dict[str, Any]:
    source = Path(path)
    if not source.exists():
        raise DataError(f"pointer file {source} does not exist")
    try:
        data = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"pointer file {source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or data.get("featureledger_pointer") != FORMAT:
        raise DataError(
            f"{source} is not a featureledger pointer file (format {FORMAT}); "
            "make one with `featureledger pin ID -o NAME`"
        )
    for key in ("identity", "content_hash"):
        if key not in data:
            raise DataError(f"pointer file {source} lacks {key!r}")
    return data
