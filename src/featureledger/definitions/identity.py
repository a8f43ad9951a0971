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
    r"(?::(?P<split>[a-z][a-z0-9_]*))?"
)


@dataclass(frozen=True, order=True)
class VersionId:
    """One identity. ``major`` is the definition version, ``data`` the data version
    (feature groups), ``number`` the sequence number (training datasets, models) and
    ``split`` one split of a training dataset (``training_dataset/fraud@v1/3:test``)."""

    kind: str
    name: str
    major: int | None = None
    data: int | None = None
    number: int | None = None
    split: str | None = None

    def __str__(self) -> str:
        text = f"{self.kind}/{self.name}"
        if self.major is not None:
            text += f"@v{self.major}"
        if self.data is not None:
            text += f"#{self.data}"
        if self.number is not None:
            text += f"/{self.number}"
        if self.split is not None:
            text += f":{self.split}"
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
        if match["split"] is not None and (
            match["kind"] != "training_dataset" or match["number"] is None
        ):
            raise IdentityParseError(
                f"{text!r}: only a numbered training dataset has :split parts, "
                "e.g. training_dataset/fraud@v1/3:test"
            )

        def num(key: str) -> int | None:
            return None if match[key] is None else int(match[key])

        return cls(
            match["kind"], match["name"], num("major"), num("data"), num("number"), match["split"]
        )

    def without_data(self) -> VersionId:
        return VersionId(self.kind, self.name, self.major)

    def whole(self) -> VersionId:
        """The training dataset a split identity is part of (itself when not a split)."""
        return VersionId(self.kind, self.name, self.major, self.data, self.number)
