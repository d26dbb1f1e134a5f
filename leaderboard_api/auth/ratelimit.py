"""Rate limits with the ``limits`` library: named policies, decisions, the 429 and its headers.

Policies (:func:`default_policies`; each rate is a setting, ``limits`` syntax such as
``"10/day"`` or ``"30/minute"``; an empty rate turns the policy off):

============  ==========  ==============  ==========================================
policy        default     counted per     what
============  ==========  ==============  ==========================================
submissions   10/day      identity        ``POST`` of a submission
votes         100/hour    identity        ``POST`` of a vote
cold-builds   30/minute   client address  a parameterized read whose bytes are built
============  ==========  ==============  ==========================================

Storage is ``memory://`` (one process) or ``redis://host:port[/db]`` (``rediss://``,
``redis+unix://`` too) when several replicas must share counts; the asyncio storages
are used, so a Redis round trip never blocks the event loop.  The strategy is the
moving window by default: exact, and ``reset`` is when the oldest counted hit leaves
the window, i.e. when one more request will be accepted.

Headers follow draft-ietf-httpapi-ratelimit-headers-10 (the field syntax is that of
drafts 08-10: Structured Field Lists of Items, RFC 9651)::

    RateLimit-Policy: "submissions";q=10;w=86400
    RateLimit: "submissions";r=0;t=3600

on every response of a limited route (429 or not), and ``Retry-After`` (delta
seconds, never earlier than ``t``) on the 429, whose problem+json body names the
policy in ``violated-policies`` as the draft's quota-exceeded problem does.

A storage that fails (Redis down) does not fail the request: the hit is let through
unlimited, without headers, and logged — rate limits protect the service, they are not
worth an outage of the write side.

Per-address policies count under :class:`~leaderboard_api.auth.addresses.ClientAddress`.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from limits import RateLimitItem, parse
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import RateLimiter as _Strategy
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.responses import Response

from leaderboard_api.problems import problem

__all__ = [
    "DRAFT",
    "Decision",
    "Per",
    "Policy",
    "RateLimited",
    "RateLimiter",
    "Strategy",
    "default_policies",
    "rate_limit_headers",
    "rate_limited_response",
]

log = logging.getLogger(__name__)

#: The RateLimit header fields' draft whose syntax is sent.
DRAFT: Final = "draft-ietf-httpapi-ratelimit-headers-10"
SUBMISSIONS: Final = "submissions"
VOTES: Final = "votes"
COLD_BUILDS: Final = "cold-builds"

Per = Literal["identity", "address"]
Strategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]
_NAME: Final = re.compile(r"[a-z][a-z0-9-]*")
_REDIS_SCHEMES: Final = ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")
#: Redis timeouts: a hung Redis must not hold requests (the hit is let through instead).
_REDIS_OPTIONS: Final = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}


@dataclass(frozen=True, slots=True)
class Policy:
    """A named limit: ``rate`` in ``limits`` syntax (``""`` = off), counted ``per`` key."""

    name: str
    rate: str
    per: Per

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            msg = f"rate-limit policy name {self.name!r}: lower-case letters, digits and '-'"
            raise ValueError(msg)

    @property
    def item(self) -> RateLimitItem | None:
        """The parsed rate, None when the policy is off; ValueError for a bad rate."""
        if not self.rate.strip():
            return None
        try:
            return parse(self.rate)
        except ValueError as exc:
            msg = (
                f"rate limit {self.name!r}: {self.rate!r} is not a rate such as "
                "'10/day', '100/hour' or '30 per minute'"
            )
            raise ValueError(msg) from exc


def default_policies(
    *, submissions: str = "10/day", votes: str = "100/hour", cold_builds: str = "30/minute"
) -> tuple[Policy, ...]:
    """The three policies of the service with their rates (from settings)."""
    return (
        Policy(SUBMISSIONS, submissions, "identity"),
        Policy(VOTES, votes, "identity"),
        Policy(COLD_BUILDS, cold_builds, "address"),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit.

    ``limit`` is the quota per ``window_seconds``; ``remaining`` what is left after
    this hit; ``reset_seconds`` the whole seconds until more quota is available.  An
    unenforced decision (policy off, storage failing) has ``window_seconds == 0`` and
    produces no headers.
    """

    policy: str
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    window_seconds: int

    @property
    def enforced(self) -> bool:
        return self.window_seconds > 0


class RateLimited(Exception):
    """A hit over its policy's limit (the HTTP layer answers 429)."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(f"rate limit {decision.policy!r} exceeded")


class RateLimiter:
    """Named policies over one ``limits`` storage.

    Parameters
    ----------
    storage_uri
        ``memory://`` or a Redis URI (``redis://127.0.0.1:6379/0``); the ``async+``
        prefix of ``limits`` is added when missing.
    policies
        The policies (:func:`default_policies` by default); names are unique.
    strategy
        ``moving-window`` (default), ``fixed-window`` or ``sliding-window-counter``.
    key_prefix
        Prefix of every storage key (Redis shared with other services).
    wall_clock
        Epoch seconds, for turning the storage's reset times into delays.
    """

    def __init__(
        self,
        storage_uri: str = "memory://",
        *,
        policies: Iterable[Policy] | None = None,
        strategy: Strategy = "moving-window",
        key_prefix: str = "leaderboard-api",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        chosen = tuple(policies) if policies is not None else default_policies()
        self.policies: Mapping[str, Policy] = {policy.name: policy for policy in chosen}
        if len(self.policies) != len(chosen):
            msg = f"rate-limit policy names repeat: {[policy.name for policy in chosen]}"
            raise ValueError(msg)
        self._items = {name: policy.item for name, policy in self.policies.items()}
        strategies: dict[str, type[_Strategy]] = {
            "moving-window": MovingWindowRateLimiter,
            "fixed-window": FixedWindowRateLimiter,
            "sliding-window-counter": SlidingWindowCounterRateLimiter,
        }
        if strategy not in strategies:
            msg = f"rate-limit strategy {strategy!r}; known: {sorted(strategies)}"
            raise ValueError(msg)
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        scheme = uri.removeprefix("async+").partition("://")[0]
        options: dict[str, float | str | bool] = {"wrap_exceptions": True}
        if scheme in _REDIS_SCHEMES:
            # limits defaults to coredis; the project depends on redis-py.
            options.update(_REDIS_OPTIONS, implementation="redispy", key_prefix=key_prefix)
        storage = storage_from_string(uri, **options)
        if not isinstance(storage, AsyncStorage):  # pragma: no cover - the prefix makes it so
            msg = f"rate_limit_storage {_redacted(storage_uri)!r} has no asyncio storage"
            raise ValueError(msg)
        self.storage = storage
        self._strategy = strategies[strategy](storage)
        self._namespace = key_prefix
        self._now = wall_clock
        self.uri = _redacted(storage_uri)

    def policy(self, name: str) -> Policy:
        """The policy called ``name``; KeyError (a bug in the caller) if there is none."""
        return self.policies[name]

    async def hit(self, policy: str, key: str, *, cost: int = 1) -> Decision:
        """Count ``cost`` against ``policy`` for ``key``; the decision says if it fit.

        A refused hit is not counted (the moving window keeps only accepted ones).
        """
        item = self._items[policy]
        if item is None:
            return Decision(policy, True, 0, 0, 0, 0)
        try:
            allowed = await self._strategy.hit(item, self._namespace, policy, key, cost=cost)
            stats = await self._strategy.get_window_stats(item, self._namespace, policy, key)
        except StorageError as exc:
            log.warning(
                "rate limit %s not enforced: storage %s failed (%s)",
                policy,
                self.uri,
                type(exc.storage_error).__name__,
            )
            return Decision(policy, True, 0, 0, 0, 0)
        reset = max(0, math.ceil(stats.reset_time - self._now()))
        return Decision(
            policy=policy,
            allowed=allowed,
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_seconds=reset if (reset or allowed) else 1,
            window_seconds=item.get_expiry(),
        )

    async def check(self, policy: str, key: str) -> Decision:
        """:meth:`hit`, raising :class:`RateLimited` when the hit does not fit."""
        decision = await self.hit(policy, key)
        if not decision.allowed:
            raise RateLimited(decision)
        return decision

    async def clear(self, policy: str, key: str) -> None:
        """Forget the counts of ``key`` under ``policy`` (tests, an operator's reset)."""
        item = self._items[policy]
        if item is not None:
            await self._strategy.clear(item, self._namespace, policy, key)

    async def aclose(self) -> None:
        """Close the storage's connections (Redis); memory storage has none."""
        # limits exposes no close(); its redis-py bridge keeps the client as .storage.
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()

    async def healthy(self) -> bool:
        """Whether the storage answers (a readiness check for Redis)."""
        try:
            return bool(await self.storage.check())
        except StorageError:
            return False


def rate_limit_headers(*decisions: Decision) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` for these decisions (``{}`` if none enforced).

    Several decisions (one request under two policies) become one List each, in order.
    """
    enforced = [decision for decision in decisions if decision.enforced]
    if not enforced:
        return {}
    policy = ", ".join(f'"{d.policy}";q={d.limit};w={d.window_seconds}' for d in enforced)
    current = ", ".join(f'"{d.policy}";r={d.remaining};t={d.reset_seconds}' for d in enforced)
    return {"ratelimit-policy": policy, "ratelimit": current}


def rate_limited_response(decision: Decision, *, instance: str | None = None) -> Response:
    """The 429 problem+json for a refused hit, with Retry-After and the RateLimit fields."""
    retry = max(1, decision.reset_seconds)
    headers = rate_limit_headers(decision)
    headers["retry-after"] = str(retry)
    window = _window(decision.window_seconds)
    detail = (
        f"rate limit {decision.policy!r} exceeded: {decision.limit} per {window}; "
        f"retry in {retry} s"
    )
    return problem(
        429,
        detail=detail,
        instance=instance,
        headers=headers,
        extra={"violated-policies": [decision.policy]},
    )


def _window(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} s"


def _redacted(uri: str) -> str:
    # A Redis URI may carry a password; logs get scheme, host and port only.
    scheme, sep, rest = uri.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else uri
