"""Windows of logged serving features, named like identities: ``served/VIEW[@vN][:WINDOW]``.

``served/fraud:1d`` is the rows the feature log of view ``fraud`` holds for requests of the
last day; ``served/fraud@v1:6h`` pins the view's major version; ``served/fraud`` is every
logged row. The end of the window is the evaluation time (now unless the caller says), so
the printed form of a *resolved* window carries its bounds (`ServedWindow.describe`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from featureledger.definitions.contract import format_duration, parse_duration
from featureledger.errors import FeatureLedgerError, IdentityParseError

PREFIX = "served/"
_PATTERN = re.compile(
    r"served/(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)(?:@v(?P<major>\d+))?(?::(?P<w>.+))?"
)


@dataclass(frozen=True)
class ServedWindow:
    """The logged served rows of a view within ``window`` before the evaluation time."""

    view: str
    major: int | None = None
    window: timedelta | None = None

    @staticmethod
    def is_served(text: str) -> bool:
        return text.strip().startswith(PREFIX)

    @classmethod
    def parse(cls, text: str) -> ServedWindow:
        match = _PATTERN.fullmatch(text.strip())
        if not match:
            raise IdentityParseError(
                f"{text!r} is not a served window; expected served/VIEW[@vN][:WINDOW], "
                "e.g. served/fraud:1d"
            )
        try:
            window = None if match["w"] is None else parse_duration(match["w"])
        except FeatureLedgerError as exc:
            raise IdentityParseError(f"{text!r}: {exc}") from None
        if window is not None and window <= timedelta(0):
            raise IdentityParseError(f"{text!r}: the window must be positive, e.g. 1d")
        major = None if match["major"] is None else int(match["major"])
        return cls(match["name"], major, window)

    def __str__(self) -> str:
        text = PREFIX + self.view + (f"@v{self.major}" if self.major is not None else "")
        return text + (f":{format_duration(self.window)}" if self.window is not None else "")

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime]:
        """[start, end) of the request times read; no start means the whole log."""
        return (None if self.window is None else now - self.window), now

    def describe(self, now: datetime) -> str:
        """This window with its resolved bounds, e.g. for a report label or evidence."""
        start, end = self.bounds(now)
        since = "log start" if start is None else start.isoformat()
        return f"{self} [{since}, {end.isoformat()})"
