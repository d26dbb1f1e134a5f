"""API keys: created once (only a hash is kept), listed, revoked, verified in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leaderboard_api.operational.core import Core, checked_text, utcnow
from leaderboard_api.operational.models import ApiKeyRow
from leaderboard_api.operational.records import (
    SCOPES,
    Actor,
    ApiKey,
    Duplicate,
    Identity,
    NewKey,
    NotFound,
    UnknownScope,
)

#: Every key starts so, which makes a leaked one easy to recognise (secret scanners).
KEY_MARK = "lbk_"
_PREFIX_LENGTH = 12  # hex digits: the public part that finds the row
#: A key's last use is written at most this often.
TOUCH_INTERVAL = timedelta(minutes=1)
_NO_HASH = "0" * 64


def hash_key(raw: str) -> str:
    """The stored form of a key: 256 random bits need no slow hash, only a one-way one."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes as a sorted tuple of known names (comma-separated strings are split)."""
    names = {part.strip() for scope in scopes for part in scope.split(",") if part.strip()}
    unknown = sorted(names - set(SCOPES))
    if unknown:
        raise UnknownScope(
            f"unknown scope(s) {', '.join(unknown)}; valid scopes: {', '.join(SCOPES)}"
        )
    if not names:
        raise UnknownScope(f"a key needs at least one scope of: {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in names)


def _record(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(s for s in row.scopes.split(",") if s),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class Keys:
    """The ``api_keys`` table."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def create(self, name: str, scopes: Iterable[str], *, by: Actor) -> NewKey:
        """A new key named ``name``; its raw form is in the result and nowhere else."""
        name = checked_text(name, "key name", max_length=100)
        allowed = parse_scopes(scopes)
        prefix = secrets.token_hex(_PREFIX_LENGTH // 2)
        raw = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with self._core.write(by) as tx:
                if self._live(tx.session, name) is not None:
                    raise Duplicate(f"an API key named {name!r} exists; revoke it first")
                row = ApiKeyRow(
                    name=name,
                    prefix=prefix,
                    key_hash=hash_key(raw),
                    scopes=",".join(allowed),
                    created_at=tx.now,
                )
                tx.session.add(row)
                tx.session.flush()
                tx.record("key.create", f"key:{name}", prefix=prefix, scopes=list(allowed))
        except IntegrityError:  # the same name created at the same moment elsewhere
            raise Duplicate(f"an API key named {name!r} exists; revoke it first") from None
        return NewKey(raw=raw, key=_record(row))

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.name, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        with self._core.read() as session:
            return [_record(row) for row in session.scalars(query)]

    def revoke(self, name: str, *, by: Actor) -> ApiKey:
        """Revoke the live key named ``name`` (its row stays for the audit trail)."""
        with self._core.write(by) as tx:
            row = self._live(tx.session, name, lock=True)
            if row is None:
                raise NotFound(f"no live API key named {name!r}")
            row.revoked_at = tx.now
            tx.record("key.revoke", f"key:{name}", prefix=row.prefix)
        return _record(row)

    def verify(self, raw: str) -> Identity | None:
        """The identity of a live key, or None; the hashes are compared in constant time."""
        prefix = self._prefix(raw)
        with self._core.read() as session:
            row = None
            if prefix is not None:
                row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)).first()
        stored = row.key_hash if row is not None else _NO_HASH
        matches = hmac.compare_digest(hash_key(raw), stored)
        if row is None or not matches or row.revoked_at is not None:
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
            self._touch(row.id, now)
        return Identity(name=row.name, scopes=frozenset(_record(row).scopes), prefix=row.prefix)

    def _touch(self, key_id: int, now: datetime) -> None:
        cutoff = now - TOUCH_INTERVAL
        with self._core.bookkeeping() as session:
            session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id)
                .where(or_(ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at < cutoff))
                .values(last_used_at=now)
            )

    @staticmethod
    def _prefix(raw: str) -> str | None:
        end = len(KEY_MARK) + _PREFIX_LENGTH
        if not raw.startswith(KEY_MARK) or len(raw) <= end or raw[end] != "_":
            return None
        prefix = raw[len(KEY_MARK) : end]
        # Only hex reaches the query (PostgreSQL refuses NUL and the like with an error).
        return prefix if all(c in "0123456789abcdef" for c in prefix) else None

    @staticmethod
    def _live(session: Session, name: str, *, lock: bool = False) -> ApiKeyRow | None:
        query = select(ApiKeyRow).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
        if lock:
            query = query.with_for_update()
        return session.scalars(query).first()
