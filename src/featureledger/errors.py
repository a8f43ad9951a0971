"""Every error featureledger raises, under one root.

Each message says what was wrong, where, and what to do; the fields are kept on
the exception so callers can act on them without parsing text.

    FeatureLedgerError
    ├── ConfigError              featureledger.yaml missing or invalid
    ├── DefinitionError          an Entity/FeatureGroup/FeatureView is malformed
    │   └── InvalidNameError     a name is not a safe identifier
    ├── BreakingChangeError      apply refused a breaking change without a new major version
    ├── NotFoundError            an identity or object does not exist
    ├── IdentityParseError       a printed identity could not be parsed
    ├── DataError                a batch or entity frame was refused; nothing was written
    │   ├── SchemaMismatchError  columns or types differ from the definition
    │   ├── TimestampError       naive, lossy or null timestamps
    │   ├── EmptyDataError       no rows
    │   ├── KeyConflictError     append found rows already stored for the same key and time
    │   ├── CoverageError        strict training data: an input group has no data for the frame
    │   └── ContractViolation    error-severity rules of a data contract failed
    ├── GateError                a model candidate failed a release gate
    ├── LicenseError             an input's licence does not allow the declared use
    ├── MonitorBlockError        an open blocking monitor finding stops training or release
    ├── TokenError               an API token is missing, unknown or revoked
    ├── AccessDeniedError        a valid API token may not do what was asked
    ├── ConcurrentWriteError     another writer committed first (retryable)
    ├── IntegrityError           stored data does not match its recorded checksums
    ├── StorageError             object storage refused or failed a request
    └── OnlineStoreUnavailable   the online store (Redis, SQLite) cannot be reached (retryable)

    CoverageWarning (a UserWarning)  training data built from a group with no data for the frame
    SplitGapWarning (a UserWarning)  a time split's gap is shorter than the view's longest ttl
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class FeatureLedgerError(Exception):
    """Root of every featureledger error."""

    #: whether the same call may succeed if simply tried again
    retryable: bool = False


class ConfigError(FeatureLedgerError):
    """The repository configuration is missing or invalid."""


class DefinitionError(FeatureLedgerError):
    """A definition object is malformed."""


class InvalidNameError(DefinitionError):
    """A name cannot be used as an identifier, a path segment or a SQL column."""

    def __init__(self, what: str, name: object, rule: str) -> None:
        self.what = what
        self.name = name
        super().__init__(
            f"{what} name {name!r} is not allowed: {rule}. "
            "Use letters, digits and underscores, starting with a letter or underscore "
            "(at most 128 characters)."
        )


class BreakingChangeError(FeatureLedgerError):
    """`apply` refused a breaking change to an existing definition version."""

    def __init__(self, identity: str, reasons: Sequence[str], next_major: int) -> None:
        self.identity = identity
        self.reasons = list(reasons)
        self.next_major = next_major
        listed = "; ".join(self.reasons)
        if identity.startswith("entity/"):
            # entities have no version= to set
            how = (
                "To proceed, declare a new entity under another name with the new join keys, "
                "and a new major version (version=N+1) of each feature group that uses it."
            )
        else:
            how = (
                f"To proceed, set version={next_major} on the definition and apply again: that "
                "creates a new major version beside the old one, which stays readable; then "
                "backfill it."
            )
        super().__init__(
            f"{identity}: breaking change refused ({listed}). Existing training sets and models "
            f"read this version, so it cannot change in place. {how}"
        )


class NotFoundError(FeatureLedgerError):
    """An object, version or identity does not exist."""


class IdentityParseError(FeatureLedgerError):
    """A printed identity could not be parsed."""


class DataError(FeatureLedgerError):
    """Input data was refused. Nothing was written."""


class SchemaMismatchError(DataError):
    """A batch's columns or types do not match the feature group's schema."""

    def __init__(self, where: str, problems: Sequence[str]) -> None:
        self.where = where
        self.problems = list(problems)
        bullet = "\n  - ".join(self.problems)
        super().__init__(
            f"{where}: data does not match the definition; nothing was written.\n  - {bullet}\n"
            "Fix the data (rename, cast or drop the columns named) or change the definition "
            "and run `featureledger apply`."
        )


class TimestampError(DataError):
    """Timestamps are naive, lossy to convert, or null where a time is required."""


class EmptyDataError(DataError):
    """A batch or entity frame has no rows."""


class CoverageError(DataError):
    """``strict`` training data refused: an input group holds no rows, or none at the
    entity frame's times."""

    def __init__(self, where: str, problems: Sequence[str]) -> None:
        self.where = where
        self.problems = list(problems)
        bullet = "\n  - ".join(self.problems)
        super().__init__(
            f"{where}: refused (strict), no training set was recorded.\n  - {bullet}\n"
            "Ingest or backfill the groups named, pin versions that hold data, or build "
            "without strict to accept null features."
        )


class CoverageWarning(UserWarning):
    """Training data was built, but an input group has no rows, or none at some of the
    entity frame's times: those features are null."""


class KeyConflictError(DataError):
    """`append` found rows already stored for the same primary key and event time."""

    def __init__(self, where: str, count: int, examples: Sequence[dict[str, object]]) -> None:
        self.where = where
        self.count = count
        self.examples = list(examples)
        super().__init__(
            f"{where}: {count} row(s) of the batch have a (primary key, event time) already "
            f"stored, e.g. {self.examples}; append never replaces rows, nothing was written. "
            "Use mode='upsert' to replace them (the greatest created_time wins)."
        )


class ConcurrentWriteError(FeatureLedgerError):
    """Another writer committed to the same table first."""

    retryable = True


class IntegrityError(FeatureLedgerError):
    """Stored data does not match the checksums recorded when it was committed."""


class StorageError(FeatureLedgerError):
    """A local path or object store refused or failed a request (never carries secrets)."""

    def __init__(self, message: str, *, uri: str, retryable: bool = False) -> None:
        self.uri = uri
        self.retryable = retryable
        super().__init__(message)


class OnlineStoreUnavailable(FeatureLedgerError):
    """The online store could not be reached or answered with a connection fault.

    Retryable: nothing was read or written. ``store`` names the store (``redis://host:port``
    or the SQLite path); ``retry_after`` is how many seconds the caller should wait (the
    server sends it as Retry-After with its 503)."""

    retryable = True

    def __init__(self, store: str, action: str, cause: BaseException, *, retry_after: int = 1):
        self.store = store
        self.action = action
        self.retry_after = retry_after
        super().__init__(
            f"online store {store} is unavailable ({action}: {type(cause).__name__}: {cause}); "
            "nothing was changed. Retry in a moment; if it persists, check that the store is "
            "running and reachable, or set online.fallback: offline in featureledger.yaml to "
            "serve the last materialized values from the offline store meanwhile"
        )


class ContractViolation(DataError):
    """A batch broke error-severity rules of its data contract.

    ``failures`` are the failed rules' result dicts (``ValidationReport.errors``, as
    ``to_dict``): rule name, columns, failed count, observed values and example rows;
    ``report`` is the whole `ValidationReport` when available.
    """

    def __init__(
        self,
        where: str,
        failures: Sequence[Mapping[str, Any]],
        *,
        rows: int | None = None,
        report: object = None,
    ) -> None:
        self.where = where
        self.failures = [dict(f) for f in failures]
        self.rows = rows
        self.report = report
        lines = []
        for f in self.failures:
            cols = ", ".join(f.get("columns") or ()) or "the whole batch"
            line = f"rule {f.get('name')!r} on {cols}: {f.get('message', '')}"
            examples = f.get("examples") or ()
            if examples:
                shown = "; ".join(
                    f"row {e.get('row')}: {e.get('values')}" for e in list(examples)[:5]
                )
                line += f"; e.g. {shown}"
            lines.append(line)
        size = f" of {rows} row(s)" if rows is not None else ""
        bullet = "\n  - ".join(lines)
        super().__init__(
            f"{where}: the batch{size} violates {len(lines)} error rule(s) of its contract."
            f"\n  - {bullet}\n"
            "Fix the data shown, or, if the contract is wrong, change the rule (loosening it "
            "is a non-breaking change) and apply it."
        )


class GateError(FeatureLedgerError):
    """A model candidate failed one or more release gates; nothing was registered."""

    def __init__(self, what: str, failures: Sequence[Mapping[str, Any]]) -> None:
        self.failures = [dict(f) for f in failures]
        listed = "; ".join(f"{f['gate']}: {f['detail']}" for f in self.failures)
        super().__init__(
            f"{what}: release gate(s) failed ({listed}); nothing was registered. Improve the "
            "model or, if the gate is wrong, change the gate in the registration call."
        )


class LicenseError(FeatureLedgerError):
    """A training set was refused because an input's licence does not allow its use."""


class MonitorBlockError(FeatureLedgerError):
    """An open blocking finding (a monitor with action ``block``, a failed release check)
    targets an input of what was asked for; nothing was built, registered or deployed."""

    def __init__(self, where: str, findings: Sequence[Mapping[str, Any]]) -> None:
        self.findings = [dict(f) for f in findings]
        listed = "; ".join(
            f"monitor {f['monitor']!r} on {f['target']}: {f['message']}" for f in self.findings
        )
        # release findings carry their own re-check hint (`featureledger model check`)
        monitors = [f for f in self.findings if not str(f["monitor"]).startswith("release:")]
        again = (
            "Fix or roll back the data and run `featureledger monitor run` again, or "
            if monitors
            else ""
        )
        accept = "accept" if monitors else "Accept"
        super().__init__(
            f"{where}: blocked by open finding(s): {listed}. {again}{accept} a finding with "
            "`featureledger monitor resolve NAME --reason ...`."
        )


class TokenError(FeatureLedgerError):
    """An API token is missing, unknown or revoked (HTTP 401)."""


class AccessDeniedError(FeatureLedgerError):
    """A valid API token is not allowed the action asked for (HTTP 403)."""


class SplitGapWarning(UserWarning):
    """A time split's gap is shorter than the longest TTL of the view's groups, so
    features of rows just after a boundary may see events of the part before it."""
