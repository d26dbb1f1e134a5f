"""``StateStore``: the one object the rest of the service holds for operational state."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from leaderboard_api.operational import migrations
from leaderboard_api.operational.core import Core, checked_text
from leaderboard_api.operational.db import create_engine
from leaderboard_api.operational.keys import Keys
from leaderboard_api.operational.models import AuditRow, ChangeRow
from leaderboard_api.operational.records import Actor, AuditEntry
from leaderboard_api.operational.submissions import Submissions
from leaderboard_api.operational.votes import Votes


class StateStore:
    """API keys, submissions, votes and the audit log of one SQL database.

    Blocking and thread-safe (a session per call): call it from a worker thread, not the
    event loop.  Every write is one transaction that also appends an audit row and bumps the
    change counter, and is committed (durable) before the method returns.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._core = Core(engine)
        self._head = migrations.head()
        self.keys = Keys(self._core)
        self.submissions = Submissions(self._core)
        self.votes = Votes(self._core)

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> StateStore:
        """The store at ``url`` (else ``$LEADERBOARD_STATE``, else the default SQLite file),
        migrated to head first unless ``migrate`` is false."""
        engine = create_engine(url)
        try:
            if migrate:
                migrations.upgrade(engine=engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._core.backend

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def change_counter(self, *, max_age: float = 0.0) -> int:
        """A number that grows with every committed write (and only then), for keying the
        precomputed bytes of routes that read this state.  ``max_age`` > 0 lets a caller
        skip the (single-row) query when it read the counter that recently; this process's
        own writes are seen at once."""
        return self._core.change_counter(max_age=max_age)

    def record(
        self, action: str, target: str, *, by: Actor, detail: Mapping[str, object] | None = None
    ) -> AuditEntry:
        """Audit a write kept elsewhere (e.g. a dataset version an ingest committed): one
        audit row, the change counter bumped, committed before this returns.  ``detail``
        must be JSON-serializable."""
        action = checked_text(action, "action", max_length=64)
        target = checked_text(target, "target", max_length=400)
        with self._core.write(by) as tx:
            tx.record(action, target, **dict(detail or {}))
        return _audit_entry(tx.records[0])

    def audit(
        self, *, limit: int = 100, before_id: int | None = None, identity: str | None = None
    ) -> list[AuditEntry]:
        """Audit rows, newest first (``before_id`` pages back)."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(max(1, min(limit, 10_000)))
        if before_id is not None:
            query = query.where(AuditRow.id < before_id)
        if identity is not None:
            query = query.where(AuditRow.identity == identity)
        with self._core.read() as session:
            return [_audit_entry(row) for row in session.scalars(query)]

    def health(self) -> tuple[bool, str]:
        """(ok, detail) for readiness: the database answers and its schema is at head."""
        try:
            with self._core.read() as session:
                revision = migrations.current(session.connection())
                counter = None
                if revision == self._head:
                    counter = session.scalar(select(ChangeRow.counter).where(ChangeRow.id == 1))
        except SQLAlchemyError as exc:
            first = (str(exc).splitlines() or [""])[0]
            return False, f"{self.backend} state store unreachable: {type(exc).__name__}: {first}"
        if revision != self._head:
            return False, (
                f"{self.backend} state store schema is at {revision or 'nothing'}, the code "
                f"needs {self._head}: run `leaderboard-api state upgrade`"
            )
        return True, f"{self.backend} state store ok (schema {revision}, change {counter})"


def _audit_entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        identity=row.identity,
        action=row.action,
        target=row.target,
        detail=dict(row.detail),
        address=row.address,
    )
