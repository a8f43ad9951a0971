"""`ContentHash`, the value a content hash is: kept apart from `hashing` (which computes
hashes with NumPy and PyArrow) so that reading recorded hashes imports neither."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

ALGORITHM = "flh1"
MASK = (1 << 64) - 1


@dataclass(frozen=True)
class ContentHash:
    """The ``flh1`` hash of a set of rows: a count and two 64-bit lane sums."""

    rows: int = 0
    lane_a: int = 0
    lane_b: int = 0

    @property
    def digest(self) -> str:
        """32 hex digits, the printed form."""
        payload = b"".join(v.to_bytes(8, "little") for v in (self.rows, self.lane_a, self.lane_b))
        return hashlib.sha256(ALGORITHM.encode() + payload).hexdigest()[:32]

    def __str__(self) -> str:
        return f"{ALGORITHM}:{self.digest}"

    def __add__(self, other: ContentHash) -> ContentHash:
        return ContentHash(
            self.rows + other.rows,
            (self.lane_a + other.lane_a) & MASK,
            (self.lane_b + other.lane_b) & MASK,
        )

    def __sub__(self, other: ContentHash) -> ContentHash:
        return ContentHash(
            self.rows - other.rows,
            (self.lane_a - other.lane_a) & MASK,
            (self.lane_b - other.lane_b) & MASK,
        )

    def to_dict(self) -> dict[str, Any]:
        # lanes as strings: JSON readers in other languages lose precision above 2**53
        return {"rows": self.rows, "lane_a": str(self.lane_a), "lane_b": str(self.lane_b)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContentHash:
        return cls(int(data["rows"]), int(data["lane_a"]), int(data["lane_b"]))
