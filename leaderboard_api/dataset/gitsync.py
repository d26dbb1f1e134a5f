"""A replica's git dataset brought up to its upstream before a reload check (fast-forward only)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from leaderboard_api.dataset.gitops import (
    GitOptions,
    WriteFailed,
    dataset_lock,
    git,
    in_work_tree,
    upstream,
)

__all__ = [
    "FAILURE_FILE",
    "FETCH_TIMEOUT",
    "LOCK_WAIT",
    "Outcome",
    "Synced",
    "fast_forward",
    "pull",
]

log = logging.getLogger(__name__)

#: Seconds a fetch (or any git call) may take before the check goes on without it.
FETCH_TIMEOUT: Final = 30.0
#: Seconds to wait for an ingest of the same clone (it holds the dataset lock) to finish.
LOCK_WAIT: Final = 30.0
#: In the git directory: the last fetch failure, so that one failing remote is logged once.
FAILURE_FILE: Final = "leaderboard-api-fetch-failure"

Outcome = Literal["no-upstream", "current", "ahead", "forwarded", "diverged", "failed"]


@dataclass(frozen=True, slots=True)
class Synced:
    """What a fast-forward check did, and the local HEAD before and after it."""

    outcome: Outcome
    before: str | None = None
    after: str | None = None
    detail: str = ""


def _is_ancestor(root: Path, older: str, newer: str, opts: GitOptions) -> bool:
    code, out = git(root, "merge-base", "--is-ancestor", older, newer, opts=opts, check=False)
    if code not in (0, 1):
        raise WriteFailed(f"git merge-base failed: {out.splitlines()[-1:] or code}")
    return code == 0


def _note_failure(git_dir: Path, root: Path, detail: str) -> None:
    """Log a fetch failure at WARNING once, while it stays the same failure."""
    marker = git_dir / FAILURE_FILE
    try:
        known = marker.read_text() if marker.is_file() else None
    except OSError:
        known = None
    if known == detail:
        log.debug("fetching %s still fails: %s", root, detail)
        return
    log.warning("cannot fetch the upstream of %s (serving its local HEAD): %s", root, detail)
    # Not writable: the warning comes again on the next check, better than never.
    with contextlib.suppress(OSError):
        marker.write_text(detail)


def _note_success(git_dir: Path, root: Path) -> None:
    marker = git_dir / FAILURE_FILE
    if marker.is_file():
        log.info("fetching the upstream of %s works again", root)
        marker.unlink(missing_ok=True)


def _sync(root: Path, remote: str, ref: str, git_dir: Path, opts: GitOptions) -> Synced:
    before = git(root, "rev-parse", "HEAD", opts=opts)[1]
    try:
        code, out = git(root, "fetch", "-q", "--no-tags", remote, ref, opts=opts, check=False)
    except WriteFailed as exc:  # git could not run, or the remote took too long
        code, out = 1, str(exc)
    if code != 0:
        detail = out.splitlines()[-1] if out else f"git fetch exited with {code}"
        _note_failure(git_dir, root, detail)
        return Synced("failed", before, before, detail)
    _note_success(git_dir, root)
    target = git(root, "rev-parse", "FETCH_HEAD^{commit}", opts=opts)[1]
    if target == before:
        return Synced("current", before, before)
    if _is_ancestor(root, target, before, opts):
        return Synced("ahead", before, before, "local commits not on the remote yet")
    if not _is_ancestor(root, before, target, opts):
        detail = f"local {before[:12]} and {remote} {target[:12]} have diverged; not moved"
        log.warning("%s: %s", root, detail)
        return Synced("diverged", before, before, detail)
    # --ff-only never makes a merge commit, and git refuses (keeping everything) when an
    # uncommitted change would be overwritten.
    code, out = git(root, "merge", "-q", "--ff-only", target, opts=opts, check=False)
    if code != 0:
        detail = out.splitlines()[-1] if out else f"git merge exited with {code}"
        log.warning("cannot fast-forward %s to %s: %s", root, target[:12], detail)
        return Synced("failed", before, before, detail)
    log.info("fast-forwarded %s from %s to %s (%s)", root, before[:12], target[:12], remote)
    return Synced("forwarded", before, target)


def fast_forward(
    root: Path, *, timeout: float = FETCH_TIMEOUT, lock_wait: float = LOCK_WAIT
) -> Synced:
    """Fetch the upstream of the branch checked out at ``root`` and fast-forward to it.

    Blocking.  Does nothing outside a git work tree or without an upstream (``no-upstream``);
    never merges or rebases: local commits the remote lacks leave the branch as it is
    (``ahead``, or ``diverged`` when both moved).  Holds the writer's dataset lock, so it
    never races an ingest in the same clone.  Never raises for git or the remote: a failure
    is logged (once while it stays the same) and reported as ``failed``, HEAD unchanged.
    """
    root = root.resolve()
    if not root.is_dir() or not in_work_tree(root):
        return Synced("no-upstream")
    opts = GitOptions(timeout=timeout)
    try:
        target = upstream(root, opts)
        if target is None:
            return Synced("no-upstream")
        git_dir = Path(git(root, "rev-parse", "--absolute-git-dir", opts=opts)[1])
        with dataset_lock(root, in_git=True, timeout=lock_wait, opts=opts):
            return _sync(root, *target, git_dir, opts)
    except (WriteFailed, OSError) as exc:
        log.warning("cannot bring %s up to its upstream (serving its local HEAD): %s", root, exc)
        return Synced("failed", detail=str(exc))


def pull(spec: str | None, *, timeout: float = FETCH_TIMEOUT) -> Synced:
    """:func:`fast_forward` for the ``data`` setting: a no-op for the embedded sample and hub
    sources, which are not clones."""
    if spec is None or spec in ("", "sample") or spec.startswith("hf://"):
        return Synced("no-upstream")
    return fast_forward(Path(spec).expanduser(), timeout=timeout)
