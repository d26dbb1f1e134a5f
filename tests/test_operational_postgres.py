"""The state store on a real PostgreSQL server: a private cluster started for the tests.

``pg_cluster`` runs ``initdb`` and ``pg_ctl`` from the Debian package (``postgresql``, see
scripts/ci-services.sh) in a temporary folder, listening on 127.0.0.1 and a free port, as the
``postgres`` user when the tests run as root; it never touches the system's own cluster.
test_operational_store.py runs every store test against it as well as SQLite; this module
adds what only a server shows: two replicas writing at once, and a server crash.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from leaderboard_api.operational.records import Actor, VoteCounts
from leaderboard_api.operational.repository import StateStore

ROOT = Path(__file__).resolve().parents[1]


def postgres_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: Debian's versioned folders, else the PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for folder in reversed(candidates):
        if all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(initdb).parent
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """A throwaway cluster: start, crash, restart, and fresh databases on demand."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # As root the server runs as `postgres`, which must reach the folder: /tmp, not $TMPDIR.
        parent = "/tmp" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="leaderboard-pg-", dir=parent))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._databases = 0
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL")
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self.sockets.mkdir()
        if self._user is not None:
            os.chown(self.sockets, self._user.pw_uid, self._user.pw_gid)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._user is not None else []
        result = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log}"
            )

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",  # the machine's LANG may name a locale that is not generated
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-k {self.sockets} -h 127.0.0.1 -p {self.port} -c max_connections=60"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop; ``immediate`` is a crash (no checkpoint: the restart replays the WAL)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        self._databases += 1
        name = f"store_{os.getpid()}_{self._databases}"
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


#: Where the session's cluster is kept, so that both modules importing the fixture share one.
CLUSTER = pytest.StashKey[PostgresCluster]()


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> PostgresCluster:
    stash = request.config.stash
    if CLUSTER in stash:
        return stash[CLUSTER]
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
            "run scripts/ci-services.sh or `apt-get install postgresql`"
        )
    cluster = PostgresCluster(bindir)
    request.config.add_cleanup(cluster.destroy)
    cluster.init()
    cluster.start()
    stash[CLUSTER] = cluster
    return cluster


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    return pg_cluster.create_database()


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


REPLICA = """
    import sys, time
    from pathlib import Path
    from leaderboard_api.operational.records import Actor
    from leaderboard_api.operational.repository import StateStore

    url, name, go, rounds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    store = StateStore.open(url)  # both replicas migrate at start (the advisory lock)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    for i in range(rounds):
        voter = Actor(f"{name}-voter-{i}", "10.0.0.1")
        store.votes.cast("shared/model", "up" if i % 3 else "down", by=voter)
        store.submissions.submit(f"{name}/model-{i}", by=voter)
        # Both replicas flip the same identity's vote: one row must remain.
        store.votes.cast("contested/model", "up" if i % 2 else "down", by=Actor("same-user"))
    print("done", flush=True)
"""


def test_two_replicas_writing_at_once_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    rounds = 60
    replicas = [python(REPLICA, pg_url, name, str(go), str(rounds)) for name in ("a", "b")]
    for replica in replicas:
        assert replica.stdout is not None
        assert replica.stdout.readline().strip() == "ready", replica.communicate()[1]
    go.touch()
    for replica in replicas:
        _out, err = replica.communicate(timeout=240)
        assert replica.returncode == 0, err

    with StateStore.open(pg_url) as store:
        downs = sum(1 for i in range(rounds) if i % 3 == 0)
        assert store.votes.counts("shared/model") == VoteCounts(
            total=2 * rounds, up=2 * (rounds - downs), down=2 * downs
        )
        assert store.votes.counts("contested/model").total == 1
        models = {s.model for s in store.submissions.list()}
        assert models == {f"{n}/model-{i}" for n in ("a", "b") for i in range(rounds)}
        writes = 2 * rounds * 3
        assert store.change_counter() == writes
        assert len(store.audit(limit=10_000)) == writes


WRITER = """
    import sys
    from leaderboard_api.operational.records import Actor
    from leaderboard_api.operational.repository import StateStore

    store = StateStore.open(sys.argv[1])
    i = 0
    while True:
        submission = store.submissions.submit(f"org/model-{i}", by=Actor("burst"))
        print(submission.id, flush=True)  # acknowledged: the commit has returned
        i += 1
"""


def test_acknowledged_writes_survive_a_server_crash(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    writer = python(WRITER, pg_url)
    assert writer.stdout is not None
    acknowledged = [int(writer.stdout.readline()) for _ in range(150)]
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)  # reaps it and closes its pipes
    # A crash of the server itself: no shutdown checkpoint, the restart replays the WAL.
    pg_cluster.stop("immediate")
    pg_cluster.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            store = StateStore.open(pg_url)
            break
        except Exception:  # the server may still be recovering
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with store:
        stored = {s.id for s in store.submissions.list()}
        assert set(acknowledged) <= stored
        assert store.health()[0]


def test_unreachable_server_is_not_ready() -> None:
    store = StateStore.open(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none?connect_timeout=2",
        migrate=False,
    )
    with store:
        ok, detail = store.health()
    assert not ok
    assert "unreachable" in detail


def test_claims_by_two_replicas_skip_each_others_rows(pg_url: str) -> None:
    """A claimer does not wait for another's uncommitted claim: it takes the next row."""
    with StateStore.open(pg_url) as store:
        first = store.submissions.submit("org/first", by=Actor("u"))
        second = store.submissions.submit("org/second", by=Actor("u"))
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT id FROM submissions WHERE id = %s FOR UPDATE", (first.id,))
        with StateStore.open(pg_url, migrate=False) as other:
            started = time.monotonic()
            claimed = other.submissions.claim(by=Actor("evaluator-b"))
            assert claimed is not None
            assert claimed.id == second.id
            assert time.monotonic() - started < 5
        holder.rollback()
