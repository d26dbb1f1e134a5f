"""Passwords of HTTP Basic users: PBKDF2-SHA256 hashes (Django's format) or plain text.

A user's password in the settings is either plain text or a hash made by
:func:`hash_password`, ``pbkdf2_sha256$<iterations>$<salt>$<base64 key>`` (the format
Django writes, so existing hashes carry over).  Plain passwords are compared in constant
time over their SHA-256 digests, so neither the content nor the length leaks; hashed ones
cost ``iterations`` rounds of HMAC-SHA256 (about 0.3 s at the default), so callers verify
them off the event loop and cache the outcome.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_ITERATIONS",
    "PBKDF2_PREFIX",
    "PasswordHash",
    "hash_password",
    "is_hashed",
    "parse_hash",
    "verify_password",
]

PBKDF2_PREFIX: Final = "pbkdf2_sha256$"
#: OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256.
DEFAULT_ITERATIONS: Final = 600_000
#: A configured hash above this is refused: verifying it would be a denial of service.
MAX_ITERATIONS: Final = 10_000_000


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A parsed ``pbkdf2_sha256`` hash."""

    iterations: int
    salt: str
    key: bytes

    def matches(self, password: str) -> bool:
        """Whether ``password`` derives this key (constant-time comparison)."""
        derived = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), self.salt.encode(), self.iterations, len(self.key)
        )
        return hmac.compare_digest(derived, self.key)


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: str | None = None
) -> str:
    """``password`` as a ``pbkdf2_sha256$...`` string for the ``basic_users`` setting."""
    if not password:
        msg = "an empty password cannot be hashed"
        raise ValueError(msg)
    salt = salt if salt is not None else secrets.token_urlsafe(16)
    if "$" in salt or not salt:
        msg = "the salt must be non-empty and must not contain '$'"
        raise ValueError(msg)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{PBKDF2_PREFIX}{iterations}${salt}${base64.b64encode(key).decode('ascii')}"


def is_hashed(stored: str) -> bool:
    """Whether a configured password is a hash (else it is plain text)."""
    return stored.startswith(PBKDF2_PREFIX)


def parse_hash(stored: str) -> PasswordHash:
    """Parse a ``pbkdf2_sha256$...`` string; ValueError (not echoing it) if malformed."""
    parts = stored.split("$")
    if len(parts) != 4 or not is_hashed(stored):
        msg = "a password hash must look like pbkdf2_sha256$<iterations>$<salt>$<base64>"
        raise ValueError(msg)
    _, rounds, salt, encoded = parts
    try:
        iterations = int(rounds)
        key = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        msg = "a password hash has a bad iteration count or key encoding"
        raise ValueError(msg) from exc
    if not 1 <= iterations <= MAX_ITERATIONS or not salt or not key:
        msg = f"a password hash needs 1..{MAX_ITERATIONS} iterations, a salt and a key"
        raise ValueError(msg)
    return PasswordHash(iterations=iterations, salt=salt, key=key)


def verify_password(password: str, stored: str | PasswordHash) -> bool:
    """Whether ``password`` is the configured one (hash or plain), in constant time."""
    if isinstance(stored, PasswordHash):
        return stored.matches(password)
    if is_hashed(stored):
        return parse_hash(stored).matches(password)
    given = hashlib.sha256(password.encode()).digest()
    return hmac.compare_digest(given, hashlib.sha256(stored.encode()).digest())
