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

Serialized form (:meth:`Payload.to_bytes`, :meth:`Payload.from_bytes`)
    What the on-disk payload store keeps; loading is slicing, never recompressing or
    re-hashing.  All integers little-endian::

        prelude  20 bytes: magic b"LBAPAYLD", format version u16, flags u16 (0),
                 header length u32, CRC-32 of the header u32
        header   UTF-8 JSON: media type, validators, cache control; one [length, CRC-32]
                 per stored body; for each variant its coding, body index, ETag, on-demand
                 flag and header lists (latin-1 text, fields joined by NUL, or [name,
                 value] pairs when a field holds a NUL; the 304 list as a count when it is
                 the tail of the 200 list); the ETag index
        bodies   every distinct stored buffer once, concatenated, in header order

    The file is exactly as long as the header says, so truncation and trailing bytes are
    caught without reading the bodies; the CRC-32s (2 GB/s, a quarter of a read's cost)
    catch torn or flipped bytes, so a store can skip ``fsync``.  A buffer shared by two
    fields (the zstd body an on-demand identity is decoded from) is written once and
    shared again when read.  The same payload always serializes to the same bytes.
"""

from __future__ import annotations

import gzip as _gzip
import hashlib
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from types import MappingProxyType
from typing import Any, Final

import brotli
import orjson
import zstandard

__all__ = [
    "DEFAULT_COMPRESSION",
    "ENCODINGS",
    "FORMAT_MAGIC",
    "FORMAT_VERSION",
    "CompressionPolicy",
    "CorruptPayload",
    "Headers",
    "Payload",
    "ReadAt",
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
#: Header names a built payload sends; a read payload shares these objects.
_HEADER_NAMES: Final = (
    b"content-type",
    b"content-length",
    b"content-encoding",
    b"etag",
    b"cache-control",
    b"last-modified",
    b"vary",
)

#: First bytes of every serialized payload.
FORMAT_MAGIC: Final = b"LBAPAYLD"
#: Version of the serialized form; a reader refuses any other.
FORMAT_VERSION: Final = 1
#: magic, format version, flags, header length, header CRC-32.
_PRELUDE: Final = struct.Struct("<8sHHII")
#: :meth:`Payload.read` asks for this much first: the whole of most payloads, and the
#: header of every one.
_FIRST_READ: Final = 64 * 1024

#: ``read_at(offset, length)``: that many bytes from ``offset``, fewer only at the end.
ReadAt = Callable[[int, int], bytes]


class CorruptPayload(ValueError):
    """Bytes that are not a complete serialized payload of this format version."""


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

    def to_parts(self) -> list[bytes]:
        """The serialized form as buffers to write in order (no concatenated copy)."""
        bodies: list[bytes] = []
        index: dict[int, int] = {}

        def ref(data: bytes | None) -> int | None:
            if data is None:
                return None
            # By identity: a buffer shared in memory is written once and shared on load.
            at = index.setdefault(id(data), len(bodies))
            if at == len(bodies):
                bodies.append(data)
            return at

        fields = {name: ref(data) for name, data in (("gzip", self.gzip), ("br", self.br))}
        fields["zstd"] = ref(self.zstd)
        variants = list(self.variants.values())
        position = {id(variant): at for at, variant in enumerate(variants)}
        header = {
            "media_type": self.media_type,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "last_modified_epoch": self.last_modified_epoch,
            "cache_control": self.cache_control,
            "fields": fields,
            "variants": [
                {
                    "encoding": variant.encoding,
                    "body": ref(variant.stored),
                    "etag": variant.etag,
                    "on_demand": variant.on_demand,
                    "headers": _text_headers(variant.headers),
                    "not_modified_headers": _tail_or_text(variant),
                }
                for variant in variants
            ],
            "by_etag": [[tag, position[id(variant)]] for tag, variant in self.by_etag.items()],
        }
        header["bodies"] = [[len(data), zlib.crc32(data)] for data in bodies]
        text = orjson.dumps(header)
        prelude = _PRELUDE.pack(FORMAT_MAGIC, FORMAT_VERSION, 0, len(text), zlib.crc32(text))
        return [prelude, text, *bodies]

    def to_bytes(self) -> bytes:
        """The serialized form (see the module docstring); :meth:`from_bytes` reverses it."""
        return b"".join(self.to_parts())

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, verify: bool = True) -> Payload:
        """Rebuild a payload from :meth:`to_bytes` output (bytes, or e.g. an mmap's view).

        Every body is copied out, so nothing keeps ``data`` alive or exported afterwards
        (an mmap can be closed).  ``verify=False`` skips the body CRC-32s.

        Raises
        ------
        CorruptPayload
            If ``data`` is truncated, has trailing bytes, another magic or format version,
            a header that does not parse or a body whose checksum does not match.
        """
        with memoryview(data) as raw, raw.cast("B") as view:
            return cls.read(lambda at, n: bytes(view[at : at + n]), len(view), verify=verify)

    @classmethod
    def read(cls, read_at: ReadAt, size: int, *, verify: bool = True) -> Payload:
        """Rebuild a payload of ``size`` serialized bytes fetched through ``read_at``.

        Small payloads take one read; larger ones one more per body, each body read into
        its own buffer (``os.pread`` on a file: a single copy).

        Raises
        ------
        CorruptPayload
            As :meth:`from_bytes`.
        """
        head = read_at(0, min(size, _FIRST_READ))
        if len(head) < _PRELUDE.size:
            msg = (
                f"truncated payload: {len(head)} bytes, less than the {_PRELUDE.size}-byte prelude"
            )
            raise CorruptPayload(msg)
        magic, version, _flags, header_size, header_crc = _PRELUDE.unpack_from(head)
        if magic != FORMAT_MAGIC:
            msg = f"not a serialized payload: magic {magic!r}, expected {FORMAT_MAGIC!r}"
            raise CorruptPayload(msg)
        if version != FORMAT_VERSION:
            msg = f"payload format version {version}; this build reads version {FORMAT_VERSION}"
            raise CorruptPayload(msg)
        start = _PRELUDE.size + header_size
        if start > len(head) and start <= size:
            head = read_at(0, start)
        if start > len(head):
            msg = f"truncated payload: {size} bytes, the header alone needs {start}"
            raise CorruptPayload(msg)
        text = head[_PRELUDE.size : start]
        if zlib.crc32(text) != header_crc:
            msg = "corrupt payload: header checksum mismatch"
            raise CorruptPayload(msg)
        try:
            header = orjson.loads(text)
            spans = [(_int(length), _int(crc)) for length, crc in header["bodies"]]
        except CorruptPayload:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise _corrupt_header(exc) from exc
        expected = start + sum(length for length, _ in spans)
        if expected != size:
            problem = "truncated payload" if size < expected else "trailing bytes after payload"
            msg = f"{problem}: {size} bytes where the header describes {expected}"
            raise CorruptPayload(msg)
        bodies: list[bytes] = []
        at = start
        for number, (length, crc) in enumerate(spans):
            end = at + length
            data = head[at:end] if end <= len(head) else read_at(at, length)
            if len(data) != length:
                msg = f"truncated payload: body {number} has {len(data)} of {length} bytes"
                raise CorruptPayload(msg)
            if verify and zlib.crc32(data) != crc:
                msg = f"corrupt payload: body {number} checksum mismatch"
                raise CorruptPayload(msg)
            bodies.append(data)
            at = end
        try:
            return cls._assemble(header, bodies)
        except CorruptPayload:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise _corrupt_header(exc) from exc

    @classmethod
    def _assemble(cls, header: Any, bodies: list[bytes]) -> Payload:
        # The header passed its CRC-32, so it is what a writer of this version wrote; the
        # checks here only keep a faulty writer from yielding a payload of the wrong types.
        def body(at: int | None) -> bytes:
            if not 0 <= _int(at) < len(bodies):
                msg = f"body index {at} out of range"
                raise CorruptPayload(msg)
            return bodies[_int(at)]

        # One bytes object per distinct header name or value of this payload, as built.
        shared = {name: name for name in _HEADER_NAMES}
        ordered = []
        for item in header["variants"]:
            headers = _byte_headers(item["headers"], shared)
            short = item["not_modified_headers"]
            if type(short) is int:
                if not 0 <= short <= len(headers):
                    msg = f"corrupt payload header: {short} of {len(headers)} headers"
                    raise CorruptPayload(msg)
                not_modified = headers[len(headers) - short :]
            else:
                not_modified = _byte_headers(short, shared)
            variant = Variant(
                encoding=_str(item["encoding"]),
                stored=body(item["body"]),
                etag=_str(item["etag"]),
                headers=headers,
                not_modified_headers=not_modified,
                on_demand=item["on_demand"] is True,
            )
            ordered.append(variant)
        variants = {variant.encoding: variant for variant in ordered}
        if len(variants) != len(ordered) or "identity" not in variants:
            msg = f"corrupt payload header: codings {[v.encoding for v in ordered]}"
            raise CorruptPayload(msg)
        fields = header["fields"]
        return cls(
            gzip=None if fields["gzip"] is None else body(fields["gzip"]),
            br=None if fields["br"] is None else body(fields["br"]),
            zstd=None if fields["zstd"] is None else body(fields["zstd"]),
            media_type=_str(header["media_type"]),
            etag=_str(header["etag"]),
            last_modified=_str(header["last_modified"]),
            last_modified_epoch=_int(header["last_modified_epoch"]),
            cache_control=_str(header["cache_control"]),
            variants=MappingProxyType(variants),
            by_etag=MappingProxyType(
                {_str(tag): ordered[_int(at)] for tag, at in header["by_etag"]}
            ),
        )


def _corrupt_header(exc: Exception) -> CorruptPayload:
    return CorruptPayload(f"corrupt payload header: {exc!r}")


def _text_headers(headers: Headers) -> str | list[list[str]]:
    # latin-1 maps every byte to one code point, so any header bytes survive JSON exactly.
    # Joined with NUL (which HTTP forbids in fields): one encode and one split to read.
    if any(b"\0" in name or b"\0" in value for name, value in headers):
        return [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers]
    return b"\0".join(part for field in headers for part in field).decode("latin-1")


def _tail_or_text(variant: Variant) -> int | str | list[list[str]]:
    # A built payload's 304 headers are the last of its 200 headers: say how many.
    full, short = variant.headers, variant.not_modified_headers
    if full[len(full) - len(short) :] == short:
        return len(short)
    return _text_headers(short)


def _byte_headers(text: Any, shared: dict[bytes, bytes]) -> Headers:
    if isinstance(text, list):
        fields = [part.encode("latin-1") for pair in text for part in _pair(pair)]
    else:
        fields = _str(text).encode("latin-1").split(b"\0") if text else []
    if len(fields) % 2:
        msg = f"corrupt payload header: {len(fields)} header fields, not pairs"
        raise CorruptPayload(msg)
    pairs = iter([shared.setdefault(part, part) for part in fields])
    return tuple(zip(pairs, pairs, strict=True))


def _pair(value: Any) -> tuple[str, str]:
    name, text = value
    return _str(name), _str(text)


def _str(value: object) -> str:
    if type(value) is not str:
        msg = f"expected a string, got {value!r}"
        raise CorruptPayload(msg)
    return value


def _int(value: object) -> int:
    if type(value) is not int or value < 0:
        msg = f"expected a non-negative integer, got {value!r}"
        raise CorruptPayload(msg)
    return value


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
