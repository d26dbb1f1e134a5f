"""Two replicas behind nginx (load balancer + proxy_cache) behave as one cacheable service.

The recipe is deploy/nginx/leaderboard.conf.template, rendered here with real ports; the
replicas are real ``python -m leaderboard_api serve`` processes on 127.0.0.1 sharing one
dataset directory, each with its own disk cache. The data change is picked up by restarting
the replicas one at a time (a rolling restart, as a Deployment rollout would do), and by
both replicas reloading in place (``POST /admin/reload``, as their watchers would).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "nginx" / "leaderboard.conf.template"
SAMPLE = ROOT / "leaderboard_api" / "sample"
MAX_AGE = 2
ADMIN_TOKEN = "replica-test-token"
#: The template's upstream fail_timeout, in seconds.
FAIL_TIMEOUT = 2
#: nginx keeps expiry times in whole seconds: an entry may stay fresh up to 1 s longer.
NGINX_CLOCK = 1
ENCODINGS = ("identity", "gzip", "br, gzip, zstd")


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").is_file():
        found = "/usr/sbin/nginx"
    return found


pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, *, proc: subprocess.Popen[bytes], log: Path, timeout: float = 40) -> None:
    """Poll ``url`` until it answers 200; fail with the process log if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class Replica:
    """One ``leaderboard-api serve`` process with its own port and disk cache."""

    name: str
    port: int
    data: Path
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERBOARD_")}
        env.update(
            LEADERBOARD_CACHE_DIR=str(self.workdir / f"{self.name}-cache"),
            LEADERBOARD_CACHE_CONTROL=f"public, max-age={MAX_AGE}",
            LEADERBOARD_ADMIN_TOKEN=ADMIN_TOKEN,
            HF_HUB_OFFLINE="1",
        )
        self.starts += 1
        argv = [sys.executable, "-m", "leaderboard_api", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--data", str(self.data)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        assert self.proc is not None
        wait_for(self.base + "/ready", proc=self.proc, log=self.log)

    def stop(self) -> int:
        """SIGTERM and wait: the exit code of a graceful stop."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.proc = None
        return code


@dataclass
class Cluster:
    replicas: tuple[Replica, Replica]
    nginx: subprocess.Popen[bytes]
    nginx_port: int
    prefix: Path
    data: Path
    urls: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"


def render_template(*, listen: str, replicas: tuple[str, str]) -> str:
    """Fill the template's ``${NAME}`` placeholders, as ``envsubst`` with a list would."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    values = {
        "NGINX_USER": f"{user} {group}",
        "NGINX_LISTEN": listen,
        "REPLICA_1": replicas[0],
        "REPLICA_2": replicas[1],
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert f"fail_timeout={FAIL_TIMEOUT}s" in text
    left = re.findall(r"\$\{[A-Za-z_0-9]+\}", text)
    assert not left, f"unrendered placeholders: {left}"
    return text


def start_nginx(
    prefix: Path, *, port: int, replicas: tuple[Replica, Replica]
) -> subprocess.Popen[bytes]:
    for folder in ("logs", "temp", "cache"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_template(
            listen=f"127.0.0.1:{port}",
            replicas=(f"127.0.0.1:{replicas[0].port}", f"127.0.0.1:{replicas[1].port}"),
        )
    )
    binary = nginx_binary()
    assert binary is not None
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    checked = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    log = prefix / "logs" / "stderr.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text() + (prefix / "logs" / "error.log").read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.05)
    pytest.fail("nginx did not start listening")


def sample_urls(base: str) -> list[str]:
    """Lists, every benchmark's tables, and a few tasks and models (first, second, last)."""
    names: dict[str, list[str]] = {}
    for kind in ("benchmarks", "tasks", "models"):
        listing = httpx.get(f"{base}/v1/{kind}", timeout=10)
        assert listing.status_code == 200, listing.text
        names[kind] = [item["name"] for item in listing.json()]
        assert names[kind], f"/v1/{kind} is empty"
    urls = ["/v1/benchmarks", "/v1/benchmarks/menu", "/v1/tasks", "/v1/models"]
    for name in names["benchmarks"]:
        path = "/v1/benchmarks/" + quote(name, safe="/")
        urls += [path, path + "/scores", path + "/scores.csv", path + "/summary"]
    for kind in ("tasks", "models"):
        picked = dict.fromkeys([*names[kind][:2], names[kind][-1]])
        for name in picked:
            path = f"/v1/{kind}/" + quote(name, safe="/")
            urls += [path, path + "/scores"]
    return urls


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not (SAMPLE / "results").is_dir():
        pytest.skip("the embedded sample dataset is missing")
    work = tmp_path_factory.mktemp("replicas")
    data = work / "dataset"
    shutil.copytree(SAMPLE, data)
    replicas = (
        Replica("a", free_port(), data, work),
        Replica("b", free_port(), data, work),
    )
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready()
        port = free_port()
        nginx = start_nginx(work / "nginx", port=port, replicas=replicas)
        found = Cluster(replicas, nginx, port, work / "nginx", data)
        found.urls = sample_urls(replicas[0].base)
        yield found
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)  # graceful stop
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        for replica in replicas:
            if replica.proc is not None:
                replica.stop()


def fetch_raw(
    client: httpx.Client, url: str, *, encoding: str
) -> tuple[int, str | None, str | None, bytes]:
    """Status, ETag, Content-Encoding and the body exactly as sent (not decoded)."""
    with client.stream("GET", url, headers={"accept-encoding": encoding}) as response:
        body = b"".join(response.iter_raw())
        return (
            response.status_code,
            response.headers.get("etag"),
            response.headers.get("content-encoding"),
            body,
        )


def test_replicas_answer_with_identical_bytes_and_etags(cluster: Cluster) -> None:
    a, b = cluster.replicas
    ok = 0
    with (
        httpx.Client(base_url=a.base, timeout=30) as ca,
        httpx.Client(base_url=b.base, timeout=30) as cb,
    ):
        for url in cluster.urls:
            for encoding in ENCODINGS:
                first = fetch_raw(ca, url, encoding=encoding)
                second = fetch_raw(cb, url, encoding=encoding)
                assert first[:3] == second[:3], (url, encoding)
                assert first[3] == second[3], (url, encoding)
                if first[0] == 200:
                    assert first[1], f"{url}: no ETag"
                    ok += 1
    # Lists and every benchmark's scores must have answered, not only errors.
    assert ok >= len(ENCODINGS) * (4 + len(cluster.urls) // 4)


def test_revalidation_gets_304_from_either_replica_and_through_nginx(cluster: Cluster) -> None:
    a, b = cluster.replicas
    urls = cluster.urls[:12]
    etags: dict[str, str] = {}
    for url in urls:
        response = httpx.get(a.base + url, headers={"accept-encoding": "gzip"}, timeout=10)
        assert response.status_code == 200, url
        etags[url] = response.headers["etag"]
    # An ETag minted by one replica is current on the other.
    for replica in (a, b):
        for url in urls:
            again = httpx.get(
                replica.base + url,
                headers={"accept-encoding": "gzip", "if-none-match": etags[url]},
                timeout=10,
            )
            assert again.status_code == 304, (replica.name, url)
            assert again.headers["etag"] == etags[url]
    # Through nginx: fresh entries answer 304 from the cache; after max-age nginx
    # revalidates with the stored ETag, and each replica it reaches answers 304.
    log = cluster.prefix / "logs" / "access.log"
    with httpx.Client(base_url=cluster.base, timeout=10) as client:
        for url in urls:
            assert client.get(url, headers={"accept-encoding": "gzip"}).status_code == 200
        start = log.stat().st_size
        time.sleep(MAX_AGE + NGINX_CLOCK + 0.2)
        for _ in range(2):
            for url in urls:
                conditional = {"accept-encoding": "gzip", "if-none-match": etags[url]}
                response = client.get(url, headers=conditional)
                assert response.status_code == 304, url
                assert response.headers["etag"] == etags[url]
    with log.open() as fh:
        fh.seek(start)
        lines = fh.read().splitlines()
    revalidated = Counter(
        match.group(1)
        for line in lines
        if (match := re.search(r"cache=REVALIDATED upstream=(\S+) upstream_status=304", line))
    )
    assert set(revalidated) == {f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"}, lines


def pick_victim(data: Path) -> str:
    """A model with results in the largest results file (the last by name)."""
    files = sorted((data / "results").glob("*.parquet"))
    largest = max(files, key=lambda f: pl.read_parquet(f).height)
    return str(pl.read_parquet(largest)["model_name"].unique().sort()[-1])


def victim_and_table(cluster: Cluster) -> tuple[str, str]:
    """A model to drop, and a leaderboard table that lists it (so it must change)."""
    victim = pick_victim(cluster.data)
    base = cluster.replicas[0].base
    table = next(
        url
        for url in cluster.urls
        if url.startswith("/v1/benchmarks/")
        and url.endswith("/scores")
        and victim in httpx.get(base + url, timeout=10).text
    )
    return victim, table


def drop_model(data: Path, victim: str) -> None:
    """Rewrite the results files without ``victim``'s rows."""
    for file in sorted((data / "results").glob("*.parquet")):
        frame = pl.read_parquet(file)
        kept = frame.filter(pl.col("model_name") != victim)
        if kept.height != frame.height:
            assert kept.height > 0
            kept.write_parquet(file)


def test_rolling_restart_on_new_data_serves_new_bytes_without_errors(cluster: Cluster) -> None:
    a, b = cluster.replicas
    victim, table = victim_and_table(cluster)
    old = httpx.get(a.base + table, timeout=10)
    watched = [table, "/v1/models", "/v1/benchmarks", "/ready"]
    drop_model(cluster.data, victim)

    statuses: Counter[int] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        seen: dict[str, str] = {}
        with httpx.Client(base_url=cluster.base, timeout=10) as client:
            while not stop.is_set():
                for url in watched:
                    headers = {"accept-encoding": "gzip"}
                    if url in seen:
                        headers["if-none-match"] = seen[url]
                    try:
                        response = client.get(url, headers=headers)
                    except httpx.TransportError as exc:
                        failures.append(f"{url}: {exc!r}")
                        continue
                    statuses[response.status_code] += 1
                    if response.status_code == 200 and "etag" in response.headers:
                        seen[url] = response.headers["etag"]
                    if response.status_code not in (200, 304):
                        failures.append(f"{url}: {response.status_code} {response.text[:200]}")
                time.sleep(0.01)

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        for replica in (a, b):
            replica.stop()  # its exit status is test_graceful_shutdown's business
            last_stop = time.monotonic()
            replica.start()
            replica.wait_ready()
            # nginx skipped this replica while it was down or loading (fail_timeout); stop
            # the next one only once nginx takes this one back, as minReadySeconds does.
            time.sleep(FAIL_TIMEOUT + 0.5)
        # Both replicas now serve the new data, byte for byte alike.
        new_a = httpx.get(a.base + table, timeout=10)
        new_b = httpx.get(b.base + table, timeout=10)
        assert new_a.headers["etag"] == new_b.headers["etag"] != old.headers["etag"]
        assert new_a.content == new_b.content
        assert victim not in new_a.text
        # Whatever nginx cached before the last old replica stopped is stale after max-age.
        deadline = last_stop + MAX_AGE + NGINX_CLOCK + 1.5
        while True:
            through = httpx.get(cluster.base + table, timeout=10)
            if through.content == new_a.content:
                break
            assert time.monotonic() < deadline, "nginx still serves the old bytes after max-age"
            time.sleep(0.1)
        assert through.headers["etag"] == new_a.headers["etag"]
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not failures, failures[:10]
    assert set(statuses) <= {200, 304}
    assert sum(statuses.values()) > 50, statuses


def test_live_reload_on_both_replicas_serves_new_bytes_without_errors(cluster: Cluster) -> None:
    """Both replicas reload in place; nginx serves the new bytes after max-age, no errors."""
    a, b = cluster.replicas
    victim, table = victim_and_table(cluster)
    old = httpx.get(a.base + table, timeout=10)
    drop_model(cluster.data, victim)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=cluster.base, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.get(table, headers={"accept-encoding": "gzip"})
                except httpx.TransportError as exc:
                    failures.append(repr(exc))
                    continue
                statuses[response.status_code] += 1
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                time.sleep(0.01)

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        for replica in (a, b):
            done = httpx.post(f"{replica.base}/admin/reload", headers=auth, timeout=60)
            assert done.status_code == 200, done.text
            assert done.json()["result"] == "swapped"
        swapped_at = time.monotonic()
        new_a = httpx.get(a.base + table, timeout=10)
        new_b = httpx.get(b.base + table, timeout=10)
        assert new_a.headers["etag"] == new_b.headers["etag"] != old.headers["etag"]
        assert new_a.content == new_b.content
        deadline = swapped_at + MAX_AGE + NGINX_CLOCK + 1.5
        while True:
            through = httpx.get(cluster.base + table, timeout=10)
            if through.content == new_a.content:
                break
            assert time.monotonic() < deadline, "nginx still serves the old bytes after max-age"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not failures, failures[:10]
    assert sum(statuses.values()) > 20, statuses
