"""Pytest plugin: a real PostgreSQL server (Debian's packages) on 127.0.0.1 for database tests.

``postgres_server`` (session) starts it with scripts/postgres-up.sh when nothing answers on its
port (installing PostgreSQL if needed, which needs root, as in CI) and stops it with
scripts/postgres-down.sh afterwards, only when this session started it. ``postgres_gradebook_url``
(per test) gives each test its own throw-away database, owned by the role aifkit.

The environment variables of the scripts (PG_BASE, PG_PORT, PG_PASSWORD) apply here too.
psycopg2 is imported lazily, so that a venv without it only skips these tests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
HOST = "127.0.0.1"
ROLE = "aifkit"


@dataclass(frozen=True)
class PostgresServer:
    """Where the test server listens and how the role aifkit logs in."""

    host: str
    port: int
    user: str
    password: str
    base: Path

    def url(self, database: str = "aifkit_gradebook") -> str:
        """SQLAlchemy URL of ``database`` (driver psycopg2), logged in as the role aifkit."""
        return (
            f"postgresql+psycopg2://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{database}"
        )

    def connect(self, database: str = "aifkit_gradebook", **kwargs: Any) -> Any:
        """A psycopg2 connection as the role aifkit; keyword arguments override the defaults."""
        import psycopg2

        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": database,
            "connect_timeout": 10,
        }
        return psycopg2.connect(**(params | kwargs))


def answers_on_loopback(port: int) -> bool:
    """Does anything accept TCP connections on 127.0.0.1:port?"""
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1 (Debian's postgresql, its own cluster).

    Started (and installed when missing) by scripts/postgres-up.sh when nothing answers on the
    port; that needs root, as in CI. Stopped by scripts/postgres-down.sh afterwards when this
    session started it. Every subprocess has its own timeout.
    """
    pytest.importorskip("psycopg2", reason="psycopg2-binary is pinned in requirements.lock")
    server = PostgresServer(
        host=HOST,
        port=int(os.environ.get("PG_PORT", "55432")),
        user=ROLE,
        password=os.environ.get("PG_PASSWORD", "aifkit-test"),
        base=Path(os.environ.get("PG_BASE", "/tmp/aifkit-postgres")),
    )
    started = not answers_on_loopback(server.port)
    if started:
        if os.geteuid() != 0:
            pytest.skip(
                "a real PostgreSQL server needs root to be installed and started as user "
                "postgres (CI runs as root); or start it first with scripts/postgres-up.sh"
            )
        # 600 s: a fresh CI machine installs PostgreSQL from Debian's mirror first.
        up = subprocess.run(
            [str(SCRIPTS / "postgres-up.sh")], capture_output=True, text=True, timeout=600
        )
        assert up.returncode == 0, f"postgres-up.sh failed:\n{up.stdout}\n{up.stderr}"
    try:
        server.connect().close()
    except Exception as error:
        if started:
            _down()
        pytest.fail(f"cannot log in to PostgreSQL on {HOST}:{server.port} as {ROLE}: {error}")
    yield server
    if started:
        _down()


def _down() -> None:
    subprocess.run([str(SCRIPTS / "postgres-down.sh")], capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def fresh_database(server: PostgresServer, prefix: str) -> Iterator[str]:
    """A new database owned by the aifkit role; its URL, and the database dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = server.connect("postgres")
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        yield server.url(name)
    finally:
        # WITH (FORCE): a test that left a connection open must not keep its database alive.
        _drop(admin, name)
        admin.close()


def _drop(admin: Any, name: str, tries: int = 10) -> None:
    """DROP DATABASE ... WITH (FORCE), retried: a backend the aifkit role may not terminate (an
    autovacuum worker that has just started on the new database) refuses it for a moment."""
    import psycopg2

    for attempt in range(tries):
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ObjectInUse):
            if attempt == tries - 1:
                raise
            time.sleep(0.5)


@pytest.fixture
def postgres_gradebook_url(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database for this test alone, dropped afterwards.

    The venv's bin goes first on PATH: nbgrader's Gradebook runs `alembic` by subprocess when it
    creates its tables (also in writer processes the test starts).
    """
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with fresh_database(postgres_server, "aifkit_test") as url:
        yield url
