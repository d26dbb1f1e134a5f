"""Alembic environment: runs on the connection that ``migrations.upgrade`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from leaderboard_api.operational.db import create_engine
from leaderboard_api.operational.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # SQLAlchemy emits BEGIN itself on SQLite (see db.py), so DDL is transactional there too.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    config = context.config
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    # `alembic` run by hand (e.g. `revision --autogenerate`): the URL from the config.
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "offline (--sql) migrations are not supported: run `leaderboard-api state upgrade`"
    )
run_migrations()
