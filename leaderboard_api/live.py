"""Keeping data live: first load and warmup, reload checks, the watcher, and the swap."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.lifecycle import AppState, install, load, resolve_source, warm
from leaderboard_api.routes.warmup import warm_plan
from leaderboard_api.views import Views

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What one reload check did."""

    result: str  # "unchanged" | "swapped" | "error"
    snapshot: str | None
    previous: str | None
    seconds: float
    error: str | None = None


def _freeze_catalogs() -> None:
    # The catalogs are long-lived objects: keep the cyclic GC from walking them again
    # and again (it made the first builds after a load several times slower).
    gc.collect()
    gc.freeze()


def _count(state: AppState, result: str) -> None:
    metrics = state.metrics
    if metrics is not None:
        metrics.reload(result)


async def startup(state: AppState) -> None:
    """Load the dataset, build per-snapshot views, preload routes; flip readiness."""
    settings = state.settings
    started = time.perf_counter()
    try:
        with state.span("dataset.load", source=settings.data or "sample"):
            source = await asyncio.to_thread(resolve_source, settings)
            snapshot = await asyncio.to_thread(load, settings, source)
            views = await asyncio.to_thread(Views, snapshot)
    except DatasetError as exc:
        state.last_error = str(exc)
        log.error("dataset rejected: %s", exc)
        for callback in state.on_fatal:
            callback(exc)
        return
    state.source = source
    state.load_seconds = time.perf_counter() - started
    _freeze_catalogs()
    install(state, snapshot, views)
    log.info(
        "loaded snapshot %s from %s: %d rows in %.2fs",
        snapshot.id,
        snapshot.source,
        snapshot.stats.rows,
        state.load_seconds,
    )
    if not settings.warmup:
        state.ready = True
        state.warm_done = True
        return
    first, rest = warm_plan(state, views)
    with state.span("warmup", phase="ready", payloads=len(first)):
        state.warmed = await warm(state, first, concurrency=settings.warmup_concurrency)
    state.warmup_seconds = time.perf_counter() - started
    state.ready = True
    if state.metrics is not None:
        state.metrics.set_warmup(state.warmup_seconds)
    log.info("ready: %d payloads warm in %.2fs", state.warmed, state.warmup_seconds)
    with state.span("warmup", phase="background", payloads=len(rest)):
        state.warmed += await warm(state, rest, concurrency=settings.warmup_concurrency)
    state.warm_done = True
    log.info("warmup finished: %d payloads in %.2fs", state.warmed, time.perf_counter() - started)


async def reload_now(state: AppState) -> ReloadOutcome:
    """Check the source; when its snapshot id changed, load, validate and warm the new
    version while the old one keeps serving, then swap in one assignment.

    A failure (bad data, unreachable hub) keeps the old snapshot serving and is reported
    in ``/ready``'s ``lastError``; it never raises.
    """
    async with state.reload_lock:
        started = time.perf_counter()
        previous = state.loaded.snapshot.id if state.loaded else None
        state.last_check = datetime.now(UTC)
        try:
            source = await asyncio.to_thread(resolve_source, state.settings)
            if source.snapshot_id == previous:
                _count(state, "unchanged")
                state.last_failure = None
                return ReloadOutcome("unchanged", previous, previous, time.perf_counter() - started)
            with state.span("dataset.load", source=source.spec, snapshot=source.snapshot_id):
                snapshot = await asyncio.to_thread(load, state.settings, source)
                views = await asyncio.to_thread(Views, snapshot)
            first, rest = warm_plan(state, views)
            # Built under the new snapshot id: the old payloads keep answering meanwhile.
            with state.span("warmup", phase="reload", payloads=len(first) + len(rest)):
                await warm(state, first + rest, concurrency=state.settings.warmup_concurrency)
        except (DatasetError, OSError) as exc:
            message = f"reload failed at {state.last_check.isoformat()}: {exc}"
            state.last_error = message
            _count(state, "error")
            if state.last_failure == str(exc):
                log.info("reload still failing with the same error; still serving %s", previous)
            else:
                log.error("%s; still serving %s", message, previous)
            state.last_failure = str(exc)
            return ReloadOutcome(
                "error", previous, previous, time.perf_counter() - started, error=str(exc)
            )
        # Frozen objects are never collected: unfreeze so the old snapshot can be freed
        # once the requests still holding it finish.
        gc.unfreeze()
        state.source = source
        install(state, snapshot, views)
        state.last_error = None
        state.last_failure = None
        state.warm_done = True
        _freeze_catalogs()
        _count(state, "swapped")
        seconds = time.perf_counter() - started
        log.info("swapped snapshot %s -> %s in %.2fs", previous, snapshot.id, seconds)
        return ReloadOutcome("swapped", snapshot.id, previous, seconds)


async def watch(state: AppState, *, every: float) -> None:
    """Check for a new dataset version every ``every`` seconds, forever."""
    while True:
        await asyncio.sleep(every)
        if not state.ready:
            continue
        try:
            await reload_now(state)
        except Exception:  # the watcher must outlive any one failed check
            log.exception("reload check crashed; the watcher keeps running")
            _count(state, "error")
