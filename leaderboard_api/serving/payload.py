"""A response body encoded once in every offered content coding, with ETags and ready headers.

A :class:`Payload` is what the cache stores and what the HTTP layer writes.  It is built
once, off the event loop, from bytes the caller has already made deterministic; building
it again from the same bytes gives the same bodies, the same ETags and the same headers,
on every restart and every replica.

Encodings
    ``identity`` always; ``br``, ``zstd`` and ``gzip`` only when the body is larger than
    :attr:`CompressionPolicy.min_size` and only when the coding actually saves bytes.
    Variants are kept in server-preference order (br, zstd, gzip, identity): brotli gives
    the smallest JSON, zstd decodes fastest, gzip is understood everywhere.

Compression levels (see :class:`CompressionPolicy`)
    Chosen so a snapshot's warmup (thousands of payloads, up to 5 MB each on the full MTEB
    data) stays within seconds.  Measured on real MTEB payloads (1.1 MB leaderboard, 0.4 MB
    task page, 5.4 MB task list): gzip 9 costs up to 5x gzip 6 on repetitive JSON for 1-2 %
    smaller output, so gzip 6.  Brotli 11 is 15-30 % smaller than brotli 5-7 but 70-100x
    slower (1 s per MB), so bodies up to 64 KiB get brotli 9 and zstd 12 (a few ms) and
    larger ones brotli 5 and zstd 6 (~10 ms per MB, still 25-35 % smaller than gzip).
    gzip is written with ``mtime=0`` and no file name so its bytes depend on the body only.

ETags
    Strong, derived from the identity bytes only: ``"<h>"`` where ``<h>`` is the first 32
    hex digits of the BLAKE2b hash of the body.  Each coded variant is a different
    representation and gets its own strong tag, ``"<h>-br"``, ``"<h>-zst"``, ``"<h>-gz"``
    (RFC 9110 §8.8.3).  All tags of one payload form a *validator family*: every variant
    decodes to the same identity bytes, so an ``If-None-Match`` that names any member means
    the client already holds this content, and the 304 answers with the member it named.
    A tag names the decoded content; a different compressor build could produce other
    coded bytes under the same tag, which only matters for range requests (not offered).
"""

from __future__ import annotations

import gzip as _gzip
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from types import MappingProxyType
from typing import Final

import brotli
import orjson
import zstandard

__all__ = [
    "DEFAULT_COMPRESSION",
    "ENCODINGS",
    "CompressionPolicy",
    "Headers",
    "Payload",
    "Variant",
    "http_date",
    "json_payload",
]

#: ASGI header list: lower-case names and values as bytes.
Headers = tuple[tuple[bytes, bytes], ...]

#: Every content coding this module can produce, in server-preference order.
ENCODINGS: Final = ("br", "zstd", "gzip", "identity")

_ETAG_SUFFIX: Final = {"br": "-br", "zstd": "-zst", "gzip": "-gz", "identity": ""}
_HASH_HEX_DIGITS: Final = 32


@dataclass(frozen=True, slots=True)
class CompressionPolicy:
    """Which codings to produce and how hard to compress (see the module docstring)."""

    #: Bodies of at most this many bytes are sent as identity only.
    min_size: int = 512
    #: Bodies larger than this use the ``*_large`` levels.
    large_size: int = 64 * 1024
    gzip_level: int = 6
    brotli_quality: int = 9
    brotli_quality_large: int = 5
    zstd_level: int = 12
    zstd_level_large: int = 6

    def compress(self, body: bytes) -> dict[str, bytes]:
        """Return the coded bodies worth offering for ``body``, keyed by coding name."""
        if len(body) <= self.min_size:
            return {}
        large = len(body) > self.large_size
        quality = self.brotli_quality_large if large else self.brotli_quality
        level = self.zstd_level_large if large else self.zstd_level
        coded = {
            "br": brotli.compress(body, quality=quality),
            "zstd": zstandard.ZstdCompressor(level=level).compress(body),
            "gzip": _gzip.compress(body, compresslevel=self.gzip_level, mtime=0),
        }
        return {name: data for name, data in coded.items() if len(data) < len(body)}


DEFAULT_COMPRESSION: Final = CompressionPolicy()


@dataclass(frozen=True, slots=True, eq=False)
class Variant:
    """One content coding of a payload, with the exact headers to send for it."""

    #: ``"identity"``, ``"br"``, ``"zstd"`` or ``"gzip"``.
    encoding: str
    #: The bytes held: the body itself, or (``on_demand``) the zstd body it is decoded from.
    stored: bytes
    #: Quoted strong entity tag, e.g. ``'"3f2a…-gz"'``.
    etag: str
    #: Headers of a 200 (and of the HEAD response): type, length, coding, validators.
    headers: Headers
    #: Headers of a 304: validators and caching metadata, no type, length or coding.
    not_modified_headers: Headers
    #: An identity body not kept in memory but decoded from the zstd one when sent.
    on_demand: bool = False

    @property
    def body(self) -> bytes:
        if self.on_demand:
            return zstandard.ZstdDecompressor().decompress(self.stored)
        return self.stored


# weakref_slot: the fast path's answer memo holds payloads weakly (see fastpath.AnswerMemo).
@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class Payload:
    """A response body in every offered coding, with validators and precomputed headers.

    Build it with :meth:`build` or :func:`json_payload`; the constructor takes the derived
    fields as they are and does not check them.
    """

    gzip: bytes | None
    br: bytes | None
    zstd: bytes | None
    media_type: str
    #: Strong ETag of the identity representation, quoted.
    etag: str
    #: ``Last-Modified`` as an IMF-fixdate, e.g. ``"Sun, 06 Nov 1994 08:49:37 GMT"``.
    last_modified: str
    #: The same instant in whole seconds since the epoch (for ``If-Modified-Since``).
    last_modified_epoch: int
    cache_control: str
    #: Variants keyed by coding, in server-preference order; always holds ``identity``.
    variants: Mapping[str, Variant]
    #: Every variant's quoted ETag (strong form) -> that variant.
    by_etag: Mapping[str, Variant]

    @classmethod
    def build(
        cls,
        body: bytes,
        *,
        media_type: str,
        last_modified: datetime,
        cache_control: str,
        extra_headers: Sequence[tuple[str, str]] = (),
        compression: CompressionPolicy = DEFAULT_COMPRESSION,
        keep_identity: bool = True,
    ) -> Payload:
        """Encode ``body`` in every worthwhile coding and precompute all headers.

        Parameters
        ----------
        body
            The identity bytes; the caller makes them deterministic.
        media_type
            The ``Content-Type`` value, e.g. ``"text/csv; charset=utf-8"``.
        last_modified
            When the underlying data last changed; a naive datetime is taken as UTC and
            sub-second precision is dropped (HTTP dates have whole seconds).
        cache_control
            The ``Cache-Control`` value sent with 200 and 304 responses.
        extra_headers
            Further ``(name, value)`` pairs baked into every 200 and 304 (e.g.
            ``Content-Disposition``); names are lower-cased.
        compression
            Which codings to produce and at what levels.
        keep_identity
            False: when a zstd body exists, do not hold the identity bytes but decode them
            from it for the (rare) client that accepts no coding; for long-tail routes,
            whose identity bodies would otherwise be most of the memory payloads take.

        Notes
        -----
        CPU-bound (compression): call it from a worker thread, not the event loop.
        """
        stamp = last_modified if last_modified.tzinfo else last_modified.replace(tzinfo=UTC)
        stamp = stamp.astimezone(UTC).replace(microsecond=0)
        date = http_date(stamp)
        digest = hashlib.blake2b(body, digest_size=_HASH_HEX_DIGITS // 2).hexdigest()
        coded = compression.compress(body)
        bodies = {**coded, "identity": body}
        varies = len(bodies) > 1
        extra = tuple(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in extra_headers
        )
        variants: dict[str, Variant] = {}
        on_demand = not keep_identity and "zstd" in coded
        for encoding in ENCODINGS:
            data = bodies.get(encoding)
            if data is None:
                continue
            lazy = on_demand and encoding == "identity"
            etag = f'"{digest}{_ETAG_SUFFIX[encoding]}"'
            common = _common_headers(
                etag=etag, cache_control=cache_control, last_modified=date, varies=varies
            )
            full = [
                (b"content-type", media_type.encode("latin-1")),
                (b"content-length", str(len(data)).encode("ascii")),
            ]
            if encoding != "identity":
                full.append((b"content-encoding", encoding.encode("ascii")))
            variants[encoding] = Variant(
                encoding=encoding,
                stored=coded["zstd"] if lazy else data,
                etag=etag,
                headers=(*full, *common, *extra),
                not_modified_headers=(*common, *extra),
                on_demand=lazy,
            )
        by_etag = {variant.etag: variant for variant in variants.values()}
        return cls(
            gzip=coded.get("gzip"),
            br=coded.get("br"),
            zstd=coded.get("zstd"),
            media_type=media_type,
            etag=variants["identity"].etag,
            last_modified=date,
            last_modified_epoch=int(stamp.timestamp()),
            cache_control=cache_control,
            variants=MappingProxyType(variants),
            by_etag=MappingProxyType(by_etag),
        )

    @property
    def encodings(self) -> tuple[str, ...]:
        """The codings this payload offers, in server-preference order."""
        return tuple(self.variants)

    @property
    def identity(self) -> bytes:
        """The identity body (decoded from zstd when it is not held)."""
        return self.variants["identity"].body

    @property
    def identity_on_demand(self) -> bool:
        """Whether the identity body is decoded when sent rather than held."""
        return self.variants["identity"].on_demand

    @property
    def nbytes(self) -> int:
        """Memory held by all bodies together (what the cache's byte bound counts)."""
        return sum(len(v.stored) for v in self.variants.values() if not v.on_demand)


def _common_headers(*, etag: str, cache_control: str, last_modified: str, varies: bool) -> Headers:
    headers = [
        (b"etag", etag.encode("ascii")),
        (b"cache-control", cache_control.encode("latin-1")),
        (b"last-modified", last_modified.encode("ascii")),
    ]
    if varies:
        # Only a payload that has coded variants varies by Accept-Encoding; a small body is
        # the same for everyone and a shared cache may keep one copy.
        headers.append((b"vary", b"accept-encoding"))
    return tuple(headers)


def http_date(moment: datetime) -> str:
    """Format ``moment`` as an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``); naive is UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return format_datetime(aware.astimezone(UTC), usegmt=True)


def json_payload(
    obj: object,
    *,
    last_modified: datetime,
    cache_control: str,
    media_type: str = "application/json",
    compression: CompressionPolicy = DEFAULT_COMPRESSION,
) -> Payload:
    """Serialize ``obj`` with orjson and build a :class:`Payload` from the bytes.

    Key order is kept as given (pydantic models dumped with ``model_dump`` keep their
    field order); nothing is sorted here, so determinism is the caller's job: same
    object, same bytes.  Non-string dict keys are allowed; NaN and infinities become
    ``null`` (orjson's rule).

    Raises
    ------
    TypeError
        If orjson cannot serialize ``obj`` (``orjson.JSONEncodeError`` is a TypeError).
    """
    body = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    return Payload.build(
        body,
        media_type=media_type,
        last_modified=last_modified,
        cache_control=cache_control,
        compression=compression,
    )
