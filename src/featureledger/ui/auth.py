"""Who is asking: the feature server's API tokens, carried by a bearer header or a session.

A browser signs in once with a token (the login form); the UI then keeps the secret in a
server-side session and gives the browser only a random session id, in an ``HttpOnly``,
``SameSite=Strict`` cookie, so no script and no other site can read or send it. Every
request re-checks the token (`FeatureStore.check_token`, cached 5 s), so a revoked token
signs its sessions out within that time. Each session has its own CSRF token, which every
form carries and every POST must return; a bearer header is never sent by a browser on its
own, so requests carrying one need no CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from featureledger.registry import TokenRecord

SESSION_COOKIE = "fl_ui_session"
#: the double-submit cookie of the login form: there is no session yet to hold its CSRF token
LOGIN_COOKIE = "fl_ui_login"
#: a session ends this long after its last use, and in any case after `SESSION_MAX_SECONDS`
SESSION_IDLE_SECONDS = 2 * 3600.0
SESSION_MAX_SECONDS = 12 * 3600.0


@dataclass
class Session:
    secret: str
    csrf: str
    created: float
    used: float


@dataclass(frozen=True)
class Viewer:
    """The caller of one request: its token record, and the CSRF token its forms carry
    (empty for bearer-header callers, which need none)."""

    record: TokenRecord
    csrf: str = ""
    via: str = "session"  # session | bearer

    @property
    def may_write(self) -> bool:
        return self.record.role in ("writer", "admin")


class Sessions:
    """Signed-in browsers: session id -> the token secret. In memory: a restart signs
    everyone out, which is the safe direction."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, secret: str) -> tuple[str, Session]:
        now = time.monotonic()
        sid = secrets.token_urlsafe(32)
        session = Session(secret, secrets.token_urlsafe(32), now, now)
        with self._lock:
            if len(self._by_id) >= self.LIMIT:
                self._expire(now)
            self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._by_id.get(sid)
            if session is None:
                return None
            if now - session.used > SESSION_IDLE_SECONDS or now - session.created > (
                SESSION_MAX_SECONDS
            ):
                del self._by_id[sid]
                return None
            session.used = now
            return session

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    def _expire(self, now: float) -> None:
        for sid, s in list(self._by_id.items()):
            if now - s.used > SESSION_IDLE_SECONDS or now - s.created > SESSION_MAX_SECONDS:
                del self._by_id[sid]
        if len(self._by_id) >= self.LIMIT:  # still full: drop the least recently used half
            for sid, _ in sorted(self._by_id.items(), key=lambda kv: kv[1].used)[: self.LIMIT // 2]:
                del self._by_id[sid]


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a returned CSRF token with the expected one."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), expected)
