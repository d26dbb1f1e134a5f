"""Tests for leaderboard_api.serving.store: round trips, corruption, atomicity, bound, manifests."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from leaderboard_api.serving.payload import (
    FORMAT_MAGIC,
    FORMAT_VERSION,
    CompressionPolicy,
    Payload,
)
from leaderboard_api.serving.store import PayloadStore
from tests.test_serving_payload import same_payload

WHEN = datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC)
CACHE = "public, max-age=60"
MB = 1024 * 1024


def json_body(rows: int, seed: int = 0) -> bytes:
    return orjson.dumps(
        {
            "rows": [
                {"model": f"org/model-{seed}-{i}", "rank": i + 1, "mean": (seed * 7 + i) % 97 / 3}
                for i in range(rows)
            ]
        }
    )


def json_payload(rows: int = 300, seed: int = 0, *, keep_identity: bool = True) -> Payload:
    return Payload.build(
        json_body(rows, seed),
        media_type="application/json",
        last_modified=WHEN,
        cache_control=CACHE,
        keep_identity=keep_identity,
    )


def csv_payload() -> Payload:
    body = b"model,rank\n" + b"".join(f"org/m-{i},{i}\n".encode() for i in range(2000))
    return Payload.build(
        body,
        media_type="text/csv; charset=utf-8",
        last_modified=WHEN,
        cache_control=CACHE,
        extra_headers=(("Content-Disposition", 'attachment; filename="board.csv"'),),
    )


def blob(size: int, seed: int) -> Payload:
    """An identity-only payload whose file is a little over ``size`` bytes."""
    return Payload.build(
        seed.to_bytes(4, "big") + os.urandom(size - 4),
        media_type="application/octet-stream",
        last_modified=WHEN,
        cache_control=CACHE,
        compression=CompressionPolicy(min_size=1 << 40),
    )


def open_store(root: Path, **options: object) -> PayloadStore:
    settings: dict[str, object] = {"max_bytes": 64 * MB, "namespace": "c3", **options}
    return PayloadStore(root, **settings)  # type: ignore[arg-type]


def entry_files(store: PayloadStore) -> list[Path]:
    files = (store.directory / "objects").rglob("*")
    return sorted(p for p in files if p.is_file() and not p.name.startswith(".tmp-"))


def entry_path(store: PayloadStore, key: str) -> Path:
    name = store.key_name(key)
    return store.directory / "objects" / name[:2] / name


def disk_bytes(store: PayloadStore) -> int:
    return sum(p.stat().st_size for p in entry_files(store))


def age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


@pytest.fixture
def store(tmp_path: Path) -> PayloadStore:
    return open_store(tmp_path / "payloads")


# -- round trips and keys -----------------------------------------------------------------

EXAMPLES = {
    "json-all-codings": lambda: json_payload(3000),
    "json-identity-only": lambda: json_payload(1),
    "json-on-demand-identity": lambda: json_payload(3000, keep_identity=False),
    "csv": csv_payload,
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_put_then_get_gives_the_same_payload(store: PayloadStore, name: str) -> None:
    payload = EXAMPLES[name]()
    assert store.get("k") is None
    assert not store.contains("k")
    assert store.put("k", payload)
    assert store.contains("k")
    back = store.get("k")
    assert back is not None
    same_payload(payload, back)
    assert back.identity == payload.identity
    assert back.identity_on_demand == payload.identity_on_demand


def test_reopened_store_serves_what_an_earlier_one_wrote(tmp_path: Path) -> None:
    first = open_store(tmp_path)
    payloads = {f"/v1/benchmarks/{i}|fp{i}": json_payload(50 * i + 1, i) for i in range(20)}
    assert first.put_many(payloads.items()) == 20
    second = open_store(tmp_path)
    assert second.stats().entries == 20
    assert second.stats().bytes == disk_bytes(second)
    found = second.get_many([*payloads, "missing"])
    assert set(found) == set(payloads)
    for key, payload in payloads.items():
        same_payload(payload, found[key])


def test_put_is_idempotent_and_leaves_the_entry_alone(store: PayloadStore) -> None:
    assert store.put("k", json_payload(10))
    [file] = entry_files(store)
    before = file.stat()
    assert not store.put("k", json_payload(20))
    after = file.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    back = store.get("k")
    assert back is not None
    assert back.identity == json_body(10)
    assert store.stats().puts == 1
    assert store.stats().present == 1


def test_key_names_are_fixed_length_hex_in_a_two_level_layout(store: PayloadStore) -> None:
    keys = ["a", "/v1/benchmarks/MTEB(eng, v2)|lang=fra|fp:abc", "é/\0\udcff", "x" * 5000]
    names = {store.key_name(key) for key in keys}
    assert len(names) == len(keys)
    assert all(len(name) == 32 and int(name, 16) >= 0 for name in names)
    for key in keys:
        store.put(key, json_payload(1))
    expected = {store.directory / "objects" / name[:2] / name for name in map(store.key_name, keys)}
    assert set(entry_files(store)) == expected
    assert store.key_name("a") == PayloadStore.key_name("a")


def test_namespaces_and_format_versions_do_not_share_entries(tmp_path: Path) -> None:
    c3 = open_store(tmp_path, namespace="c3")
    c4 = open_store(tmp_path, namespace="c4")
    c3.put("k", json_payload(1))
    assert c4.get("k") is None
    assert c3.directory.name == f"c3.p{FORMAT_VERSION}"
    assert c4.directory.parent == c3.directory.parent == tmp_path


@pytest.mark.parametrize("namespace", ["", "../x", "a/b", ".hidden", "x" * 65])
def test_unsafe_namespaces_are_refused(tmp_path: Path, namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        open_store(tmp_path, namespace=namespace)


def test_discard_removes_an_entry(store: PayloadStore) -> None:
    store.put("k", json_payload(1))
    assert store.discard("k")
    assert not store.discard("k")
    assert store.get("k") is None
    assert store.stats().bytes == 0


# -- corruption and atomicity ----------------------------------------------------------


def corrupt_truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def corrupt_garbage(data: bytes) -> bytes:
    return os.urandom(len(data))


def corrupt_magic(data: bytes) -> bytes:
    return b"GARBAGE!" + data[len(FORMAT_MAGIC) :]


def corrupt_version(data: bytes) -> bytes:
    return data[:8] + (FORMAT_VERSION + 1).to_bytes(2, "little") + data[10:]


def corrupt_flipped_body_byte(data: bytes) -> bytes:
    return data[:-5] + bytes([data[-5] ^ 0x40]) + data[-4:]


@pytest.mark.parametrize(
    "damage",
    [
        corrupt_truncated,
        corrupt_garbage,
        corrupt_magic,
        corrupt_version,
        corrupt_flipped_body_byte,
        lambda data: b"",
    ],
    ids=["truncated", "garbage", "magic", "version", "flipped", "empty"],
)
def test_a_corrupt_entry_is_a_miss_and_is_removed(
    store: PayloadStore, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    assert callable(damage)
    store.put("k", json_payload(3000))
    [file] = entry_files(store)
    file.write_bytes(damage(file.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="leaderboard_api.serving.store"):
        assert store.get("k") is None
        assert store.get("k") is None  # now simply missing: no second warning
    assert not file.exists()
    assert [r.getMessage() for r in caplog.records if "corrupt entry" in r.getMessage()] != []
    assert len(caplog.records) == 1
    assert store.stats().corrupt == 1
    assert store.put("k", json_payload(3000))
    assert store.get("k") is not None


def test_a_crash_mid_write_leaves_no_visible_entry(
    store: PayloadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.put("k", json_payload(300))
    monkeypatch.undo()
    assert store.get("k") is None
    assert not store.contains("k")
    assert list((store.directory / "objects").rglob(".tmp-*")) == []


def test_temporary_files_left_behind_are_ignored_then_cleaned(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.put("k", json_payload(1))
    name = store.key_name("other")
    shard = store.directory / "objects" / name[:2]
    shard.mkdir(exist_ok=True)
    data = json_payload(300).to_bytes()
    stale = shard / f".tmp-{name}.999.dead"
    stale.write_bytes(data[: len(data) // 3])
    age(stale, 3600)
    live = shard / f".tmp-{name}.1000.beef"  # a writer in another process, mid-write
    live.write_bytes(data[:100])
    assert store.get("other") is None
    reopened = open_store(tmp_path)
    assert not stale.exists()
    assert live.exists()
    assert reopened.stats().entries == 1
    assert reopened.stats().bytes == disk_bytes(reopened)
    assert reopened.get("other") is None


def test_an_entry_replaced_between_read_and_cleanup_is_not_removed(
    store: PayloadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("k", json_payload(300))
    [file] = entry_files(store)
    good = file.read_bytes()
    file.write_bytes(b"junk")
    real_read = Payload.read

    def read_then_replaced(*args: object, **kwargs: object) -> Payload:
        fresh = file.with_name("fresh")
        fresh.write_bytes(good)
        os.replace(fresh, file)  # another process puts a good copy meanwhile
        return real_read(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Payload, "read", read_then_replaced)
    assert store.get("k") is None
    monkeypatch.undo()
    assert store.get("k") is not None


# -- bound and eviction ----------------------------------------------------------------


def test_eviction_removes_least_recently_used_first_and_keeps_the_bound(tmp_path: Path) -> None:
    unit = len(blob(100_000, 0).to_bytes())
    bound = 10 * unit + unit // 2
    store = open_store(tmp_path, max_bytes=bound, touch_interval=0.0)
    for i in range(8):
        assert store.put(f"k{i}", blob(100_000, i))
    for i in range(8):
        age(entry_path(store, f"k{i}"), 1000 - i * 10)  # k0 oldest ... k7 newest
    assert store.get("k0") is not None  # used now: the most recent
    for i in range(8, 12):
        assert store.put(f"k{i}", blob(100_000, i))
        assert disk_bytes(store) <= bound
    present = {i for i in range(12) if store.contains(f"k{i}")}
    # Over the bound at the 11th entry: down to 90 % of it, the oldest first (k1, k2).
    assert present == {0, 3, 4, 5, 6, 7, 8, 9, 10, 11}
    assert store.stats().evictions == 2
    assert store.stats().bytes == disk_bytes(store)


def test_get_touches_an_entry_at_most_once_per_interval(tmp_path: Path) -> None:
    store = open_store(tmp_path, touch_interval=60.0)
    store.put("k", json_payload(1))
    [file] = entry_files(store)
    age(file, 30)
    before = file.stat().st_mtime_ns
    store.get("k")
    assert file.stat().st_mtime_ns == before
    age(file, 120)
    store.get("k")
    assert time.time() - file.stat().st_mtime < 5


def test_a_payload_larger_than_the_bound_is_not_stored(tmp_path: Path) -> None:
    store = open_store(tmp_path, max_bytes=50_000)
    assert not store.put("big", blob(60_000, 1))
    assert entry_files(store) == []


def test_opening_with_a_smaller_bound_trims_the_store(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(10):
        store.put(f"k{i}", blob(50_000, i))
    smaller = open_store(tmp_path, max_bytes=200_000)
    assert disk_bytes(smaller) <= 180_000
    assert smaller.stats().bytes == disk_bytes(smaller)


def test_the_bound_holds_over_many_puts(tmp_path: Path) -> None:
    bound = 2 * MB
    store = open_store(tmp_path, max_bytes=bound)
    for i in range(300):
        store.put(f"k{i}", blob(20_000 + (i * 7919) % 30_000, i))
        assert disk_bytes(store) <= bound
    assert store.stats().bytes == disk_bytes(store)
    assert disk_bytes(store) > bound * 0.8


# -- manifests -----------------------------------------------------------------------------


def test_manifest_round_trip_and_newest_first(store: PayloadStore) -> None:
    entries = {"/v1/benchmarks": "route|fp1", "/v1/tasks?x=é": "route|fp2"}
    assert store.read_manifest("snap-a") is None
    assert store.latest_manifest() is None
    assert store.write_manifest("snap-a", entries)
    assert store.read_manifest("snap-a") == entries
    store.write_manifest("snap/b:weird id", {})
    assert store.read_manifest("snap/b:weird id") == {}
    assert store.manifest_names() == ["snap/b:weird id", "snap-a"]
    assert store.latest_manifest() == ("snap/b:weird id", {})
    store.write_manifest("snap-a", entries)  # rewriting makes it the newest again
    assert store.manifest_names()[0] == "snap-a"


def test_only_the_newest_manifests_are_kept(tmp_path: Path) -> None:
    store = open_store(tmp_path, keep_manifests=2)
    for i in range(5):
        store.write_manifest(f"s{i}", {"/": f"k{i}"})
    assert store.manifest_names() == ["s4", "s3"]
    assert store.read_manifest("s0") is None
    assert len(list((store.directory / "manifests").iterdir())) == 2


def test_a_corrupt_manifest_is_none_and_removed(
    store: PayloadStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.write_manifest("s", {"/": "k"})
    [file] = (store.directory / "manifests").iterdir()
    for junk in (b"{not json", b'{"manifest": 1, "name": "s", "entries": {"/": 3}}', b"[]"):
        file.write_bytes(junk)
        with caplog.at_level(logging.WARNING):
            assert store.read_manifest("s") is None
        assert not file.exists()
        store.write_manifest("s", {"/": "k"})


def test_eviction_spares_the_newest_manifest_while_others_can_go(tmp_path: Path) -> None:
    unit = len(blob(100_000, 0).to_bytes())
    store = open_store(tmp_path, max_bytes=5 * unit + unit // 2)
    for i in range(5):
        store.put(f"k{i}", blob(100_000, i))
        age(entry_path(store, f"k{i}"), 1000 - i)  # k0 is the oldest
    store.write_manifest("old", {"/a": "k0"})
    store.write_manifest("new", {"/b": "k1", "/c": "k2"})
    store.put("k5", blob(100_000, 5))
    # Six entries: two go, the oldest not named by the newest manifest (k0, then k3).
    assert {i for i in range(6) if store.contains(f"k{i}")} == {1, 2, 4, 5}
    store.put("k6", blob(100_000, 6))
    store.put("k7", blob(100_000, 7))
    assert {i for i in range(8) if store.contains(f"k{i}")} == {1, 2, 6, 7}


def test_the_newest_manifest_is_evicted_last_when_nothing_else_is_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unit = len(blob(100_000, 0).to_bytes())
    store = open_store(tmp_path, max_bytes=3 * unit + unit // 2)
    for i in range(3):
        store.put(f"k{i}", blob(100_000, i))
    store.write_manifest("new", {f"/{i}": f"k{i}" for i in range(4)})
    with caplog.at_level(logging.WARNING):
        store.put("k3", blob(100_000, 3))
    assert disk_bytes(store) <= 3 * unit + unit // 2
    assert any("newest manifest" in r.getMessage() for r in caplog.records)


# -- several processes and threads ---------------------------------------------------


def _writer(root: str, worker: int, barrier: threading.Barrier, bound: int) -> None:
    store = PayloadStore(Path(root), max_bytes=bound, namespace="c3")
    barrier.wait()
    for i in range(60):
        store.put(f"shared-{i}", json_payload(200 + i, i))
        store.put(f"own-{worker}-{i}", json_payload(100 + i, 1000 * worker + i))
        store.get(f"shared-{(i * 7) % 60}")
    store.write_manifest(f"w{worker}", {f"/{i}": f"shared-{i}" for i in range(60)})


@pytest.mark.parametrize("bound", [256 * MB, 1 * MB], ids=["roomy", "tight"])
def test_two_processes_share_a_store(tmp_path: Path, bound: int) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_writer, args=(str(tmp_path), n, barrier, bound)) for n in (1, 2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    store = open_store(tmp_path, max_bytes=bound)
    assert list(store.directory.rglob(".tmp-*")) == []
    if bound > 100 * MB:
        for i in range(60):
            back = store.get(f"shared-{i}")
            assert back is not None
            assert back.identity == json_body(200 + i, i)
            for n in (1, 2):
                own = store.get(f"own-{n}-{i}")
                assert own is not None
                assert own.identity == json_body(100 + i, 1000 * n + i)
    else:
        # Each process rescans before its writes could pass the bound unseen.
        assert disk_bytes(store) <= bound * 1.1
    assert store.stats().corrupt == 0
    assert sorted(store.manifest_names()) == ["w1", "w2"]


def test_threads_share_a_store(store: PayloadStore) -> None:
    payloads = [json_payload(50 + i, i) for i in range(40)]

    def work(n: int) -> int:
        wrong = 0
        for i in range(40):
            store.put(f"k{(i + n) % 40}", payloads[(i + n) % 40])
            back = store.get(f"k{(i * 3 + n) % 40}")
            if back is not None and back.identity != payloads[(i * 3 + n) % 40].identity:
                wrong += 1
        return wrong

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(work, range(16))) == 0
    assert store.stats().entries == 40
    assert store.stats().bytes == disk_bytes(store)
    # Two threads may both write a key they both found missing; either file is whole.
    assert store.stats().puts >= 40
    assert store.stats().puts + store.stats().present == 16 * 40


# -- failures degrade ---------------------------------------------------------------------


@pytest.fixture
def store_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="leaderboard_api.serving.store"):
        yield caplog


def test_an_unusable_root_never_raises(
    tmp_path: Path, store_logs: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "not-a-dir"
    root.write_text("x")
    store = open_store(root)
    assert not store.put("k", json_payload(1))
    assert store.get("k") is None
    assert not store.contains("k")
    assert not store.write_manifest("s", {"/": "k"})
    assert store.read_manifest("s") is None
    assert store.manifest_names() == []
    assert store.evict() == 0
    assert store.stats().errors > 0
    assert store_logs.records


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_serves_what_it_holds(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.put("k", json_payload(1))
    store.write_manifest("s", {"/": "k"})
    for path in sorted(tmp_path.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    tmp_path.chmod(0o555)
    try:
        frozen = open_store(tmp_path, touch_interval=0.0)
        assert frozen.get("k") is not None
        assert frozen.read_manifest("s") == {"/": "k"}
        assert not frozen.put("k2", json_payload(2))
        assert not frozen.write_manifest("t", {})
    finally:
        for path in [tmp_path, *tmp_path.rglob("*")]:
            path.chmod(0o755)


def test_a_full_or_read_only_disk_degrades_to_not_stored(
    store: PayloadStore, monkeypatch: pytest.MonkeyPatch, store_logs: pytest.LogCaptureFixture
) -> None:
    store.put("held", json_payload(1))
    store.write_manifest("s", {"/": "held"})
    real_open = os.open

    def refuse_writes(path: str, flags: int, *args: int) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, *args)

    def refuse(*args: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "open", refuse_writes)
    monkeypatch.setattr(os, "utime", refuse)
    for i in range(50):
        assert not store.put(f"k{i}", json_payload(1))
    assert not store.write_manifest("t", {})
    assert store.get("held") is not None  # reads still work
    assert store.read_manifest("s") == {"/": "held"}
    monkeypatch.setattr(os, "unlink", refuse)
    assert not store.discard("held")
    # One warning per kind of failure per minute, not one per call.
    assert len(store_logs.records) <= 3
    monkeypatch.undo()
    assert store.put("k0", json_payload(1))
    assert store.stats().errors >= 50


def test_unreadable_entries_are_misses(
    store: PayloadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("k", json_payload(1))

    def refuse(*args: object) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pread", refuse)
    assert store.get("k") is None
    monkeypatch.undo()
    assert store.get("k") is not None  # an I/O error is not corruption: the entry stays


# -- other stores ------------------------------------------------------------------------


def test_idle_stores_of_other_namespaces_are_pruned(tmp_path: Path) -> None:
    old = open_store(tmp_path, namespace="c2")
    old.put("k", json_payload(1))
    recent = open_store(tmp_path, namespace="c1")
    (tmp_path / "unrelated").mkdir()
    age(old.directory / "STORE", 30 * 86400)
    current = open_store(tmp_path, namespace="c3")
    assert current.prune_namespaces(idle_seconds=86400) == [old.directory.name]
    assert not old.directory.exists()
    assert recent.directory.exists()
    assert (tmp_path / "unrelated").exists()
    assert current.directory.exists()
