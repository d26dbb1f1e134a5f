"""Votes: one per identity and model (up or down), replaced by a second, counted per model."""

from __future__ import annotations

from typing import cast

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from leaderboard_api.operational.core import Core, checked_text
from leaderboard_api.operational.models import VoteRow
from leaderboard_api.operational.records import (
    DIRECTIONS,
    Actor,
    Direction,
    InvalidValue,
    NotFound,
    Vote,
    VoteCounts,
)


def _record(row: VoteRow) -> Vote:
    return Vote(
        identity=row.identity,
        model=row.model,
        direction=cast(Direction, row.direction),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _counts(up: int, down: int) -> VoteCounts:
    return VoteCounts(total=up + down, up=up, down=down)


class Votes:
    """The ``votes`` table."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def cast(self, model: str, direction: Direction, *, by: Actor) -> Vote:
        """``by``'s vote on ``model``, replacing the one it had (an upsert: concurrent first
        votes of one identity leave one row)."""
        model = checked_text(model, "model", max_length=300)
        if direction not in DIRECTIONS:
            raise InvalidValue(f"a vote is 'up' or 'down', not {direction!r}")
        insert = postgresql.insert if self._core.backend == "postgresql" else sqlite.insert
        with self._core.write(by) as tx:
            previous = tx.session.scalar(
                select(VoteRow.direction).where(
                    VoteRow.identity == by.identity, VoteRow.model == model
                )
            )
            values = insert(VoteRow).values(
                identity=by.identity,
                model=model,
                direction=direction,
                created_at=tx.now,
                updated_at=tx.now,
            )
            upsert = values.on_conflict_do_update(
                index_elements=[VoteRow.identity, VoteRow.model],
                set_={"direction": values.excluded.direction, "updated_at": tx.now},
            ).returning(VoteRow.created_at)
            created_at = tx.session.execute(upsert).scalar_one()
            tx.record("vote.cast", f"vote:{model}", direction=direction, previous=previous)
        return Vote(
            identity=by.identity,
            model=model,
            direction=direction,
            created_at=created_at,
            updated_at=tx.now,
        )

    def delete(self, model: str, *, by: Actor) -> None:
        """Remove ``by``'s vote on ``model``; NotFound when there is none."""
        with self._core.write(by) as tx:
            removed = tx.session.execute(
                delete(VoteRow)
                .where(VoteRow.identity == by.identity, VoteRow.model == model)
                .returning(VoteRow.direction)
            ).scalar_one_or_none()
            if removed is None:
                raise NotFound(f"{by.identity} has no vote on {model}")
            tx.record("vote.delete", f"vote:{model}", direction=removed)

    def counts(self, model: str) -> VoteCounts:
        return self.all_counts(model).get(model, _counts(0, 0))

    def all_counts(self, model: str | None = None) -> dict[str, VoteCounts]:
        """{model: counts} for every model with a vote (or only ``model``)."""
        query = select(VoteRow.model, VoteRow.direction, func.count(VoteRow.id)).group_by(
            VoteRow.model, VoteRow.direction
        )
        if model is not None:
            query = query.where(VoteRow.model == model)
        tally: dict[str, dict[str, int]] = {}
        with self._core.read() as session:
            for name, direction, count in session.execute(query):
                tally.setdefault(name, {})[direction] = count
        return {
            name: _counts(by_direction.get("up", 0), by_direction.get("down", 0))
            for name, by_direction in sorted(tally.items())
        }

    def of_user(self, identity: str) -> list[Vote]:
        """``identity``'s votes, by model name."""
        query = select(VoteRow).where(VoteRow.identity == identity).order_by(VoteRow.model)
        with self._core.read() as session:
            return [_record(row) for row in session.scalars(query)]
