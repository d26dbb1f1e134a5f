"""Hugging Face tokens: who a token belongs to, asked of the Hub's whoami and cached.

:class:`HubVerifier` calls ``huggingface_hub.HfApi(endpoint=...).whoami(token=...)``
(``GET {endpoint}/api/whoami-v2``) in a worker thread and keeps the answer per token
hash for ``cache_seconds``:

- a *user* token -> the user's name, cached;
- a refused token (the Hub answers 401 or 403) or a token of something other than a
  user (an organization) -> ``None``, cached too (a refused token never becomes valid,
  and the whoami endpoint is strictly rate limited);
- the Hub unreachable, slow past ``timeout_seconds``, rate limiting us (429), failing
  (5xx) or answering garbage -> :class:`~leaderboard_api.auth.scopes.AuthUnavailable`,
  *not* cached: the client gets a 503 with ``Retry-After`` and its token is asked
  about again next time.  A Hub outage therefore locks out Hugging Face users whose
  answer is not cached, and nobody else.

Only tokens that look like Hub tokens (``hf_`` prefix: user access and OAuth tokens)
are ever sent: a mistyped or revoked API key of ours must not travel to a third party.
At most ``concurrency`` whoami calls run at once, so a Hub that hangs holds a bounded
number of threads (huggingface_hub's shared client has no timeout of its own).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.to_thread
import httpx

from leaderboard_api.auth.scopes import SUBMIT, VOTE, AuthUnavailable, check_scopes
from leaderboard_api.auth.ttl import TTLCache

try:  # huggingface_hub 2.x speaks httpx2; 1.x httpx; 0.x requests (its errors are OSErrors)
    from httpx2 import HTTPError as _Httpx2Error

    _TRANSPORT_ERRORS: tuple[type[Exception], ...] = (OSError, httpx.HTTPError, _Httpx2Error)
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    _TRANSPORT_ERRORS = (OSError, httpx.HTTPError)

__all__ = ["DEFAULT_ENDPOINT", "HUB_TOKEN_PREFIX", "HubSettings", "HubVerifier", "Whoami"]

DEFAULT_ENDPOINT: Final = "https://huggingface.co"
#: User access tokens and OAuth tokens of the Hub both start with this.
HUB_TOKEN_PREFIX: Final = "hf_"
#: ``whoami(token) -> the Hub's whoami-v2 JSON``; blocking.
Whoami = Callable[[str], Mapping[str, Any]]
_REFUSED: Final = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class HubSettings:
    """How Hugging Face tokens are verified (all from settings).

    ``scopes`` are granted to every verified Hub user; the default lets them submit
    and vote.
    """

    enabled: bool = False
    endpoint: str = DEFAULT_ENDPOINT
    cache_seconds: float = 300.0
    scopes: frozenset[str] = field(default_factory=lambda: frozenset({SUBMIT, VOTE}))
    timeout_seconds: float = 10.0
    max_entries: int = 10_000
    concurrency: int = 4

    def __post_init__(self) -> None:
        check_scopes(self.scopes, owner="hf_auth_scopes")
        if not self.endpoint.startswith(("http://", "https://")):
            msg = f"hf_auth_endpoint must be an http(s) URL, got {self.endpoint!r}"
            raise ValueError(msg)
        if self.timeout_seconds <= 0 or self.concurrency < 1:
            msg = "hf_auth timeout must be > 0 seconds and concurrency >= 1"
            raise ValueError(msg)


def hub_whoami(endpoint: str) -> Whoami:
    """The real whoami: huggingface_hub's :meth:`HfApi.whoami` against ``endpoint``."""
    from huggingface_hub import HfApi  # heavy import, only when Hub auth is enabled

    api = HfApi(endpoint=endpoint.rstrip("/"), library_name="leaderboard-api")

    def whoami(token: str) -> Mapping[str, Any]:
        answer: Mapping[str, Any] = api.whoami(token=token)
        return answer

    return whoami


class HubVerifier:
    """Token -> Hugging Face user name (or None), verified by whoami and cached.

    Parameters
    ----------
    settings
        Endpoint, cache lifetime, timeout and concurrency.
    whoami
        The blocking whoami call; :func:`hub_whoami` of ``settings.endpoint`` by default.
    clock
        Monotonic seconds for the cache (tests inject one).
    """

    def __init__(
        self,
        settings: HubSettings,
        *,
        whoami: Whoami | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self._whoami = whoami if whoami is not None else hub_whoami(settings.endpoint)
        self.cache: TTLCache[bytes, str | None] = TTLCache(
            ttl=settings.cache_seconds,
            max_entries=settings.max_entries,
            clock=clock if clock is not None else time.monotonic,
        )
        self._limiter = anyio.CapacityLimiter(settings.concurrency)
        #: whoami calls made (tests read it to see the cache work).
        self.calls = 0

    @staticmethod
    def looks_like_hub_token(token: str) -> bool:
        """``hf_`` and visible ASCII after it: anything else is not sent to the Hub."""
        rest = token[len(HUB_TOKEN_PREFIX) :]
        return (
            token.startswith(HUB_TOKEN_PREFIX)
            and rest.isascii()
            and rest.isprintable()
            and bool(rest)
            and " " not in rest
        )

    async def user(self, token: str) -> str | None:
        """The Hub user the token belongs to, None if the Hub refuses it.

        Raises
        ------
        AuthUnavailable
            The Hub could not be asked (not cached).
        """
        if not self.looks_like_hub_token(token):
            return None
        key = hashlib.sha256(token.encode()).digest()
        return await self.cache.get_or_fill(key, lambda: self._ask(token))

    async def _ask(self, token: str) -> str | None:
        self.calls += 1
        try:
            with anyio.fail_after(self.settings.timeout_seconds):
                info = await anyio.to_thread.run_sync(
                    self._whoami, token, limiter=self._limiter, abandon_on_cancel=True
                )
        except TimeoutError as exc:
            msg = f"the Hugging Face Hub did not answer within {self.settings.timeout_seconds:g} s"
            raise AuthUnavailable(msg) from exc
        except _TRANSPORT_ERRORS as exc:
            status = _status_of(exc)
            if status in _REFUSED:
                return None
            what = f"answered {status}" if status is not None else f"failed ({type(exc).__name__})"
            msg = f"the Hugging Face Hub could not verify the token: it {what}"
            raise AuthUnavailable(msg) from exc
        except ValueError as exc:  # a body that is not JSON
            msg = "the Hugging Face Hub answered whoami with something other than JSON"
            raise AuthUnavailable(msg) from exc
        return _user_name(info)


def _status_of(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _user_name(info: object) -> str | None:
    # whoami-v2: {"type": "user" | "org", "name": ..., "orgs": [...], "auth": {...}}.
    if not isinstance(info, Mapping):
        msg = "the Hugging Face Hub answered whoami with something other than an object"
        raise AuthUnavailable(msg)
    name = info.get("name")
    if info.get("type") != "user" or not isinstance(name, str) or not name:
        return None
    return name
