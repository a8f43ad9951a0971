"""API tokens of the feature server: creation, checks, authorization and the audit of use.

A token is ``fl_<43 url-safe characters>`` (256 random bits). Only its SHA-256 is stored
(registry table ``fl_tokens``), so the secret is shown once, when it is created. Roles:
``reader`` reads features; ``writer`` also pushes rows; ``admin`` is a writer that may also
use the server's admin endpoints (materialize, list and revoke tokens).

Access is denied by default (docs/serving.md, "Access model"): a token reads only the views
it lists (``ALL_VIEWS``, from ``--all-views``, lists every view; a token with no list reads
nothing) and pushes only the columns those views select, plus the group's keys and times.
Columns classified ``pii`` or ``sensitive`` (declared, or derived through a pipeline, see
`featureledger.lineage.privacy`) are served only when the token's purpose is the view's
purpose or is declared beneath it in ``purposes`` of featureledger.yaml."""

from __future__ import annotations

import hashlib
import logging
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from featureledger.errors import AccessDeniedError, DataError, NotFoundError, TokenError
from featureledger.lineage.privacy import PRIVATE, effective_classification
from featureledger.registry import RegistryBackend, TokenRecord
from featureledger.store._catalog import Catalog
from featureledger.versioning.provenance import current_user

Role = Literal["reader", "writer", "admin"]


ROLES: tuple[str, ...] = ("reader", "writer", "admin")


TOKEN_PREFIX = "fl_"

#: the view list of a token created with ``all_views=True``: it reads every view
ALL_VIEWS = "*"
#: prefix of a deployment grant in a token's scope (``deployment/NAME``)
DEPLOYMENT = "deployment/"


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
        self,
        *,
        registry: RegistryBackend,
        catalog: Catalog,
        purposes: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        #: purpose -> the broader purpose it is declared under (featureledger.yaml)
        self.purposes = dict(purposes or {})
        #: view -> (expiry, definitions generation, purpose, private column -> why)
        self._private: dict[str, tuple[float, int, str, dict[str, str]]] = {}
        self._token_cache: dict[str, tuple[float, TokenRecord]] = {}
        self._audit_queue: _AuditQueue | None = None

    #: how long an accepted token is trusted without asking the registry again; a revoke
    #: in this process takes effect at once, one from another process within this long
    TOKEN_CACHE_SECONDS = 5.0

    def create_token(
        self,
        role: str,
        views: Iterable[str] = (),
        purpose: str = "",
        *,
        all_views: bool = False,
        deployments: Iterable[str] = (),
    ) -> str:
        """Create an API token and return its secret; only its hash is kept.

        The token reads (and pushes into) only ``views``; ``all_views=True`` grants every
        view, present and future. With neither it reads nothing (an admin token still
        reaches the admin endpoints). It calls ``POST /predict/NAME`` only for the
        ``deployments`` it names (kept in its scope as ``deployment/NAME``)."""
        if role not in ROLES:
            raise DataError(f"token role must be one of {', '.join(ROLES)}, got {role!r}")
        if isinstance(views, str):
            views = [views]
        if isinstance(deployments, str):
            deployments = [deployments]
        for name in deployments:
            if not self.registry.deployments(name):
                raise NotFoundError(f"deployment/{name} does not exist; deploy a model to it first")
        scope = sorted(set(views))
        if all_views and scope:
            raise DataError(
                f"a token gets either a list of views ({scope}) or all_views=True, not both"
            )
        for name in scope:
            if name.startswith(INDEX_SCOPE):  # an embedding index (docs/llm.md#serving)
                continue
            self.catalog.get_feature_view(name)  # NotFoundError naming the known views
        if all_views:
            scope = [ALL_VIEWS]
        scope += sorted({f"{DEPLOYMENT}{name}" for name in deployments})
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
        if not may_read(record, view):
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} may not read feature_view/{view}: "
                + (
                    f"it is scoped to the view(s) {record.views}"
                    if record.views
                    else "it lists no views, and a token reads only the views it lists"
                )
                + "; create a token with --view NAME (or --all-views)"
            )
        purpose, reasons = self.view_privacy(view)
        private = list(reasons)
        if private:
            refusal = purpose_refusal(record.purpose, purpose, self.purposes)
            if refusal:
                self.audit_token_use(record, obj, allowed=False)
                raise AccessDeniedError(
                    f"feature_view/{view} serves pii/sensitive column(s) {private}; token "
                    f"{record.id}: {refusal}"
                )
        self.audit_token_use(record, obj, allowed=True)

    def authorize_predict(self, record: TokenRecord, deployment: str) -> None:
        """Raise `AccessDeniedError` unless ``record`` names ``deployment`` in its scope
        (a grant of its own: ``--all-views`` does not reach deployments)."""
        obj = f"{DEPLOYMENT}{deployment}"
        if obj not in record.views:
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} may not call deployment/{deployment}: a token calls only "
                "the deployments it names; create one with --deployment "
                f"{deployment}"
            )
        self.audit_token_use(record, obj, allowed=True)

    def authorize_index(self, record: TokenRecord, index: str, *, include_pii: bool) -> None:
        """Raise `AccessDeniedError` unless ``record`` may search embedding index ``index``
        (its view list names ``index/NAME`` or is ``--all-views``); chunks with personal
        data also need a token that declares a purpose."""
        obj = INDEX_SCOPE + index
        if not may_read(record, obj):
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} may not search {obj}: a token searches only the indexes "
                f"it lists; create one with --view {obj}"
            )
        if include_pii and not record.purpose:
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} declares no purpose, so it is served no chunks with "
                "personal data; create a token with --purpose, or search without include_pii"
            )
        self.audit_token_use(record, obj, allowed=True)

    def authorize_push(
        self, record: TokenRecord, group: str, columns: Iterable[str] | None = None
    ) -> None:
        """Raise `AccessDeniedError` unless ``record`` may push ``columns`` into ``group``.

        Without ``columns`` only the role and the group are checked; the server does that
        before it reads a body, then checks the rows' columns (`authorize_push_columns`)."""
        obj = f"feature_group/{group}"
        if record.role == "reader":
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} is a reader; pushing into {group!r} needs a writer or "
                "admin token"
            )
        if ALL_VIEWS not in record.views and self.writable_columns(record, group) is None:
            self.audit_token_use(record, obj, allowed=False)
            raise AccessDeniedError(
                f"token {record.id} "
                + (
                    f"is scoped to the view(s) {record.views}, which do not read "
                    if record.views
                    else "lists no views, so it may push into no "
                )
                + f"feature group {group!r}; create a token with --view for a view that reads it"
            )
        if columns is not None:
            self.authorize_push_columns(record, group, columns)
        self.audit_token_use(record, obj, allowed=True)

    def authorize_push_columns(
        self, record: TokenRecord, group: str, columns: Iterable[str]
    ) -> None:
        """Raise `AccessDeniedError` (audited) if ``columns`` holds one ``record`` may not
        write: a view-scoped token writes the columns its views select, plus keys and times."""
        if ALL_VIEWS in record.views:
            return
        writable = self.writable_columns(record, group) or set()
        extra = sorted(set(columns) - writable)
        if extra:
            self.audit_token_use(record, f"feature_group/{group}", allowed=False)
            raise AccessDeniedError(
                f"token {record.id} may not push column(s) {extra} into {group!r}: its "
                f"view(s) {record.views} select only {sorted(writable)} of that group; leave "
                "those columns out or use a token scoped to a view that selects them"
            )

    def writable_columns(self, record: TokenRecord, group: str) -> set[str] | None:
        """The columns of ``group`` a view-scoped token may push (keys, times and the
        features its views select); None when none of its views reads the group."""
        found: set[str] | None = None
        for name in record.views:
            if name.startswith(DEPLOYMENT):  # a deployment grant writes no group
                continue
            fv = self.catalog.get_feature_view(name)
            for src in fv.sources:
                if src.group != group:
                    continue
                fg = self.catalog.get_feature_group(src.group, src.major)
                found = (found or set()) | set(fg.unique_key) | set(src.features)
                if fg.created_time:
                    found.add(fg.created_time)
        return found

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

    def may_see_private(self, record: TokenRecord, view: str) -> bool:
        """Whether ``record`` may see the values of ``view``'s private columns: the view is
        in its list and its purpose is the view's or declared beneath it (not audited: the
        web UI asks this to decide what to mask, not to serve)."""
        if not may_read(record, view):
            return False
        purpose, private = self.view_privacy(view)
        return not private or not purpose_refusal(record.purpose, purpose, self.purposes)

    def private_columns(self, view: str) -> list[str]:
        """Output columns of ``view`` classified pii or sensitive, declared or derived."""
        return list(self.view_privacy(view)[1])

    #: how long a view's purpose and private columns are reused on the read path (an apply
    #: in this process clears them at once, one in another process is seen within this long)
    PRIVACY_SECONDS = 5.0

    def view_privacy(self, view: str) -> tuple[str, dict[str, str]]:
        """``view``'s purpose and its private output columns -> why each is private."""
        clock = time.monotonic()
        generation = self.catalog.generation
        hit = self._private.get(view)
        if hit is not None and hit[0] > clock and hit[1] == generation:
            return hit[2], hit[3]
        # from the catalog, not the serving plan: refusing must not need the online store
        fv = self.catalog.get_feature_view(view)
        out: dict[str, str] = {}
        for src in fv.sources:
            fg = self.catalog.get_feature_group(src.group, src.major)
            labels = effective_classification(fg, self.catalog.get_feature_group)
            for name in src.features:
                label = labels[name]
                if label.classification in PRIVATE:
                    out[fv.output_name(src, name)] = label.why(fg.name, name)
        if len(self._private) > 1000:
            self._private.clear()
        self._private[view] = (clock + self.PRIVACY_SECONDS, generation, fv.purpose, out)
        return fv.purpose, out

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


#: the prefix of an embedding index in a token's view list
INDEX_SCOPE = "index/"


def may_read(record: TokenRecord, view: str) -> bool:
    """Whether ``record``'s view list names ``view`` (or is ``--all-views``)."""
    return ALL_VIEWS in record.views or view in record.views


def purpose_refusal(token_purpose: str, view_purpose: str, parents: Mapping[str, str]) -> str:
    """Why a token of ``token_purpose`` may not read a view declared for ``view_purpose``;
    "" when it may: the same purpose, or one declared beneath it in ``parents`` (purpose ->
    the broader purpose it belongs to), however many levels down."""
    if not view_purpose:
        return (
            "the view declares no purpose, so its private columns are served to no token; "
            "set purpose='...' on the view and apply"
        )
    if not token_purpose:
        return f"it declares no purpose; the view is for {view_purpose!r} (--purpose)"
    seen = []
    purpose: str | None = token_purpose
    while purpose is not None and purpose not in seen:
        if purpose == view_purpose:
            return ""
        seen.append(purpose)
        purpose = parents.get(purpose)
    chain = " under ".join(repr(p) for p in seen)
    return (
        f"its purpose {chain} is not the view's purpose {view_purpose!r}"
        + ("" if len(seen) > 1 else " and is declared under no other purpose")
        + "; purposes match exactly unless featureledger.yaml declares one under another "
        f"(purposes: {{{token_purpose}: {view_purpose}}})"
    )
