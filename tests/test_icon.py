"""/v1/icon/{name}: fetched from an allowed host on 127.0.0.1, capped, never redirected away."""

from __future__ import annotations

import json
import threading
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
