"""Static export: every unparameterized route's bytes and codings, a manifest, and server configs.

:func:`export_site` starts the app in-process, waits until warmup has built every
unparameterized route, and writes each built :class:`~leaderboard_api.serving.payload.Payload`
exactly as the live service would send it.

Layout (``OUT`` is the export directory)
    An API path ``P`` (``/v1/...``) becomes the directory ``OUT/P/`` holding ``index``
    (identity) and ``index.br``, ``index.zst``, ``index.gz`` for the codings the payload
    offers: ``/v1/benchmarks/X`` and ``/v1/benchmarks/X/scores`` both exist, so a route
    can never be a plain file.  Names keep their decoded spelling (spaces, parentheses,
    commas, slashes); nginx and Caddy decode the URI before mapping it to a file.  Static
    files (the web page, ``/robots.txt``, ``/favicon.ico``) keep their own names, ``/``
    being ``index.html``.  Each body file has a ``.etag`` sidecar holding its quoted ETag
    (Caddy reads it), and its mtime is the payload's ``Last-Modified``.

Beside the files: ``manifest.json`` (paths, types, validators, files), ``nginx.conf.snippet``
(locations; include in a ``server`` block), ``nginx-maps.conf`` (maps; include in ``http``)
and ``Caddyfile``.  Same data, same bytes: nothing records when the export ran.  The
directory is written beside ``OUT`` and renamed into place, so a server reading ``OUT``
never sees half an export.  See docs/export.md for serving and what differs from live.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from leaderboard_api.app import create_app
from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.export_servers import ConfigError, caddyfile, nginx_maps, nginx_snippet
from leaderboard_api.serving.payload import Payload
from leaderboard_api.settings import Settings
from leaderboard_api.state import AppState

__all__ = ["ExportError", "ExportedRoute", "export_site", "write_export"]

log = logging.getLogger(__name__)

#: File suffix of each coding (the names nginx's gzip_static and Caddy's precompressed use).
SUFFIX = {"br": ".br", "zstd": ".zst", "gzip": ".gz", "identity": ""}
MANIFEST = "manifest.json"
NGINX_SNIPPET = "nginx.conf.snippet"
NGINX_MAPS = "nginx-maps.conf"
CADDYFILE = "Caddyfile"
#: Headers every route has (or that are per variant); the others are copied as they are.
_KNOWN = {
    "content-type",
    "content-length",
    "content-encoding",
    "etag",
    "cache-control",
    "last-modified",
    "vary",
}


class ExportError(Exception):
    """The export cannot be written as asked (a path the layout cannot hold, a busy target)."""


@dataclass(frozen=True, slots=True)
class ExportedRoute:
    """One exported URL path: its headers and, per coding, the file and ETag to send."""

    path: str
    #: ``dir``: files under ``path/`` (API routes); ``file``: the path names the file itself.
    kind: str
    content_type: str
    cache_control: str
    last_modified: str
    vary: str | None
    #: Further headers sent with 200 and 304, e.g. ``content-disposition`` for CSV.
    headers: tuple[tuple[str, str], ...]
    #: Coding -> file relative to the export root (forward slashes), server-preference order.
    files: Mapping[str, str]
    etags: Mapping[str, str]
    sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        """The identity file, relative to the root."""
        return self.files["identity"]

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "contentType": self.content_type,
            "cacheControl": self.cache_control,
            "lastModified": self.last_modified,
            "vary": self.vary,
            "headers": dict(self.headers),
            "etag": self.etags["identity"],
            "etags": dict(self.etags),
            "files": dict(self.files),
            "sizes": dict(self.sizes),
        }


async def export_site(settings: Settings, *, out: Path) -> int:
    """Load the data named by ``settings``, build every route, write the export to ``out``.

    Returns the number of URL paths written.  ``out`` must not exist, be empty, or hold a
    previous export (it is then replaced whole).

    Raises
    ------
    DatasetError
        If the dataset cannot be loaded.
    ExportError
        If ``out`` holds something else, or a path cannot be laid out as files.
    """
    _check_target(out)
    started = time.perf_counter()
    app = create_app(settings.model_copy(update={"warmup": True}))
    state: AppState = app.state.lb
    async with app.router.lifespan_context(app):
        snapshot_id = await _warmed(state)
        api = dict(await asyncio.to_thread(state.built_routes))
        static = dict(state.static)
        params = _query_parameters(app.openapi)
    routes = await asyncio.to_thread(
        write_export,
        api=api,
        static=static,
        out=out,
        snapshot=snapshot_id,
        query_parameters=params,
    )
    seconds = time.perf_counter() - started
    log.info("exported %d paths to %s in %.2fs", len(routes), out, seconds)
    return len(routes)


async def _warmed(state: AppState) -> str:
    """Wait until every unparameterized route is servable; return the snapshot id."""
    warm = asyncio.ensure_future(state.warm_event.wait())
    failed = asyncio.ensure_future(state.failed_event.wait())
    try:
        await asyncio.wait({warm, failed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        warm.cancel()
        failed.cancel()
    if state.loaded is None:
        raise DatasetError(state.last_error or "the dataset could not be loaded")
    return state.loaded.snapshot.id


def _query_parameters(openapi: Any) -> tuple[str, ...]:
    """Names of the query parameters of every /v1 route (what the export cannot honor)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GET+HEAD routes share operation ids
        schema = openapi()
    names: set[str] = set()
    for path, item in schema.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param.get("in") == "query":
                    names.add(param["name"])
    return tuple(sorted(names))


def _check_target(out: Path) -> None:
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())
    ):
        msg = f"{out} exists and is not an export (no {MANIFEST}); choose an empty or new directory"
        raise ExportError(msg)


def write_export(
    *,
    api: Mapping[str, Payload],
    static: Mapping[str, Payload],
    out: Path,
    snapshot: str = "",
    query_parameters: Iterable[str] = (),
) -> list[ExportedRoute]:
    """Write payloads, manifest and configs into ``out`` (replaced whole); return the routes.

    ``api`` maps decoded URL paths to payloads laid out as directories; ``static`` maps
    paths to payloads written under their own names.  Blocking (file I/O).
    """
    _check_target(out)
    final = out.resolve()
    work = final.parent / f".{final.name}.export-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        routes = _write_files(work, api=api, static=static)
        manifest = {"snapshot": snapshot, "routes": [r.manifest_entry() for r in routes]}
        params = tuple(query_parameters)
        # Dated like the newest payload, so two exports of the same data are identical.
        stamp = max((p.last_modified_epoch for p in (*api.values(), *static.values())), default=0)
        for name, text in (
            (MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"),
            (NGINX_MAPS, nginx_maps(routes, query_parameters=params).encode()),
            (NGINX_SNIPPET, nginx_snippet(routes, root=final).encode()),
            (CADDYFILE, caddyfile(routes, root=final, query_parameters=params).encode()),
        ):
            _write(work / name, text, mtime=stamp)
        _swap_in(work, final)
    except ConfigError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise ExportError(str(exc)) from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return routes


def _swap_in(work: Path, final: Path) -> None:
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    work.rename(final)
    if old.exists():
        shutil.rmtree(old)


def _write(path: Path, data: bytes, *, mtime: int | None = None) -> None:
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def _file_base(path: str, *, kind: str) -> str:
    """The identity file of ``path`` relative to the root, after checking it can be one."""
    parts = path.split("/")[1:]
    if kind == "file" and path.endswith("/"):
        parts[-1] = "index.html"
    bad = [p for p in (parts[:-1] if kind == "file" else parts) if p in ("", ".", "..")]
    if bad or (kind == "file" and parts[-1] in (".", "..")):
        msg = f"path {path!r} has an empty, '.' or '..' segment that servers would normalize"
        raise ExportError(msg)
    if kind == "dir":
        parts.append("index")
    elif any(parts[-1].endswith(s) for s in (".br", ".zst", ".gz", ".etag")):
        msg = f"static file {path!r} ends with a suffix the export uses for codings"
        raise ExportError(msg)
    return "/".join(parts)


def _route(path: str, payload: Payload, *, kind: str) -> ExportedRoute:
    identity = payload.variants["identity"]
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in identity.headers}
    base = _file_base(path, kind=kind)
    return ExportedRoute(
        path=path,
        kind=kind,
        content_type=headers["content-type"],
        cache_control=headers["cache-control"],
        last_modified=headers["last-modified"],
        vary=headers.get("vary"),
        headers=tuple((k, v) for k, v in headers.items() if k not in _KNOWN),
        files={coding: base + SUFFIX[coding] for coding in payload.variants},
        etags={coding: variant.etag for coding, variant in payload.variants.items()},
        sizes={coding: len(variant.body) for coding, variant in payload.variants.items()},
    )


def _write_files(
    root: Path, *, api: Mapping[str, Payload], static: Mapping[str, Payload]
) -> list[ExportedRoute]:
    overlap = sorted(set(api) & set(static))
    if overlap:
        msg = f"paths both static and API: {overlap[:5]}"
        raise ExportError(msg)
    jobs = [(path, payload, "dir") for path, payload in api.items()]
    jobs += [(path, payload, "file") for path, payload in static.items()]
    routes: list[ExportedRoute] = []
    # file -> its ETag: aliases ("/" and "/index.html") share files, nothing else may.
    written: dict[str, str] = {}
    for path, payload, kind in sorted(jobs, key=lambda job: job[0]):
        route = _route(path, payload, kind=kind)
        for coding, variant in payload.variants.items():
            name = route.files[coding]
            if written.get(name, variant.etag) != variant.etag:
                msg = f"{path!r} and another path both need the file {name!r}"
                raise ExportError(msg)
            if name in written:
                continue
            target = root / name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                _write(target, variant.body, mtime=payload.last_modified_epoch)
                _write(
                    Path(f"{target}.etag"), variant.etag.encode(), mtime=payload.last_modified_epoch
                )
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                # A route's file is another route's directory, or the other way round.
                msg = f"{path!r} clashes with another exported path on disk ({name!r}): {exc}"
                raise ExportError(msg) from exc
            written[name] = variant.etag
        routes.append(route)
    return routes
