"""Who a caller is (:class:`Identity`), what it may do (scopes), and the errors of checking.

Scopes are plain strings from :data:`SCOPES`.  ``admin`` implies every other scope: the
operator holding the admin token can read a private deployment and use every write
route without a second credential.

The errors are domain errors: the HTTP layer (:mod:`leaderboard_api.auth.dependencies`)
maps :class:`NotAuthenticated` to 401, :class:`MissingScope` to 403 and
:class:`AuthUnavailable` to 503, all problem+json.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "ADMIN",
    "SCOPES",
    "AuthUnavailable",
    "Identity",
    "IdentityKind",
    "MissingScope",
    "NotAuthenticated",
    "check_scopes",
]

READ: Final = "read"
SUBMIT: Final = "submit"
VOTE: Final = "vote"
EVALUATE: Final = "evaluate"
INGEST: Final = "ingest"
RUN: Final = "run"
ADMIN: Final = "admin"
#: Every scope a credential can carry.  ``run`` (serving runs) is in the house plan.
SCOPES: Final = frozenset({READ, SUBMIT, VOTE, EVALUATE, INGEST, RUN, ADMIN})

IdentityKind = Literal["key", "hf", "basic", "admin-token"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller: its name, where the credential came from, and its scopes."""

    name: str
    kind: IdentityKind
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """Whether this identity may act with ``scope`` (``admin`` allows everything)."""
        return scope in self.scopes or ADMIN in self.scopes

    @property
    def partition(self) -> str:
        """The key its rate limits count under: kind and name, so ``hf:alice`` and an
        API key named ``alice`` are two callers."""
        return f"{self.kind}:{self.name}"


def check_scopes(scopes: Iterable[str], *, owner: str) -> frozenset[str]:
    """``scopes`` as a frozenset; ValueError naming ``owner`` for an unknown scope."""
    found = frozenset(scopes)
    unknown = sorted(found - SCOPES)
    if unknown:
        msg = f"{owner}: unknown scope(s) {unknown}; known: {sorted(SCOPES)}"
        raise ValueError(msg)
    return found


class NotAuthenticated(Exception):
    """No usable credential: none was sent (``invalid`` False) or it was refused."""

    def __init__(self, *, invalid: bool, bearer: bool = True) -> None:
        self.invalid = invalid
        #: Whether the refused credential was a bearer token or API key (RFC 6750 error).
        self.bearer = bearer
        super().__init__(
            "the credentials are not valid" if invalid else "authentication is required"
        )


class MissingScope(Exception):
    """A verified identity without the scope the route needs."""

    def __init__(self, identity: Identity, scope: str) -> None:
        self.identity = identity
        self.scope = scope
        super().__init__(f"this credential does not grant the {scope!r} scope")


class AuthUnavailable(Exception):
    """A credential could not be checked now (the Hugging Face Hub or the key store is
    unreachable); the client should retry, its credential may well be good."""

    def __init__(self, message: str, *, retry_after: int = 10) -> None:
        self.retry_after = retry_after
        super().__init__(message)
