"""What the state store hands out (frozen dataclasses, not ORM objects) and what it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Status = Literal["pending", "running", "finished", "failed"]
Direction = Literal["up", "down"]

STATUSES: tuple[Status, ...] = ("pending", "running", "finished", "failed")
DIRECTIONS: tuple[Direction, ...] = ("up", "down")
#: Scopes an API key can carry.
SCOPES: tuple[str, ...] = ("read", "submit", "vote", "evaluate", "ingest", "admin")

#: Allowed ``set_status`` moves (pending -> running happens only through ``claim``).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    "pending": frozenset({"failed"}),
    "running": frozenset({"finished", "failed", "pending"}),
    "failed": frozenset({"pending"}),
    "finished": frozenset(),
}


class StateError(Exception):
    """A request the state store refuses; the message says why."""


class Duplicate(StateError):
    """The thing exists already (a live key name, an active submission)."""

    def __init__(self, message: str, *, existing_id: int | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class NotFound(StateError):
    """No such key, submission or vote."""


class InvalidTransition(StateError):
    """A status change the submission's current status does not allow."""


class InvalidValue(StateError, ValueError):
    """A value the store cannot keep (empty, too long, not one of the allowed words)."""


class UnknownScope(InvalidValue):
    """A scope that is not one of ``SCOPES``, or no scope at all."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who writes, and from where: what every audit row records."""

    identity: str
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller an API key stands for."""

    name: str
    scopes: frozenset[str]
    prefix: str

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key: ``raw`` is shown once and never stored."""

    raw: str
    key: ApiKey


@dataclass(frozen=True, slots=True)
class Submission:
    id: int
    model: str
    revision: str
    precision: str
    model_type: str | None
    base_model: str | None
    weight_type: str | None
    status: Status
    submitter: str
    claimed_by: str | None
    dataset_version: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Vote:
    identity: str
    model: str
    direction: Direction
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class VoteCounts:
    total: int
    up: int
    down: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    identity: str
    action: str
    target: str
    detail: dict[str, object]
    address: str | None
