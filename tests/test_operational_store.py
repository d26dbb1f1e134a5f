"""The operational state store, run against SQLite and a real PostgreSQL server.

Every test here takes ``url`` (a fresh, empty database) or ``store`` (the same, migrated),
parametrized over both backends; the PostgreSQL cluster comes from
test_operational_postgres.py and those cases are skipped when its binaries are missing.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text, update

from leaderboard_api.operational import cli, migrations
from leaderboard_api.operational.core import utcnow
from leaderboard_api.operational.db import create_engine, data_dir, default_url, resolve_url
from leaderboard_api.operational.keys import hash_key
from leaderboard_api.operational.models import ApiKeyRow, Base
from leaderboard_api.operational.records import (
    SCOPES,
    Actor,
    Duplicate,
    InvalidTransition,
    InvalidValue,
    NotFound,
    UnknownScope,
    VoteCounts,
)
from leaderboard_api.operational.repository import StateStore
from tests.test_operational_postgres import PostgresCluster, pg_cluster

__all__ = ["pg_cluster"]  # the session fixture, shared with test_operational_postgres.py

ROOT = Path(__file__).resolve().parents[1]
ALICE = Actor("alice", "192.0.2.1")
BOB = Actor("bob", "192.0.2.2")
EVALUATOR = Actor("evaluator-1", "192.0.2.9")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    with StateStore.open(url) as opened:
        yield opened


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- engine and migrations -----------------------------------------------------------------


def test_default_url_is_a_file_in_the_user_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LEADERBOARD_STATE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "leaderboard-api"
    assert default_url() == f"sqlite:///{tmp_path / 'xdg' / 'leaderboard-api' / 'state.db'}"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    assert data_dir() == Path.home() / ".local" / "share" / "leaderboard-api"
    monkeypatch.setenv("LEADERBOARD_STATE", "postgresql+psycopg://u@h/db")
    assert resolve_url() == "postgresql+psycopg://u@h/db"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="unsupported state store"):
        create_engine("mysql://u@h/db")


def test_sqlite_connections_are_durable_and_concurrent(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'deep' / 'state.db'}")
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    # synchronous=2 is FULL: a commit is fsynced (WAL included) before it returns.
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 30000,
    }


def test_upgrade_is_idempotent(url: str) -> None:
    head = migrations.head()
    assert migrations.upgrade(url) == head
    assert migrations.upgrade(url) == head
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            counter = connection.execute(text("SELECT counter FROM changes")).scalar_one()
    finally:
        engine.dispose()
    assert {"api_keys", "submissions", "votes", "audit", "changes", "alembic_version"} <= tables
    assert counter == 0


def test_models_match_the_migrations(url: str) -> None:
    migrations.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


UPGRADE = """
    import sys, time
    from pathlib import Path
    from leaderboard_api.operational import migrations
    go = Path(sys.argv[2])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    print(migrations.upgrade(sys.argv[1]), flush=True)
"""


def test_two_processes_upgrading_at_once(url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    processes = [python(UPGRADE, url, str(go)) for _ in range(2)]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    go.touch()
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert out.strip() == migrations.head()
    with StateStore.open(url, migrate=False) as store:
        assert store.health()[0]


def test_health_says_when_the_schema_is_behind(url: str) -> None:
    with StateStore.open(url, migrate=False) as store:
        ok, detail = store.health()
        assert not ok
        assert "state upgrade" in detail
        migrations.upgrade(engine=store.engine)
        ok, detail = store.health()
        assert ok, detail
        assert f"schema {migrations.head()}" in detail


# -- API keys ----------------------------------------------------------------------------------


def test_key_create_verify_revoke(store: StateStore) -> None:
    created = store.keys.create("evaluator-1", ["evaluate,read"], by=ALICE)
    assert created.raw.startswith("lbk_")
    assert created.key.scopes == ("read", "evaluate")
    assert created.raw[4:16] == created.key.prefix

    identity = store.keys.verify(created.raw)
    assert identity is not None
    assert identity.name == "evaluator-1"
    assert identity.scopes == frozenset({"read", "evaluate"})
    assert identity.allows("evaluate")
    assert not identity.allows("admin")

    assert store.keys.verify(created.raw[:-1] + ("A" if created.raw[-1] != "A" else "B")) is None
    assert store.keys.verify("lbk_" + "0" * 12 + "_nothing") is None
    assert store.keys.verify("not a key") is None
    assert store.keys.verify("") is None
    assert store.keys.verify("lbk_\x00" + "0" * 11 + "_x") is None
    assert store.keys.verify(created.raw + "\udcff") is None

    with pytest.raises(Duplicate, match="evaluator-1"):
        store.keys.create("evaluator-1", ["read"], by=ALICE)
    with pytest.raises(UnknownScope, match="bogus"):
        store.keys.create("x", ["read", "bogus"], by=ALICE)
    with pytest.raises(UnknownScope, match="at least one"):
        store.keys.create("x", [" , "], by=ALICE)
    with pytest.raises(InvalidValue):
        store.keys.create("  ", ["read"], by=ALICE)

    revoked = store.keys.revoke("evaluator-1", by=ALICE)
    assert revoked.revoked_at is not None
    assert store.keys.verify(created.raw) is None
    with pytest.raises(NotFound):
        store.keys.revoke("evaluator-1", by=ALICE)

    # The name is free again; the revoked row stays listed.
    again = store.keys.create("evaluator-1", ["admin"], by=ALICE)
    verified = store.keys.verify(again.raw)
    assert verified is not None
    assert verified.allows("submit")  # admin implies every scope
    listed = store.keys.list()  # by name, then oldest first
    assert [(k.name, k.revoked_at is None) for k in listed] == [
        ("evaluator-1", False),
        ("evaluator-1", True),
    ]
    assert [k.prefix for k in store.keys.list(include_revoked=False)] == [again.key.prefix]


def test_only_a_hash_of_a_key_is_stored(store: StateStore, url: str) -> None:
    created = store.keys.create("ci", ["ingest"], by=ALICE)
    secret = created.raw.split("_", 2)[2]
    if store.backend == "sqlite":
        stored = b"".join(p.read_bytes() for p in Path(url[len("sqlite:///") :]).parent.iterdir())
    else:
        with store.engine.connect() as connection:
            dump = [
                connection.execute(text(f"SELECT * FROM {table}")).all()
                for table in ("api_keys", "audit")
            ]
        stored = repr(dump).encode()
    assert created.raw.encode() not in stored
    assert secret.encode() not in stored
    assert hash_key(created.raw).encode() in stored


def test_last_use_is_written_at_most_once_a_minute(store: StateStore) -> None:
    created = store.keys.create("reader", ["read"], by=ALICE)
    before = store.change_counter()
    assert store.keys.verify(created.raw) is not None
    (first,) = store.keys.list()
    assert first.last_used_at is not None
    assert store.keys.verify(created.raw) is not None
    (second,) = store.keys.list()
    assert second.last_used_at == first.last_used_at
    # A use more than a minute later is written again.
    with store.engine.begin() as connection:
        connection.execute(update(ApiKeyRow).values(last_used_at=utcnow() - timedelta(minutes=2)))
    assert store.keys.verify(created.raw) is not None
    (third,) = store.keys.list()
    assert third.last_used_at is not None
    assert third.last_used_at > first.last_used_at
    assert store.change_counter() == before  # bookkeeping, not a change anyone reads


# -- submissions -------------------------------------------------------------------------------


def test_duplicate_submissions(store: StateStore) -> None:
    first = store.submissions.submit(
        "org/model", by=ALICE, model_type="pretrained", weight_type="Original"
    )
    assert first.status == "pending"
    assert (first.revision, first.precision, first.submitter) == ("main", "float16", "alice")
    assert first.model_type == "pretrained"
    assert first.created_at == first.updated_at

    with pytest.raises(Duplicate, match="pending") as raised:
        store.submissions.submit("org/model", by=BOB, revision="main", precision="float16")
    assert raised.value.existing_id == first.id
    other_revision = store.submissions.submit("org/model", by=BOB, revision="abc123")
    other_precision = store.submissions.submit("org/model", by=BOB, precision="bfloat16")
    assert len({first.id, other_revision.id, other_precision.id}) == 3

    claimed = store.submissions.claim(by=EVALUATOR)
    assert claimed is not None
    assert claimed.id == first.id
    with pytest.raises(Duplicate, match="running"):
        store.submissions.submit("org/model", by=BOB)
    store.submissions.set_status(first.id, "finished", by=EVALUATOR, dataset_version="v7")
    with pytest.raises(Duplicate, match="finished"):
        store.submissions.submit("org/model", by=BOB)

    store.submissions.set_status(
        other_revision.id, "failed", by=ALICE, reason="cancelled by submitter"
    )
    retried = store.submissions.submit("org/model", by=BOB, revision="abc123")
    assert retried.id != other_revision.id
    # The failed one cannot come back while its twin is queued.
    with pytest.raises(Duplicate):
        store.submissions.set_status(other_revision.id, "pending", by=ALICE)
    with pytest.raises(InvalidValue, match="empty"):
        store.submissions.submit("  ", by=BOB)
    with pytest.raises(InvalidValue, match="NUL"):
        store.submissions.submit("org/\x00", by=BOB)
    with pytest.raises(InvalidValue, match="longer than 100"):
        store.submissions.submit("org/model", by=BOB, revision="r" * 101)


def test_simultaneous_duplicate_submissions_leave_one(store: StateStore) -> None:
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def submit() -> None:
        barrier.wait()
        try:
            store.submissions.submit("org/popular", by=ALICE)
            outcomes.append("created")
        except Duplicate:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "duplicate", "duplicate", "duplicate"]
    assert len(store.submissions.list()) == 1


def test_claim_takes_most_up_votes_then_oldest(store: StateStore) -> None:
    old = store.submissions.submit("org/old", by=ALICE)
    liked = store.submissions.submit("org/liked", by=ALICE)
    disliked = store.submissions.submit("org/disliked", by=ALICE)
    newest = store.submissions.submit("org/newest", by=ALICE)
    for voter in ("v1", "v2"):
        store.votes.cast("org/liked", "up", by=Actor(voter))
    store.votes.cast("org/newest", "up", by=Actor("v1"))
    for voter in ("v1", "v2", "v3"):
        store.votes.cast("org/disliked", "down", by=Actor(voter))
    order = []
    while (claimed := store.submissions.claim(by=EVALUATOR)) is not None:
        assert claimed.status == "running"
        assert claimed.claimed_by == EVALUATOR.identity
        order.append(claimed.id)
    assert order == [liked.id, newest.id, old.id, disliked.id]
    assert store.submissions.list(status="pending") == []
    assert [s.id for s in store.submissions.list(status="running")] == [
        old.id,
        liked.id,
        disliked.id,
        newest.id,
    ]


def _queue(store: StateStore, count: int) -> set[int]:
    return {store.submissions.submit(f"org/model-{i}", by=ALICE).id for i in range(count)}


def test_threads_racing_to_claim_each_get_different_work(store: StateStore) -> None:
    queued = _queue(store, 40)
    barrier = threading.Barrier(4)
    claimed: list[int] = []
    lock = threading.Lock()

    def evaluator(name: str) -> None:
        barrier.wait()
        while (got := store.submissions.claim(by=Actor(name))) is not None:
            with lock:
                claimed.append(got.id)

    threads = [threading.Thread(target=evaluator, args=(f"e{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(claimed) == Counter(queued)  # every one claimed, none twice


CLAIMER = """
    import sys, time
    from pathlib import Path
    from leaderboard_api.operational.records import Actor
    from leaderboard_api.operational.repository import StateStore
    store = StateStore.open(sys.argv[1], migrate=False)
    go = Path(sys.argv[2])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    while (got := store.submissions.claim(by=Actor(sys.argv[3]))) is not None:
        print(got.id, flush=True)
"""


def test_processes_racing_to_claim_each_get_different_work(
    store: StateStore, url: str, tmp_path: Path
) -> None:
    queued = _queue(store, 60)
    go = tmp_path / "go"
    processes = [python(CLAIMER, url, str(go), f"evaluator-{i}") for i in range(2)]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", process.communicate()[1]
    go.touch()
    claimed: list[int] = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        claimed += [int(line) for line in out.split()]
    assert Counter(claimed) == Counter(queued)
    holders = Counter(s.claimed_by for s in store.submissions.list(status="running"))
    assert sum(holders.values()) == 60


def test_status_transitions(store: StateStore) -> None:
    submission = store.submissions.submit("org/model", by=ALICE)
    with pytest.raises(InvalidTransition, match="claim"):
        store.submissions.set_status(submission.id, "running", by=EVALUATOR)
    with pytest.raises(InvalidTransition, match="pending; it cannot become finished"):
        store.submissions.set_status(submission.id, "finished", by=EVALUATOR, dataset_version="v1")
    with pytest.raises(NotFound):
        store.submissions.set_status(12345, "failed", by=EVALUATOR, reason="x")
    with pytest.raises(NotFound):
        store.submissions.get(12345)
    with pytest.raises(InvalidValue, match="unknown status"):
        store.submissions.set_status(submission.id, "done", by=EVALUATOR)  # type: ignore[arg-type]

    claimed = store.submissions.claim(by=EVALUATOR)
    assert claimed is not None
    with pytest.raises(InvalidValue, match="dataset version"):
        store.submissions.set_status(submission.id, "finished", by=EVALUATOR)
    with pytest.raises(InvalidValue, match="reason"):
        store.submissions.set_status(submission.id, "failed", by=EVALUATOR, reason="  ")
    with pytest.raises(InvalidTransition, match="held by evaluator-1, not evaluator-2"):
        store.submissions.set_status(
            submission.id, "failed", by=EVALUATOR, reason="x", claimed_by="evaluator-2"
        )

    requeued = store.submissions.set_status(submission.id, "pending", by=EVALUATOR)
    assert (requeued.status, requeued.claimed_by) == ("pending", None)
    assert store.submissions.claim(by=EVALUATOR) is not None
    failed = store.submissions.set_status(
        submission.id, "failed", by=EVALUATOR, reason="out of memory", claimed_by="evaluator-1"
    )
    assert (failed.status, failed.reason) == ("failed", "out of memory")
    retried = store.submissions.set_status(submission.id, "pending", by=ALICE)
    assert (retried.status, retried.reason) == ("pending", None)
    assert store.submissions.claim(by=EVALUATOR) is not None
    finished = store.submissions.set_status(
        submission.id, "finished", by=EVALUATOR, dataset_version="abc123"
    )
    assert (finished.status, finished.dataset_version) == ("finished", "abc123")
    assert finished.updated_at >= finished.created_at
    assert store.submissions.get(submission.id) == finished
    for status in ("pending", "failed"):
        with pytest.raises(InvalidTransition, match="finished"):
            store.submissions.set_status(submission.id, status, by=ALICE, reason="x")
    assert [s.id for s in store.submissions.list(submitter="alice")] == [submission.id]
    assert store.submissions.list(submitter="bob") == []


# -- votes -------------------------------------------------------------------------------------


def test_votes_replace_delete_count(store: StateStore) -> None:
    assert store.votes.counts("org/model") == VoteCounts(total=0, up=0, down=0)
    first = store.votes.cast("org/model", "up", by=ALICE)
    store.votes.cast("org/model", "up", by=BOB)
    store.votes.cast("org/other", "down", by=ALICE)
    assert store.votes.counts("org/model") == VoteCounts(total=2, up=2, down=0)

    replaced = store.votes.cast("org/model", "down", by=ALICE)  # a second vote replaces
    assert replaced.created_at == first.created_at
    assert replaced.updated_at >= first.updated_at
    assert store.votes.counts("org/model") == VoteCounts(total=2, up=1, down=1)
    assert [(v.model, v.direction) for v in store.votes.of_user("alice")] == [
        ("org/model", "down"),
        ("org/other", "down"),
    ]
    assert store.votes.all_counts() == {
        "org/model": VoteCounts(total=2, up=1, down=1),
        "org/other": VoteCounts(total=1, up=0, down=1),
    }

    store.votes.delete("org/model", by=ALICE)
    assert store.votes.counts("org/model") == VoteCounts(total=1, up=1, down=0)
    with pytest.raises(NotFound, match="alice has no vote on org/model"):
        store.votes.delete("org/model", by=ALICE)
    with pytest.raises(InvalidValue):
        store.votes.cast("org/model", "sideways", by=ALICE)  # type: ignore[arg-type]
    assert store.votes.of_user("nobody") == []


def test_simultaneous_votes_of_one_identity_leave_one(store: StateStore) -> None:
    barrier = threading.Barrier(4)

    def vote(direction: str) -> None:
        barrier.wait()
        store.votes.cast("org/model", "up" if direction == "up" else "down", by=ALICE)

    threads = [threading.Thread(target=vote, args=(d,)) for d in ("up", "down") * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.votes.counts("org/model").total == 1


# -- change counter and audit ------------------------------------------------------------------


def test_change_counter_moves_with_every_write_and_no_read(store: StateStore) -> None:
    assert store.change_counter() == 0
    writes: list[Callable[[], object]] = [
        lambda: store.submissions.submit("org/a", by=ALICE),
        lambda: store.keys.create("k", ["vote"], by=ALICE),
        lambda: store.submissions.claim(by=EVALUATOR),
        lambda: store.submissions.set_status(1, "failed", by=EVALUATOR, reason="x"),
        lambda: store.votes.cast("org/a", "up", by=BOB),
        lambda: store.votes.cast("org/a", "down", by=BOB),
        lambda: store.votes.delete("org/a", by=BOB),
        lambda: store.keys.revoke("k", by=ALICE),
    ]
    reads: list[Callable[[], object]] = [
        lambda: store.keys.list(),
        lambda: store.keys.verify("lbk_000000000000_x"),
        lambda: store.submissions.list(),
        lambda: store.submissions.get(1),
        lambda: store.votes.counts("org/a"),
        lambda: store.votes.all_counts(),
        lambda: store.votes.of_user("bob"),
        lambda: store.audit(),
        lambda: store.health(),
    ]
    for expected, write in enumerate(writes, start=1):
        write()
        assert store.change_counter() == expected
        for read in reads:
            read()
        assert store.change_counter() == expected
    # A claim that finds nothing and a refused write change nothing.
    assert store.submissions.claim(by=EVALUATOR) is None
    with pytest.raises(NotFound):
        store.votes.delete("org/a", by=BOB)
    store.submissions.submit("org/b", by=ALICE)
    with pytest.raises(Duplicate):
        store.submissions.submit("org/b", by=ALICE)
    assert store.change_counter() == len(writes) + 1


def test_change_counter_can_be_remembered_briefly(store: StateStore, url: str) -> None:
    assert store.change_counter(max_age=60) == 0
    store.votes.cast("org/a", "up", by=ALICE)
    assert store.change_counter(max_age=60) == 1  # this process's own write: seen at once
    with StateStore.open(url, migrate=False) as other:  # another replica writes
        other.votes.cast("org/a", "up", by=BOB)
    assert store.change_counter(max_age=60) == 1  # remembered, no query
    assert store.change_counter() == 2
    assert store.change_counter(max_age=60) == 2


def test_every_write_is_audited(store: StateStore) -> None:
    key = store.keys.create("ev", ["evaluate"], by=ALICE)
    submission = store.submissions.submit("org/a", by=BOB)
    store.votes.cast("org/a", "up", by=BOB)
    store.submissions.claim(by=EVALUATOR)
    store.submissions.set_status(submission.id, "finished", by=EVALUATOR, dataset_version="v2")
    store.votes.delete("org/a", by=BOB)
    store.keys.revoke("ev", by=Actor("admin"))
    entries = list(reversed(store.audit()))
    assert [(e.identity, e.action, e.target, e.address) for e in entries] == [
        ("alice", "key.create", "key:ev", "192.0.2.1"),
        ("bob", "submission.create", f"submission:{submission.id}", "192.0.2.2"),
        ("bob", "vote.cast", "vote:org/a", "192.0.2.2"),
        ("evaluator-1", "submission.claim", f"submission:{submission.id}", "192.0.2.9"),
        ("evaluator-1", "submission.finished", f"submission:{submission.id}", "192.0.2.9"),
        ("bob", "vote.delete", "vote:org/a", "192.0.2.2"),
        ("admin", "key.revoke", "key:ev", None),
    ]
    assert entries[0].detail == {"prefix": key.key.prefix, "scopes": ["evaluate"]}
    assert entries[4].detail == {"previous": "running", "dataset_version": "v2", "reason": None}
    assert all(e.at.tzinfo is not None for e in entries)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert [e.action for e in store.audit(limit=2)] == ["key.revoke", "vote.delete"]
    assert [e.action for e in store.audit(limit=1, before_id=entries[1].id)] == ["key.create"]
    assert {e.action for e in store.audit(identity="bob")} == {
        "submission.create",
        "vote.cast",
        "vote.delete",
    }


def test_record_audits_a_write_kept_elsewhere(store: StateStore) -> None:
    before = store.change_counter()
    detail = {"version": "abc123", "rows": 3, "models": ["org/new"], "created": True}
    entry = store.record("results.ingest", "results/ingest/x.parquet", by=ALICE, detail=detail)
    assert store.change_counter() == before + 1
    assert entry.id > 0
    assert entry.at.tzinfo is not None
    assert (entry.identity, entry.action, entry.target, entry.address) == (
        "alice",
        "results.ingest",
        "results/ingest/x.parquet",
        "192.0.2.1",
    )
    assert store.audit(limit=1) == [entry]
    assert store.record("note", "t", by=Actor("cli:x")).detail == {}
    with pytest.raises(InvalidValue):
        store.record(" ", "t", by=ALICE)
    with pytest.raises(InvalidValue):
        store.record("a" * 65, "t", by=ALICE)
    assert store.change_counter() == before + 2  # a refused record writes nothing


# -- durability --------------------------------------------------------------------------------

BURST = """
    import sys
    from leaderboard_api.operational.records import Actor
    from leaderboard_api.operational.repository import StateStore
    store = StateStore.open(sys.argv[1])
    i = 0
    while True:
        submission = store.submissions.submit(f"org/model-{i}", by=Actor("burst", "198.51.100.1"))
        print("s", submission.id, flush=True)  # acknowledged: the commit has returned
        vote = store.votes.cast(f"org/model-{i}", "up", by=Actor(f"voter-{i}"))
        print("v", vote.model, flush=True)
        i += 1
"""


def test_acknowledged_writes_survive_sigkill(url: str) -> None:
    writer = python(BURST, url)
    assert writer.stdout is not None
    acknowledged: list[tuple[str, str]] = []
    while len(acknowledged) < 200:
        line = writer.stdout.readline()
        assert line, writer.communicate()[1]
        kind, value = line.split()
        acknowledged.append((kind, value))
    writer.send_signal(signal.SIGKILL)  # mid-burst: the writer never closes anything
    writer.communicate(timeout=30)  # reaps it and closes its pipes
    assert writer.returncode == -signal.SIGKILL

    with StateStore.open(url) as store:
        ids = {s.id for s in store.submissions.list()}
        voted = set(store.votes.all_counts())
        assert {int(v) for k, v in acknowledged if k == "s"} <= ids
        assert {v for k, v in acknowledged if k == "v"} <= voted
        assert store.health()[0]
        assert len(store.audit(limit=10_000)) == store.change_counter()
    if url.startswith("sqlite"):  # the file is consistent, not just readable by us
        with sqlite3.connect(url[len("sqlite:///") :]) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- command line ------------------------------------------------------------------------------


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="leaderboard-api")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_command_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("state", "upgrade", "--state", url) == 0
    assert migrations.head() in capsys.readouterr().out
    assert _cli("state", "check", "--state", url) == 0
    assert "ok" in capsys.readouterr().out

    assert _cli("keys", "create", "evaluator-1", "--scopes", "evaluate,read", "--state", url) == 0
    out, err = capsys.readouterr()
    raw = out.strip()
    assert raw.startswith("lbk_")
    assert "shown only this once" in err
    with StateStore.open(url) as store:
        identity = store.keys.verify(raw)
        assert identity is not None
        assert identity.scopes == frozenset({"evaluate", "read"})

    assert _cli("keys", "create", "evaluator-1", "--scopes", "read", "--state", url) == 1
    assert "exists" in capsys.readouterr().err
    assert _cli("keys", "create", "x", "--scopes", "root", "--state", url) == 1
    assert "valid scopes: read, submit, vote, evaluate, ingest, admin" in capsys.readouterr().err

    assert _cli("keys", "list", "--state", url) == 0
    listing = capsys.readouterr().out
    assert "evaluator-1" in listing
    assert "read,evaluate" in listing
    assert raw not in listing

    assert _cli("keys", "revoke", "evaluator-1", "--state", url) == 0
    assert _cli("keys", "revoke", "evaluator-1", "--state", url) == 1
    assert "no live API key" in capsys.readouterr().err
    assert _cli("keys", "list", "--live", "--state", url) == 0
    assert "evaluator-1" not in capsys.readouterr().out
    with StateStore.open(url) as store:
        assert store.keys.verify(raw) is None
        entries = store.audit()
        assert [e.action for e in entries] == ["key.revoke", "key.create"]
        assert all(e.identity.startswith("cli:") and e.address == "local" for e in entries)


def test_cli_scopes_are_the_stores() -> None:
    assert SCOPES == cli._SCOPES
