"""Alembic migrations of the state store, run to head at startup (idempotent, one at a time)."""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

from leaderboard_api.operational.db import create_engine, sqlite_path, writer

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: it takes a third of a second to import.

#: PostgreSQL advisory-lock key held while migrating, so replicas starting together take turns.
ADVISORY_LOCK_KEY = zlib.crc32(b"leaderboard-api state migrations")

_HERE = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """A programmatic Alembic configuration (no alembic.ini) whose scripts live here."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_HERE))
    return config


def head() -> str:
    """The newest revision the code knows."""
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package ships its revisions
        raise RuntimeError("the state store has no migrations")
    return revision


def current(connection: Connection) -> str | None:
    """The revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str | None = None, *, engine: Engine | None = None) -> str:
    """Migrate the store at ``url`` (or ``engine``) to head and return the revision.

    Safe to call on every start and from several processes at once: PostgreSQL migrations
    run under an advisory lock, SQLite ones under an exclusive lock on a file beside the
    database; whoever comes second finds the schema at head and does nothing.
    """
    from alembic import command

    own = engine is None
    bound = create_engine(url) if engine is None else engine
    try:
        with _exclusive(bound), writer(bound).connect() as connection:
            at = current(connection)
            connection.rollback()
            if at != head():
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")  # in one transaction, committed by Alembic
            revision = current(connection)
            connection.rollback()
    finally:
        if own:
            bound.dispose()
    if revision is None:  # pragma: no cover - upgrade either reaches head or raises
        raise RuntimeError("the state store did not reach a revision")
    return revision


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            lock.commit()
            try:
                yield
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                lock.commit()
        return
    path = sqlite_path(engine.url)
    if path is None:  # an in-memory database belongs to one process
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate.lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
