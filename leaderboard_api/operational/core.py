"""The store's shared machinery: read sessions, and write transactions that audit and count."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from leaderboard_api.operational.db import writer
from leaderboard_api.operational.models import AuditRow, ChangeRow
from leaderboard_api.operational.records import Actor, InvalidValue


def utcnow() -> datetime:
    return datetime.now(UTC)


def checked_text(value: str, what: str, *, max_length: int) -> str:
    """``value`` stripped, refused when empty or longer than the column holds."""
    cleaned = value.strip()
    if not cleaned:
        raise InvalidValue(f"{what} must not be empty")
    if len(cleaned) > max_length:
        raise InvalidValue(f"{what} is longer than {max_length} characters")
    if "\x00" in cleaned:  # PostgreSQL cannot store it in text
        raise InvalidValue(f"{what} must not contain NUL characters")
    return cleaned


def optional_text(value: str | None, what: str, *, max_length: int) -> str | None:
    if value is None or not value.strip():
        return None
    return checked_text(value, what, max_length=max_length)


@dataclass
class Tx:
    """One write transaction: its session, who writes, one clock reading, what to audit."""

    session: Session
    by: Actor
    now: datetime
    records: list[AuditRow] = field(default_factory=list)

    def record(self, action: str, target: str, **detail: object) -> None:
        self.records.append(
            AuditRow(
                at=self.now,
                identity=self.by.identity,
                action=action,
                target=target,
                detail=detail,
                address=self.by.address,
            )
        )


class Core:
    """An engine, a session per call, and the change counter as last seen by this process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = writer(engine)
        self._lock = threading.Lock()
        self._counter: int | None = None
        self._counter_at = 0.0

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self, by: Actor) -> Iterator[Tx]:
        """A transaction that, when the block recorded something, appends its audit rows and
        increments the change counter before committing (all or nothing, durable on return).

        On SQLite it holds the write lock from BEGIN; on PostgreSQL the counter's row lock,
        taken last, orders the commits, so a reader that sees counter N sees every write up
        to N.  A block that records nothing (e.g. a claim that found no work) is rolled back.
        """
        with Session(self._writer, expire_on_commit=False) as session:
            tx = Tx(session=session, by=by, now=utcnow())
            yield tx
            if not tx.records:
                session.rollback()
                return
            session.add_all(tx.records)
            session.flush()
            counter = session.execute(
                update(ChangeRow)
                .where(ChangeRow.id == 1)
                .values(counter=ChangeRow.counter + 1)
                .returning(ChangeRow.counter)
            ).scalar_one()
            session.commit()
        self._saw(counter)

    @contextmanager
    def bookkeeping(self) -> Iterator[Session]:
        """A write that changes nothing anyone reads (a key's last use): no audit, no count."""
        with Session(self._writer, expire_on_commit=False) as session:
            yield session
            session.commit()

    def change_counter(self, *, max_age: float = 0.0) -> int:
        """The store's change counter; within ``max_age`` seconds of the last reading (or of
        this process's last write) the remembered value, without a query."""
        if max_age > 0:
            with self._lock:
                if self._counter is not None and time.monotonic() - self._counter_at < max_age:
                    return self._counter
        with self.read() as session:
            value = session.execute(select(ChangeRow.counter).where(ChangeRow.id == 1)).scalar_one()
        self._saw(value)
        return value

    def _saw(self, value: int) -> None:
        with self._lock:
            if self._counter is None or value >= self._counter:
                self._counter = value
                self._counter_at = time.monotonic()
