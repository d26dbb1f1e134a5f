"""The web page's evaluation queue, sign-in, submit form and votes, in Debian's Chromium.

Two real servers (``leaderboard-api serve``, uvicorn) on the dataset of tests/test_page.py
start side by side: one with the operational store on SQLite in a temporary folder, one with
``state=none``.  API keys are created in that SQLite store before its server starts, and
the queue is seeded through the HTTP API (submit, claim, finish, fail, vote).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from leaderboard_api.operational.records import Actor
from leaderboard_api.operational.repository import StateStore
from tests.api_support import wait_served
from tests.test_page import ARGS, CHROMIUM, MAIN, Tab, free_port, write_dataset

ROOT = Path(__file__).resolve().parents[1]
EVIL = "evil/<b>bold</b> & co"  # allowed by the servers' submission_allow
REASON = '<img src=x onerror="document.title=1"> out of memory'

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")


@dataclass
class Servers:
    on: str
    off: str
    keys: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}


@contextmanager
def serve(data: Path, log: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A server process (not waited for: see ``wait_ready``) and its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "leaderboard_api", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--data", str(data), "--no-cache"]
    full_env = {**os.environ, "LEADERBOARD_RATE_LIMIT_COLD_BUILDS": "", **env}
    # Logs go to a file: an unread pipe fills up and blocks the server.
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seed(s: Servers) -> None:
    """Running, finished and failed submissions, three pending ones and some votes."""
    with httpx.Client(base_url=s.on, timeout=10) as http:

        def submit(model: str, **extra: Any) -> int:
            res = http.post(
                "/v1/submissions", json={"model": model, **extra}, headers=s.auth("seeder")
            )
            assert res.status_code == 201, res.text
            ident: int = res.json()["id"]
            return ident

        def claim() -> int:
            res = http.post("/v1/submissions/claim", headers=s.auth("seeder"))
            assert res.status_code == 200, res.text
            ident: int = res.json()["id"]
            return ident

        def report(ident: int, **body: str) -> None:
            res = http.post(f"/v1/submissions/{ident}/status", json=body, headers=s.auth("seeder"))
            assert res.status_code == 200, res.text

        s.ids["running"] = submit("org/model-02")
        assert claim() == s.ids["running"]
        s.ids["finished"] = submit("org/model-03", precision="bfloat16")
        assert claim() == s.ids["finished"]
        report(s.ids["finished"], status="finished", datasetVersion="v-test-1")
        s.ids["failed"] = submit("org/model-04")
        assert claim() == s.ids["failed"]
        report(s.ids["failed"], status="failed", reason=REASON)
        s.ids["first"] = submit("org/model-01", revision="r1", modelType="chat")
        s.ids["solo"] = submit("solo model (v2)", baseModel="org/model-00", weightType="Delta")
        s.ids["evil"] = submit(EVIL)
        for who, model, vote in [
            ("bob", "org/model-01", "up"),
            ("seeder", "org/model-01", "down"),
            ("bob", "solo model (v2)", "up"),
        ]:
            res = http.post(
                f"/v1/models/{quote(model)}/votes", json={"vote": vote}, headers=s.auth(who)
            )
            assert res.status_code == 200, res.text


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    data = tmp_path_factory.mktemp("queue-data")
    write_dataset(data)
    logs = tmp_path_factory.mktemp("queue-logs")
    state = f"sqlite:///{tmp_path_factory.mktemp('queue-state')}/state.db"
    keys: dict[str, str] = {}
    with StateStore.open(state) as store:
        for name, scopes in [
            ("alice", ["submit", "vote"]),
            ("bob", ["vote"]),
            ("seeder", ["submit", "evaluate", "vote"]),
        ]:
            keys[name] = store.keys.create(name, scopes, by=Actor("test")).raw
    with ExitStack() as stack:
        on_log, off_log = logs / "on.log", logs / "off.log"
        allow = {"LEADERBOARD_SUBMISSION_ALLOW": "evil/*"}
        on = stack.enter_context(serve(data, on_log, LEADERBOARD_STATE=state, **allow))
        off = stack.enter_context(serve(data, off_log, LEADERBOARD_STATE="none"))
        wait_served(*on, on_log)
        wait_served(*off, off_log)
        s = Servers(on=on[1], off=off[1], keys=keys)
        seed(s)
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def tab(browser: Browser, servers: Servers) -> Iterator[Tab]:
    t = Tab(browser, servers.on)
    yield t
    t.page.close()


def open_queue(tab: Tab, status: str = "") -> Page:
    page = tab.page
    page.goto(f"{tab.base}/#view=queue" + (f"&qs={status}" if status else ""))
    page.wait_for_selector("#queue-table tbody tr")
    return page


def rows(page: Page) -> list[dict[str, str]]:
    """The queue table's rows as text by column class."""
    got: list[dict[str, str]] = page.eval_on_selector_all(
        "#queue-table tbody tr[data-id]",
        """trs => trs.map(tr => ({
            id: tr.dataset.id,
            model: tr.querySelector("th").textContent,
            status: tr.querySelector("td.status").textContent,
            submitter: tr.querySelector("td.submitter").textContent,
            revision: tr.querySelector("td.revision").textContent,
            precision: tr.querySelector("td.precision").textContent,
            type: tr.querySelector("td.type").textContent,
            up: tr.querySelector("td.up").textContent,
            down: tr.querySelector("td.down").textContent,
            total: tr.querySelector("td.total").textContent,
            detail: tr.querySelector("td.detail")?.textContent ?? "",
            time: tr.querySelector("time").getAttribute("datetime"),
        }))""",
    )
    return got


def row_of(page: Page, ident: int) -> dict[str, str]:
    found = [r for r in rows(page) if r["id"] == str(ident)]
    assert found, f"submission {ident} is not shown"
    return found[0]


def api(base: str, path: str) -> Any:
    res = httpx.get(base + path, timeout=10)
    res.raise_for_status()
    return res.json()


def unexpected(errors: list[str]) -> list[str]:
    """Console errors besides Chromium's note of each refused request (the tests make some)."""
    return [e for e in errors if "Failed to load resource" not in e]


def sign_in(page: Page, key: str) -> None:
    page.click("#signin-open")
    page.fill("#signin-key", key)
    page.press("#signin-key", "Enter")
    expect(page.locator("#signout")).to_be_visible()


def test_queue_shows_every_status_with_votes(tab: Tab, servers: Servers) -> None:
    page = tab.page
    page.goto(f"{servers.on}/")
    page.wait_for_selector("#lb-table tbody tr")
    expect(page.locator("#nav-queue")).to_be_visible()
    expect(page.locator("#signin-open")).to_be_visible()
    page.click("#nav-queue")
    page.wait_for_selector("#queue-table tbody tr[data-id]")
    assert "view=queue" in page.url
    listed = {s["id"]: s for s in api(servers.on, "/v1/submissions")}
    # Pending, in claim order: most up-votes, then oldest.
    pending = rows(page)
    assert [int(r["id"]) for r in pending] == [
        servers.ids["first"],
        servers.ids["solo"],
        servers.ids["evil"],
    ]
    first = pending[0]
    assert (first["model"], first["status"], first["submitter"]) == (
        "org/model-01",
        "pending",
        "seeder",
    )
    assert (first["revision"], first["precision"], first["type"]) == ("r1", "float16", "chat")
    assert first["time"] == listed[servers.ids["first"]]["createdAt"]
    assert (first["up"], first["down"], first["total"]) == ("1", "1", "2")
    assert api(servers.on, "/v1/models/org/model-01/votes") == {"total": 2, "up": 1, "down": 1}
    solo = pending[1]
    assert (solo["up"], solo["down"], solo["total"]) == ("1", "0", "1")
    assert solo["type"] == "Deltabase: org/model-00"
    # Untrusted text stays text.
    assert pending[2]["model"] == EVIL
    assert page.locator("#queue-table b, #queue-table img").count() == 0
    counts = page.eval_on_selector_all("#queue-tabs a", "as => as.map(a => a.textContent)")
    assert counts == ["Pending (3)", "Running (1)", "Finished (1)", "Failed (1)"]
    # Signed out: no form, no vote buttons, a prompt to sign in.
    assert page.locator("#submit-form").count() == 0
    assert page.locator("button.vote").count() == 0
    expect(page.locator("#queue-signin-note")).to_be_visible()

    for status, detail in [("running", "seeder"), ("finished", "v-test-1"), ("failed", REASON)]:
        page.click(f"#qtab-{status}")
        expect(page.locator("#queue-table")).to_have_attribute("data-status", status)
        assert f"qs={status}" in page.url
        assert page.get_attribute(f"#qtab-{status}", "aria-current") == "page"
        (only,) = rows(page)
        assert int(only["id"]) == servers.ids[status]
        assert (only["status"], only["detail"]) == (status, detail)
        assert (only["up"], only["down"], only["total"]) == ("0", "0", "0")
    assert page.locator("#queue-table img").count() == 0
    # A finished model links to its model page.
    page.click("#qtab-finished")
    page.click("#queue-table a:text-is('org/model-03')")
    page.wait_for_selector("#page-table tbody tr")
    assert page.inner_text("h1") == "org/model-03"
    page.go_back()
    page.wait_for_selector("#queue-table[data-status=finished]")
    page.click("#nav-board")
    page.wait_for_selector("#lb-table tbody tr")
    assert tab.errors == []
    assert tab.foreign == []


def test_sign_in_submit_duplicate_vote_and_sign_out(
    tab: Tab, browser: Browser, servers: Servers
) -> None:
    page = open_queue(tab)
    key = servers.keys["alice"]
    sign_in(page, key)
    # The key is in this tab's sessionStorage only: not in localStorage, cookies or the URL.
    stored = page.evaluate("() => sessionStorage.getItem('leaderboard.apiKey')")
    assert stored == key
    assert page.evaluate("() => localStorage.length") == 0
    assert key not in page.evaluate("() => JSON.stringify({...localStorage})")
    assert key not in page.url
    assert page.context.cookies() == []
    expect(page.locator("#submit-form")).to_be_visible()
    assert page.locator("#queue-signin-note").count() == 0
    for control in ["s-model", "s-revision", "s-precision", "s-type", "s-base", "s-weight"]:
        assert page.locator(f"label[for={control}]").count() == 1

    page.fill("#s-model", "org/model-05")
    page.fill("#s-revision", "r1")
    page.fill("#s-precision", "bfloat16")
    page.fill("#s-type", "chat")
    page.fill("#s-base", "org/model-00")
    page.fill("#s-weight", "Delta")
    with page.expect_request(lambda r: r.method == "POST" and "/v1/submissions" in r.url) as req:
        page.click("#s-submit")
    assert req.value.headers["authorization"] == f"Bearer {key}"
    page.wait_for_selector("#submit-success")
    new = next(s for s in api(servers.on, "/v1/submissions") if s["model"] == "org/model-05")
    assert (new["status"], new["submitter"], new["revision"], new["precision"]) == (
        "pending",
        "alice",
        "r1",
        "bfloat16",
    )
    assert (new["modelType"], new["baseModel"], new["weightType"]) == (
        "chat",
        "org/model-00",
        "Delta",
    )
    assert page.get_attribute("#submit-success", "data-id") == str(new["id"])
    assert "org/model-05 is pending" in page.inner_text("#submit-success")
    assert page.input_value("#s-model") == ""  # the form is cleared for the next one
    shown = row_of(page, new["id"])
    assert (shown["status"], shown["submitter"], shown["total"]) == ("pending", "alice", "0")
    assert "fresh" in (page.get_attribute(f"tr[data-id='{new['id']}']", "class") or "")
    assert page.inner_text("#qtab-pending") == "Pending (4)"
    art = ROOT / "artifacts"
    art.mkdir(exist_ok=True)
    page.screenshot(path=str(art / "page-queue.png"), full_page=True)
    # The submitter named the identity: the header says who is signed in.
    expect(page.locator("#account-name")).to_have_text("alice")

    # The same model, revision and precision again: 409 with the API's words.
    page.fill("#s-model", "org/model-05")
    page.fill("#s-revision", "r1")
    page.fill("#s-precision", "bfloat16")
    page.click("#s-submit")
    alert = page.locator("#submit-result [role=alert]")
    expect(alert).to_contain_text("Conflict (HTTP 409)")
    expect(alert).to_contain_text(f"submission {new['id']} is pending")
    assert page.locator("#submit-success").count() == 0

    # Votes: up, then down (replaces it), then down again (withdraws it).
    row = f"tr[data-id='{new['id']}']"
    page.click(f"{row} button.vote.up")
    expect(page.locator(f"{row} td.up")).to_have_text("1")
    expect(page.locator(f"{row} button.vote.up")).to_have_attribute("aria-pressed", "true")
    assert api(servers.on, "/v1/models/org/model-05/votes") == {"total": 1, "up": 1, "down": 0}
    page.click(f"{row} button.vote.down")
    expect(page.locator(f"{row} td.down")).to_have_text("1")
    expect(page.locator(f"{row} td.up")).to_have_text("0")
    expect(page.locator(f"{row} button.vote.down")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(f"{row} button.vote.up")).to_have_attribute("aria-pressed", "false")
    page.click(f"{row} button.vote.down")
    expect(page.locator(f"{row} td.total")).to_have_text("0")
    expect(page.locator(f"{row} button.vote.down")).to_have_attribute("aria-pressed", "false")
    assert api(servers.on, "/v1/models/org/model-05/votes") == {"total": 0, "up": 0, "down": 0}
    # An up-vote on the solo model puts it first (two up-votes).
    solo = f"tr[data-id='{servers.ids['solo']}']"
    page.click(f"{solo} button.vote.up")
    expect(page.locator(f"{solo} td.up")).to_have_text("2")
    assert rows(page)[0]["id"] == str(servers.ids["solo"])
    assert page.evaluate("() => document.activeElement.dataset.model") == "solo model (v2)"

    # A reload keeps the session, and the user's own vote is shown.
    page.reload()
    page.wait_for_selector(f"{solo} button.vote.up[aria-pressed=true]")
    expect(page.locator("#account-name")).to_have_text("alice")
    # Another tab has its own session: signed out.
    other = Tab(browser, servers.on)
    try:
        other.page.goto(f"{servers.on}/#view=queue")
        expect(other.page.locator("#signin-open")).to_be_visible()
        assert other.page.evaluate("() => sessionStorage.length") == 0
    finally:
        other.page.close()

    page.click("#signout")
    expect(page.locator("#signin-open")).to_be_visible()
    assert page.locator("#submit-form").count() == 0
    assert page.locator("button.vote").count() == 0
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.evaluate("() => document.activeElement.id") == "signin-open"
    assert unexpected(tab.errors) == []


def test_refusals_show_the_problem_detail(tab: Tab, servers: Servers) -> None:
    page = open_queue(tab)
    # A key the server does not know: 401.
    sign_in(page, "not-a-real-key")
    page.fill("#s-model", "org/model-06")
    page.click("#s-submit")
    alert = page.locator("#submit-result [role=alert]")
    expect(alert).to_contain_text("Unauthorized (HTTP 401)")
    expect(alert).to_contain_text("sign in again")
    page.click("#signout")
    # A key without the submit scope: 403; its votes still count.
    sign_in(page, servers.keys["bob"])
    page.fill("#s-model", "org/model-06")
    page.click("#s-submit")
    expect(alert).to_contain_text("Forbidden (HTTP 403)")
    expect(alert).to_contain_text("submit")
    # A model the model check refuses: 422 with its reason.
    page.click("#signout")
    sign_in(page, servers.keys["alice"])
    page.fill("#s-model", "nobody/unknown-model")
    page.click("#s-submit")
    expect(alert).to_contain_text("Unprocessable")
    expect(alert).to_contain_text("is not a model of the served dataset")
    # The model field is required: nothing is sent without it.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.method))
    page.fill("#s-model", "  ")
    page.click("#s-submit")
    assert "POST" not in requests
    assert [s for s in api(servers.on, "/v1/submissions") if "06" in s["model"]] == []
    assert unexpected(tab.errors) == []


def test_phone_width(browser: Browser, servers: Servers) -> None:
    phone = Tab(browser, servers.on, width=390)
    try:
        page = open_queue(phone)
        sign_in(page, servers.keys["bob"])
        page.wait_for_selector("#submit-form")
        page.screenshot(path=str(ROOT / "artifacts" / "page-queue-phone.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert unexpected(phone.errors) == []
    finally:
        phone.page.close()


def test_without_a_state_store_the_queue_is_hidden(browser: Browser, servers: Servers) -> None:
    tab = Tab(browser, servers.off)
    try:
        page = tab.page
        page.goto(f"{servers.off}/#b={quote(MAIN)}")
        page.wait_for_selector("#lb-table tbody tr")
        assert api(servers.off, "/ready")["stateStore"] is None
        assert httpx.get(f"{servers.off}/v1/submissions", timeout=10).status_code == 503
        assert page.locator("#site-nav").is_hidden()
        assert page.locator("#account").is_hidden()
        assert page.locator("#signin-open").count() == 0
        # The rest of the page works as ever.
        page.fill("#f-q", "solo")
        assert tab.models() == ["solo model (v2)"]
        # Asked for by address, the queue says it is not there.
        page.goto(f"{servers.off}/#view=queue")
        expect(page.locator("#queue-off")).to_be_visible()
        assert page.locator("#queue-table, #submit-form").count() == 0
        page.click("#queue-off a")
        page.wait_for_selector("#lb-table tbody tr")
        assert tab.errors == []
        assert tab.foreign == []
    finally:
        page.close()
