"""API tokens of the feature server: creation, checks, authorization and the audit of use.

A token is ``fl_<43 url-safe characters>`` (256 random bits). Only its SHA-256 is stored
(registry table ``fl_tokens``), so the secret is shown once, when it is created. Roles:
``reader`` reads features; ``writer`` also pushes rows; ``admin`` is a writer that may also
use the server's admin endpoints (materialize, list and revoke tokens). A token scoped to
views reads only those views and pushes only into the groups they read. Columns classified
``pii`` or ``sensitive`` are served only to tokens that declare a purpose."""

from __future__ import annotations

import hashlib
import logging
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from featureledger.errors import AccessDeniedError, DataError, NotFoundError, TokenError
from featureledger.registry import RegistryBackend, TokenRecord
from featureledger.store._catalog import Catalog
from featureledger.store._online import OnlineService
from featureledger.versioning.provenance import current_user

Role = Literal["reader", "writer", "admin"]


ROLES: tuple[str, ...] = ("reader", "writer", "admin")


#: columns of these classifications need a token with a declared purpose
PRIVATE = ("pii", "sensitive")


TOKEN_PREFIX = "fl_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _AuditQueue:
    """One daemon thread appending queued token uses to the registry's audit chain."""

    #: seconds of uses gathered into one write
    INTERVAL = 0.5

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.items: queue.Queue[tuple[str, str, str, bool, datetime]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="fl-token-audit", daemon=True)
        self.thread.start()

    def put(self, item: tuple[str, str, str, bool]) -> None:
        self.items.put((*item, datetime.now(UTC)))

    def join(self) -> None:
        self.items.join()

    def _run(self) -> None:
        while True:
            batch = [self.items.get()]
            time.sleep(self.INTERVAL)
            while True:
                try:
                    batch.append(self.items.get_nowait())
                except queue.Empty:
                    break
            uses: dict[tuple[str, str, str, bool], list[Any]] = {}
            for user, obj, role, allowed, at in batch:
                seen = uses.setdefault((user, obj, role, allowed), [0, at, at])
                seen[0] += 1
                seen[2] = at
            try:
                for (user, obj, role, allowed), (count, first, last) in uses.items():
                    details = {
                        "role": role,
                        "allowed": allowed,
                        "uses": count,
                        "first": first.isoformat(),
                        "last": last.isoformat(),
                    }
                    self.registry.audit(user, "token-use", obj, details)
            except Exception:  # an audit failure must not kill the writer thread
                logging.getLogger("featureledger").exception("token-use audit entries lost")
            finally:
                for _ in batch:
                    self.items.task_done()


class AccessService:
    """Tokens, authorization and the audit of their use."""

    def __init__(
        self, *, registry: RegistryBackend, catalog: Catalog, online: OnlineService
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.online = online
        self._token_cache: dict[str, tuple[float, TokenRecord]] = {}
        self._audit_queue: _AuditQueue | None = None

    #: how long an accepted token is trusted without asking the registry again; a revoke
    #: in this process takes effect at once, one from another process within this long
    TOKEN_CACHE_SECONDS = 5.0

    def create_token(self, role: str, views: Iterable[str] = (), purpose: str = "") -> str:
        """Create an API token and return its secret; only its hash is kept."""
        if role not in ROLES:
            raise DataError(f"token role must be one of {', '.join(ROLES)}, got {role!r}")
        scope = sorted(set(views))
        for name in scope:
            self.catalog.get_feature_view(name)  # NotFoundError naming the known views
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            id=uuid.uuid4().hex[:12],
            token_hash=hash_token(secret),
            role=role,
            views=scope,
            purpose=purpose.strip(),
            created_by=current_user(),
            created_at=datetime.now(UTC),
        )
        self.registry.add_token(record)
        self.registry.audit(
            record.created_by,
            "token-create",
            f"token/{record.id}",
            {"role": role, "views": scope, "purpose": record.purpose},
        )
        return secret

    def tokens(self) -> list[TokenRecord]:
        """Every API token (hashes only), revoked ones included."""
        return self.registry.tokens()

    def revoke_token(self, token_id: str, *, by: str | None = None) -> TokenRecord:
        """Revoke a token by id; it is refused from then on. ``by``: who (audit log)."""
        record = self.registry.revoke_token(token_id)
        self._token_cache.clear()
        if record is None:
            known = [t.id for t in self.registry.tokens()]
            raise NotFoundError(
                f"token {token_id!r} does not exist; known ids: {known or 'none'} "
                "(see `featureledger token list`)"
            )
        self.registry.audit(by or current_user(), "token-revoke", f"token/{record.id}", {})
        return record

    def check_token(self, token: str | None) -> TokenRecord:
        """The record of an active token; `TokenError` if missing, unknown or revoked."""
        if not token:
            raise TokenError(
                "no API token given; send `Authorization: Bearer <token>` (create one with "
                "`featureledger token create --role reader`)"
            )
        digest = hash_token(token)
        cache = self._token_cache
        clock = time.monotonic()
        hit = cache.get(digest)
        if hit is not None and hit[0] > clock:
            return hit[1]
        record = self.registry.token_by_hash(digest)
        if record is None:
            raise TokenError("the API token is not known; check it or create a new one")
        if record.revoked_at is not None:
            self.audit_token_use(record, f"token/{record.id}", allowed=False)
            raise TokenError(
                f"API token {record.id} was revoked at {record.revoked_at:%Y-%m-%d %H:%M:%S}Z; "
                "ask an admin for a new one"
            )
        if len(cache) > 10_000:  # bounded: only real tokens get here
            cache.clear()
        cache[digest] = (clock + self.TOKEN_CACHE_SECONDS, record)
        return record

    def authorize_read(self, record: TokenRecord, view: str) -> None:
        """Raise `AccessDeniedError` unless ``record`` may read every column of ``view``."""
        obj = f"feature_view/{view}"
        if record.views and view not in record.views:
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} may read only the view(s) {record.views}, not {view!r}"
            )
        private = self.private_columns(view)
        if private and not record.purpose:
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"feature_view/{view} serves pii/sensitive column(s) {private}; token "
                f"{record.id} declares no purpose. Create a token with --purpose TEXT"
            )
        self.audit_token_use(record, obj, allowed=True)

    def authorize_push(self, record: TokenRecord, group: str) -> None:
        """Raise `AccessDeniedError` unless ``record`` may push rows into ``group``."""
        obj = f"feature_group/{group}"
        if record.role == "reader":
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} is a reader; pushing into {group!r} needs a writer or "
                "admin token"
            )
        if record.views:
            groups = {
                s.group for v in record.views for s in self.catalog.get_feature_view(v).sources
            }
            if group not in groups:
                self.audit_token_use(record, obj, allowed=False)
                raise AccessDeniedError(
                    f"token {record.id} is scoped to the view(s) {record.views}, which do not "
                    f"read feature group {group!r}"
                )
        self.audit_token_use(record, obj, allowed=True)

    def authorize_admin(self, record: TokenRecord, action: str) -> None:
        """Raise `AccessDeniedError` unless ``record`` is an admin token."""
        obj = f"admin/{action}"
        if record.role != "admin":
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} is a {record.role}; {action} needs an admin token "
                "(`featureledger token create --role admin`)"
            )
        self.audit_token_use(record, obj, allowed=True)

    def private_columns(self, view: str) -> list[str]:
        """Output columns of ``view`` classified pii or sensitive."""
        fv, plan = self.online.serving_plan(view)  # definitions cached for the read path
        out = []
        for src, fg, _key in plan:
            for f in fg.features:
                if f.name in src.features and f.classification in PRIVATE:  # type: ignore[union-attr]
                    out.append(fv.output_name(src, f.name))  # type: ignore[union-attr]
        return out

    def audit_token_use(self, record: TokenRecord, obj: str, *, allowed: bool) -> None:
        """Count one use of a token in the audit trail (action ``token-use``).

        Uses are queued and written by a background thread, so a request never waits on the
        audit chain's write lock; uses of one token on one object with one outcome within
        `_AuditQueue.INTERVAL` become one entry with their count and first and last times.
        `flush_token_audit` waits until every queued use is written.
        """
        self._token_audit().put((f"token:{record.id}", obj, record.role, allowed))

    def flush_token_audit(self) -> None:
        """Wait until every queued token-use entry is in the audit trail."""
        if self._audit_queue is not None:
            self._audit_queue.join()

    def _token_audit(self) -> _AuditQueue:
        if self._audit_queue is None:
            self._audit_queue = _AuditQueue(self.registry)
        return self._audit_queue
