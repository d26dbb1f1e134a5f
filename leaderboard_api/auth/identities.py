"""Credentials -> :class:`Identity`: API keys, the admin token, Hugging Face tokens, Basic users.

:class:`Authenticator` reads two request headers:

``Authorization: Bearer <token>``
    tried as an API key (the :class:`KeyVerifier`, in a worker thread), then as the
    legacy admin token (-> identity ``admin`` of kind ``admin-token`` with the ``admin``
    scope), then, when Hub auth is enabled, as a Hugging Face token
    (:class:`~leaderboard_api.auth.hub.HubVerifier`).
``Authorization: Basic <base64 user:password>``
    a user from the ``basic_users`` setting (the LLM Bench API's clients).
``X-API-Key: <key>``
    an API key only; used when ``Authorization`` is absent or yields nobody.

Secrets are compared in constant time (over SHA-256 digests, so lengths do not leak
either); an unknown Basic user costs the same as a known one.  Each credential's
outcome — an identity *or a refusal* — is cached for ``cache_seconds`` under a hash of
the credential (bounded, single-flight), so the read path's check is a hash and a dict
lookup, and a client retrying a bad key does not reach the store each time.  The price:
a revoked key keeps working for up to ``cache_seconds`` (:meth:`Authenticator.forget_all`
ends that at once).  Hugging Face answers have their own, longer cache.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import anyio.to_thread

from leaderboard_api.auth.hub import HubSettings, HubVerifier, Whoami
from leaderboard_api.auth.passwords import PasswordHash, is_hashed, parse_hash
from leaderboard_api.auth.scopes import (
    ADMIN,
    SCOPES,
    AuthUnavailable,
    Identity,
    IdentityKind,
    MissingScope,
    NotAuthenticated,
    check_scopes,
)
from leaderboard_api.auth.ttl import TTLCache

__all__ = [
    "MIN_ADMIN_TOKEN_LENGTH",
    "REALM",
    "SCOPES",
    "AuthUnavailable",
    "Authenticator",
    "BasicUser",
    "Credentials",
    "HubSettings",
    "Identity",
    "IdentityKind",
    "KeyVerifier",
    "MissingScope",
    "NotAuthenticated",
    "credentials",
]

REALM: Final = "leaderboard-api"
#: The settings refuse shorter admin tokens too; checked again here for other callers.
MIN_ADMIN_TOKEN_LENGTH: Final = 16
ADMIN_NAME: Final = "admin"
#: Request headers as a mapping (Starlette ``Headers``, a dict) or ASGI raw pairs.
HeaderSource = Mapping[str, str] | Iterable[tuple[bytes, bytes]]


@runtime_checkable
class KeyVerifier(Protocol):
    """Looks an API key up (the operational store). Blocking: called in a worker thread.

    Returns the key's identity, or None for an unknown, revoked or expired key.  A store
    that cannot be reached should raise :class:`AuthUnavailable` (a 503), not return None.
    """

    def verify(self, raw: str) -> Identity | None: ...


@dataclass(frozen=True, slots=True)
class BasicUser:
    """One HTTP Basic user: the password (a ``pbkdf2_sha256$...`` hash or plain text)."""

    password: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Credentials:
    """The credential headers of one request (None when absent; the first of repeats)."""

    authorization: str | None = None
    api_key: str | None = None

    @property
    def present(self) -> bool:
        return bool(self.authorization) or bool(self.api_key)

    @property
    def bearer_like(self) -> bool:
        """Whether a token (not a Basic password) was sent: RFC 6750's error applies."""
        scheme = (self.authorization or "").partition(" ")[0].lower()
        return scheme != "basic" or bool(self.api_key)


def credentials(headers: HeaderSource) -> Credentials:
    """Pick ``Authorization`` and ``X-API-Key`` out of request headers, stripped."""
    authorization: str | None = None
    api_key: str | None = None
    if isinstance(headers, Mapping):
        pairs: Iterable[tuple[str, str]] = headers.items()
        for name, value in pairs:
            lower = name.lower()
            if lower == "authorization" and authorization is None:
                authorization = value.strip()
            elif lower == "x-api-key" and api_key is None:
                api_key = value.strip()
    else:
        for raw_name, raw_value in headers:
            if raw_name == b"authorization" and authorization is None:
                authorization = raw_value.decode("latin-1").strip()
            elif raw_name == b"x-api-key" and api_key is None:
                api_key = raw_value.decode("latin-1").strip()
    return Credentials(authorization=authorization or None, api_key=api_key or None)


@dataclass(frozen=True, slots=True)
class _Basic:
    scopes: frozenset[str]
    plain: bytes | None  # SHA-256 of a plain password
    hashed: PasswordHash | None


class Authenticator:
    """Verify a request's credentials; see the module docstring for the order.

    Parameters
    ----------
    verifier
        API keys (the operational store); None accepts no API keys.
    admin_token
        The legacy admin token (``admin_token`` setting); at least 16 characters
        without surrounding whitespace, or ValueError (its value is never echoed).
    basic_users
        ``user -> BasicUser``; a user name must not contain ``:``.
    hub
        Hugging Face token verification; off unless ``hub.enabled``.
    cache_seconds
        How long one credential's outcome is reused; 0 verifies every request.
    whoami, clock
        For tests: the Hub call and the monotonic clock of both caches.
    """

    def __init__(
        self,
        verifier: KeyVerifier | None = None,
        *,
        admin_token: str | None = None,
        basic_users: Mapping[str, BasicUser] | None = None,
        hub: HubSettings | None = None,
        cache_seconds: float = 30.0,
        cache_entries: int = 10_000,
        whoami: Whoami | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verifier = verifier
        self._admin = _admin_digest(admin_token)
        self._basic = {name: _basic_user(name, user) for name, user in (basic_users or {}).items()}
        #: PBKDF2 rounds spent on an unknown Basic user: those of the costliest real one.
        self._dummy_rounds = max(
            (user.hashed.iterations for user in self._basic.values() if user.hashed), default=0
        )
        enabled = hub is not None and hub.enabled
        self.hub = HubVerifier(hub, whoami=whoami, clock=clock) if hub and enabled else None
        self.hub_scopes = hub.scopes if hub is not None else frozenset()
        self._cache: TTLCache[bytes, Identity | None] = TTLCache(
            ttl=cache_seconds, max_entries=cache_entries, clock=clock
        )

    @property
    def offers_basic(self) -> bool:
        """Whether Basic users are configured (the 401 challenge then names Basic too)."""
        return bool(self._basic)

    def challenge(self, *, error: str | None = None, scope: str | None = None) -> str:
        """The ``WWW-Authenticate`` value: Bearer (RFC 6750 ``error``/``scope``), Basic."""
        bearer = f'Bearer realm="{REALM}"'
        if error is not None:
            bearer += f', error="{error}"'
        if scope is not None:
            bearer += f', scope="{scope}"'
        if self.offers_basic:
            return f'{bearer}, Basic realm="{REALM}", charset="UTF-8"'
        return bearer

    async def authenticate(self, headers: HeaderSource) -> Identity | None:
        """The identity behind the request's credentials, or None (absent or refused).

        Raises
        ------
        AuthUnavailable
            A credential could not be checked now (Hub or key store down).
        """
        return await self.identify(credentials(headers))

    async def identify(self, found: Credentials) -> Identity | None:
        """:meth:`authenticate` for credentials already picked out."""
        if found.authorization is not None:
            value = found.authorization
            key = _cache_key(b"a", value)
            identity = await self._cache.get_or_fill(key, lambda: self._authorization(value))
            if identity is not None:
                return identity
        if found.api_key is not None:
            raw = found.api_key
            return await self._cache.get_or_fill(_cache_key(b"k", raw), lambda: self._key(raw))
        return None

    async def authorize(self, headers: HeaderSource, scope: str) -> Identity:
        """The request's identity if it has ``scope``.

        Raises
        ------
        NotAuthenticated
            No credential, or a refused one.
        MissingScope
            A valid identity without ``scope``.
        AuthUnavailable
            A credential could not be checked now.
        """
        found = credentials(headers)
        identity = await self.identify(found)
        if identity is None:
            raise NotAuthenticated(invalid=found.present, bearer=found.bearer_like)
        if not identity.allows(scope):
            raise MissingScope(identity, scope)
        return identity

    def forget_all(self) -> None:
        """Drop every cached outcome (after revoking a key, say); Hub answers stay."""
        self._cache.clear()

    async def _authorization(self, value: str) -> Identity | None:
        scheme, _, rest = value.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return await self._bearer(rest.strip())
        if scheme == "basic":
            return await self._basic_auth(rest.strip())
        return None

    async def _key(self, raw: str) -> Identity | None:
        verifier = self._verifier
        if verifier is None or not raw:
            return None
        return await anyio.to_thread.run_sync(verifier.verify, raw)

    async def _bearer(self, token: str) -> Identity | None:
        if not token:
            return None
        identity = await self._key(token)
        if identity is not None:
            return identity
        if self._admin is not None and hmac.compare_digest(_digest(token), self._admin):
            return Identity(name=ADMIN_NAME, kind="admin-token", scopes=frozenset({ADMIN}))
        if self.hub is not None:
            user = await self.hub.user(token)
            if user is not None:
                return Identity(name=user, kind="hf", scopes=self.hub_scopes)
        return None

    async def _basic_auth(self, encoded: str) -> Identity | None:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        if not sep:
            return None
        user = self._basic.get(name)
        if user is None:
            # Same work as for a real user, so response times do not tell who exists.
            if self._dummy_rounds:
                await anyio.to_thread.run_sync(_spend, password, self._dummy_rounds)
            else:
                hmac.compare_digest(_digest(password), _digest(""))
            return None
        if user.hashed is not None:
            ok = await anyio.to_thread.run_sync(user.hashed.matches, password)
        else:
            assert user.plain is not None
            ok = hmac.compare_digest(_digest(password), user.plain)
        return Identity(name=name, kind="basic", scopes=user.scopes) if ok else None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _cache_key(kind: bytes, credential: str) -> bytes:
    # A hash, so the cache does not hold credentials as keys; blake2b is fast at this size.
    return hashlib.blake2b(kind + b"\0" + credential.encode(), digest_size=20).digest()


def _admin_digest(token: str | None) -> bytes | None:
    if token is None or token == "":
        return None
    if token != token.strip():
        msg = "admin_token must not start or end with whitespace"
        raise ValueError(msg)
    if len(token) < MIN_ADMIN_TOKEN_LENGTH:
        msg = f"admin_token must be at least {MIN_ADMIN_TOKEN_LENGTH} characters"
        raise ValueError(msg)
    return _digest(token)


def _basic_user(name: str, user: BasicUser) -> _Basic:
    owner = f"basic user {name!r}"
    if not name or ":" in name:
        msg = f"{owner}: a Basic user name must be non-empty and must not contain ':'"
        raise ValueError(msg)
    if not user.password:
        msg = f"{owner}: the password is empty"
        raise ValueError(msg)
    scopes = check_scopes(user.scopes, owner=owner)
    if is_hashed(user.password):
        try:
            hashed = parse_hash(user.password)
        except ValueError as exc:
            msg = f"{owner}: {exc}"
            raise ValueError(msg) from None
        return _Basic(scopes=scopes, plain=None, hashed=hashed)
    return _Basic(scopes=scopes, plain=_digest(user.password), hashed=None)


def _spend(password: str, rounds: int) -> None:
    hashlib.pbkdf2_hmac("sha256", password.encode(), b"unknown user", rounds)
