"""Helpers for API tests: a started app (lifespan run, warm) with an httpx client on it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from leaderboard_api.app import LeaderboardApp, create_app
from leaderboard_api.dataset.sources import sample_path
from leaderboard_api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def copy_sample(dest: Path) -> Path:
    """A writable copy of the embedded sample dataset (mtimes kept, so ids match)."""
    shutil.copytree(sample_path(), dest, copy_function=shutil.copy2)
    return dest


def settings(**overrides: Any) -> Settings:
    # The cold-build limit is off: tests build hundreds of parameter sets from one address;
    # tests/test_api_cold_limit.py turns it on.
    base: dict[str, Any] = {"cache_dir": None, "state": "none", "rate_limit_cold_builds": ""}
    base.update(overrides)
    return Settings(**base)


async def wait_ready(app: LeaderboardApp, *, timeout: float = 60.0) -> None:
    state = app.state.lb
    deadline = time.monotonic() + timeout
    while not (state.ready and state.warm_done):
        if state.last_error is not None:
            msg = f"app failed to start: {state.last_error}"
            raise RuntimeError(msg)
        if time.monotonic() > deadline:
            raise TimeoutError("app not ready")
        await asyncio.sleep(0.01)
    # Let the second warmup phase (tasks, models) finish too, so every route is preloaded.
    while not state.warm_done:
        if time.monotonic() > deadline:
            raise TimeoutError("warmup did not finish")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(app: LeaderboardApp) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan, wait until warm, and yield a client bound to it."""
    async with app.router.lifespan_context(app):
        await wait_ready(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@contextlib.asynccontextmanager
async def client_for(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings(**overrides))) as client:
        yield client


AsgiMessage = MutableMapping[str, Any]


async def asgi_call(
    app: Callable[[Any, Any, Any], Awaitable[None]],
    *,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One bodyless request straight into an ASGI app: (status, headers, body)."""
    messages: list[AsgiMessage] = []

    async def send(message: AsgiMessage) -> None:
        messages.append(message)

    async def receive() -> AsgiMessage:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": headers,
    }
    await app(scope, receive, send)
    start, body = messages
    return start["status"], list(start["headers"]), body["body"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60.0, with_pid: bool = False
) -> Iterator[Any]:
    """A real ``leaderboard-api serve`` on 127.0.0.1; yields its base URL once /ready is 200."""
    import os

    port = free_port()
    full_env = {
        **os.environ,
        "LEADERBOARD_CACHE_DIR": "",
        "LEADERBOARD_RATE_LIMIT_COLD_BUILDS": "",  # as settings() above
        **(env or {}),
    }
    import tempfile

    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaderboard_api", "serve", "--port", str(port), *args],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                msg = f"server exited with {proc.returncode}: {err[-2000:]}"
                raise RuntimeError(msg)
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server not ready")
            time.sleep(0.05)
        yield (base, proc.pid) if with_pid else base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run an ASGI app on a real uvicorn server on 127.0.0.1 (free port) in a thread."""
    import threading

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            msg = "uvicorn did not start"
            raise RuntimeError(msg)
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_served(
    proc: subprocess.Popen[bytes], url: str, log: Path, *, timeout: float = 60.0
) -> None:
    """Wait until the server process at ``url`` answers /ready with 200 (fail with the
    tail of its ``log`` if it exits first, or after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"server not ready after {timeout:.0f} s")
        time.sleep(0.1)
