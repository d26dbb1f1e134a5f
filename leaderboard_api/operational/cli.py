"""The ``keys`` and ``state`` commands: API keys (create, list, revoke) and schema upgrades."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from leaderboard_api.operational.records import Actor
    from leaderboard_api.operational.repository import StateStore

#: Scopes a key can carry (kept in step with ``records.SCOPES`` by a test).
_SCOPES = ("read", "submit", "vote", "evaluate", "ingest", "admin")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` and ``state`` to the program's subcommands; each sets ``func`` to ``run``."""
    keys = subparsers.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    create = keys_sub.add_parser("create", help="create a key and print it (only once)")
    create.add_argument("name", help="who or what the key is for, e.g. evaluator-1")
    create.add_argument(
        "--scopes",
        required=True,
        help=f"comma-separated scopes: {','.join(_SCOPES)}",
    )
    listing = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--live", action="store_true", help="leave out revoked keys")
    revoke = keys_sub.add_parser("revoke", help="revoke the live key with this name")
    revoke.add_argument("name")

    state = subparsers.add_parser("state", help="the operational state store (SQL)")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    state_sub.add_parser("upgrade", help="migrate the store's schema to the newest version")
    state_sub.add_parser("check", help="check that the store answers and is up to date")

    for parser in (create, listing, revoke, *state_sub.choices.values()):
        parser.add_argument(
            "--state",
            dest="state_url",
            metavar="URL",
            help="database URL (default: $LEADERBOARD_STATE, else a SQLite file in the "
            "user's data directory); e.g. postgresql+psycopg://user@host/db",
        )
    keys.set_defaults(func=run, operational_group="keys")
    state.set_defaults(func=run, operational_group="state")


def run(args: argparse.Namespace) -> int:
    """Carry out a ``keys`` or ``state`` command; 0 on success, 1 when refused."""
    from sqlalchemy.exc import SQLAlchemyError

    from leaderboard_api.operational.records import StateError

    try:
        if args.operational_group == "state":
            return _state(args)
        return _keys(args)
    except StateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        first = (str(exc).splitlines() or [""])[0]
        print(f"error: state store: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1


def _state(args: argparse.Namespace) -> int:
    from leaderboard_api.operational import migrations
    from leaderboard_api.operational.db import resolve_url
    from leaderboard_api.operational.repository import StateStore

    url = resolve_url(args.state_url)
    if args.state_command == "upgrade":
        revision = migrations.upgrade(url)
        print(f"state store at schema {revision}")
        return 0
    with StateStore.open(url, migrate=False) as store:
        ok, detail = store.health()
    print(detail, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _keys(args: argparse.Namespace) -> int:
    from leaderboard_api.operational.records import Actor
    from leaderboard_api.operational.repository import StateStore

    actor = Actor(identity=f"cli:{_user()}", address="local")
    with StateStore.open(args.state_url) as store:
        if args.keys_command == "create":
            return _create(store, args.name, args.scopes, actor)
        if args.keys_command == "revoke":
            key = store.keys.revoke(args.name, by=actor)
            print(f"revoked {key.name} ({key.prefix})")
            return 0
        _list(store, live_only=args.live)
        return 0


def _create(store: StateStore, name: str, scopes: str, actor: Actor) -> int:
    created = store.keys.create(name, [scopes], by=actor)
    print(created.raw)
    print(
        f"created key {created.key.name} ({created.key.prefix}) with scopes "
        f"{','.join(created.key.scopes)}; it is shown only this once",
        file=sys.stderr,
    )
    return 0


def _list(store: StateStore, *, live_only: bool) -> None:
    keys = store.keys.list(include_revoked=not live_only)
    rows = [("NAME", "PREFIX", "SCOPES", "CREATED", "LAST USED", "REVOKED")]
    rows += [
        (
            k.name,
            k.prefix,
            ",".join(k.scopes),
            _when(k.created_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. in a container)
        return "unknown"
