"""SIGTERM: the server stops accepting, finishes the responses in flight, and exits 0.

The last tests drive :class:`~leaderboard_api.draining.Drain` directly, without a server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from leaderboard_api.draining import RETRY_AFTER, Drain
from leaderboard_api.observability.metrics import Metrics, MetricsMiddleware, render_metrics
from leaderboard_api.observability.routes import RouteTemplates
from leaderboard_api.serving.fastpath import FastPath
from leaderboard_api.serving.payload import Payload

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
#: Requests pipelined on each slow connection: far more bytes than the socket buffers hold.
PIPELINED = 400


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthcheck_argv() -> list[str]:
    """The image's HEALTHCHECK command (exec form), read from the Dockerfile."""
    logical = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.startswith("HEALTHCHECK"):
            argv: list[str] = json.loads(logical.split("CMD ", 1)[1])
            assert argv[0] == "python"
            return [sys.executable, *argv[1:]]  # the image's python; any python runs it
        logical = ""
    msg = "no HEALTHCHECK in the Dockerfile"
    raise AssertionError(msg)


def request_bytes(path: str, *, close: bool = True) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n{connection}\r\n"
    ).encode()


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_responses(data: bytes) -> list[tuple[int, bytes]]:
    """Split a byte stream into whole responses (status, body); a truncated one fails."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        assert "content-length" in headers, head
        length = int(headers["content-length"])
        assert len(rest) >= length, "truncated body"
        out.append((int(lines[0].split()[1]), rest[:length]))
        data = rest[length:]
    return out


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one ``Connection: close`` response to EOF."""
    (response,) = parse_responses(read_all(sock))
    return response


Server = tuple[subprocess.Popen[bytes], int, Path]


@contextmanager
def running_server(tmp_path: Path, **extra_env: str) -> Iterator[Server]:
    """``python -m leaderboard_api serve`` on a free port, ready; killed if still alive."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LEADERBOARD_") and not k.startswith("OTEL_")
    }
    env["LEADERBOARD_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONUNBUFFERED"] = "1"  # as in the image: log lines reach the file at once
    env.update(extra_env)
    log = tmp_path / "server.log"
    argv = [sys.executable, "-m", "leaderboard_api", "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "not ready:\n" + log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as found:
        yield found


def test_sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_zero(
    server: Server,
) -> None:
    proc, port, log = server
    base = f"http://127.0.0.1:{port}"
    check = subprocess.run(
        healthcheck_argv(), env={**os.environ, "LEADERBOARD_PORT": str(port)}, check=False
    )
    assert check.returncode == 0, "the image's HEALTHCHECK fails against a live server"

    paths = ["/v1/benchmarks", "/v1/tasks", "/v1/models", "/v1/benchmarks/menu"]
    for item in httpx.get(base + "/v1/benchmarks", timeout=10).json()[:3]:
        paths.append("/v1/benchmarks/" + quote(item["name"], safe="/") + "/scores")
    expected = {}
    for path in paths:
        response = httpx.get(base + path, headers={"accept-encoding": "identity"}, timeout=10)
        assert response.status_code == 200, path
        expected[path] = response.content
    biggest = max(expected, key=lambda p: len(expected[p]))

    # Slow readers: many pipelined requests, and nothing read until after SIGTERM. The
    # server's writes back up, so a response is still being written when SIGTERM comes.
    slow = []
    for _ in range(2):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request_bytes(biggest, close=False) * PIPELINED)
        slow.append(sock)
    time.sleep(0.2)

    # A burst of requests on connections opened beforehand, sent together right before
    # SIGTERM; each must come back whole.
    burst = [(path, socket.create_connection(("127.0.0.1", port))) for path in paths * 3]
    results: list[tuple[str, int, bytes] | str] = []
    go = threading.Barrier(len(burst) + 1)

    def send_and_read(path: str, sock: socket.socket) -> None:
        go.wait()
        try:
            sock.sendall(request_bytes(path))
            results.append((path, *read_response(sock)))
        except (OSError, AssertionError) as exc:
            results.append(f"{path}: {exc!r}")
        finally:
            sock.close()

    threads = [threading.Thread(target=send_and_read, args=item) for item in burst]
    for thread in threads:
        thread.start()
    go.wait()
    time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()

    # New connections are refused once the listener is closed.
    refused = False
    while time.monotonic() - signalled < 5 and not refused:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(0.02)
        except ConnectionRefusedError:
            refused = True
    assert refused, "the server still accepts connections 5 s after SIGTERM"
    for thread in threads:
        thread.join(timeout=10)
    # Not exiting while a response is unfinished: the slow readers hold the server.
    time.sleep(0.5)
    assert proc.poll() is None, "exited with responses still being written"

    for sock in slow:
        with sock:
            responses = parse_responses(read_all(sock))
        # Every response started is finished, none cut short (requests left in a pipeline
        # may or may not be answered: HTTP clients retry those).
        assert responses
        assert all(status == 200 for status, _ in responses)
        assert all(body == expected[biggest] for _, body in responses)

    code = proc.wait(timeout=10)
    elapsed = time.monotonic() - signalled
    assert code == 0, log.read_text()[-3000:]
    assert elapsed < 8, f"took {elapsed:.1f}s to exit"
    failures = [r for r in results if isinstance(r, str)]
    assert not failures, failures
    assert len(results) == len(burst)
    for result in results:
        assert not isinstance(result, str)
        path, status, body = result
        assert status == 200, path
        assert body == expected[path], path

    after = subprocess.run(
        healthcheck_argv(),
        env={**os.environ, "LEADERBOARD_PORT": str(port)},
        capture_output=True,
        check=False,
    )
    assert after.returncode != 0


def test_sigterm_flushes_pending_traces(tmp_path: Path) -> None:
    """Spans still queued for export at SIGTERM are written before the process exits."""
    # The batch processor would wait ten minutes: only the shutdown flush can write them.
    with running_server(
        tmp_path,
        OTEL_TRACES_EXPORTER="console",
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_SERVICE_NAME="graceful-test",
    ) as (proc, port, log):
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/v1/benchmarks").status_code == 200
        before = log.read_text()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    text = log.read_text()
    assert "GET /v1/benchmarks" not in before  # still queued when SIGTERM came
    assert "GET /v1/benchmarks" in text, "no span flushed at shutdown:\n" + text[-2000:]
    assert "graceful-test" in text
    assert code == 0, text[-2000:]


GRACE = 2.0


def test_requests_that_cannot_finish_in_the_grace_period_end_cleanly(tmp_path: Path) -> None:
    """A request stuck on a slow upstream gets a 503 problem+json with Retry-After before
    the grace period ends, a client that stopped reading has its connection closed, and
    the log holds no traceback and no 500."""
    from tests.test_icon import hostile_server, with_icon_paths

    with hostile_server() as upstream:
        names = with_icon_paths(tmp_path / "data", upstream, ["/trickle"])
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADERBOARD_", "OTEL_"))}
        env.update(
            LEADERBOARD_DATA=str(tmp_path / "data"),
            LEADERBOARD_PORT=str(port),
            LEADERBOARD_CACHE_DIR="",
            LEADERBOARD_ICON_ALLOWED_HOSTS="127.0.0.1",
            LEADERBOARD_ICON_TIMEOUT_SECONDS="60",
            PYTHONUNBUFFERED="1",
        )
        code = (
            "from leaderboard_api.server import run_server\n"
            "from leaderboard_api.settings import Settings\n"
            f"run_server(Settings(), grace_seconds={GRACE})\n"
        )
        log = tmp_path / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 40
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                try:
                    if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            biggest = "/v1/models"
            reader = socket.socket()
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader.connect(("127.0.0.1", port))
            reader.sendall(request_bytes(biggest, close=False) * PIPELINED)

            answers: list[httpx.Response | BaseException] = []

            def fetch() -> None:
                try:
                    answers.append(httpx.get(f"{base}/v1/icon/{names['/trickle']}", timeout=30))
                except httpx.HTTPError as exc:
                    answers.append(exc)

            thread = threading.Thread(target=fetch)
            thread.start()
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            thread.join(timeout=20)
            answered = time.monotonic() - signalled
            code_ = proc.wait(timeout=10)
            exited = time.monotonic() - signalled
            reader.settimeout(5)
            with reader, contextlib.suppress(ConnectionResetError):
                read_all(reader)  # ends: the server closed the connection
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    (answer,) = answers
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"]
    assert answer.json()["status"] == 503
    assert answered < GRACE + 0.5, f"answered {answered:.1f}s after SIGTERM"
    assert code_ == 0, text[-3000:]
    assert exited < GRACE + 2, f"exited {exited:.1f}s after SIGTERM"
    for bad in ("Traceback", "CancelledError", "Exception in ASGI", "without completing"):
        assert bad not in text, text[-3000:]
    assert "answered 503" in text


# The drain on its own: a fake server cycle, no sockets, no clock (a deadline of zero
# seconds expires on the next turn of the event loop).

Message = MutableMapping[str, Any]


class Cycle:
    """What the drain sees of a server's request cycle: a bound ``send`` and its flag."""

    def __init__(self, *, hold: asyncio.Event | None = None) -> None:
        self.messages: list[Message] = []
        self.disconnected = False
        self.hold = hold  # the client reads nothing until it is set

    async def send(self, message: Message) -> None:
        if self.hold is not None:
            await self.hold.wait()
        if not self.disconnected:
            self.messages.append(message)


def http_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"accept-encoding", b"identity")],
    }


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def start(drain: Drain, scope: dict[str, Any], send: Any) -> asyncio.Task[None]:
    """One request through ``drain`` as a task of its own (as a server runs it)."""

    async def run() -> None:
        await drain(scope, receive, send)

    return asyncio.create_task(run())


async def settle() -> None:
    """Let every task that can run, run (and a zero-second deadline expire)."""
    for _ in range(20):
        await asyncio.sleep(0)


def assert_shutdown_503(messages: list[Message], path: str) -> None:
    start, body = messages
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == RETRY_AFTER.encode()
    assert headers[b"connection"] == b"close"
    problem = json.loads(body["body"])
    assert problem["status"] == 503
    assert problem["instance"] == path


async def test_a_request_still_waiting_at_the_deadline_is_answered_503() -> None:
    entered = asyncio.Event()

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        await asyncio.Event().wait()  # an upstream that never answers

    drain = Drain(stuck)
    cycle = Cycle()
    task = start(drain, http_scope("/v1/icon/x"), cycle.send)
    await entered.wait()
    assert drain.waiting == 1
    drain.begin(within=0)
    await task
    assert not task.cancelled()
    assert task.cancelling() == 0  # the cancellation was ours, and is undone
    assert_shutdown_503(cycle.messages, "/v1/icon/x")
    assert drain.cut_short == 1
    assert drain.waiting == 0

    # After the deadline a request is answered at once, its handler never run.
    late = Cycle()
    entered.clear()
    await drain(http_scope("/v1/icon/y"), receive, late.send)
    assert not entered.is_set()
    assert_shutdown_503(late.messages, "/v1/icon/y")
    assert drain.cut_short == 2


async def test_a_started_response_is_not_cut_and_is_abandoned_at_close() -> None:
    release = asyncio.Event()

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await release.wait()
        await send({"type": "http.response.body", "body": b"late"})

    drain = Drain(streaming)
    cycle = Cycle()
    task = start(drain, http_scope("/slow"), cycle.send)
    await settle()
    drain.begin(within=0)
    await settle()
    assert not task.done()  # not cancelled: its response has started
    assert drain.cut_short == 0
    assert drain.abandon_started() == 1
    assert cycle.disconnected
    release.set()
    await task
    assert [m["type"] for m in cycle.messages] == ["http.response.start"]


async def test_other_exceptions_and_foreign_cancellations_pass_through() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await Drain(failing)(http_scope("/x"), receive, Cycle().send)

    entered = asyncio.Event()

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    drain = Drain(stuck)
    task = start(drain, http_scope("/x"), Cycle().send)
    await entered.wait()
    task.cancel()  # not the drain's: it propagates
    with pytest.raises(asyncio.CancelledError):
        await task
    assert drain.cut_short == 0
    assert drain.waiting == 0


def fast_payload() -> Payload:
    return Payload.build(
        b'{"rows": []}' * 40,
        media_type="application/json",
        last_modified=datetime(2024, 5, 1, tzinfo=UTC),
        cache_control="no-cache",
    )


async def test_guarded_routes_leave_the_fast_path_untracked_and_count_the_503() -> None:
    """Wired as the server wires it: metrics, the fast path, then the framework, with the
    drain's guard around the framework's routes only."""
    entered = asyncio.Event()
    framework = FastAPI()

    @framework.get("/v1/icon/{name}")
    async def icon(name: str) -> dict[str, str]:
        entered.set()
        await asyncio.Event().wait()
        return {"name": name}

    payload = fast_payload()
    metrics = Metrics(process_metrics=False)
    fast = FastPath(framework, lookup=lambda path, query: payload if path == "/v1/fast" else None)
    outer = MetricsMiddleware(
        fast, metrics=metrics, templates=RouteTemplates(["/v1/fast", "/v1/icon/{name}"])
    )
    drain = Drain(framework, http=outer)
    drain.guard_routes(framework)

    # The lifespan goes to the framework (which builds its middleware stack, guard included).
    lifespan: asyncio.Queue[Message] = asyncio.Queue()
    await lifespan.put({"type": "lifespan.startup"})
    sent: list[Message] = []

    async def lifespan_send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            await lifespan.put({"type": "lifespan.shutdown"})

    await drain({"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan.get, lifespan_send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

    # A fast-path answer whose client reads slowly: in flight, but nothing to cut.
    hold = asyncio.Event()
    slow_reader = Cycle(hold=hold)
    fast_task = start(drain, http_scope("/v1/fast"), slow_reader.send)
    await settle()
    assert drain.waiting == 0

    # A route waiting on its upstream: guarded.
    waiting = Cycle()
    route_task = start(drain, http_scope("/v1/icon/a"), waiting.send)
    await entered.wait()
    assert drain.waiting == 1

    drain.begin(within=0)
    await route_task
    assert_shutdown_503(waiting.messages, "/v1/icon/a")
    # Still writing: the drain cuts nothing and keeps no record of it (the server finds
    # and abandons such responses through its own request tasks).
    assert not fast_task.done()
    assert drain.abandon_started() == 0
    hold.set()
    await fast_task
    assert [m["type"] for m in slow_reader.messages] == [
        "http.response.start",
        "http.response.body",
    ]
    assert drain.cut_short == 1
    assert drain.waiting == 0

    text = render_metrics(metrics)[0].decode()
    assert 'http_requests_total{method="GET",route="/v1/icon/{name}",status="503"} 1.0' in text
    assert 'route="/v1/fast",status="200"} 1.0' in text
