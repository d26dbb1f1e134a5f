"""Submissions: the evaluation queue, its duplicate rule, atomic claims and status reports."""

from __future__ import annotations

from typing import cast

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leaderboard_api.operational.core import Core, checked_text, optional_text
from leaderboard_api.operational.models import SubmissionRow, VoteRow
from leaderboard_api.operational.records import (
    STATUSES,
    TRANSITIONS,
    Actor,
    Duplicate,
    InvalidTransition,
    InvalidValue,
    NotFound,
    Status,
    Submission,
)


def _record(row: SubmissionRow) -> Submission:
    return Submission(
        id=row.id,
        model=row.model,
        revision=row.revision,
        precision=row.precision,
        model_type=row.model_type,
        base_model=row.base_model,
        weight_type=row.weight_type,
        status=cast(Status, row.status),
        submitter=row.submitter,
        claimed_by=row.claimed_by,
        dataset_version=row.dataset_version,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _active(session: Session, *, model: str, revision: str, precision: str) -> SubmissionRow | None:
    return session.scalars(
        select(SubmissionRow).where(
            SubmissionRow.model == model,
            SubmissionRow.revision == revision,
            SubmissionRow.precision == precision,
            SubmissionRow.status != "failed",
        )
    ).first()


def _duplicate(
    existing: SubmissionRow | None, *, model: str, revision: str, precision: str
) -> Duplicate:
    what = f"{model} (revision {revision}, precision {precision})"
    if existing is None:
        return Duplicate(f"{what} was submitted at the same moment by someone else")
    return Duplicate(
        f"{what} is already submitted: submission {existing.id} is {existing.status}",
        existing_id=existing.id,
    )


class Submissions:
    """The ``submissions`` table."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def submit(
        self,
        model: str,
        *,
        by: Actor,
        revision: str | None = None,
        precision: str | None = None,
        model_type: str | None = None,
        base_model: str | None = None,
        weight_type: str | None = None,
    ) -> Submission:
        """Queue ``model`` as pending; raises Duplicate when the same (model, revision,
        precision) is pending, running or finished (a failed one may be submitted again).
        ``revision`` defaults to ``main`` and ``precision`` to ``float16``."""
        model = checked_text(model, "model", max_length=300)
        revision = optional_text(revision, "revision", max_length=100) or "main"
        precision = optional_text(precision, "precision", max_length=32) or "float16"
        try:
            with self._core.write(by) as tx:
                existing = _active(tx.session, model=model, revision=revision, precision=precision)
                if existing is not None:
                    raise _duplicate(existing, model=model, revision=revision, precision=precision)
                row = SubmissionRow(
                    model=model,
                    revision=revision,
                    precision=precision,
                    model_type=optional_text(model_type, "model type", max_length=64),
                    base_model=optional_text(base_model, "base model", max_length=300),
                    weight_type=optional_text(weight_type, "weight type", max_length=32),
                    status="pending",
                    submitter=by.identity,
                    created_at=tx.now,
                    updated_at=tx.now,
                )
                tx.session.add(row)
                tx.session.flush()
                tx.record(
                    "submission.create",
                    f"submission:{row.id}",
                    model=model,
                    revision=revision,
                    precision=precision,
                )
        except IntegrityError:  # the partial unique index caught a concurrent twin
            with self._core.read() as session:
                existing = _active(session, model=model, revision=revision, precision=precision)
            raise _duplicate(
                existing, model=model, revision=revision, precision=precision
            ) from None
        return _record(row)

    def get(self, submission_id: int) -> Submission:
        with self._core.read() as session:
            row = session.get(SubmissionRow, submission_id)
            if row is None:
                raise NotFound(f"no submission {submission_id}")
            return _record(row)

    def list(
        self, *, status: Status | None = None, submitter: str | None = None
    ) -> list[Submission]:
        """Submissions, oldest first, optionally of one status or submitter."""
        query = select(SubmissionRow).order_by(SubmissionRow.created_at, SubmissionRow.id)
        if status is not None:
            query = query.where(SubmissionRow.status == _status(status))
        if submitter is not None:
            query = query.where(SubmissionRow.submitter == submitter)
        with self._core.read() as session:
            return [_record(row) for row in session.scalars(query)]

    def claim(self, *, by: Actor) -> Submission | None:
        """Atomically hand the next pending submission to evaluator ``by`` (now running):
        the one with the most up-votes, then the oldest.  None when nothing is pending.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take different rows
        without waiting; SQLite: the transaction holds the write lock from BEGIN IMMEDIATE.
        """
        up_votes = (
            select(func.count(VoteRow.id))
            .where(VoteRow.model == SubmissionRow.model, VoteRow.direction == "up")
            .correlate(SubmissionRow)
            .scalar_subquery()
        )
        query = (
            select(SubmissionRow)
            .where(SubmissionRow.status == "pending")
            .order_by(up_votes.desc(), SubmissionRow.created_at, SubmissionRow.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=SubmissionRow)
        )
        with self._core.write(by) as tx:
            row = tx.session.scalars(query).first()
            if row is None:
                return None
            row.status = "running"
            row.claimed_by = by.identity
            row.updated_at = tx.now
            tx.record("submission.claim", f"submission:{row.id}", model=row.model)
        return _record(row)

    def set_status(
        self,
        submission_id: int,
        status: Status,
        *,
        by: Actor,
        dataset_version: str | None = None,
        reason: str | None = None,
        claimed_by: str | None = None,
    ) -> Submission:
        """Move a submission along: running -> finished (``dataset_version`` holding its
        results) or failed (``reason``) or back to pending; pending -> failed (cancelled);
        failed -> pending (retried).  With ``claimed_by``, only if that evaluator holds it."""
        target = _status(status)
        version = optional_text(dataset_version, "dataset version", max_length=200)
        why = optional_text(reason, "reason", max_length=10_000)
        if target == "finished" and version is None:
            raise InvalidValue("a finished submission needs the dataset version of its results")
        if target == "failed" and why is None:
            raise InvalidValue("a failed submission needs a reason")
        try:
            with self._core.write(by) as tx:
                row = tx.session.get(SubmissionRow, submission_id, with_for_update=True)
                if row is None:
                    raise NotFound(f"no submission {submission_id}")
                current = cast(Status, row.status)
                if target not in TRANSITIONS[current]:
                    hint = " (evaluators claim pending work)" if target == "running" else ""
                    raise InvalidTransition(
                        f"submission {submission_id} is {current}; it cannot become {target}{hint}"
                    )
                if claimed_by is not None and row.claimed_by != claimed_by:
                    raise InvalidTransition(
                        f"submission {submission_id} is held by {row.claimed_by or 'nobody'}, "
                        f"not {claimed_by}"
                    )
                row.status = target
                row.updated_at = tx.now
                row.dataset_version = version if target == "finished" else None
                row.reason = why if target == "failed" else None
                if target == "pending":
                    row.claimed_by = None
                tx.session.flush()
                tx.record(
                    f"submission.{target}",
                    f"submission:{submission_id}",
                    previous=current,
                    dataset_version=row.dataset_version,
                    reason=row.reason,
                )
        except IntegrityError:  # retrying a failed one whose twin was submitted meanwhile
            raise Duplicate(
                f"submission {submission_id} cannot be retried: the same model, revision and "
                "precision was submitted again"
            ) from None
        return _record(row)


def _status(value: str) -> Status:
    if value not in STATUSES:
        raise InvalidValue(f"unknown status {value!r}; one of {', '.join(STATUSES)}")
    return value  # narrowed by the membership test
