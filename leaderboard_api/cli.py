"""The command line: serve, warm, get, validate, import, ingest and export."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.operational import cli as operational_cli


def _settings(args: argparse.Namespace) -> Any:
    from leaderboard_api.settings import Settings

    overrides: dict[str, Any] = {}
    for name in ("data", "host", "port", "watch_seconds", "log_format", "cache_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "no_cache", False):
        overrides["cache_dir"] = None
    try:
        return Settings(**overrides)
    except ValidationError as exc:  # a bad setting from the environment or a flag
        problem = exc.errors()[0]
        name = ".".join(str(p) for p in problem["loc"]) or "settings"
        raise SettingsError(f"setting {name}: {problem['msg']}") from None


class SettingsError(Exception):
    """A setting the service cannot start with (printed without a traceback)."""


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        help="dataset: a directory, hf://datasets/ORG/NAME[@REV], or omit for the embedded sample",
    )
    parser.add_argument("--cache-dir", dest="cache_dir", type=Path, help="disk cache folder")
    parser.add_argument("--no-cache", action="store_true", help="do not use the disk cache")


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.workers != 1:
        print(
            "error: --workers must be 1. Run one worker per replica and scale out with more "
            "replicas (see docs/deployment.md): each replica's cache and /metrics are its own.",
            file=sys.stderr,
        )
        return 2
    from leaderboard_api.server import run_server

    run_server(_settings(args))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from leaderboard_api.dataset.loader import build_snapshot
    from leaderboard_api.dataset.sources import resolve

    source = resolve(args.dataset)
    snapshot = build_snapshot(source)
    stats = snapshot.stats
    print(f"ok: {source.spec} (snapshot {snapshot.id})")
    print(
        f"  {stats.files} results file(s), {stats.rows_read} rows read, {stats.rows} kept "
        f"({stats.duplicates_dropped} duplicate(s) collapsed, {stats.revisions_dropped} rows of "
        f"other revisions, {stats.nan_scores} NaN score(s) as missing)"
    )
    print(
        f"  {len(snapshot.models)} models, {len(snapshot.tasks)} tasks, "
        f"{len(snapshot.benchmarks)} benchmarks"
    )
    for warning in snapshot.warnings:
        print(f"warning: {warning.render()}")
    return 1 if (args.strict and snapshot.warnings) else 0


def _cmd_warm(args: argparse.Namespace) -> int:
    from leaderboard_api.dataset.loader import load_snapshot
    from leaderboard_api.dataset.sources import resolve

    settings = _settings(args)
    if settings.cache_dir is None:
        print("error: warm needs a cache directory (--cache-dir)", file=sys.stderr)
        return 2
    source = resolve(settings.data, hf_cache_dir=settings.hf_cache_dir)
    snapshot = load_snapshot(source, cache_dir=settings.cache_dir)
    print(f"warmed {snapshot.id} into {settings.cache_dir}")
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    from leaderboard_api.inprocess import get

    status, headers, body = asyncio.run(get(_settings(args), args.path, headers=args.header))
    if args.include:
        print(f"HTTP {status}")
        for key, value in headers:
            print(f"{key}: {value}")
        print()
    sys.stdout.buffer.write(body)
    if body and not body.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    return 0 if status < 400 else 1


def _cmd_import(args: argparse.Namespace) -> int:
    source = Path(args.source)
    out = Path(args.out)
    progress = not args.quiet and sys.stderr.isatty()
    if args.kind == "mteb":
        from leaderboard_api.dataset.importers.mteb import import_mteb

        report = import_mteb(
            source,
            out=out,
            catalog=args.catalog,
            progress=progress,
            main_only=args.main_only,
            jobs=args.jobs,
        )
    elif args.kind == "openllm":
        from leaderboard_api.dataset.importers.openllm import import_openllm

        report = import_openllm(source, out=out, progress=progress)
    else:
        from leaderboard_api.dataset.importers.llmperf import import_llmperf

        report = import_llmperf(source, out=out, progress=progress)
    print(report.render())
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from leaderboard_api.dataset.writer import (
        GitOptions,
        NotWritable,
        WriteFailed,
        batch_from_file,
        ingest,
        writable_root,
    )

    settings = _settings(args)
    try:
        root = writable_root(args.data)
        batch = batch_from_file(Path(args.file))
        git = GitOptions(
            author_name=settings.ingest_git_author_name,
            author_email=settings.ingest_git_author_email,
            push_retries=settings.ingest_push_retries,
        )
        result = ingest(root, batch, message=args.message, git=git)
    except (NotWritable, WriteFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    what = "ingested" if result.created else "already there, nothing written"
    print(f"{what}: {result.file} ({result.rows} rows)")
    if result.models or result.tasks:
        print(f"  new catalog entries: {len(result.models)} model(s), {len(result.tasks)} task(s)")
    pushed = " (pushed)" if result.pushed else ""
    print(f"version {result.version}{pushed}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from leaderboard_api.export import ExportError, export_site

    try:
        written = asyncio.run(export_site(_settings(args), out=Path(args.out)))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"exported {written} routes to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leaderboard-api", description="Serve benchmark results as leaderboards."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API and the web page")
    _add_data(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument(
        "--watch", dest="watch_seconds", type=float, help="check for new data every N seconds"
    )
    serve.add_argument("--log-format", dest="log_format", choices=["text", "json"])
    serve.add_argument("--workers", type=int, default=1, help="must be 1 (scale with replicas)")
    serve.set_defaults(func=_cmd_serve)

    validate = sub.add_parser("validate", help="check a dataset and report what it holds")
    validate.add_argument("dataset", help="a directory or hf://datasets/ORG/NAME[@REV]")
    validate.add_argument("--strict", action="store_true", help="fail on warnings too")
    validate.set_defaults(func=_cmd_validate)

    warm = sub.add_parser("warm", help="fill the disk cache for a dataset ahead of time")
    _add_data(warm)
    warm.set_defaults(func=_cmd_warm)

    get = sub.add_parser("get", help="run one request in-process and print the body")
    _add_data(get)
    get.add_argument("path", help="e.g. /v1/benchmarks")
    get.add_argument("-i", "--include", action="store_true", help="print status and headers")
    get.add_argument(
        "-H", "--header", action="append", default=[], help="request header 'Name: value'"
    )
    get.set_defaults(func=_cmd_get)

    imp = sub.add_parser("import", help="turn a published raw layout into a dataset")
    imp.add_argument("kind", choices=["mteb", "openllm", "llmperf"])
    imp.add_argument("source", help="the raw results (folder or file)")
    imp.add_argument("--out", required=True, help="dataset directory to write")
    imp.add_argument("--catalog", type=Path, help="mteb: catalog folder (tasks, benchmarks, menu)")
    imp.add_argument(
        "--main-only", action="store_true", help="mteb: keep only each task's main metric"
    )
    imp.add_argument(
        "--jobs", type=int, help="mteb: parallel worker processes (default: the number of CPUs)"
    )
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=_cmd_import)

    ingest = sub.add_parser("ingest", help="add results to a dataset as a new version")
    ingest.add_argument("file", help="results: .parquet, or JSON rows (optionally with entries)")
    ingest.add_argument("--data", required=True, help="the dataset directory to write into")
    ingest.add_argument("--message", help="commit message (git datasets)")
    ingest.set_defaults(func=_cmd_ingest)

    export = sub.add_parser("export", help="write every unparameterized route as static files")
    _add_data(export)
    export.add_argument("out", help="output directory")
    export.set_defaults(func=_cmd_export)
    operational_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
