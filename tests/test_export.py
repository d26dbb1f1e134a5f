"""Static export: files, manifest and determinism; nginx (and Caddy) serving it like the live API.

nginx (Debian's package) runs as a real process on 127.0.0.1 with a full nginx.conf that
includes the generated nginx-maps.conf and nginx.conf.snippet; the live API runs in-process
on the same embedded sample.  Every exported path is fetched from both with several
Accept-Encoding values and compared byte for byte and header for header.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from leaderboard_api.app import create_app
from leaderboard_api.export import ExportError, export_site, write_export
from leaderboard_api.serving.payload import Payload
from tests.api_support import running, settings

ROOT = Path(__file__).resolve().parents[1]
#: Accept-Encoding values every path is fetched with.
ENCODINGS = ("identity", "gzip", "br", "zstd", "gzip, deflate, br, zstd")
#: Headers that must be identical on a 200 from the export and from the live API.
SAME = (
    "content-type",
    "content-length",
    "content-encoding",
    "content-disposition",
    "etag",
    "vary",
    "cache-control",
    "last-modified",
)
#: Headers a 304 must carry like the live one.
SAME_304 = ("etag", "vary", "cache-control", "content-disposition")


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").is_file():
        found = "/usr/sbin/nginx"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(proc: subprocess.Popen[bytes], port: int, *, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"server not listening on {port}:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def export(out: Path) -> int:
    return asyncio.run(export_site(settings(), out=out))


def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((out / "manifest.json").read_bytes())
    return data


def url(path: str) -> str:
    return quote(path, safe="/")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "site"
    assert export(out) == len(manifest(out)["routes"])
    return out


@pytest.fixture(scope="module")
def nginx(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed")
    prefix = tmp_path_factory.mktemp("nginx")
    for folder in ("logs", "temp"):
        (prefix / folder).mkdir()
    port = free_port()
    # As root, workers need a user that can read tmp_path (0700 under pytest).
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = " ".join(
        f"{name}_temp_path temp/{name};" for name in ("proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\nerror_log logs/error.log;\npid logs/nginx.pid;\n"
        "events { worker_connections 256; }\n"
        "http {\n  access_log logs/access.log;\n  client_body_temp_path temp/body;\n"
        f"  {temps}\n  include {exported / 'nginx-maps.conf'};\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n"
        f"    include {exported / 'nginx.conf.snippet'};\n  }}\n}}\n"
    )
    argv = [binary, "-p", str(prefix), "-c", str(conf)]
    checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    log = prefix / "logs" / "stderr.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*argv, "-g", "daemon off;"], stdout=sink, stderr=sink)
    try:
        wait_listening(proc, port, log=prefix / "logs" / "error.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
async def live() -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings())) as client:
        yield client


async def fetch(
    client: httpx.AsyncClient, path: str, *, method: str = "GET", query: str = "", **headers: str
) -> tuple[int, httpx.Headers, bytes]:
    """Status, headers and the body exactly as sent (not decoded)."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    target = url(path) + (f"?{query}" if query else "")
    async with client.stream(method, target, headers=sent) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
        return response.status_code, response.headers, body


def pick(headers: httpx.Headers, names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: headers.get(name) for name in names}


async def compare_every_route(server: str, live: httpx.AsyncClient, routes: list[str]) -> int:
    """Fetch every path with every coding from ``server`` and live; return the 304s checked."""
    checked = 0
    async with httpx.AsyncClient(base_url=server, timeout=10) as static:
        for path in routes:
            for coding in ENCODINGS:
                want = await fetch(live, path, accept_encoding=coding)
                got = await fetch(static, path, accept_encoding=coding)
                assert want[0] == 200, (path, coding)
                assert got[0] == 200, (path, coding, got[2][:200])
                assert got[2] == want[2], (path, coding)
                assert pick(got[1], SAME) == pick(want[1], SAME), (path, coding)
                etag = want[1]["etag"]
                again = await fetch(static, path, accept_encoding=coding, if_none_match=etag)
                assert again[0] == 304, (path, coding)
                assert again[2] == b""
                assert again[1]["etag"] == etag, (path, coding)
                checked += 1
    return checked


async def test_nginx_serves_every_route_like_the_live_api(
    exported: Path, nginx: str, live: httpx.AsyncClient
) -> None:
    routes = [route["path"] for route in manifest(exported)["routes"]]
    assert "/" in routes
    assert "/v1/benchmarks" in routes
    assert any(path.endswith("/scores.csv") and " " in path for path in routes)
    checked = await compare_every_route(nginx, live, routes)
    assert checked == len(routes) * len(ENCODINGS)


async def test_nginx_conditional_requests_and_edges_match_live(
    exported: Path, nginx: str, live: httpx.AsyncClient
) -> None:
    entry = next(r for r in manifest(exported)["routes"] if r["path"].endswith("/scores.csv"))
    path, etags = entry["path"], entry["etags"]
    assert {"br", "gzip", "identity"} <= set(etags)
    async with httpx.AsyncClient(base_url=nginx, timeout=10) as static:
        cases: list[dict[str, str]] = [
            # a family member other than the negotiated coding: 304 naming that member
            {"accept_encoding": "br", "if_none_match": etags["gzip"]},
            {"accept_encoding": "br", "if_none_match": f'W/"nope", W/{etags["identity"]}'},
            {"accept_encoding": "gzip", "if_none_match": "*"},
            {"accept_encoding": "br", "if_modified_since": entry["lastModified"]},
            {"accept_encoding": "br", "if_modified_since": "Sat, 01 Jan 2000 00:00:00 GMT"},
            # If-None-Match wins over If-Modified-Since
            {"if_none_match": '"nope"', "if_modified_since": entry["lastModified"]},
            {"accept_encoding": "gzip;q=0, br;q=0"},
            {"accept_encoding": "*"},
            {"accept_encoding": "*;q=0, gzip"},
            {"accept_encoding": "x-gzip"},
        ]
        for headers in cases:
            want = await fetch(live, path, **headers)
            got = await fetch(static, path, **headers)
            names = SAME if want[0] == 200 else SAME_304
            assert (got[0], pick(got[1], names), got[2]) == (
                want[0],
                pick(want[1], names),
                want[2],
            ), headers
        head = await fetch(static, path, method="HEAD", accept_encoding="br")
        want_head = await fetch(live, path, method="HEAD", accept_encoding="br")
        assert (head[0], head[2]) == (200, b"")
        assert pick(head[1], SAME) == pick(want_head[1], SAME)
        # What the export cannot answer is refused rather than answered wrongly.
        assert (await fetch(live, path, query="languages=eng"))[0] == 200
        assert (await fetch(static, path, query="languages=eng"))[0] == 404
        assert (await fetch(static, path, query="languages="))[0] == 200
        assert (await fetch(static, "/v1/benchmarks", query="cache-buster=1"))[0] == 200
        assert (await fetch(static, "/app.js", query="languages=eng"))[0] == 200
        missing_paths = ("/v1/nope", "/v1/benchmarks/", path + "/index", "/v1/Benchmarks")
        for missing in (*missing_paths, "/manifest.json", "/nginx.conf.snippet", "/index.html.br"):
            assert (await fetch(static, missing))[0] == 404, missing
        assert "etag" not in (await fetch(static, "/v1/nope"))[1]


async def test_caddy_serves_every_route_like_the_live_api(
    exported: Path, tmp_path: Path, live: httpx.AsyncClient
) -> None:
    binary = shutil.which("caddy")
    if binary is None:
        pytest.skip("caddy is not installed")
    port = free_port()
    wrapper = tmp_path / "Caddyfile"
    # No admin endpoint, no TLS, and never touch the system trust store.
    wrapper.write_text(
        "{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n\tskip_install_trust\n}\n"
        f"import {exported / 'Caddyfile'}\n"
    )
    env = {
        **os.environ,
        "LEADERBOARD_EXPORT_ADDRESS": f"http://127.0.0.1:{port}",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    log = tmp_path / "caddy.log"
    argv = [binary, "run", "--config", str(wrapper), "--adapter", "caddyfile"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=sink)
    try:
        wait_listening(proc, port, log=log)
        routes = [route["path"] for route in manifest(exported)["routes"]]
        checked = await compare_every_route(f"http://127.0.0.1:{port}", live, routes)
        assert checked == len(routes) * len(ENCODINGS)
        csv = next(path for path in routes if path.endswith("/scores.csv"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as caddy:
            assert (await fetch(caddy, csv, query="languages=eng"))[0] == 404
            assert (await fetch(caddy, csv, query="cache-buster=1"))[0] == 200
            for missing in ("/v1/nope", "/v1/benchmarks/", csv + "/index", "/manifest.json"):
                assert (await fetch(caddy, missing))[0] == 404, missing
    finally:
        stop(proc)


def test_manifest_describes_every_file(exported: Path) -> None:
    data = manifest(exported)
    routes = data["routes"]
    paths = [route["path"] for route in routes]
    assert paths == sorted(paths)
    assert len(set(paths)) == len(paths)
    assert data["snapshot"]
    for route in routes:
        identity = (exported / route["files"]["identity"]).read_bytes()
        digest = hashlib.blake2b(identity, digest_size=16).hexdigest()
        assert route["etag"] == route["etags"]["identity"] == f'"{digest}"', route["path"]
        stamp = int(parsedate_to_datetime(route["lastModified"]).timestamp())
        for coding, name in route["files"].items():
            file = exported / name
            assert file.stat().st_size == route["sizes"][coding]
            assert int(file.stat().st_mtime) == stamp
            assert Path(f"{file}.etag").read_text() == route["etags"][coding]
        if route["path"].startswith("/v1/"):
            assert route["files"]["identity"] == route["path"][1:] + "/index"
        if route["path"].endswith(".csv"):
            assert route["contentType"] == "text/csv; charset=utf-8"
            assert route["headers"]["content-disposition"].startswith("attachment;")
    by_path = {route["path"]: route for route in routes}
    assert by_path["/"]["files"] == by_path["/index.html"]["files"]
    assert by_path["/favicon.ico"]["vary"] is None  # too small to be compressed


def snapshot_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), int(p.stat().st_mtime))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_export_is_deterministic_and_replaces_a_previous_export(
    exported: Path, tmp_path: Path
) -> None:
    first = snapshot_tree(exported)
    # The CLI, in another process, into another directory: same bytes but the root path.
    other = tmp_path / "again"
    env = {**os.environ, "LEADERBOARD_CACHE_DIR": ""}
    done = subprocess.run(
        [sys.executable, "-m", "leaderboard_api", "export", str(other)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"exported {len(manifest(exported)['routes'])} routes" in done.stdout
    second = snapshot_tree(other)
    assert set(second) == set(first)
    for name, (data, mtime) in first.items():
        if name in ("nginx.conf.snippet", "Caddyfile"):
            data = data.replace(str(exported).encode(), str(other).encode())
        assert second[name] == (data, mtime), name
    # Exporting over a previous export replaces it whole (stale files go).
    (other / "v1" / "stale").mkdir()
    export(other)
    assert snapshot_tree(other) == second


def test_export_refuses_a_directory_that_is_not_an_export(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an export"):
        export(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_paths_that_cannot_be_laid_out_are_refused(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    def payload(body: bytes) -> Payload:
        moment = datetime(2024, 1, 1, tzinfo=UTC)
        return Payload.build(
            body, media_type="application/json", last_modified=moment, cache_control="x"
        )

    with pytest.raises(ExportError, match="clashes"):
        write_export(
            api={"/v1/a": payload(b"1"), "/v1/a/index": payload(b"2")},
            static={},
            out=tmp_path / "a",
        )
    with pytest.raises(ExportError, match="segment"):
        write_export(api={"/v1/a/../b": payload(b"1")}, static={}, out=tmp_path / "b")
    with pytest.raises(ExportError, match=r"\$"):
        write_export(api={}, static={"/a$b.js": payload(b"1")}, out=tmp_path / "c")
    assert not any(tmp_path.iterdir())  # nothing half-written is left behind
