"""/v1/icon/{name}: fetched from an allowed host on 127.0.0.1, capped, never redirected away."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.api_support import client_for, copy_sample

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4">'
    b'<rect width="4" height="4"/></svg>'
)


@contextmanager
def icon_server() -> Iterator[tuple[str, list[str]]]:
    """Serves /icon.svg, /big.svg, /away (redirect to another host) and /html."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if self.path == "/away":
                self.send_response(302)
                self.send_header("location", "http://evil.invalid/x.svg")
                self.end_headers()
                return
            if self.path == "/local-redirect":
                self.send_response(301)
                self.send_header("location", "/icon.svg")
                self.end_headers()
                return
            body, kind = {
                "/icon.svg": (SVG, "image/svg+xml"),
                "/big.svg": (SVG * 10_000, "image/svg+xml"),
                "/html": (b"<html></html>", "text/html"),
            }.get(self.path, (b"", "text/plain"))
            self.send_response(200 if body else 404)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def with_icons(dest: Path, base: str) -> Path:
    """A copy of the sample whose benchmarks point their icons at the local server."""
    data = copy_sample(dest)
    path = data / "benchmarks.jsonl"
    icons = ["/icon.svg", "/big.svg", "/away", "/html", "/local-redirect"]
    lines = []
    for i, line in enumerate(path.read_text().splitlines()):
        entry = json.loads(line)
        entry["icon"] = base + icons[i % len(icons)]
        lines.append(json.dumps(entry))
    path.write_text("\n".join(lines) + "\n")
    return data


async def test_icon_proxy(tmp_path: Path) -> None:
    with icon_server() as (base, hits):
        data = with_icons(tmp_path / "data", base)
        names = [
            json.loads(x)["name"] for x in (data / "benchmarks.jsonl").read_text().splitlines()
        ]
        by_icon = dict(zip(["ok", "big", "away", "html", "redirect"], names, strict=False))
        async with client_for(
            data=str(data), icon_allowed_hosts=["127.0.0.1"], icon_max_bytes=10_000
        ) as client:
            ok = await client.get(f"/v1/icon/{by_icon['ok']}")
            assert ok.status_code == 200
            assert ok.content == SVG
            assert ok.headers["content-type"] == "image/svg+xml"
            assert "immutable" in ok.headers["cache-control"]
            assert ok.headers["etag"]
            fetched = len(hits)
            again = await client.get(f"/v1/icon/{by_icon['ok']}")
            assert again.content == SVG
            assert len(hits) == fetched, "the icon is cached, not fetched again"
            big = await client.get(f"/v1/icon/{by_icon['big']}")
            assert big.status_code == 502
            assert big.headers["content-type"] == "application/problem+json"
            away = await client.get(f"/v1/icon/{by_icon['away']}")
            assert away.status_code == 403
            assert "evil.invalid" in away.json()["detail"]
            html = await client.get(f"/v1/icon/{by_icon['html']}")
            assert html.status_code == 502
            redirect = await client.get(f"/v1/icon/{by_icon['redirect']}")
            assert redirect.status_code == 200
            assert redirect.content == SVG
            unknown = await client.get("/v1/icon/NoSuchBenchmark")
            assert unknown.status_code == 404
        async with client_for(data=str(data)) as strict:
            refused = await strict.get(f"/v1/icon/{by_icon['ok']}")
            assert refused.status_code == 403


async def test_robots_and_favicon() -> None:
    async with client_for() as client:
        robots = await client.get("/robots.txt")
        assert robots.status_code == 200
        assert robots.text.startswith("User-agent:")
        icon = await client.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"] == "image/png"
        page = await client.get("/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)
SCRIPT_SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
    b"<script>alert(document.cookie)</script></svg>"
)
#: Seconds between the bytes of /trickle: each read is quick, the whole body is not.
TRICKLE_GAP = 0.3


@contextmanager
def hostile_server() -> Iterator[str]:
    """Upstreams that lie or stall: a trickling body, mislabelled bytes, scripted SVG."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/trickle":
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", "200")
                self.end_headers()
                try:
                    for _ in range(200):
                        self.wfile.write(b"\x89")
                        self.wfile.flush()
                        time.sleep(TRICKLE_GAP)
                except OSError:
                    pass  # the proxy gave up, as it should
                return
            body, kind = {
                "/script.svg": (SCRIPT_SVG, "image/svg+xml"),
                "/png-as-text": (PNG, "text/plain"),
                "/html-as-png": (b"<html><script>alert(1)</script></html>", "image/png"),
            }[self.path]
            self.send_response(200)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def with_icon_paths(dest: Path, base: str, paths: list[str]) -> dict[str, str]:
    """Point the sample's first benchmarks at ``paths``; returns path -> benchmark name."""
    data = copy_sample(dest)
    file = data / "benchmarks.jsonl"
    entries = [json.loads(line) for line in file.read_text().splitlines()]
    names = {}
    for entry, path in zip(entries, paths, strict=False):
        entry["icon"] = base + path
        names[path] = entry["name"]
    file.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return names


async def test_one_deadline_bounds_the_whole_fetch(tmp_path: Path) -> None:
    with hostile_server() as base:
        names = with_icon_paths(tmp_path / "data", base, ["/trickle"])
        async with client_for(
            data=str(tmp_path / "data"), icon_allowed_hosts=["127.0.0.1"], icon_timeout_seconds=1
        ) as client:
            started = time.monotonic()
            response = await client.get(f"/v1/icon/{names['/trickle']}")
            elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    # Every single read came within the limit (a byte each 0.3 s); the body as a whole not.
    assert elapsed < 1.8, f"took {elapsed:.1f}s with a 1 s limit"


async def test_svg_is_sandboxed_and_types_come_from_the_bytes(tmp_path: Path) -> None:
    with hostile_server() as base:
        paths = ["/script.svg", "/png-as-text", "/html-as-png"]
        names = with_icon_paths(tmp_path / "data", base, paths)
        async with client_for(
            data=str(tmp_path / "data"), icon_allowed_hosts=["127.0.0.1"]
        ) as client:
            svg = await client.get(f"/v1/icon/{names['/script.svg']}")
            assert svg.status_code == 200
            assert svg.headers["content-type"] == "image/svg+xml"
            csp = svg.headers["content-security-policy"]
            assert csp == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
            assert svg.headers["x-content-type-options"] == "nosniff"
            assert svg.headers["content-disposition"] == "inline"
            cached = await client.get(f"/v1/icon/{names['/script.svg']}")  # the fast path
            assert cached.headers["content-security-policy"] == csp
            png = await client.get(f"/v1/icon/{names['/png-as-text']}")
            assert png.status_code == 200
            assert png.headers["content-type"] == "image/png"
            assert png.headers["x-content-type-options"] == "nosniff"
            assert png.content == PNG
            html = await client.get(f"/v1/icon/{names['/html-as-png']}")
            assert html.status_code == 502
            assert html.headers["content-type"] == "application/problem+json"
