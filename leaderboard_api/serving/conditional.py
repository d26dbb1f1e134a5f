"""Content-coding negotiation and conditional-GET rules (RFC 9110 §12.5.3, §13), as pure functions.

Accept-Encoding
    Codings are ranked by q-value, ties broken by the server's preference (br, zstd,
    gzip, identity).  ``*`` gives its q-value to every coding the header does not name,
    identity included; ``name;q=0`` excludes a coding.  Without the header the client
    gets identity (RFC 9110 allows anything, but curl and scripts would see compressed
    bytes they did not ask for); an empty header means identity only.  ``x-gzip`` is
    gzip.  Malformed entries (bad q-value) are skipped.  When nothing offered is
    acceptable, even after ``identity;q=0`` or ``*;q=0``, identity is sent anyway: a
    body the client may refuse is more useful than a 406/415 nobody handles, and it is
    what common servers do.

If-None-Match
    Weak comparison (``W/"x"`` matches ``"x"``), lists, ``*``.  Taken against a payload,
    every tag of its validator family matches (see :mod:`.payload`).

If-Modified-Since
    Only evaluated when If-None-Match is absent (RFC 9110 §13.2.2); an unparsable date
    is ignored.  Not modified when the payload's Last-Modified is at or before the date.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from leaderboard_api.serving.payload import ENCODINGS, Payload, Variant

__all__ = [
    "EncodingNegotiator",
    "choose_encoding",
    "entity_tags",
    "if_none_match_matches",
    "is_not_modified",
    "not_modified_variant",
    "parse_accept_encoding",
    "parse_http_date",
    "rank_encodings",
]

_ALIASES: Final = {"x-gzip": "gzip"}
_IDENTITY_ONLY: Final = ("identity",)


def parse_accept_encoding(header: str) -> dict[str, float]:
    """Map each coding named in an Accept-Encoding value (lower-cased) to its q-value.

    The first entry for a coding wins; entries with an unparsable or out-of-range q are
    skipped.  ``"*"`` is kept as a key.
    """
    prefs: dict[str, float] = {}
    for item in header.split(","):
        coding, _, params = item.partition(";")
        name = coding.strip().lower()
        if not name:
            continue
        name = _ALIASES.get(name, name)
        quality = _quality(params)
        if quality is not None and name not in prefs:
            prefs[name] = quality
    return prefs


def _quality(params: str) -> float | None:
    """Return the q parameter of ``params`` (1.0 when absent), or None when malformed."""
    for param in params.split(";"):
        key, sep, value = param.partition("=")
        if sep and key.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return None
            return quality if math.isfinite(quality) and 0.0 <= quality <= 1.0 else None
    return 1.0


def rank_encodings(header: str | None, *, offered: Iterable[str] = ENCODINGS) -> tuple[str, ...]:
    """Return the acceptable codings among ``offered``, best first, ending with identity.

    ``offered`` is in server-preference order and breaks ties between equal q-values.
    Identity is always present: ranked by its q-value when the header names it (or
    ``*``), last when the header does not, and appended as the last resort when the
    header excludes it.
    """
    if header is None or not header.strip():
        return _IDENTITY_ONLY
    prefs = parse_accept_encoding(header)
    star = prefs.get("*")
    scored: list[tuple[float, int, str]] = []
    for position, coding in enumerate(offered):
        quality = prefs.get(coding, star)
        if coding == "identity" and quality is None:
            continue  # acceptable by default, but after anything the client asked for
        if quality is not None and quality > 0.0:
            scored.append((-quality, position, coding))
    ranked = [coding for _, _, coding in sorted(scored)]
    if "identity" not in ranked:
        ranked.append("identity")
    return tuple(ranked)


def choose_encoding(header: str | None, available: Iterable[str]) -> str:
    """Pick the coding to send from ``available`` (server-preference order) for a header."""
    offered = tuple(available)
    for coding in rank_encodings(header, offered=offered):
        if coding in offered:
            return coding
    return "identity"


class EncodingNegotiator:
    """Memoized :func:`rank_encodings` over raw header bytes, for the per-request path.

    Clients send few distinct Accept-Encoding values (one per browser family), so a small
    table answers almost every request with one dict lookup.  The table is bounded: when
    full it is emptied, so a client that varies the header cannot grow memory.
    """

    __slots__ = ("_limit", "_memo")

    def __init__(self, *, limit: int = 256) -> None:
        self._memo: dict[bytes | None, tuple[str, ...]] = {}
        self._limit = limit

    def rank(self, header: bytes | None) -> tuple[str, ...]:
        """Return :func:`rank_encodings` for the raw header value (None when absent)."""
        ranked = self._memo.get(header)
        if ranked is None:
            text = None if header is None else header.decode("latin-1")
            ranked = rank_encodings(text)
            if len(self._memo) >= self._limit:
                self._memo.clear()
            self._memo[header] = ranked
        return ranked

    def choose(self, header: bytes | None, payload: Payload) -> Variant:
        """Return the variant of ``payload`` to send for the raw Accept-Encoding value."""
        variants = payload.variants
        for coding in self.rank(header):
            variant = variants.get(coding)
            if variant is not None:
                return variant
        return variants["identity"]


def entity_tags(header: str) -> Iterator[str]:
    """Yield the opaque tags (quoted, ``W/`` dropped) of an If-None-Match list.

    A bare token without quotes is tolerated and yielded quoted.  ``*`` is not special
    here; callers check for it first.
    """
    index, end = 0, len(header)
    while index < end:
        char = header[index]
        if char in " \t,":
            index += 1
            continue
        if header.startswith("W/", index):
            index += 2
            continue
        if char == '"':
            close = header.find('"', index + 1)
            if close < 0:
                return  # unterminated tag: nothing more to read
            yield header[index : close + 1]
            index = close + 1
        else:
            comma = header.find(",", index)
            stop = end if comma < 0 else comma
            yield f'"{header[index:stop].strip()}"'
            index = stop


def if_none_match_matches(header: str, etags: Iterable[str]) -> bool:
    """Whether an If-None-Match value matches any of ``etags`` by weak comparison.

    ``etags`` are the current representation's tags, quoted, weak or strong.
    """
    if header.strip() == "*":
        return True
    current = {tag.removeprefix("W/") for tag in etags}
    return any(tag in current for tag in entity_tags(header))


def parse_http_date(value: str) -> int | None:
    """Parse an HTTP-date into whole seconds since the epoch, or None if it is not one."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # a "-0000" zone: UTC with no claim about local time
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def not_modified_variant(
    payload: Payload,
    *,
    if_none_match: str | None,
    if_modified_since: str | None,
    preferred: Variant,
) -> Variant | None:
    """Return the variant whose 304 to send, or None when the full response is due.

    ``preferred`` is the variant negotiation picked; a 304 uses it when the client's
    validators do not name one (``*``, If-Modified-Since) or name it among others.
    """
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return preferred
        by_etag = payload.by_etag
        exact = by_etag.get(if_none_match)
        if exact is not None:
            return exact  # the usual case: one tag, echoed back as we sent it
        first: Variant | None = None
        for tag in entity_tags(if_none_match):
            variant = by_etag.get(tag)
            if variant is preferred:
                return preferred
            if first is None:
                first = variant
        return first
    if if_modified_since is None:
        return None
    if if_modified_since == payload.last_modified:
        return preferred  # the usual case: the client echoes our own date back
    since = parse_http_date(if_modified_since)
    return preferred if since is not None and payload.last_modified_epoch <= since else None


def is_not_modified(headers: Mapping[str, str], payload: Payload) -> bool:
    """Whether a GET/HEAD with these request headers should get a 304 for ``payload``.

    ``headers`` maps lower-case names to values (a Starlette ``Headers`` works as is).
    """
    preferred = payload.variants["identity"]
    variant = not_modified_variant(
        payload,
        if_none_match=headers.get("if-none-match"),
        if_modified_since=headers.get("if-modified-since"),
        preferred=preferred,
    )
    return variant is not None
