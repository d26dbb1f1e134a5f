"""Where a dataset comes from: a local directory or a Hugging Face dataset, and its snapshot id."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from leaderboard_api.dataset.contract import (
    BENCHMARKS_FILE,
    DATASET_FILE,
    MENU_FILE,
    MODELS_FILES,
    RESULTS_DIR,
    STATS_DIR,
    TASKS_FILE,
    DatasetError,
)

HF_PREFIX = "hf://datasets/"
_HF_RE = re.compile(r"^hf://datasets/(?P<repo>[^/@\s]+/[^/@\s]+)(?:@(?P<rev>[^\s]+))?$")
_CATALOG_FILES = (*MODELS_FILES, TASKS_FILE, BENCHMARKS_FILE, MENU_FILE, DATASET_FILE)


@dataclass(frozen=True, slots=True)
class ResolvedSource:
    """A dataset version on local disk, with the identity of that version."""

    #: What the user asked for (a path, ``hf://datasets/...``, or ``sample``).
    spec: str
    #: The local directory holding ``results/`` and the catalogs.
    path: Path
    #: The snapshot id: a commit SHA, or ``sha256-<hex>`` for plain directories.
    snapshot_id: str
    #: When this version was made: the commit time, else the newest file's mtime.
    updated_at: datetime
    kind: str  # "directory" | "git" | "hub" | "sample"


def sample_path() -> Path:
    """The embedded sample dataset shipped inside the package."""
    return Path(str(resources.files("leaderboard_api") / "sample"))


def dataset_files(path: Path) -> list[Path]:
    """The files that make up a dataset directory, sorted by relative path."""
    found: list[Path] = []
    results = path / RESULTS_DIR
    if results.is_dir():
        found.extend(p for p in results.rglob("*.parquet") if p.is_file())
    stats = path / STATS_DIR
    if stats.is_dir():
        found.extend(p for p in stats.glob("*.json") if p.is_file())
    found.extend(path / name for name in _CATALOG_FILES if (path / name).is_file())
    return sorted(found, key=lambda p: p.relative_to(path).as_posix())


def content_hash(path: Path) -> str:
    """Hash sorted relative paths and bytes: the same files give the same id on any machine."""
    digest = hashlib.sha256()
    for file in dataset_files(path):
        rel = file.relative_to(path).as_posix().encode()
        digest.update(len(rel).to_bytes(8, "big"))
        digest.update(rel)
        digest.update(file.stat().st_size.to_bytes(8, "big"))
        with file.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return "sha256-" + digest.hexdigest()[:40]


def _git(path: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(path), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_identity(path: Path) -> tuple[str, datetime] | None:
    """The HEAD commit and its time when the dataset's files are committed and clean."""
    top = _git(path, "rev-parse", "--show-toplevel")
    if not top:
        return None
    files = dataset_files(path)
    if not files:
        return None
    rels = [str(f.relative_to(path)) for f in files]
    tracked = _git(path, "ls-files", "--error-unmatch", "--", *rels)
    if tracked is None:
        return None
    dirty = _git(path, "status", "--porcelain", "--untracked-files=all", "--", ".")
    if dirty is None or dirty:
        return None
    head = _git(path, "log", "-1", "--format=%H %ct", "--", ".")
    if not head:
        return None
    sha, ts = head.split()
    return sha, datetime.fromtimestamp(int(ts), tz=UTC)


def newest_mtime(path: Path) -> datetime:
    files = dataset_files(path)
    stamp = max((f.stat().st_mtime for f in files), default=0.0)
    return datetime.fromtimestamp(int(stamp), tz=UTC)


def resolve_directory(path: Path, *, spec: str, kind: str = "directory") -> ResolvedSource:
    if not path.is_dir():
        msg = f"dataset directory {path} does not exist"
        raise DatasetError(msg, hint="pass --data PATH to a directory with a results/ folder")
    git = git_identity(path) if kind == "directory" else None
    if git is not None:
        sha, when = git
        return ResolvedSource(spec=spec, path=path, snapshot_id=sha, updated_at=when, kind="git")
    return ResolvedSource(
        spec=spec,
        path=path,
        snapshot_id=content_hash(path),
        updated_at=newest_mtime(path),
        kind=kind,
    )


def parse_hub_spec(spec: str) -> tuple[str, str | None]:
    match = _HF_RE.match(spec)
    if match is None:
        msg = f"not a Hugging Face dataset address: {spec!r}"
        raise DatasetError(
            msg, hint="use hf://datasets/ORG/NAME or hf://datasets/ORG/NAME@REVISION"
        )
    return match.group("repo"), match.group("rev")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_hub(spec: str, *, cache_dir: Path | None = None) -> ResolvedSource:
    """Download (or, with ``HF_HUB_OFFLINE=1``, find in the cache) one dataset revision.

    The snapshot id is the commit SHA: the name of the revision folder that
    ``huggingface_hub`` keeps under ``snapshots/``.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    repo, revision = parse_hub_spec(spec)
    try:
        local = snapshot_download(
            repo_id=repo,
            repo_type="dataset",
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir else None,
            token=os.environ.get("HF_TOKEN") or None,
            # huggingface_hub reads HF_HUB_OFFLINE once, at import; honour it as it is now.
            local_files_only=_hub_offline(),
        )
    except HFValidationError as exc:
        msg = f"{spec}: not a valid Hugging Face repository name"
        raise DatasetError(msg, hint=str(exc).splitlines()[0]) from exc
    except LocalEntryNotFoundError as exc:
        msg = f"{spec}: not in the local Hugging Face cache and the hub is unreachable or offline"
        raise DatasetError(msg, hint=str(exc).splitlines()[0]) from exc
    except HfHubHTTPError as exc:
        msg = f"{spec}: the hub refused the download"
        raise DatasetError(msg, hint=str(exc).splitlines()[0]) from exc
    path = Path(local)
    sha = path.name
    return ResolvedSource(
        spec=spec, path=path, snapshot_id=sha, updated_at=newest_mtime(path), kind="hub"
    )


def resolve(spec: str | None, *, hf_cache_dir: Path | None = None) -> ResolvedSource:
    """Turn ``--data`` into a local directory and a snapshot id."""
    if spec is None or spec in ("", "sample"):
        return resolve_directory(sample_path(), spec="sample", kind="sample")
    if spec.startswith("hf://"):
        return resolve_hub(spec, cache_dir=hf_cache_dir)
    return resolve_directory(Path(spec).expanduser().resolve(), spec=spec)
