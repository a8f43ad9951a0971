"""The audit key: the repository secret the audit chain's MACs are keyed with.

It lives outside the registry, so whoever can write the registry's tables cannot forge or
re-chain entries: in ``FEATURELEDGER_AUDIT_KEY`` (teams sharing a PostgreSQL registry set
the same value everywhere) or else in ``.featureledger/audit.key``, made with mode 0600 on
first open. A key file others can read is refused.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from featureledger.config import STATE_DIR
from featureledger.errors import ConfigError
from featureledger.registry import RegistryBackend

ENV = "FEATURELEDGER_AUDIT_KEY"
KEY_FILE = "audit.key"
#: shorter secrets are guessable: refuse them
MIN_LENGTH = 16


def key_path(repo: Path) -> Path:
    return repo / STATE_DIR / KEY_FILE


def load_audit_key(repo: Path) -> bytes:
    """The repository's audit key: the environment's, else the key file's (made if missing)."""
    value = os.environ.get(ENV)
    if value is not None:
        if len(value.strip()) < MIN_LENGTH:
            raise ConfigError(
                f"{ENV} is set but shorter than {MIN_LENGTH} characters; set it to the "
                "repository's audit key (e.g. the content of .featureledger/audit.key)"
            )
        return value.strip().encode()
    path = key_path(repo)
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} has mode {mode:04o}: other users can read the audit key, so it protects "
            f"nothing; nothing was opened. Run `chmod 600 {path}` (and rotate the key if others "
            "may have read it: docs/reliability.md, 'The audit key')"
        )
    text = path.read_text().strip()
    if len(text) < MIN_LENGTH:
        raise ConfigError(
            f"{path} holds no audit key (fewer than {MIN_LENGTH} characters); restore it "
            f"from a backup, or set {ENV}"
        )
    return text.encode()


def _create(path: Path) -> None:
    """Write a new random key with mode 0600; a racing opener's key wins if it came first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (secrets.token_hex(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process made the key first: keep theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def rotate_audit_key(repo: Path, registry: RegistryBackend, user: str, reason: str) -> int:
    """Replace the key file's key: the registry re-MACs its chain under a new key (after
    verifying it under the old one), then the new key file replaces the old one.

    The new key is written beside the old (``audit.key.new``, 0600) before the registry
    commits, so an interruption between the two leaves it there to be moved over."""
    if os.environ.get(ENV) is not None:
        raise ConfigError(
            f"the audit key comes from {ENV}; this command rotates a key file. Unset it, "
            "rotate, then give every machine the new content of .featureledger/audit.key"
        )
    path = key_path(repo)
    pending = path.with_name(path.name + ".new")
    new = secrets.token_hex(32)
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (new + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        count = registry.audit_rotate_key(new.encode(), user, reason)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    os.replace(pending, path)
    return count
