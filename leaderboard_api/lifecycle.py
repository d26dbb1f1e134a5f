"""Loading and warming: the one path by which a snapshot becomes what the service serves.

``load_and_warm`` is used by startup, by the watcher and by ``POST /admin/reload``:

1. resolve the source; an unchanged snapshot id ends the check;
2. stop the background warmup of the previous snapshot (a newer load supersedes it);
3. load the snapshot off the event loop, with its views and fingerprints;
4. on the first load, make every ``ready`` route (lists, leaderboards, benchmark pages)
   servable before ``/ready`` says so: a payload whose content key (its fingerprint) is
   cached or in the on-disk store is used as it is, only the others are built;
5. swap in one assignment (the old snapshot answers until then), keeping every cached
   payload the new snapshot still reads and dropping the others.  A reload swaps without
   building anything: unchanged pages keep their payloads, a changed one is built on its
   first request (ahead of any background build) or by the warmup below;
6. build the remaining routes in the background, newest snapshot only, and write the
   snapshot's manifest (route -> content key) so a restart serves them at once.

A restart with a manifest for the source's snapshot id serves every unparameterized route
from the store before the dataset has finished loading (``preload``).  A failure keeps the
old snapshot serving and is reported in ``/ready``'s ``lastError``; the first load failing
ends the process (``on_fatal``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.gitsync import pull
from leaderboard_api.dataset.loader import load_snapshot, release_memory
from leaderboard_api.dataset.sources import ResolvedSource, resolve
from leaderboard_api.fingerprints import compute, fingerprint_values, settings_fingerprint
from leaderboard_api.payloads import ROUTES, WarmItem, builder, fingerprint_of, warm_plan
from leaderboard_api.resources import Views
from leaderboard_api.scoring.errors import ScoringError
from leaderboard_api.serving.payload import Payload
from leaderboard_api.serving.scheduler import BuildCancelled
from leaderboard_api.settings import Settings
from leaderboard_api.state import AppState, BoundedKeys, Loaded, ReloadOutcome, Routing

log = logging.getLogger(__name__)

__all__ = ["load_and_warm", "preload", "reload_now", "resolve_source", "startup", "watch"]


def resolve_source(settings: Settings) -> ResolvedSource:
    if settings.dataset_pull:
        # A replica's clone: what the others pushed is served too (fast-forward only).
        pull(settings.data)
    return resolve(settings.data, hf_cache_dir=settings.hf_cache_dir)


def _manifest_name(state: AppState, snapshot_id: str) -> str:
    return f"{snapshot_id}-{settings_fingerprint(state.settings.cache_control)[:16]}"


def _freeze_catalogs() -> None:
    # The catalogs are long-lived objects: keep the cyclic GC from walking them again
    # and again (it made the first builds after a load several times slower).
    gc.collect()
    gc.freeze()


def _count(state: AppState, result: str) -> None:
    if state.metrics is not None:
        state.metrics.reload(result)


def _in_memory(state: AppState, item: WarmItem) -> bool:
    """Whether a route's payload is held for good (else: the LRU, backed by the store)."""
    return not (item.spec.long_tail and state.store is not None)


def _place(state: AppState, routing: Routing, item: WarmItem, payload: Payload | None) -> None:
    if payload is not None and _in_memory(state, item):
        state.cache.put(item.key, payload, pin=True)
        for path in item.paths:
            routing.routes[(path, b"")] = payload
    else:
        for path in item.paths:
            routing.keys.remember((path, b""), item.key)


def _new_routing(state: AppState) -> Routing:
    return Routing(keys=BoundedKeys(max(state.settings.lru_max_entries, 1) * 4))


# --- preload from the store -------------------------------------------------------------


async def preload(state: AppState, source: ResolvedSource) -> int:
    """Serve the routes of ``source``'s snapshot from the store's manifest, if it has one;
    return how many payloads were read into memory (the long tail stays on disk)."""
    store = state.store
    if store is None or not state.settings.warmup:
        return 0
    manifest = await asyncio.to_thread(
        store.read_manifest, _manifest_name(state, source.snapshot_id)
    )
    if not manifest:
        return 0
    kinds = {key: key.split("\x1f", 1)[0] for key in set(manifest.values())}
    if any(kind not in ROUTES for kind in kinds.values()):
        return 0
    wanted = {key for key, kind in kinds.items() if not ROUTES[kind].long_tail}

    def read() -> dict[str, Payload]:
        found: dict[str, Payload] = {}
        for key in sorted(wanted):
            payload = store.get(key)
            if payload is not None:
                found[key] = payload
        return found

    payloads = await asyncio.to_thread(read)
    if len(payloads) < len(wanted):
        log.info(
            "store holds %d of %d preloaded payloads: loading instead", len(payloads), len(wanted)
        )
        return 0
    routing = _new_routing(state)
    for path, key in manifest.items():
        payload = payloads.get(key)
        if payload is not None:
            state.cache.put(key, payload, pin=True)
            routing.routes[(path, b"")] = payload
        routing.manifest[path] = key
    state.routing = routing
    state.mark_ready()
    log.info("serving %d routes of %s from the store", len(manifest), source.snapshot_id)
    return len(payloads)


# --- load and warm ----------------------------------------------------------------------


def _prepare(state: AppState, source: ResolvedSource, generation: int) -> Loaded:
    """Blocking: the snapshot (from the disk cache when possible), its views, fingerprints."""
    # The snapshot being served is the base: only the files that changed are read again.
    previous = state.loaded.snapshot if state.loaded is not None else None
    snapshot = load_snapshot(source, cache_dir=state.settings.cache_dir, previous=previous)
    views = Views(snapshot)
    fingerprints = compute(snapshot, cache_control=state.settings.cache_control)
    return Loaded(snapshot=snapshot, views=views, fingerprints=fingerprints, generation=generation)


async def _payloads(
    state: AppState,
    loaded: Loaded,
    items: Iterable[WarmItem],
    *,
    pin: bool | None = None,
    background: bool = True,
) -> dict[str, Payload | None]:
    """The payload of every item: cached, read from the store or built (bounded concurrency;
    ``background`` builds are paced by the scheduler while requests flow).  None for a
    long-tail item built into the on-disk store only: holding the warmup's long tail in
    memory as well would grow RSS by the LRU's bound for payloads read back on request."""
    semaphore = asyncio.Semaphore(state.settings.warmup_concurrency)
    out: dict[str, Payload | None] = {}

    async def one(item: WarmItem) -> None:
        ready = state.cache.get_ready(item.key)
        if ready is not None:
            out[item.key] = ready
            return
        async with semaphore:
            if loaded.generation != state.generation:
                return  # superseded by a newer load
            build = builder(state, loaded, item.spec, item.name, None, item.key)
            keep = _in_memory(state, item) if pin is None else pin
            try:
                payload = await state.cache.get_or_build(
                    item.key, build, pin=keep, background=background, memo=keep
                )
                out[item.key] = payload if keep else None
            except BuildCancelled:
                return  # superseded by a newer load, or shutting down
            except (ScoringError, DatasetError) as exc:
                log.warning("warmup skipped %s: %s", item.paths[0], exc)
            except Exception:
                # A bug in one route must not keep the rest from warming, but it must be
                # loud: the traceback is logged and the route is built again on request.
                log.exception("warmup failed for %s", item.paths[0])

    await asyncio.gather(*(one(item) for item in items))
    return out


def _swap(
    state: AppState, loaded: Loaded, plan: list[WarmItem], ready: dict[str, Payload | None]
) -> Routing:
    """Install ``loaded`` with every payload already at hand; drop what it no longer reads."""
    routing = _new_routing(state)
    for item in plan:
        payload = ready.get(item.key) or state.cache.get_ready(item.key)
        if payload is not None:
            _place(state, routing, item, payload)
        if state.store is not None:
            for path in item.paths:
                routing.manifest[path] = item.key
    current = fingerprint_values(loaded.fingerprints)
    planned = {item.key for item in plan if _in_memory(state, item)}

    def keep(key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key.startswith("icon\x1f"):
            return True  # keyed by the icon's URL, not by the snapshot
        return key in planned or fingerprint_of(key) in current

    # Frozen objects are never collected: unfreeze so the old snapshot can be freed once
    # the requests still holding it finish.
    gc.unfreeze()
    state.loaded = loaded
    state.routing = routing
    state.cache.retain(keep)
    # Pinned entries of the new plan stay pinned; long-tail ones of an older plan that are
    # still current were kept above and now count against the LRU bound only.
    state.loaded_event.set()
    for hook in state.hooks:
        hook(loaded)
    _freeze_catalogs()
    return routing


async def _background(
    state: AppState, loaded: Loaded, routing: Routing, rest: list[WarmItem]
) -> None:
    """Build the routes not yet servable; stop when a newer snapshot is being loaded."""
    started = time.perf_counter()
    store = state.store
    todo: list[WarmItem] = []
    for item in rest:
        if all((path, b"") in routing.routes for path in item.paths):
            continue
        todo.append(item)
    if store is not None:
        have = await asyncio.to_thread(lambda: {i.key for i in todo if store.contains(i.key)})
        todo = [i for i in todo if i.key not in have or _in_memory(state, i)]
    with state.span("warmup", phase="background", payloads=len(todo)):
        built = await _payloads(state, loaded, todo)
    if loaded.generation != state.generation:
        return
    for item in todo:
        if item.key in built:
            _place(state, routing, item, built[item.key])
    state.warmed += len(built)
    if store is not None:
        await asyncio.to_thread(
            store.write_manifest, _manifest_name(state, loaded.snapshot.id), dict(routing.manifest)
        )
    # What only the warmup's builds reused goes, and the allocator hands back what
    # thousands of builds freed.
    loaded.views.trim()
    await asyncio.to_thread(release_memory, collect=False)
    state.mark_warm(True)
    log.info(
        "warmup finished for %s: %d payloads built in %.2fs",
        loaded.snapshot.id,
        len(built),
        time.perf_counter() - started,
    )


def _cancel_background(state: AppState) -> None:
    task = state.background
    if task is not None and not task.done():
        task.cancel()
    state.background = None


async def load_and_warm(state: AppState, *, initial: bool = False) -> ReloadOutcome:
    """Check the source; when its snapshot changed, load and warm it, then swap it in.

    Never raises for bad data or I/O: the outcome says ``error`` and the old snapshot
    (if any) keeps serving.
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
            if initial:
                await preload(state, source)
            _cancel_background(state)
            state.generation += 1
            with state.span("dataset.load", source=source.spec, snapshot=source.snapshot_id):
                loaded = await asyncio.to_thread(_prepare, state, source, state.generation)
            plan = warm_plan(loaded.views, loaded.fingerprints)
            reused = sum(1 for item in plan if item.key in state.cache)  # not counted as hits
            first = [item for item in plan if item.phase == "ready"]
            if not state.settings.warmup or not initial:
                # A reload swaps at once: what it reuses is served as it is, and a changed
                # page is built on its first request (on-demand builds go first) or by the
                # background warmup, which takes the changed ready pages before the rest.
                first = []
            builds_before = state.cache.stats.builds
            with state.span("warmup", phase="ready", payloads=len(first)):
                # What /ready and the swap wait for is built first (not paced): a reload
                # under load still serves new numbers in seconds.
                ready = await _payloads(state, loaded, first, pin=True, background=initial)
            built = state.cache.stats.builds - builds_before
        except (DatasetError, OSError) as exc:
            return _failed(state, exc, previous, started, initial=initial)
        except Exception as exc:
            if not initial:
                raise
            log.exception("the first load failed")
            return _failed(state, exc, previous, started, initial=initial)
        state.source = source
        routing = _swap(state, loaded, plan, ready)
        seconds = time.perf_counter() - started
        state.last_error = None
        state.last_failure = None
        if initial:
            state.load_seconds = seconds
            state.warmup_seconds = seconds
            if state.metrics is not None:
                state.metrics.set_warmup(seconds)
        state.warmed = len(ready)
        state.mark_ready()
        if not state.settings.warmup:
            state.mark_warm(True)
        else:
            state.mark_warm(False)
            # A reload's changed ready pages first, then the long tail.
            rest = [item for item in plan if item.phase == "ready"] if not initial else []
            rest += [item for item in plan if item.phase != "ready"]
            state.background = state.spawn(_background(state, loaded, routing, rest))
        if not initial:
            _count(state, "swapped")
        log.info(
            "serving snapshot %s (was %s): %d rows, %d payloads reused, %d built, in %.2fs",
            loaded.snapshot.id,
            previous,
            loaded.snapshot.stats.rows,
            reused,
            built,
            seconds,
        )
        return ReloadOutcome(
            "swapped", loaded.snapshot.id, previous, seconds, reused=reused, built=built
        )


def _failed(
    state: AppState, exc: Exception, previous: str | None, started: float, *, initial: bool
) -> ReloadOutcome:
    seconds = time.perf_counter() - started
    if initial and previous is None:
        state.last_error = str(exc)
        log.error("dataset rejected: %s", exc)
        state.failed_event.set()
        for callback in state.on_fatal:
            callback(exc)
        return ReloadOutcome("error", None, None, seconds, error=str(exc))
    checked = state.last_check or datetime.now(UTC)
    state.last_error = f"reload failed at {checked.isoformat()}: {exc}"
    _count(state, "error")
    if state.last_failure == str(exc):
        log.info("reload still failing with the same error; still serving %s", previous)
    else:
        log.error("%s; still serving %s", state.last_error, previous)
    state.last_failure = str(exc)
    return ReloadOutcome("error", previous, previous, seconds, error=str(exc))


async def startup(state: AppState) -> None:
    """The first load (from the store's manifest first when there is one)."""
    await load_and_warm(state, initial=True)
    if state.store is not None:
        # Stores of older contract or format versions are never read again.
        await asyncio.to_thread(state.store.prune_namespaces)


async def reload_now(state: AppState) -> ReloadOutcome:
    """Check the source now; swap in its new snapshot when it changed."""
    return await load_and_warm(state)


async def watch(state: AppState, *, every: float) -> None:
    """Check for a new dataset version every ``every`` seconds, forever."""
    while True:
        await asyncio.sleep(every)
        if state.loaded is None:
            continue
        try:
            await load_and_warm(state)
        except Exception:  # the watcher must outlive any one failed check
            log.exception("reload check crashed; the watcher keeps running")
            _count(state, "error")
