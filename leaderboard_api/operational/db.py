"""Engines for the state store: the default SQLite file, its pragmas, PostgreSQL via psycopg 3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, make_url
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

#: Environment variable naming the store (the ``state`` setting).
STATE_ENV = "LEADERBOARD_STATE"
#: How long a SQLite connection waits for another writer before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Execution option that makes a SQLite transaction take the write lock at BEGIN.
_IMMEDIATE = "leaderboard_immediate"


def data_dir() -> Path:
    """The user's data directory for this program (XDG_DATA_HOME honoured)."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "leaderboard-api"


def default_url() -> str:
    """The embedded default: a SQLite file under the user's data directory."""
    return f"sqlite:///{data_dir() / 'state.db'}"


def resolve_url(url: str | None = None) -> str:
    """``url``, else ``$LEADERBOARD_STATE``, else the default SQLite file."""
    return url or os.environ.get(STATE_ENV) or default_url()


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str | URL) -> Path | None:
    """The database file of a SQLite URL (None for in-memory databases and other backends)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (see ``resolve_url``), configured for durability and concurrency.

    SQLite: the parent folder is created; every connection runs in WAL mode with
    ``synchronous=FULL`` (a commit is on disk before it returns), foreign keys on and a busy
    timeout; transactions are begun by SQLAlchemy so that writers can ``BEGIN IMMEDIATE``
    (see ``writer``).  PostgreSQL: ``postgresql+psycopg://`` (plain ``postgresql://`` is
    mapped to psycopg 3), with pre-ping so a restarted server is survived.
    """
    resolved = make_url(resolve_url(url))
    if resolved.get_backend_name() == "postgresql":
        if resolved.drivername == "postgresql":
            resolved = resolved.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
        return sa_create_engine(resolved, **kwargs)
    if resolved.get_backend_name() != "sqlite":
        raise ValueError(
            f"unsupported state store {resolved.render_as_string(hide_password=True)!r}: "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    path = sqlite_path(resolved)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa_create_engine(resolved, **kwargs)
    _configure_sqlite(engine, in_memory=path is None)
    return engine


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is off; SQLAlchemy emits BEGIN in `_on_begin`.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # First, so that switching to WAL waits for another process's lock too.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that later writes can fail at once with SQLITE_BUSY (the
        # busy timeout does not apply to a read lock's upgrade); writers take the lock first.
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The same engine (and pool) whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(**{_IMMEDIATE: True})


@contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """A short session that is closed (and rolled back unless committed) on exit."""
    with Session(engine, expire_on_commit=False) as s:
        yield s
