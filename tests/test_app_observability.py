"""The real app's /metrics and traces: fast-path requests counted, bounded labels, spans."""

from __future__ import annotations

import random
import string
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from leaderboard_api.app import create_app
from tests.api_support import free_port, running, settings
from tests.test_observability_tracing import CALLER_SPAN, CALLER_TRACE, _otlp_receiver

ENG = "TEB(eng, v1)"
SCORES_TEMPLATE = "/v1/benchmarks/{name:path}/scores"


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples(text) if n == name and labels.items() <= lab.items()]
    return sum(found)


async def test_metrics_count_fast_path_and_cold_requests() -> None:
    app = create_app(settings())
    async with running(app) as client:
        fast = await client.get(f"/v1/benchmarks/{ENG}/scores")
        assert fast.status_code == 200
        etag = fast.headers["etag"]
        for _ in range(4):
            assert (
                await client.get(f"/v1/benchmarks/{ENG}/scores", headers={"if-none-match": etag})
            ).status_code == 304
        await client.head(f"/v1/benchmarks/{ENG}/scores")
        await client.get("/v1/benchmarks/Nope/scores")
        await client.get("/definitely/not/here")
        await client.get(f"/v1/benchmarks/{ENG}/scores", params={"languages": "fra"})
        scrape = await client.get("/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["cache-control"] == "no-store"
        text = scrape.text
    snapshot_id = app.state.lb.loaded.snapshot.id
    assert value(text, "http_requests_total", route=SCORES_TEMPLATE, status="304") == 4
    assert (
        value(text, "http_requests_total", route=SCORES_TEMPLATE, status="200", method="GET") >= 2
    )
    assert value(text, "http_requests_total", route=SCORES_TEMPLATE, method="HEAD") == 1
    assert value(text, "http_requests_total", route=SCORES_TEMPLATE, status="404") == 1
    assert value(text, "http_requests_total", route="<unmatched>", status="404") == 1
    assert value(text, "http_request_duration_seconds_count", route=SCORES_TEMPLATE) >= 7
    assert value(text, "leaderboard_dataset_info", snapshot=snapshot_id) == 1
    assert value(text, "leaderboard_dataset_rows") == app.state.lb.loaded.snapshot.stats.rows
    assert value(text, "leaderboard_cache_requests_total", result="hit") >= 5
    assert value(text, "leaderboard_cache_requests_total", result="miss") >= 1
    assert value(text, "leaderboard_warmup_seconds") > 0
    assert value(text, "leaderboard_payload_build_seconds_count", kind="benchmark-scores") >= 1
    raw_paths = {lab.get("route", "") for _, lab, _ in samples(text)}
    assert not any("TEB(" in r or "Nope" in r for r in raw_paths)


async def test_label_cardinality_stays_bounded() -> None:
    app = create_app(settings())
    rng = random.Random(7)

    def word() -> str:
        return "".join(rng.choices(string.ascii_letters, k=12))

    async with running(app) as client:
        for i in range(1000):
            if i % 2:
                await client.get(f"/{word()}/{word()}")
            else:
                await client.get(f"/v1/benchmarks/{word()}/scores")
        text = (await client.get("/metrics")).text
    series = [s for s in samples(text) if s[0].startswith("http_")]
    routes = {lab["route"] for _, lab, _ in series if "route" in lab}
    assert routes <= {"<unmatched>", SCORES_TEMPLATE, "/metrics"}
    assert len(series) < 200


def test_traces_of_a_real_server(tmp_path: object) -> None:
    """A served request continues the caller's trace; load, warmup and builds are spans."""
    with _otlp_receiver() as (endpoint, received):
        port = free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "lb-test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "LEADERBOARD_CACHE_DIR": "",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "leaderboard_api", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server not ready"
                time.sleep(0.05)
            traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
            response = httpx.get(
                f"{base}/v1/benchmarks/{ENG}/scores", headers={"traceparent": traceparent}
            )
            assert response.status_code == 200
            cold = httpx.get(f"{base}/v1/benchmarks/{ENG}/scores", params={"languages": "deu"})
            assert cold.status_code == 200
            for path in ("/health", "/ready", "/metrics"):
                httpx.get(base + path)
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        names = [s["name"] for s in received.spans]
        assert received.paths
        assert all(p == "/v1/traces" for p in received.paths)
        assert "dataset.load" in names
        assert "warmup" in names
        servers = [
            s for s in received.spans if s["attributes"].get("http.route") == SCORES_TEMPLATE
        ]
        assert len(servers) == 2
        continued = [s for s in servers if s["trace_id"] == CALLER_TRACE]
        assert len(continued) == 1
        assert continued[0]["parent_span_id"] == CALLER_SPAN
        cold_span = next(s for s in servers if s["trace_id"] != CALLER_TRACE)
        builds = [
            s
            for s in received.spans
            if s["name"] == "payload.build" and s["trace_id"] == cold_span["trace_id"]
        ]
        assert builds, "the cold request's build is a child span"
        for path in ("/health", "/ready", "/metrics"):
            assert not any(s["attributes"].get("url.path") == path for s in received.spans)
            assert not any(s["attributes"].get("http.route") == path for s in received.spans)
        assert {r.get("service.name") for r in received.resources} == {"lb-test"}


@pytest.mark.parametrize("workers", ["2"])
def test_several_workers_are_refused_with_a_clear_message(workers: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "leaderboard_api", "serve", "--workers", workers],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "one worker per replica" in done.stderr
