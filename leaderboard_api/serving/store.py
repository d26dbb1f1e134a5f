"""A bounded on-disk payload store: one atomic file per content key, shared by processes.

Built payloads outlive the process here, so a restart serves them again without
rebuilding.  Entries are keyed by a caller's content key (route, parameters and the
fingerprint of what the payload reads), so the same key always names the same bytes.

Layout (under ``root``)::

    <namespace>.p<format>/          one store: its namespace (contract version) and the
                                    payload format version, so a bump reads nothing old
      STORE                         marker; its mtime says when a process last used it
      objects/<nn>/<name>           one serialized payload; <name> = key_name(key),
                                    <nn> its first two digits (256 directories)
      manifests/<hash>.json         snapshot manifests: {"name", "entries": {path: key}}
      .../.tmp-*                    files being written, next to their destination

Writes
    A payload is written to a temporary file in its destination directory and renamed
    over it (``os.replace``), so a reader sees the whole entry or none, in every process.
    No ``fsync``: the store is a cache, and the serialized form carries a CRC-32 per
    body and an exact length, so a file torn by a power loss reads as corrupt and is
    dropped like a miss; an ``fsync`` per entry would cost milliseconds each on a cold
    warmup of thousands of payloads.  ``fsync=True`` is there for disks that need it.
    Puts are idempotent: an existing entry is left alone.  Two processes putting one key
    at once both rename complete files; either one wins, and both hold the bytes built
    for that key.  Temporary files left by a crash are ignored and removed once stale.

Bound and eviction
    The files of one store (all processes together) stay within ``max_bytes``: each
    process counts its own writes on top of a scan of the directory, and rescans (tens of
    milliseconds for 10,000 entries) when its count passes the bound or half the headroom
    the last scan saw, so other processes' writes are seen too.  Over the bound, entries
    are removed down to 90 % of it, least recently used first: a file's mtime is its last
    use, set on write and refreshed by ``get`` at most once per ``touch_interval``.
    Entries named by the newest manifest go only when nothing else is left.

Failure
    Any ``OSError`` (disk full, read-only directory, permissions) makes the operation a
    no-op, a miss or a ``False``, with a rate-limited warning: the service keeps serving
    from memory.  A read-only store that already holds entries still serves them.

Concurrency
    Every method may be called from any thread.  File operations are single system
    calls or renames; the in-memory byte count is guarded by a lock; one thread at a time
    rescans and evicts, and it does so inside the ``put`` that tipped the count (call
    ``put`` from a worker thread).  ``get`` reads the file synchronously: microseconds
    for a small payload in the page cache, milliseconds for megabytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from leaderboard_api.serving.payload import FORMAT_VERSION, CorruptPayload, Payload

__all__ = ["PayloadStore", "StoreStats"]

_log = logging.getLogger(__name__)

_NAME: Final = re.compile(r"[0-9a-f]{32}")
_NAMESPACE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TMP_PREFIX: Final = ".tmp-"
#: A temporary file this old belongs to no live writer (writes take milliseconds).
_STALE_TMP_SECONDS: Final = 600.0
_MARKER: Final = "STORE"
#: Eviction goes down to this fraction of the bound, so it does not run on every put.
_LOW_WATERMARK: Final = 0.9
_MANIFEST_FORMAT: Final = 1
#: One warning per kind of failure per this many seconds; the rest are counted.
_COMPLAINT_INTERVAL: Final = 60.0


@dataclass(frozen=True, slots=True)
class StoreStats:
    """This process's view of the store, and its counters since the store was opened."""

    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    puts: int
    #: ``put`` calls for a key already stored.
    present: int
    evictions: int
    corrupt: int
    #: Operations that failed with an ``OSError`` and degraded.
    errors: int
    scans: int


class PayloadStore:
    """Serialized payloads in files under ``root``, bounded to ``max_bytes`` in all.

    Parameters
    ----------
    root
        The directory holding stores (e.g. ``<cache dir>/payloads``); created if absent.
    max_bytes
        Bound on the bytes of this store's files, all processes together.
    namespace
        What makes old entries unreadable, e.g. ``"c3"`` for contract version 3; letters,
        digits, ``.``, ``_``, ``-``.
    keep_manifests
        How many manifests to keep, newest first.
    touch_interval
        Seconds between refreshes of an entry's mtime by ``get`` (the LRU's resolution).
    verify
        Check the bodies' CRC-32s on every ``get`` (about 0.5 ms per MB).
    fsync
        ``fsync`` every file before renaming it (see the module docstring).

    Raises
    ------
    ValueError
        If ``namespace`` is not filesystem-safe, or ``max_bytes`` or ``keep_manifests``
        is not positive.  Filesystem failures never raise.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        namespace: str,
        keep_manifests: int = 4,
        touch_interval: float = 300.0,
        verify: bool = True,
        fsync: bool = False,
    ) -> None:
        if not _NAMESPACE.fullmatch(namespace):
            msg = f"namespace {namespace!r}: use 1-64 letters, digits, '.', '_' or '-'"
            raise ValueError(msg)
        if max_bytes <= 0 or keep_manifests <= 0:
            msg = f"max_bytes ({max_bytes}) and keep_manifests ({keep_manifests}) must be > 0"
            raise ValueError(msg)
        self._root = Path(root)
        self._dir = self._root / f"{namespace}.p{FORMAT_VERSION}"
        self._objects = self._dir / "objects"
        self._objects_text = os.fspath(self._objects)
        self._manifests = self._dir / "manifests"
        self._max_bytes = max_bytes
        self._keep_manifests = keep_manifests
        self._touch_ns = int(touch_interval * 1e9)
        self._verify = verify
        self._fsync = fsync
        self._lock = threading.Lock()
        self._evicting = threading.Lock()
        self._complaints = _Complaints()
        # Guarded by _lock: sizes of the entries this process knows, their sum, bytes
        # written since the last scan and how many may be written before the next.
        self._sizes: dict[str, int] = {}
        self._total = 0
        self._since_scan = 0
        self._rescan_after = 0
        self._written = 0
        self._counts = dict.fromkeys(
            ("hits", "misses", "puts", "present", "evictions", "corrupt", "errors", "scans"), 0
        )
        # (path, mtime_ns, size) of the newest manifest and its entry names.
        self._spared: tuple[tuple[str, int, int], frozenset[str]] | None = None
        try:
            self._objects.mkdir(parents=True, exist_ok=True)
            self._manifests.mkdir(exist_ok=True)
        except OSError as exc:
            self._failed("open", "payload store %s cannot be created: %s", self._dir, exc)
        self._mark()
        with self._evicting:
            self._rescan()

    # -- keys ---------------------------------------------------------------------------

    @staticmethod
    def key_name(key: str) -> str:
        """The file name of ``key``: 32 hex digits of its BLAKE2b hash."""
        return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    @property
    def directory(self) -> Path:
        """This store's directory (namespace and format version included)."""
        return self._dir

    def _path(self, name: str) -> str:
        # A string, not a Path: joining Paths would cost more than the system call.
        return f"{self._objects_text}/{name[:2]}/{name}"

    # -- payloads -----------------------------------------------------------------------

    def contains(self, key: str) -> bool:
        """Whether ``key`` has an entry (in any process); does not check its bytes."""
        try:
            os.stat(self._path(self.key_name(key)))
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._failed("read", "payload store %s cannot be read: %s", self._dir, exc)
            return False
        return True

    def get(self, key: str) -> Payload | None:
        """The payload stored under ``key``, or None when missing, unreadable or corrupt.

        A corrupt entry is deleted (and logged).  Refreshes the entry's mtime when it is
        older than ``touch_interval``.
        """
        name = self.key_name(key)
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._count("misses")
            return None
        except OSError as exc:
            self._failed("read", "payload store %s cannot be read: %s", self._dir, exc)
            return None
        try:
            status = os.fstat(fd)
            payload = Payload.read(
                lambda at, n: _pread(fd, n, at), status.st_size, verify=self._verify
            )
            if time.time_ns() - status.st_mtime_ns > self._touch_ns:
                _touch(fd)
        except CorruptPayload as exc:
            self._drop_corrupt(path, status.st_ino, exc)
            return None
        except OSError as exc:
            self._failed("read", "payload store %s cannot be read: %s", self._dir, exc)
            return None
        finally:
            os.close(fd)
        with self._lock:
            self._counts["hits"] += 1
            if name not in self._sizes:
                self._sizes[name] = status.st_size
                self._total += status.st_size
        return payload

    def get_many(self, keys: Iterable[str]) -> dict[str, Payload]:
        """The payloads stored under ``keys`` (missing ones left out)."""
        found: dict[str, Payload] = {}
        for key in keys:
            payload = self.get(key)
            if payload is not None:
                found[key] = payload
        return found

    def put(self, key: str, payload: Payload) -> bool:
        """Store ``payload`` under ``key`` unless an entry exists; True when this call wrote it.

        May run an eviction pass (tens of milliseconds): call it from a worker thread.
        False also when the payload alone exceeds ``max_bytes`` or the write failed.
        """
        name = self.key_name(key)
        path = self._path(name)
        try:
            present = os.stat(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._failed("write", "payload store %s cannot be written: %s", self._dir, exc)
            return False
        else:
            with self._lock:
                self._counts["present"] += 1
                if name not in self._sizes:
                    self._sizes[name] = present.st_size
                    self._total += present.st_size
            return False
        parts = payload.to_parts()
        size = sum(map(len, parts))
        if size > self._max_bytes:
            _log.debug("payload %s of %d bytes exceeds the store's bound; not stored", name, size)
            return False
        if not self._write(path, parts, what="write"):
            return False
        with self._lock:
            self._counts["puts"] += 1
            previous = self._sizes.get(name, 0)
            self._sizes[name] = size
            self._total += size - previous
            self._since_scan += size
            self._written += size
            due = self._total > self._max_bytes or self._since_scan > self._rescan_after
        if due and self._evicting.acquire(blocking=False):
            try:
                self._rescan()
            finally:
                self._evicting.release()
        return True

    def put_many(self, items: Iterable[tuple[str, Payload]]) -> int:
        """:meth:`put` each ``(key, payload)``; returns how many were written."""
        return sum(self.put(key, payload) for key, payload in items)

    def discard(self, key: str) -> bool:
        """Remove the entry of ``key``; True when there was one."""
        name = self.key_name(key)
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            removed = False
        except OSError as exc:
            self._failed("write", "payload store %s cannot be written: %s", self._dir, exc)
            return False
        else:
            removed = True
        with self._lock:
            self._total -= self._sizes.pop(name, 0)
        return removed

    # -- manifests ----------------------------------------------------------------------

    def write_manifest(self, name: str, entries: Mapping[str, str]) -> bool:
        """Atomically write manifest ``name`` (e.g. a snapshot id) mapping paths to keys.

        It becomes the newest manifest (rewriting one makes it newest again); only the
        newest ``keep_manifests`` are kept.  True when written.
        """
        document = {"manifest": _MANIFEST_FORMAT, "name": name, "entries": dict(entries)}
        path = self._manifests / f"{self.key_name(name)}.json"
        if not self._write(path, [orjson.dumps(document)], what="manifest"):
            return False
        self._mark()
        for _, stale in self._manifest_files()[self._keep_manifests :]:
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._failed("manifest", "payload store %s: manifest not removed: %s", stale, exc)
        return True

    def read_manifest(self, name: str) -> dict[str, str] | None:
        """The entries of manifest ``name``, or None when missing, unreadable or corrupt."""
        found = self._load_manifest(self._manifests / f"{self.key_name(name)}.json")
        if found is None or found[0] != name:
            return None
        return found[1]

    def manifest_names(self) -> list[str]:
        """The names of the kept manifests, newest first."""
        names = []
        for _, path in self._manifest_files():
            found = self._load_manifest(path)
            if found is not None:
                names.append(found[0])
        return names

    def latest_manifest(self) -> tuple[str, dict[str, str]] | None:
        """The newest readable manifest as ``(name, entries)``, or None."""
        for _, path in self._manifest_files():
            found = self._load_manifest(path)
            if found is not None:
                return found
        return None

    def _manifest_files(self) -> list[tuple[int, str]]:
        """``(mtime_ns, path)`` of every manifest, newest first; stale temporaries removed."""
        files: list[tuple[int, str]] = []
        try:
            with os.scandir(self._manifests) as listing:
                for entry in listing:
                    try:
                        if entry.name.startswith(_TMP_PREFIX):
                            _remove_if_stale(entry)
                        elif entry.name.endswith(".json"):
                            files.append((entry.stat().st_mtime_ns, entry.path))
                    except FileNotFoundError:
                        continue
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._failed("read", "payload store %s cannot be read: %s", self._dir, exc)
        files.sort(reverse=True)
        return files

    def _load_manifest(self, path: Path | str) -> tuple[str, dict[str, str]] | None:
        try:
            with open(path, "rb") as fh:
                document = orjson.loads(fh.read())
            name, entries = document["name"], document["entries"]
            valid = (
                document.get("manifest") == _MANIFEST_FORMAT
                and isinstance(name, str)
                and isinstance(entries, dict)
                and all(isinstance(value, str) for value in entries.values())
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._failed("read", "payload store %s cannot be read: %s", self._dir, exc)
            return None
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            valid, detail = False, repr(exc)
        else:
            detail = "unexpected structure"
        if not valid:
            self._count("corrupt")
            self._failed("corrupt", "payload store: corrupt manifest %s removed (%s)", path, detail)
            _unlink_quietly(path)
            return None
        return name, entries

    # -- bound --------------------------------------------------------------------------

    def evict(self) -> int:
        """Rescan the directory and evict down to the bound now; returns entries removed."""
        with self._evicting:
            return self._rescan()

    def _rescan(self) -> int:
        """Scan (and evict when over the bound); the caller holds ``_evicting``."""
        with self._lock:
            written_before = self._written
            self._counts["scans"] += 1
        entries = self._scan()
        total = sum(size for size, _ in entries.values())
        removed = 0
        if total > self._max_bytes:
            removed, total = self._evict(entries, total)
        with self._lock:
            # Writes that finished during the scan may or may not be in it: count them
            # again rather than miss them (the next scan corrects the excess).
            late = self._written - written_before
            self._sizes = {name: size for name, (size, _) in entries.items()}
            self._total = total + late
            self._since_scan = late
            self._rescan_after = max((self._max_bytes - total) // 2, self._max_bytes // 64)
            self._counts["evictions"] += removed
        return removed

    def _scan(self) -> dict[str, tuple[int, int]]:
        """Every entry on disk as name -> (size, mtime_ns); stale temporaries removed."""
        entries: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(self._objects) as shards:
                directories = [shard.path for shard in shards if len(shard.name) == 2]
        except FileNotFoundError:
            directories = []
        except OSError as exc:
            self._failed("read", "payload store %s cannot be scanned: %s", self._dir, exc)
            directories = []
        for directory in directories:
            try:
                with os.scandir(directory) as listing:
                    for entry in listing:
                        try:
                            if _NAME.fullmatch(entry.name):
                                status = entry.stat(follow_symlinks=False)
                                entries[entry.name] = (status.st_size, status.st_mtime_ns)
                            elif entry.name.startswith(_TMP_PREFIX):
                                _remove_if_stale(entry)
                        except FileNotFoundError:
                            continue  # evicted by another process meanwhile
            except OSError as exc:
                self._failed("read", "payload store %s cannot be scanned: %s", directory, exc)
        self._mark()
        return entries

    def _evict(self, entries: dict[str, tuple[int, int]], total: int) -> tuple[int, int]:
        """Remove entries until ``total`` is under the low watermark; returns (count, total)."""
        spared = self._newest_manifest_names()
        goal = int(self._max_bytes * _LOW_WATERMARK)
        order = sorted(entries, key=lambda name: (name in spared, entries[name][1]))
        removed = freed = named = 0
        for name in order:
            if total <= goal:
                break
            try:
                os.unlink(self._path(name))
            except FileNotFoundError:
                pass
            except OSError as exc:
                self._failed("write", "payload store %s cannot evict: %s", self._dir, exc)
                break
            size = entries.pop(name)[0]
            total -= size
            freed += size
            removed += 1
            named += name in spared
        if named:
            _log.warning(
                "payload store %s: a bound of %d bytes evicted %d entries of the newest manifest",
                self._dir,
                self._max_bytes,
                named,
            )
        _log.info("payload store %s: evicted %d entries (%d bytes)", self._dir, removed, freed)
        return removed, total

    def _newest_manifest_names(self) -> frozenset[str]:
        """Entry names of the newest manifest (parsed once per version of its file)."""
        for _, path in self._manifest_files():
            try:
                status = os.stat(path)
            except OSError:
                continue
            stamp = (path, status.st_mtime_ns, status.st_size)
            if self._spared is not None and self._spared[0] == stamp:
                return self._spared[1]
            found = self._load_manifest(path)
            if found is not None:
                names = frozenset(map(self.key_name, found[1].values()))
                self._spared = (stamp, names)
                return names
        return frozenset()

    def prune_namespaces(self, *, idle_seconds: float = 7 * 86400.0) -> list[str]:
        """Delete other stores under ``root`` unused for ``idle_seconds``; returns their names.

        Old contract or format versions are never read again but keep their disk space;
        a store is in use while a process opens, scans or writes manifests to it.  Takes
        as long as deleting the files: call it from a worker thread.
        """
        removed: list[str] = []
        cutoff = time.time() - idle_seconds
        try:
            with os.scandir(self._root) as listing:
                candidates = [entry.path for entry in listing if entry.path != str(self._dir)]
            for candidate in candidates:
                try:
                    if os.stat(os.path.join(candidate, _MARKER)).st_mtime >= cutoff:
                        continue
                except (FileNotFoundError, NotADirectoryError):
                    continue  # not a payload store
                shutil.rmtree(candidate, ignore_errors=True)
                removed.append(os.path.basename(candidate))
        except OSError as exc:
            self._failed("write", "payload store %s: old stores not pruned: %s", self._root, exc)
        if removed:
            _log.info("payload store: removed idle stores %s under %s", removed, self._root)
        return removed

    # -- counters and failures ------------------------------------------------------------

    def stats(self) -> StoreStats:
        """This process's view of the store and its counters."""
        with self._lock:
            return StoreStats(
                entries=len(self._sizes),
                bytes=self._total,
                max_bytes=self._max_bytes,
                **self._counts,
            )

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _failed(self, kind: str, message: str, *args: object) -> None:
        if kind != "corrupt":
            self._count("errors")
        self._complaints.warn(kind, message, *args)

    def _drop_corrupt(self, path: str, inode: int, exc: CorruptPayload) -> None:
        self._count("corrupt")
        self._failed("corrupt", "payload store: corrupt entry %s removed (%s)", path, exc)
        try:
            # Only the file that was read: another process may have just replaced it.
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except OSError:
            pass

    def _write(self, path: Path | str, parts: list[bytes], *, what: str) -> bool:
        """Write ``parts`` to ``path`` through a temporary file and a rename."""
        directory, name = os.path.split(path)
        unique = f"{os.getpid()}.{secrets.token_hex(4)}"
        temporary = os.path.join(directory, f"{_TMP_PREFIX}{name}.{unique}")
        try:
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                os.makedirs(directory, exist_ok=True)
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with open(fd, "wb") as fh:
                    for part in parts:
                        fh.write(part)
                    if self._fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                os.replace(temporary, path)
            except BaseException:
                _unlink_quietly(temporary)
                raise
        except OSError as exc:
            self._failed(what, "payload store %s cannot be written: %s", self._dir, exc)
            return False
        return True

    def _mark(self) -> None:
        """Create or refresh the marker that says this store is in use."""
        marker = self._dir / _MARKER
        try:
            os.utime(marker)
        except FileNotFoundError:
            text = orjson.dumps({"store": "leaderboard-api payloads", "format": FORMAT_VERSION})
            if self._dir.is_dir():
                self._write(marker, [text], what="write")
        except OSError:
            pass  # a read-only store is still served; its idleness is not ours to record


class _Complaints:
    """Warnings limited to one per kind per interval, with a count of those held back."""

    def __init__(self, interval: float = _COMPLAINT_INTERVAL) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        if held:
            message += f" (and {held} more like this in the last {self._interval:.0f} s)"
        _log.warning(message, *args)


def _pread(fd: int, length: int, offset: int) -> bytes:
    """``length`` bytes at ``offset``, fewer only at the end of the file."""
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    chunks = [data]
    got = len(data)
    while got < length:
        chunk = os.pread(fd, length - got, offset + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _touch(fd: int) -> None:
    # A file of another user, or a read-only store: recency is best effort.
    with contextlib.suppress(OSError):
        os.utime(fd)


def _remove_if_stale(entry: os.DirEntry[str]) -> None:
    if time.time() - entry.stat(follow_symlinks=False).st_mtime > _STALE_TMP_SECONDS:
        _unlink_quietly(entry.path)


def _unlink_quietly(path: Path | str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
