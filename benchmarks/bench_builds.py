"""Do payload builds starve serving?  Throughput of a built route while builds run.

    python -m benchmarks.bench_builds [DATASET] [--cache-dir DIR] [--seconds 3] [--rounds 2]

The service (``leaderboard-api serve``, default settings but the disk cache) runs pinned
to core 0 with taskset; ``wrk -t1 -c32`` and this script's own clients run on core 1.
The measured route is ``/v1/benchmarks/MTEB(eng, v2)/scores`` in two scenarios: a 304
revalidation (``If-None-Match`` of its ETag) and a gzip 200.

(a) steady state: nothing builds.
(b) cold filters: ``--clients`` (8) clients each ask, one request after another, for a
    ``?languages=`` combination of ``MTEB(Multilingual, v2)`` nobody asked for before
    (0.3-0.5 s of CPU each); a 503 is honoured by waiting its ``Retry-After``.
(c) background warmup: right after ``/ready`` turns 200, while the service still builds
    every other route (only runs that start and end before ``warmupComplete`` count).
(d) a process spinning on the server's core, at the service's niceness and 19 above it:
    the share of the core the service keeps is what a build process pool on that core
    would leave to serving (``--no-process-proxy`` skips it).

Two services run from the same disk cache: B with ``LEADERBOARD_WARMUP=false`` (nothing
builds in the background; the route is built by one request) and A with the default
warmup, started once B is up (the payload store under the cache directory is emptied
first, so that A's warmup builds).  While A's background warmup runs, each (c) run on A
is paired with an (a) run on B taken while A is stopped (SIGSTOP), so both meet the same
machine; then A stops and each (b) run on B is paired with an (a) run on B.  The order
within a pair alternates by round; (b) and (c) runs follow 1 s of unmeasured load (the
cold clients already running), so the service has seen the load before they start.
Figures are appended to ``benchmarks/RESULTS.md`` unless ``--no-record``; phases stop
starting after ``--budget`` seconds (default 170).  ``--nice -10`` (root) raises this
script's session (its autogroup) above the other sessions of a shared machine.

Two ratios per scenario, medians over pairs.  *raw*: requests per second over (a)'s:
the figure the target is about, meaningful when nothing else runs on core 0 (each cell
shows the share of core 0 other processes took).  *core*: the ratio expected on a core
of its own, from figures that other processes barely move: the share of a core the
service's threads other than the event loop's (builds) used per second, ``B``, and the
event loop's CPU time per request, ``u``: ``(1 - B) * u(a) / u``, i.e. the event loop
gets the rest of the core at the cost per request measured.  (It reads high when other
processes slow the builds down more than the pacing does.)  The verdict uses the raw
ratio when other processes took at most 10 % of core 0, else the core ratio.

Target: (b)/(a) >= 0.8 and (c)/(a) >= 0.8 in both scenarios, and no cold
request timing out (each waits its turn or gets 503 with Retry-After).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from benchmarks.bench_api import cpu_seconds, free_port, process, service_env, wrk
from benchmarks.record import command_line, record

ROOT = Path(__file__).resolve().parents[1]
ROUTE = "/v1/benchmarks/MTEB(eng, v2)/scores"
COLD_BENCHMARK = "MTEB(Multilingual, v2)"
SCENARIOS = ("304 revalidation", "gzip 200")
TARGET = 0.8
SERVER_CORE = 0
#: Widely used languages; the ones the cold benchmark covers make its filter combinations.
COMMON = [
    "eng",
    "fra",
    "deu",
    "spa",
    "rus",
    "jpn",
    "zho",
    "cmn",
    "kor",
    "ara",
    "hin",
    "por",
    "ita",
    "nld",
    "pol",
    "tur",
    "vie",
    "ind",
    "tha",
    "swe",
    "dan",
    "fin",
    "nob",
    "ces",
    "hun",
    "ron",
    "ell",
    "heb",
    "ukr",
    "bul",
    "fas",
    "urd",
    "ben",
    "tam",
    "tel",
    "mar",
    "guj",
    "kan",
    "mal",
    "slk",
    "slv",
    "hrv",
    "srp",
    "lit",
    "lav",
    "est",
    "cat",
    "eus",
    "glg",
    "isl",
]


@dataclass(frozen=True)
class Run:
    """One wrk run and how core 0 was shared meanwhile."""

    rps: float
    #: The service's CPU time per request (all threads), and its event loop's, microseconds.
    us_per_request: float
    loop_us_per_request: float
    #: Shares of core 0's time: the service, the scenario's busy process, everyone else.
    server: float
    busy: float
    others: float
    #: CPU seconds per second of the service's threads other than the event loop's
    #: (builds), whatever else runs on the machine.
    builds: float


def loop_cpu_seconds(pid: int) -> float:
    """CPU time of a process's main thread (the event loop's, under uvicorn)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_times(core: int) -> tuple[float, float]:
    """(busy, total) seconds of one core so far; busy counts user, nice, system, steal."""
    tick = os.sysconf("SC_CLK_TCK")
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
            busy = user + nice + system + steal
            return busy / tick, (busy + idle + iowait + irq + softirq) / tick
    msg = f"no cpu{core} in /proc/stat"
    raise RuntimeError(msg)


@dataclass
class ColdResults:
    """What the cold clients saw."""

    statuses: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    retry_after: list[int] = field(default_factory=list)

    def add(self, status: str, seconds: float, retry_after: str | None) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == "200":
            self.seconds.append(seconds)
        if retry_after is not None and retry_after.isdigit():
            self.retry_after.append(int(retry_after))

    def merge(self, other: ColdResults) -> None:
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.seconds += other.seconds
        self.retry_after += other.retry_after


class ColdClients:
    """Clients that each ask for one new ``?languages=`` combination after another."""

    def __init__(self, base: str, languages: list[str], *, clients: int, seed: int = 7) -> None:
        self.url = base + quote(f"/v1/benchmarks/{COLD_BENCHMARK}/scores")
        self.languages = languages
        self.clients = clients
        self.rng = random.Random(seed)
        self.used: set[tuple[str, ...]] = set()
        self.lock = threading.Lock()

    def _combination(self) -> tuple[str, ...]:
        with self.lock:
            while True:
                size = self.rng.choice((2, 3))
                combo = tuple(sorted(self.rng.sample(self.languages, size)))
                if combo not in self.used:
                    self.used.add(combo)
                    return combo

    @contextmanager
    def running(self) -> Iterator[ColdResults]:
        """Clients run inside the block; on exit they finish their request and stop."""
        results = ColdResults()
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=60) as http:
                while not stop.is_set():
                    url = f"{self.url}?languages={','.join(self._combination())}"
                    started = time.perf_counter()
                    retry_after = None
                    try:
                        response = http.get(url, headers={"accept-encoding": "gzip"})
                        status = str(response.status_code)
                        retry_after = response.headers.get("retry-after")
                    except httpx.TimeoutException:
                        status = "timeout"
                    except httpx.HTTPError:
                        status = "error"
                    with self.lock:
                        results.add(status, time.perf_counter() - started, retry_after)
                    if status == "503":
                        stop.wait(float(retry_after or 1))

        threads = [threading.Thread(target=client, daemon=True) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        try:
            yield results
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=90)


def ready_doc(base: str) -> dict[str, object]:
    doc: dict[str, object] = httpx.get(f"{base}/ready", timeout=10).json()
    return doc


def route_etag(url: str) -> str:
    response = httpx.get(url, headers={"accept-encoding": "identity"}, timeout=60)
    response.raise_for_status()
    return response.headers["etag"]


def scenario_headers(etag: str) -> dict[str, dict[str, str]]:
    return {
        "304 revalidation": {"if-none-match": etag, "accept-encoding": "identity"},
        "gzip 200": {"accept-encoding": "gzip"},
    }


def cold_languages(base: str) -> list[str]:
    url = base + quote(f"/v1/benchmarks/{COLD_BENCHMARK}")
    covered = set(httpx.get(url, timeout=60).json()["languages"])
    languages = [code for code in COMMON if code in covered]
    if len(languages) < 10:
        msg = f"{COLD_BENCHMARK} covers too few common languages: {languages}"
        raise RuntimeError(msg)
    return languages


@contextmanager
def busy_process(nice: int) -> Iterator[int]:
    """A process spinning on core 0 (the server's), ``nice`` above this script's niceness."""
    cmd = ["taskset", "-c", "0", "nice", "-n", str(nice), sys.executable, "-c", "while 1: pass"]
    proc = subprocess.Popen(cmd)
    try:
        time.sleep(0.3)
        yield proc.pid  # taskset and nice exec: the same pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


Pair = tuple[Run, Run]


def raw_ratio(pairs: list[Pair]) -> float | None:
    """Median over pairs of requests per second during builds over the steady run's."""
    if not pairs:
        return None
    return statistics.median(during.rps / steady.rps for steady, during in pairs)


def core_ratio(pairs: list[Pair]) -> float | None:
    """The ratio on a dedicated core: the loop gets what builds leave, at its cost per request."""
    if not pairs:
        return None
    return statistics.median(
        (1.0 - during.builds) * steady.loop_us_per_request / during.loop_us_per_request
        for steady, during in pairs
    )


def show(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def cell(runs: list[Run]) -> str:
    if not runs:
        return "-"
    rps = statistics.median(r.rps for r in runs)
    us = statistics.median(r.loop_us_per_request for r in runs)
    others = statistics.median(r.others for r in runs)
    builds = statistics.median(r.builds for r in runs)
    return (
        f"{rps:,.0f} req/s, loop {us:.0f} µs/req, builds {builds:.0%} of a core, "
        f"others {others:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("data", type=Path, nargs="?", default=Path("/work/ext/ds-main"))
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "lb-bench-builds-cache",
        help="the service's disk cache (kept between runs: later starts load faster)",
    )
    parser.add_argument("--seconds", type=int, default=3, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--clients", type=int, default=8, help="concurrent cold clients")
    parser.add_argument("--budget", type=float, default=170, help="seconds for the whole run")
    parser.add_argument("--no-process-proxy", action="store_true", help="skip scenario (d)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of this script, all it starts (service, wrk) and its autogroup; below 0 "
        "(root only) keeps other sessions of a shared machine from taking most of core 0",
    )
    parser.add_argument("--note", default="", help="a line recorded with the figures")
    parser.add_argument(
        "--service-root", type=Path, default=ROOT, help="run the service from this checkout"
    )
    parser.add_argument("--no-record", action="store_true", help="print, do not append")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("skipped: wrk or taskset is not installed (apt-get install wrk util-linux)")
        return
    if not (args.data / "results").is_dir():
        print(f"skipped: {args.data} is not a dataset directory")
        return
    os.sched_setaffinity(0, {1})  # this script's clients share wrk's core, not the server's
    if args.nice:
        os.nice(args.nice)  # inherited by the service, wrk and the spinning process
        # With autogroups, niceness only orders processes within their session's group;
        # the group's own niceness sets its share against other sessions.
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(args.nice))
    deadline = time.monotonic() + args.budget
    env = service_env(args.cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(args.service_root), *filter(None, [env.get("PYTHONPATH")])]
    )

    def serve(port: int) -> list[str]:
        cmd = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "leaderboard_api"]
        return [*cmd, "serve", "--data", str(args.data), "--port", str(port)]

    def measure(
        url: str, headers: dict[str, str], pid: int, *, also: int | None = None, lead: int = 0
    ) -> Run:
        """One wrk run, after ``lead`` seconds of unmeasured load (so the service has seen
        load before: builds settle into their pacing); ``also`` is the scenario's busy
        process on the server's core."""
        if lead:
            wrk(url, headers, seconds=lead, connections=args.connections, pid=pid)
        busy, total = core_times(SERVER_CORE)
        other = cpu_seconds(also) if also is not None else 0.0
        server, loop = cpu_seconds(pid), loop_cpu_seconds(pid)
        rps, us = wrk(url, headers, seconds=args.seconds, connections=args.connections, pid=pid)
        busy2, total2 = core_times(SERVER_CORE)
        server2, loop2 = cpu_seconds(pid), loop_cpu_seconds(pid)
        other2 = cpu_seconds(also) if also is not None else 0.0
        span = max(total2 - total, 1e-9)
        server_share = (server2 - server) / span
        busy_share = (other2 - other) / span
        others = max(0.0, (busy2 - busy) / span - server_share - busy_share)
        builds = max(0.0, (server2 - server) - (loop2 - loop)) / span
        loop_us = us * (loop2 - loop) / max(server2 - server, 1e-9)
        return Run(rps, us, loop_us, server_share, busy_share, others, builds)

    #: (steady run, run during builds) pairs measured back to back, per scenario.
    warm: dict[str, list[tuple[Run, Run]]] = {name: [] for name in SCENARIOS}
    cold: dict[str, list[tuple[Run, Run]]] = {name: [] for name in SCENARIOS}
    proxy: dict[tuple[int, str], list[Run]] = {}
    notes: list[str] = []
    cold_seen = ColdResults()

    def address(port: int) -> tuple[str, str]:
        base = f"http://127.0.0.1:{port}"
        return base, base + quote(ROUTE)

    # B: no background warmup (the route is built by one request): (a), (b), (d).
    port_b = free_port()
    base_b, url_b = address(port_b)
    quiet = {**env, "LEADERBOARD_WARMUP": "false"}
    with process(
        serve(port_b), env=quiet, cwd=args.service_root, ready_url=f"{base_b}/ready", timeout=120
    ) as (proc_b, _):
        headers_b = scenario_headers(route_etag(url_b))

        # A: default warmup; (c) on it while it builds, each run paired with one of (a) on
        # B while A is stopped (SIGSTOP), so both meet the same machine.
        port_a = free_port()
        base_a, url_a = address(port_a)
        # A payload store left by an earlier run would answer A's warmup from disk.
        shutil.rmtree(args.cache_dir / "payloads", ignore_errors=True)
        with process(
            serve(port_a), env=env, cwd=args.service_root, ready_url=f"{base_a}/ready", timeout=150
        ) as (proc_a, ready_seconds):
            headers_a = scenario_headers(route_etag(url_a))
            at_ready = ready_doc(base_a)

            def steady_run(name: str) -> Run:
                os.kill(proc_a.pid, signal.SIGSTOP)
                try:
                    return measure(url_b, headers_b[name], proc_b.pid)
                finally:
                    os.kill(proc_a.pid, signal.SIGCONT)

            for round_index in range(args.rounds):
                if ready_doc(base_a).get("warmupComplete") or time.monotonic() > deadline:
                    break
                for name in SCENARIOS:
                    if round_index % 2 == 0:
                        steady = steady_run(name)
                        during = measure(url_a, headers_a[name], proc_a.pid, lead=1)
                    else:
                        during = measure(url_a, headers_a[name], proc_a.pid, lead=1)
                        steady = steady_run(name)
                    if not ready_doc(base_a).get("warmupComplete"):
                        warm[name].append((steady, during))
            after = ready_doc(base_a)
        count = sum(len(pairs) for pairs in warm.values())
        notes.append(
            f"- (c): ready {ready_seconds:.1f} s after start with {at_ready.get('warmed')} "
            f"payloads; {count} pairs during the background warmup, which was "
            f"{'complete' if after.get('warmupComplete') else 'still running'} after them"
        )

        clients = ColdClients(base_b, cold_languages(base_b), clients=args.clients)
        for round_index in range(args.rounds):
            if time.monotonic() > deadline:
                notes.append(f"- (b): stopped after {round_index} rounds: time budget spent")
                break
            for name in SCENARIOS:
                if round_index % 2 == 0:
                    steady = measure(url_b, headers_b[name], proc_b.pid)
                with clients.running() as seen:
                    during = measure(url_b, headers_b[name], proc_b.pid, lead=1)
                if round_index % 2 == 1:
                    steady = measure(url_b, headers_b[name], proc_b.pid)
                cold[name].append((steady, during))
                cold_seen.merge(seen)
        if not args.no_process_proxy and time.monotonic() < deadline:
            for nice in (0, 19):
                with busy_process(nice) as busy_pid:
                    for name in SCENARIOS:
                        run = measure(url_b, headers_b[name], proc_b.pid, also=busy_pid)
                        proxy.setdefault((nice, name), []).append(run)

    everything = [r for t in (warm, cold) for pairs in t.values() for pair in pairs for r in pair]
    lines = [
        f"- data: `{args.data}`; service from `{args.service_root}`, default settings but "
        f"LEADERBOARD_CACHE_DIR={args.cache_dir}",
        f"- service pinned to core 0 (`taskset -c 0`); `wrk -t1 -c{args.connections} "
        f"-d{args.seconds}s` and {args.clients} cold clients on core 1; route "
        f"`{ROUTE}`; {args.rounds} rounds of (a)+(c) pairs, then of (a)+(b) pairs",
        f"- niceness of the service, wrk and the clients: {args.nice}",
        f"- (b): each client asks for a new `?languages=` combination of `{COLD_BENCHMARK}` "
        "(2-3 common languages) after its previous answer",
        *notes,
        f"- load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; other "
        "processes took a median "
        f"{statistics.median(r.others for r in everything) if everything else 0:.0%} of core 0",
    ]
    if args.note:
        lines.append(f"- {args.note}")
    lines += [
        "",
        "Ratios: raw (requests per second over (a)'s) and core (expected on a dedicated "
        "core, from the builds' share of a core and the loop's CPU per request); see the "
        "script's docstring.",
        "",
        "| scenario | (a) steady | (b) cold filters | (b)/(a) raw, core "
        "| (c) warmup | (c)/(a) raw, core |",
        "|---|---|---|---|---|---|",
    ]
    worst = float("inf")
    quiet_machine = bool(everything) and statistics.median(r.others for r in everything) <= 0.1
    judged = raw_ratio if quiet_machine else core_ratio
    for name in SCENARIOS:
        for pairs in (cold[name], warm[name]):
            value = judged(pairs)
            if value is not None:
                worst = min(worst, value)
        steady_runs = [steady for pairs in (cold[name], warm[name]) for steady, _ in pairs]
        lines.append(
            f"| {name} | {cell(steady_runs)} | {cell([d for _, d in cold[name]])} "
            f"| **{show(raw_ratio(cold[name]))}**, {show(core_ratio(cold[name]))} "
            f"| {cell([d for _, d in warm[name]])} "
            f"| **{show(raw_ratio(warm[name]))}**, {show(core_ratio(warm[name]))} |"
        )
    latencies = sorted(cold_seen.seconds)
    summary = f"- (b) cold requests by status: {dict(sorted(cold_seen.statuses.items()))}"
    if latencies:
        summary += (
            f"; 200s took median {statistics.median(latencies):.2f} s, max {latencies[-1]:.2f} s"
        )
    if cold_seen.retry_after:
        summary += f"; Retry-After values {sorted(set(cold_seen.retry_after))}"
    lines += ["", summary]
    if proxy:
        lines += [
            "",
            "| (d) a spinning process on core 0, niceness over the service's "
            "| service's share of core 0 | spinner's "
            "| service / (service + spinner) | req/s |",
            "|---|---|---|---|---|",
        ]
        for (nice, name), runs in sorted(proxy.items()):
            server = statistics.median(r.server for r in runs)
            spinner = statistics.median(r.busy for r in runs)
            kept = server / max(server + spinner, 1e-9)
            rps = statistics.median(r.rps for r in runs)
            lines.append(
                f"| +{nice}, {name} | {server:.0%} | {spinner:.0%} | **{kept:.2f}** | {rps:,.0f} |"
            )
    failures = cold_seen.statuses.get("timeout", 0) + cold_seen.statuses.get("error", 0)
    verdict = "meets" if worst >= TARGET and failures == 0 else "misses"
    lines += [
        "",
        f"Target: (b)/(a) and (c)/(a) >= {TARGET} in both scenarios, no cold request timing "
        f"out: {verdict} (worst {'raw' if quiet_machine else 'core'} ratio {worst:.2f}x, "
        f"{failures} timeouts or errors).",
    ]
    title = "Builds and serving: a built route's throughput during cold builds and warmup"
    if args.no_record:
        print("\n".join(lines))
    else:
        record(title, command=command_line(), lines=lines)


if __name__ == "__main__":
    main()
