"""Printable, parseable identities: ``feature_group/user_stats@v2#17`` and friends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from featureledger.errors import IdentityParseError

Kind = Literal[
    "entity",
    "feature_group",
    "feature_view",
    "training_dataset",
    "model",
    "deployment",
    "run",
    "predictions",
]
KINDS: tuple[str, ...] = (
    "entity",
    "feature_group",
    "feature_view",
    "training_dataset",
    "model",
    "deployment",
    "run",
    "predictions",
)

# run names are UUIDs, which may start with a digit; other names may not
_PATTERN = re.compile(
    r"(?P<kind>[a-z_]+)/(?P<name>[A-Za-z_][A-Za-z0-9_\-]*|(?<=run/)[0-9][A-Za-z0-9_\-]*)"
    r"(?:@v(?P<major>\d+))?(?:#(?P<data>\d+))?(?:/(?P<number>\d+))?"
)


@dataclass(frozen=True, order=True)
class VersionId:
    """One identity. ``major`` is the definition version, ``data`` the data version
    (feature groups) and ``number`` the sequence number (training datasets, models)."""

    kind: str
    name: str
    major: int | None = None
    data: int | None = None
    number: int | None = None

    def __str__(self) -> str:
        text = f"{self.kind}/{self.name}"
        if self.major is not None:
            text += f"@v{self.major}"
        if self.data is not None:
            text += f"#{self.data}"
        if self.number is not None:
            text += f"/{self.number}"
        return text

    @classmethod
    def parse(cls, text: str) -> VersionId:
        """Parse a printed identity; the inverse of `str`."""
        match = _PATTERN.fullmatch(text.strip())
        if not match or match["kind"] not in KINDS:
            raise IdentityParseError(
                f"{text!r} is not an identity; expected KIND/NAME[@vMAJOR][#DATA][/NUMBER] "
                f"with KIND one of {', '.join(KINDS)}, e.g. feature_group/user_stats@v2#17"
            )
        if match["data"] is not None and match["kind"] != "feature_group":
            raise IdentityParseError(f"{text!r}: only feature groups have #data versions")

        def num(key: str) -> int | None:
            return None if match[key] is None else int(match[key])

        return cls(match["kind"], match["name"], num("major"), num("data"), num("number"))

    def without_data(self) -> VersionId:
        return VersionId(self.kind, self.name, self.major)
