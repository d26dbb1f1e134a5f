"""Putting a dataset write in place: files that can be taken back, a git commit and push, a lock.

The writer (:mod:`leaderboard_api.dataset.writer`) decides what to write; this module makes
it land or leaves nothing behind.  Every file is written to a temporary file in its folder,
fsynced and renamed (``put_files``), and remembered so the write can be put back.  In a git
work tree :func:`commit_and_push` commits only the written paths and, when the branch has an
upstream, pushes; a rejected push takes the commit back, fetches, fast-forwards (or rebases
local commits) and asks the writer to write again on top.  Writers of one dataset, and a
replica's fast-forward (:mod:`leaderboard_api.dataset.gitsync`), are serialized by an
``flock`` on its folder (``dataset_lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Applied",
    "Committed",
    "GitOptions",
    "NotWritable",
    "Undo",
    "WriteFailed",
    "commit_and_push",
    "dataset_lock",
    "git",
    "head",
    "in_work_tree",
    "put_files",
    "require_committed",
    "upstream",
]


class NotWritable(Exception):
    """The dataset cannot take writes (the embedded sample, a hub source, a read-only
    directory, uncommitted catalog edits in a git work tree)."""


class WriteFailed(Exception):
    """Writing, committing or pushing failed; every file was put back as it was."""


@dataclass(frozen=True, slots=True)
class GitOptions:
    """How a write in a git work tree is committed and pushed."""

    author_name: str = "leaderboard-api"
    author_email: str = "leaderboard-api@localhost"
    #: Times a rejected push is retried (after fetch and fast-forward).
    push_retries: int = 3
    timeout: float = 120.0


# --- files ------------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes) -> Path:
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with temp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return temp


def _replace(path: Path, data: bytes) -> None:
    temp = _write_temp(path, data)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@dataclass(slots=True)
class Undo:
    """How to put the files a write touched back as they were."""

    root: Path
    created: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    previous: dict[str, bytes | None] = field(default_factory=dict)

    def restore(self) -> None:
        for path in self.created:
            path.unlink(missing_ok=True)
        for name, old in self.previous.items():
            if old is None:
                (self.root / name).unlink(missing_ok=True)
            else:
                _replace(self.root / name, old)
        for folder in reversed(self.folders):
            with contextlib.suppress(OSError):
                folder.rmdir()


def put_files(
    root: Path,
    replaced: Mapping[str, bytes],
    *,
    new: tuple[str, bytes] | None = None,
    check: Callable[[Path, str], object] | None = None,
) -> Undo:
    """Write ``replaced`` (relative name -> content) over what is there, then the ``new``
    file (relative name, bytes; its folders made), each atomically; ``check`` reads the new
    file's temporary copy before it is renamed into place.  On any failure everything is
    put back; else the returned Undo can put it back later."""
    undo = Undo(root)
    try:
        for name, content in replaced.items():
            path = root / name
            undo.previous[name] = path.read_bytes() if path.is_file() else None
            _replace(path, content)
        if new is not None:
            rel, data = new
            target = root / rel
            missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            undo.folders.extend(reversed(missing))
            temp = _write_temp(target, data)
            try:
                if check is not None:
                    check(temp, rel)
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)
            undo.created.append(target)
            _fsync_dir(target.parent)
    except BaseException:
        undo.restore()
        raise
    return undo


# --- git --------------------------------------------------------------------------------------


def git(
    root: Path,
    *args: str,
    opts: GitOptions,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """(exit code, stdout, or the whole output on failure) of ``git -C root ARGS``;
    WriteFailed when git cannot run, times out, or (with ``check``) fails."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=opts.timeout,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        msg = f"git {args[0]} failed: {type(exc).__name__}: {exc}"
        raise WriteFailed(msg) from None
    out = (done.stdout + done.stderr).strip()
    if check and done.returncode != 0:
        msg = f"git {args[0]} failed: {out.splitlines()[-1] if out else done.returncode}"
        raise WriteFailed(msg)
    return done.returncode, done.stdout.strip() if done.returncode == 0 else out


def in_work_tree(root: Path) -> bool:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == "true"


def upstream(root: Path, opts: GitOptions) -> tuple[str, str] | None:
    """(remote, branch ref) the current branch pushes to, None without an upstream."""
    code, branch = git(root, "symbolic-ref", "-q", "--short", "HEAD", opts=opts, check=False)
    if code != 0:
        return None
    code, remote = git(root, "config", "--get", f"branch.{branch}.remote", opts=opts, check=False)
    code2, merge = git(root, "config", "--get", f"branch.{branch}.merge", opts=opts, check=False)
    if code or code2 or remote == ".":
        return None
    return remote, merge


def head(root: Path, opts: GitOptions) -> str:
    code, sha = git(root, "rev-parse", "-q", "--verify", "HEAD", opts=opts, check=False)
    if code != 0:
        raise NotWritable(f"the git repository of {root} has no commit yet")
    return sha


def require_committed(root: Path, names: Sequence[str], opts: GitOptions) -> None:
    """NotWritable when any of ``names`` has uncommitted changes."""
    if not names:
        return
    _, dirty = git(root, "status", "--porcelain", "--", *names, opts=opts)
    if dirty:
        msg = f"{', '.join(names)} has uncommitted changes in {root}; commit or discard them first"
        raise NotWritable(msg)


@dataclass(frozen=True, slots=True)
class Applied:
    """A write put in place: the paths to commit, the message, how to take the files back."""

    paths: Sequence[str]
    message: str
    restore: Callable[[], None]


@dataclass(frozen=True, slots=True)
class Committed:
    commit: str
    pushed: bool


def _take_back(root: Path, base: str, applied: Applied, opts: GitOptions) -> None:
    """The branch back at ``base``, the write's paths unstaged, its files as they were."""
    git(root, "reset", "-q", "--soft", base, opts=opts, check=False)
    git(root, "reset", "-q", base, "--", *applied.paths, opts=opts, check=False)
    applied.restore()


def _commit(root: Path, applied: Applied, opts: GitOptions) -> str:
    identity = {
        "GIT_AUTHOR_NAME": opts.author_name,
        "GIT_AUTHOR_EMAIL": opts.author_email,
        "GIT_COMMITTER_NAME": opts.author_name,
        "GIT_COMMITTER_EMAIL": opts.author_email,
    }
    paths = list(applied.paths)
    git(root, "add", "--", *paths, opts=opts)
    git(root, "commit", "-q", "-m", applied.message, "--", *paths, opts=opts, env=identity)
    return git(root, "rev-parse", "HEAD", opts=opts)[1]


def _catch_up(root: Path, remote: str, ref: str, opts: GitOptions) -> None:
    """Bring the branch to what ``remote`` holds now (fast-forward, else rebase)."""
    git(root, "fetch", "-q", remote, ref, opts=opts)
    code, _ = git(root, "merge", "-q", "--ff-only", "FETCH_HEAD", opts=opts, check=False)
    if code == 0:
        return
    code, out = git(root, "rebase", "-q", "FETCH_HEAD", opts=opts, check=False)
    if code != 0:
        git(root, "rebase", "--abort", opts=opts, check=False)
        raise WriteFailed(f"cannot bring the branch up to {remote}: {out.splitlines()[-1:]}")


def commit_and_push(
    root: Path, write: Callable[[], Applied | None], *, opts: GitOptions
) -> Committed | None:
    """Call ``write`` (it puts its files in place, or returns None when there is nothing
    to write: then so does this), commit what it wrote, and push when the branch has an
    upstream.  A rejected push takes the commit back, catches up with the remote and calls
    ``write`` again on top, up to ``opts.push_retries`` times; a failure puts everything
    back and raises WriteFailed (or what ``write`` raised)."""
    target = upstream(root, opts)
    for attempt in range(opts.push_retries + 1):
        applied = write()
        if applied is None:
            return None
        try:
            base = head(root, opts)
        except BaseException:
            applied.restore()
            raise
        try:
            commit = _commit(root, applied, opts)
        except BaseException:
            _take_back(root, base, applied, opts)
            raise
        if target is None:
            return Committed(commit, pushed=False)
        remote, ref = target
        try:
            code, out = git(root, "push", "-q", remote, f"HEAD:{ref}", opts=opts, check=False)
        except WriteFailed as exc:  # git could not run or timed out
            code, out = 1, str(exc)
        except BaseException:
            _take_back(root, base, applied, opts)
            raise
        if code == 0:
            return Committed(commit, pushed=True)
        # Rejected (someone pushed first) or the remote failed: take the commit back, catch
        # up with the remote, and write again on top of what it holds now.
        _take_back(root, base, applied, opts)
        if attempt == opts.push_retries:
            last = out.splitlines()[-1] if out else "no output"
            msg = f"git push to {remote} failed {attempt + 1} time(s); nothing written: {last}"
            raise WriteFailed(msg)
        _catch_up(root, remote, ref, opts)
    raise AssertionError("unreachable")  # pragma: no cover


# --- the lock ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(folder: Path, *, timeout: float) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = f"another writer has held {folder} for over {timeout:.0f}s"
                    raise WriteFailed(msg) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def dataset_lock(
    root: Path, *, in_git: bool, timeout: float, opts: GitOptions | None = None
) -> Iterator[None]:
    """An exclusive ``flock`` on the dataset's git directory (one lock however the dataset
    is named; ``in_git``: ``root`` is in a work tree), else on ``root`` itself.  No lock file
    is left in the dataset, and every caller opens its own descriptor, so threads of one
    process wait for each other too.  WriteFailed after ``timeout`` seconds of waiting."""
    folder = root
    if in_git:
        folder = Path(git(root, "rev-parse", "--absolute-git-dir", opts=opts or GitOptions())[1])
    with _locked(folder, timeout=timeout):
        yield
