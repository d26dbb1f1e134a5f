"""Identities, scopes and rate limits of the write side (and of private reads).

- :mod:`~leaderboard_api.auth.scopes`: :class:`Identity`, the scopes, the auth errors.
- :mod:`~leaderboard_api.auth.identities`: :class:`Authenticator` (API keys through a
  :class:`KeyVerifier`, the admin token, Hugging Face tokens, Basic users).
- :mod:`~leaderboard_api.auth.hub`: Hugging Face whoami, cached.
- :mod:`~leaderboard_api.auth.passwords`: Basic users' password hashes.
- :mod:`~leaderboard_api.auth.dependencies`: ``require(scope)``, ``install_auth``, problems.
- :mod:`~leaderboard_api.auth.readauth`: :class:`ReadAuth`, private reads before the fast path.
- :mod:`~leaderboard_api.auth.ratelimit`: :class:`RateLimiter` and the RateLimit headers.
- :mod:`~leaderboard_api.auth.addresses`: :class:`ClientAddress`, trusted proxies.
- :mod:`~leaderboard_api.auth.ttl`: the TTL cache both verifications use.
"""

from leaderboard_api.auth.addresses import ClientAddress
from leaderboard_api.auth.dependencies import (
    AUTH_RESPONSES,
    RATE_LIMIT_RESPONSES,
    AuthContext,
    auth_context,
    auth_problem,
    install_auth,
    rate_limit,
    rate_limit_decisions,
    require,
)
from leaderboard_api.auth.hub import HubSettings
from leaderboard_api.auth.identities import Authenticator, BasicUser, KeyVerifier
from leaderboard_api.auth.passwords import hash_password
from leaderboard_api.auth.ratelimit import (
    Decision,
    Policy,
    RateLimited,
    RateLimiter,
    default_policies,
    rate_limit_headers,
    rate_limited_response,
)
from leaderboard_api.auth.readauth import ReadAuth
from leaderboard_api.auth.scopes import (
    SCOPES,
    AuthUnavailable,
    Identity,
    MissingScope,
    NotAuthenticated,
)

__all__ = [
    "AUTH_RESPONSES",
    "RATE_LIMIT_RESPONSES",
    "SCOPES",
    "AuthContext",
    "AuthUnavailable",
    "Authenticator",
    "BasicUser",
    "ClientAddress",
    "Decision",
    "HubSettings",
    "Identity",
    "KeyVerifier",
    "MissingScope",
    "NotAuthenticated",
    "Policy",
    "RateLimited",
    "RateLimiter",
    "ReadAuth",
    "auth_context",
    "auth_problem",
    "default_policies",
    "hash_password",
    "install_auth",
    "rate_limit",
    "rate_limit_decisions",
    "rate_limit_headers",
    "rate_limited_response",
    "require",
]
