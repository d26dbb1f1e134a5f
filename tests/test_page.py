"""Tests for the web page in static/: a real server and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import polars as pl
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect, sync_playwright

from tests.api_support import wait_served

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAIN = "Bench (main, v1)"
OTHER = "Other/bench"
TASKS = {
    "Retr (A)": ("Retrieval", True, None),
    "Retr-B": ("Retrieval", True, None),
    "STS/One": ("STS", True, None),
    "Clf C": ("Classification", True, "%"),
    "Latency": ("Speed", False, "ms"),
}
PARTIAL = "org/partial model"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")


def write_dataset(root: Path) -> None:
    """A small dataset whose names need encoding and whose models differ in every filter."""
    rng = random.Random(7)
    models: list[dict[str, Any]] = []
    for i in range(12):
        models.append(
            {
                "name": f"org/model-{i:02d}",
                "n_parameters": int(10 ** rng.uniform(7, 10.5)),
                "open_weights": i % 3 != 0,
                "model_type": ["sparse"] if i % 4 == 0 else ["dense"],
                "reference": f"https://example.org/model-{i}",
            }
        )
    models.append({"name": "solo model (v2)", "open_weights": True, "model_type": ["dense"]})
    models.append({"name": PARTIAL, "n_parameters": 3_000_000_000, "open_weights": False})
    rows: list[dict[str, Any]] = []
    for m in models:
        for task in TASKS:
            if m["name"] == PARTIAL and task in ("Retr-B", "Clf C"):
                continue
            pairs = (
                [("test", "en"), ("test", "fr"), ("dev", "en")]
                if task == "STS/One"
                else [("test", "default")]
            )
            for split, subset in pairs:
                lang = "fra-Latn" if subset == "fr" else "eng-Latn"
                score = rng.uniform(20, 90) if task != "Latency" else rng.uniform(5, 50)
                rows.append(
                    {
                        "model_name": m["name"],
                        "model_revision": "r1",
                        "task_name": task,
                        "split": split,
                        "subset": subset,
                        "languages": [lang],
                        "score": round(score, 3),
                    }
                )
    (root / "results").mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(root / "results" / "results.parquet")
    lines = [json.dumps(m) for m in models]
    (root / "models.jsonl").write_text("\n".join(lines) + "\n")
    tasks = [
        {"name": n, "type": t, "higher_is_better": hib, "unit": unit, "main_metric": "score"}
        for n, (t, hib, unit) in TASKS.items()
    ]
    (root / "tasks.jsonl").write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    benchmarks = [
        {
            "name": MAIN,
            "display_name": "Main bench",
            "description": "Four tasks in two languages.",
            "tasks": [
                {"task": "Retr (A)"},
                {"task": "Retr-B"},
                {"task": "STS/One", "splits": ["test"]},
                {"task": "Clf C"},
            ],
        },
        {"name": OTHER, "tasks": [{"task": "Clf C"}, {"task": "Latency"}]},
    ]
    (root / "benchmarks.jsonl").write_text("\n".join(json.dumps(b) for b in benchmarks) + "\n")
    menu = [
        {
            "name": "Everything",
            "open": True,
            "children": [
                {"benchmark": MAIN, "display_name": "Main bench"},
                {"benchmark": OTHER},
            ],
        }
    ]
    (root / "menu.json").write_text(json.dumps(menu))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("page-data")
    write_dataset(data)
    port = free_port()
    cmd = [sys.executable, "-m", "leaderboard_api", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--data", str(data), "--no-cache"]
    log = tmp_path_factory.mktemp("page-log") / "server.log"
    # Logs go to a file: an unread pipe fills up and blocks the server.
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_served(proc, url, log, timeout=30)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


class Tab:
    """A page plus the console errors and foreign-host requests seen while it was open."""

    def __init__(self, browser: Browser, base: str, *, width: int = 1280) -> None:
        self.base = base
        self.page: Page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", self._request)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)

    def _request(self, request: Request) -> None:
        url = request.url
        if not url.startswith(self.base) and not url.startswith("data:"):
            self.foreign.append(url)

    def open(self, query: str = "") -> Page:
        self.page.goto(f"{self.base}/{query}")
        self.page.wait_for_selector("table#lb-table tbody tr, #page-table tbody tr, [role=alert]")
        return self.page

    def models(self, selector: str = "#lb-table tbody tr[data-model]") -> list[str]:
        names: list[str] = self.page.eval_on_selector_all(
            selector, "rows => rows.map(r => r.dataset.model)"
        )
        return names


@pytest.fixture
def tab(browser: Browser, base: str) -> Iterator[Tab]:
    t = Tab(browser, base)
    yield t
    t.page.close()


def api(base: str, path: str) -> Any:
    res = httpx.get(base + path, timeout=10)
    res.raise_for_status()
    return res.json()


def scores_path(name: str, langs: str = "") -> str:
    path = f"/v1/benchmarks/{quote(name, safe='/')}/scores"
    return path + (f"?languages={langs}" if langs else "")


def test_page_loads_clean_and_rows_equal_the_api(tab: Tab, base: str) -> None:
    page = tab.open()
    first = api(base, "/v1/benchmarks/menu")[0]["children"][0]["name"]
    assert parse_qs(urlsplit(page.url).fragment)["b"] == [first]
    expected = [r["model"]["name"] for r in api(base, scores_path(first))["rows"]]
    assert tab.models() == expected
    assert page.locator("#lb-table caption").count() == 1
    assert page.locator("#lb-table thead th:not([scope=col])").count() == 0
    assert (
        page.get_attribute("#lb-table th:has(button[data-sort=rank])", "aria-sort") == "ascending"
    )
    ready = api(base, "/ready")
    assert ready["snapshot"].startswith(page.inner_text("#snapshot-id"))
    assert page.locator("#snapshot-time").count() == 1
    assert page.get_attribute("#menu a[aria-current=page]", "data-bench") == first
    assert tab.errors == []
    assert tab.foreign == []


def test_partial_rows_are_marked_and_explained(tab: Tab, base: str) -> None:
    page = tab.open(f"#b={quote(MAIN)}")
    row = page.locator(f'tr[data-model="{PARTIAL}"]')
    assert "partial" in (row.get_attribute("class") or "")
    badge = row.locator(".badge.partial")
    assert badge.inner_text() == "2/4 tasks"
    assert (badge.get_attribute("title") or "").startswith("covers 2 of 4 tasks")
    assert "Partial coverage" in page.inner_text("#lb-legend")


def test_sorting_by_header_buttons_and_keyboard(tab: Tab, base: str) -> None:
    page = tab.open(f"#b={quote(MAIN)}")
    rows = api(base, scores_path(MAIN))["rows"]
    page.click("button[data-sort=params]")
    th = page.locator("th:has(button[data-sort=params])")
    assert th.get_attribute("aria-sort") == "descending"
    with_p = [r for r in rows if r["totalParamsB"] is not None]
    size = {r["model"]["name"]: r["totalParamsB"] for r in rows}
    # Sizes are rounded to millions, so equal sizes may come in either order.
    want = sorted((r["totalParamsB"] for r in with_p), reverse=True)
    shown = tab.models()
    assert [size[m] for m in shown[: len(with_p)]] == want
    assert all(size[m] is None for m in shown[len(with_p) :])
    page.focus("button[data-sort=params]")
    page.keyboard.press("Enter")
    assert th.get_attribute("aria-sort") == "ascending"
    assert [size[m] for m in tab.models()[: len(with_p)]] == want[::-1]
    assert "sort=params" in page.url
    assert "dir=asc" in page.url
    page.click("button[data-sort=model]")
    assert tab.models() == sorted(tab.models(), key=str.lower)
    assert tab.errors == []


def test_filters_narrow_the_rows(tab: Tab, base: str) -> None:
    page = tab.open(f"#b={quote(MAIN)}")
    rows = api(base, scores_path(MAIN))["rows"]
    page.fill("#f-q", "MODEL-0")
    assert tab.models() == [r["model"]["name"] for r in rows if "model-0" in r["model"]["name"]]
    page.fill("#f-q", "")
    page.select_option("#f-open", "no")
    assert tab.models() == [r["model"]["name"] for r in rows if r["model"]["openWeights"] is False]
    page.select_option("#f-open", "")
    page.select_option("#f-type", "sparse")
    assert tab.models() == [
        r["model"]["name"] for r in rows if "sparse" in r["model"]["modelTypes"]
    ]
    page.select_option("#f-type", "")
    page.fill("#f-pmin", "0.5")
    page.fill("#f-pmax", "5")
    sized = [r for r in rows if r["totalParamsB"] is not None and 0.5 <= r["totalParamsB"] <= 5]
    assert tab.models() == [r["model"]["name"] for r in sized]
    assert f"Showing {len(sized)} of {len(rows)} models." == page.inner_text("#lb-status")
    page.click("#f-clear")
    assert len(tab.models()) == len(rows)


def test_url_round_trips_the_view(tab: Tab, browser: Browser, base: str) -> None:
    page = tab.open(f"#b={quote(MAIN)}")
    page.check("#f-tasks")
    page.fill("#f-q", "model")
    page.select_option("#f-open", "yes")
    page.click("button[data-sort='task:Retr-B']")
    page.fill("#f-lang", "eng")
    page.click("#lb-langs button[type=submit]")
    expect(page.locator("#lb-table caption")).to_contain_text("eng")
    shown = tab.models()
    headers = page.eval_on_selector_all("#lb-table thead th", "t => t.map(h => h.innerText)")
    other = Tab(browser, base)
    try:
        again = other.open(page.url.removeprefix(base + "/"))
        assert other.models() == shown
        assert (
            again.eval_on_selector_all("#lb-table thead th", "t => t.map(h => h.innerText)")
            == headers
        )
        assert again.input_value("#f-q") == "model"
        assert again.input_value("#f-open") == "yes"
        assert again.input_value("#f-lang") == "eng"
        assert again.is_checked("#f-tasks")
        sorted_th = again.locator("th:has(button[data-sort='task:Retr-B'])")
        assert sorted_th.get_attribute("aria-sort") == "descending"
        assert other.errors == []
    finally:
        other.page.close()


def test_languages_refetch_and_csv_download_matches_the_api(tab: Tab, base: str) -> None:
    page = tab.open(f"#b={quote(MAIN)}&lang=fra")
    assert tab.models() == [r["model"]["name"] for r in api(base, scores_path(MAIN, "fra"))["rows"]]
    href = page.get_attribute("#lb-csv", "href") or ""
    assert href.endswith("/scores.csv?languages=fra")
    with page.expect_download() as info:
        page.click("#lb-csv")
    got = Path(info.value.path()).read_bytes()
    want = httpx.get(f"{base}/{href}", timeout=10).content
    assert got == want
    assert got.count(b"\n") >= len(tab.models())


def test_model_page_opens_from_the_table_and_goes_back(tab: Tab, base: str) -> None:
    page = tab.open(f"#b={quote(MAIN)}&q=solo")
    page.click('#lb-table a:text-is("solo model (v2)")')
    page.wait_for_selector("#page-table tbody tr")
    assert page.inner_text("h1") == "solo model (v2)"
    data = api(base, "/v1/models/" + quote("solo model (v2)") + "/scores")
    names = page.eval_on_selector_all(
        "#page-table tbody tr", "rows => rows.map(r => r.dataset.benchmark)"
    )
    assert names == [r["benchmarkName"] for r in data["rows"]]
    page.click(".crumbs a")
    page.wait_for_selector("#lb-table")
    assert tab.models() == ["solo model (v2)"]
    assert page.input_value("#f-q") == "solo"
    page.go_back()
    page.wait_for_selector("#page-table")
    assert page.inner_text("h1") == "solo model (v2)"
    assert tab.errors == []


def test_task_page_shows_subset_and_split_breakdown(tab: Tab, base: str) -> None:
    page = tab.open(f"#b={quote(MAIN)}&tasks=1")
    page.click("th:has(button[data-sort='task:STS/One']) a.info")
    page.wait_for_selector("#page-table tbody tr")
    assert page.inner_text("h1") == "STS/One"
    data = api(base, "/v1/tasks/STS/One/scores")
    assert tab.models("#page-table tbody tr[data-model]") == [
        r["model"]["name"] for r in data["rows"]
    ]
    subs = page.eval_on_selector_all("#page-table thead th.sub", "t => t.map(h => h.innerText)")
    assert len(subs) == 3
    assert any("fr" in s for s in subs)
    assert any("dev" in s for s in subs)
    page.click("#page-table button[data-sort=score]")
    assert "psort=score" in page.url
    assert tab.errors == []


def test_chart_plots_models_with_sizes_and_shows_a_tooltip(tab: Tab, base: str) -> None:
    page = tab.open(f"#b={quote(MAIN)}")
    page.click("#tab-chart")
    page.wait_for_selector("#lb-chart svg")
    assert "view=chart" in page.url
    rows = api(base, scores_path(MAIN))["rows"]
    plotted = [r for r in rows if r["totalParamsB"] and r["meanTask"] is not None]
    assert page.locator("#lb-chart a.pt").count() == len(plotted)
    page.hover("#lb-chart a.pt >> nth=0")
    assert page.is_visible("#lb-chart .tip")
    assert "parameters" in page.inner_text("#lb-chart .tip")
    page.select_option("#f-y", "type:Retrieval")
    assert "y=type:Retrieval" in page.url
    assert tab.errors == []


def test_failed_request_shows_an_error_with_retry(tab: Tab) -> None:
    page = tab.open("#b=No+such+benchmark")
    alert = page.locator("main [role=alert]")
    assert "No such benchmark" in alert.inner_text()
    with page.expect_request(lambda r: "No%20such%20benchmark/scores" in r.url):
        page.click("main [role=alert] button.retry")
    page.wait_for_selector("main [role=alert] button.retry")


def test_phone_width_and_screenshot(browser: Browser, base: str) -> None:
    art = ROOT / "artifacts"
    art.mkdir(exist_ok=True)
    wide = Tab(browser, base)
    try:
        wide.open(f"#b={quote(MAIN)}&tasks=1").screenshot(path=str(art / "page.png"))
    finally:
        wide.page.close()
    phone = Tab(browser, base, width=390)
    try:
        page = phone.open(f"#b={quote(MAIN)}&tasks=1")
        page.screenshot(path=str(art / "page-phone.png"))
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        wrap = "document.querySelector('.table-wrap')"
        assert page.evaluate(f"{wrap}.scrollWidth > {wrap}.clientWidth")
        assert phone.errors == []
    finally:
        phone.page.close()
    assert (art / "page.png").stat().st_size > 10_000
