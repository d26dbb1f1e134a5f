"""Tests for leaderboard_api.serving.payload: codings, ETags, headers, the serialized form."""

from __future__ import annotations

import dataclasses
import gzip
import math
import mmap
import os
import re
import struct
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

import brotli
import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard_api.serving.payload import (
    DEFAULT_COMPRESSION,
    ENCODINGS,
    FORMAT_MAGIC,
    FORMAT_VERSION,
    CompressionPolicy,
    CorruptPayload,
    Payload,
    Variant,
    http_date,
    json_payload,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WHEN = datetime(2024, 5, 17, 9, 30, 12, 345678, tzinfo=UTC)
CACHE = "public, max-age=60, stale-while-revalidate=600"


def table_body(rows: int = 300) -> bytes:
    """A leaderboard-like JSON body, big enough to compress well."""
    data = {
        "benchmark": "MTEB(eng, v2)",
        "rows": [
            {"model": f"org/model-{i}", "rank": i + 1, "mean": round(70 - i * 0.07, 4)}
            for i in range(rows)
        ],
    }
    return orjson.dumps(data)


def decode(variant: Variant) -> bytes:
    if variant.encoding == "gzip":
        return gzip.decompress(variant.body)
    if variant.encoding == "br":
        return bytes(brotli.decompress(variant.body))
    if variant.encoding == "zstd":
        return zstandard.ZstdDecompressor().decompress(variant.body)
    return variant.body


def header_map(headers: tuple[tuple[bytes, bytes], ...]) -> dict[bytes, bytes]:
    names = [name for name, _ in headers]
    assert len(names) == len(set(names)), f"duplicate header names: {names}"
    return dict(headers)


def build(
    body: bytes,
    *,
    compression: CompressionPolicy = DEFAULT_COMPRESSION,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Payload:
    return Payload.build(
        body,
        media_type="application/json",
        last_modified=WHEN,
        cache_control=CACHE,
        compression=compression,
        extra_headers=extra_headers,
    )


def test_large_body_offers_every_coding_and_each_decodes_to_the_body() -> None:
    body = table_body()
    payload = build(body)
    assert payload.encodings == ENCODINGS
    assert payload.identity == body
    for variant in payload.variants.values():
        assert decode(variant) == body
        if variant.encoding != "identity":
            assert len(variant.body) < len(body) / 3
    assert payload.gzip == payload.variants["gzip"].body
    assert payload.br == payload.variants["br"].body
    assert payload.zstd == payload.variants["zstd"].body
    assert payload.nbytes == sum(len(v.body) for v in payload.variants.values())


def test_building_twice_gives_identical_bytes_tags_and_headers() -> None:
    body = table_body()
    first, second = build(body), build(bytes(body))
    assert first.etag == second.etag
    for encoding in ENCODINGS:
        a, b = first.variants[encoding], second.variants[encoding]
        assert a.body == b.body
        assert a.etag == b.etag
        assert a.headers == b.headers
        assert a.not_modified_headers == b.not_modified_headers


def test_gzip_bytes_do_not_depend_on_build_time() -> None:
    payload = build(table_body())
    assert payload.gzip is not None
    # RFC 1952 header: bytes 4-7 are MTIME; zero means "no time stamp".
    assert payload.gzip[4:8] == b"\x00\x00\x00\x00"


def test_etags_are_strong_content_hashes_with_a_suffix_per_coding() -> None:
    payload = build(table_body())
    match = re.fullmatch(r'"([0-9a-f]{32})"', payload.etag)
    assert match is not None
    digest = match.group(1)
    assert payload.variants["identity"].etag == payload.etag
    assert payload.variants["gzip"].etag == f'"{digest}-gz"'
    assert payload.variants["br"].etag == f'"{digest}-br"'
    assert payload.variants["zstd"].etag == f'"{digest}-zst"'
    assert set(payload.by_etag) == {v.etag for v in payload.variants.values()}
    assert build(table_body(301)).etag != payload.etag


def test_etag_depends_on_content_only() -> None:
    body = table_body()
    other = Payload.build(
        body,
        media_type="text/plain",
        last_modified=WHEN + timedelta(days=3),
        cache_control="no-cache",
    )
    assert other.etag == build(body).etag


def test_full_headers_are_exact_for_each_coding() -> None:
    payload = build(table_body())
    for encoding, variant in payload.variants.items():
        headers = header_map(variant.headers)
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"content-length"] == str(len(variant.body)).encode()
        assert headers[b"etag"] == variant.etag.encode()
        assert headers[b"cache-control"] == CACHE.encode()
        assert headers[b"last-modified"] == b"Fri, 17 May 2024 09:30:12 GMT"
        assert headers[b"vary"] == b"accept-encoding"
        if encoding == "identity":
            assert b"content-encoding" not in headers
        else:
            assert headers[b"content-encoding"] == encoding.encode()


def test_not_modified_headers_keep_validators_and_drop_representation_metadata() -> None:
    payload = build(table_body(), extra_headers=(("X-Snapshot", "abc123"),))
    for variant in payload.variants.values():
        headers = header_map(variant.not_modified_headers)
        assert set(headers) == {b"etag", b"cache-control", b"last-modified", b"vary", b"x-snapshot"}
        assert headers[b"etag"] == variant.etag.encode()
        assert header_map(variant.headers)[b"x-snapshot"] == b"abc123"


def test_small_body_is_identity_only_and_does_not_vary() -> None:
    body = b'{"status":"ok"}'
    payload = build(body)
    assert payload.encodings == ("identity",)
    assert payload.gzip is None
    assert payload.br is None
    assert payload.zstd is None
    headers = header_map(payload.variants["identity"].headers)
    assert b"vary" not in headers
    assert headers[b"content-length"] == b"15"


def test_min_size_is_the_threshold() -> None:
    policy = CompressionPolicy(min_size=100)
    at_limit = build(b"a" * 100, compression=policy)
    above = build(b"a" * 101, compression=policy)
    assert at_limit.encodings == ("identity",)
    assert above.encodings == ENCODINGS


def test_incompressible_body_keeps_only_identity() -> None:
    payload = build(os.urandom(4096))
    assert payload.encodings == ("identity",)


def test_large_bodies_use_the_cheaper_levels_but_still_decode() -> None:
    body = table_body(2000)
    policy = CompressionPolicy(large_size=1024)
    assert len(body) > 1024
    cheap = build(body, compression=policy)
    best = build(body)
    assert len(cheap.br or b"") >= len(best.br or b"")
    for variant in cheap.variants.values():
        assert decode(variant) == body


def test_last_modified_naive_is_utc_and_other_zones_convert() -> None:
    payload = Payload.build(
        b"x",
        media_type="text/plain",
        last_modified=datetime(2024, 1, 2, 3, 4, 5, 999),
        cache_control=CACHE,
    )
    assert payload.last_modified == "Tue, 02 Jan 2024 03:04:05 GMT"
    assert payload.last_modified_epoch == int(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
    paris = timezone(timedelta(hours=2))
    shifted = Payload.build(
        b"x",
        media_type="text/plain",
        last_modified=datetime(2024, 1, 2, 5, 4, 5, tzinfo=paris),
        cache_control=CACHE,
    )
    assert shifted.last_modified == payload.last_modified
    assert http_date(datetime(1994, 11, 6, 8, 49, 37)) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_json_payload_keeps_key_order_and_allows_non_string_keys() -> None:
    payload = json_payload(
        {"zeta": 1, "alpha": {2: "b", 1: "a"}, "nan": math.nan},
        last_modified=WHEN,
        cache_control=CACHE,
    )
    assert payload.identity == b'{"zeta":1,"alpha":{"2":"b","1":"a"},"nan":null}'
    assert payload.media_type == "application/json"


def test_json_payload_rejects_unserializable_objects() -> None:
    with pytest.raises(TypeError):
        json_payload({"x": object()}, last_modified=WHEN, cache_control=CACHE)


def test_csv_media_type_is_sent_verbatim() -> None:
    payload = Payload.build(
        b"model,score\r\na,1\r\n",
        media_type="text/csv; charset=utf-8",
        last_modified=WHEN,
        cache_control=CACHE,
    )
    assert (
        header_map(payload.variants["identity"].headers)[b"content-type"]
        == b"text/csv; charset=utf-8"
    )


def test_real_catalog_file_round_trips_through_every_coding() -> None:
    source = DATA / "mteb" / "catalog" / "benchmarks.jsonl"
    if not source.exists():
        pytest.skip(f"real data not found at {source}")
    body = source.read_bytes()
    payload = build(body)
    assert payload.encodings == ENCODINGS
    for variant in payload.variants.values():
        assert decode(variant) == body
    assert len(payload.variants["br"].body) < len(payload.variants["gzip"].body)


def test_serving_layer_imports_neither_polars_nor_the_dataset() -> None:
    code = (
        "import sys, leaderboard_api.serving; "
        "bad = [m for m in sys.modules"
        " if m.split('.')[0] == 'polars' or m.startswith('leaderboard_api.dataset')]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_identity_on_demand_is_the_same_representation_held_once() -> None:
    body = table_body(2000)
    held = build(body)
    lean = Payload.build(
        body,
        media_type="application/json",
        last_modified=WHEN,
        cache_control=CACHE,
        keep_identity=False,
    )
    assert lean.identity_on_demand
    assert not held.identity_on_demand
    assert lean.identity == body
    for coding in ENCODINGS:
        assert lean.variants[coding].body == held.variants[coding].body, coding
        assert lean.variants[coding].headers == held.variants[coding].headers, coding
        assert lean.variants[coding].etag == held.variants[coding].etag, coding
    assert lean.nbytes == held.nbytes - len(body)
    # Too small to be compressed: the identity bytes are all there is, so they are held.
    small = Payload.build(
        b"{}",
        media_type="application/json",
        last_modified=WHEN,
        cache_control=CACHE,
        keep_identity=False,
    )
    assert not small.identity_on_demand
    assert small.identity == b"{}"


# -- serialized form ------------------------------------------------------------------


def same_payload(a: Payload, b: Payload) -> None:
    """Every field, body, tag and header of ``a`` and ``b`` is identical."""
    scalars = ("gzip", "br", "zstd", "media_type", "etag", "last_modified")
    for name in (*scalars, "last_modified_epoch", "cache_control"):
        assert getattr(a, name) == getattr(b, name), name
    assert list(a.variants) == list(b.variants)
    for coding, left in a.variants.items():
        right = b.variants[coding]
        assert left.encoding == right.encoding == coding
        assert left.stored == right.stored, coding
        assert left.etag == right.etag, coding
        assert left.headers == right.headers, coding
        assert left.not_modified_headers == right.not_modified_headers, coding
        assert left.on_demand == right.on_demand, coding
    assert {tag: v.encoding for tag, v in a.by_etag.items()} == {
        tag: v.encoding for tag, v in b.by_etag.items()
    }
    assert a.nbytes == b.nbytes


def serialized_examples() -> dict[str, Payload]:
    csv = b"model,rank,mean\n" + b"".join(
        f"org/model-{i},{i + 1},{70 - i * 0.07:.4f}\n".encode() for i in range(500)
    )
    return {
        "json-all-codings": build(table_body()),
        "json-identity-only": build(b'{"ok":true}'),
        "json-on-demand": Payload.build(
            table_body(2000),
            media_type="application/json",
            last_modified=WHEN,
            cache_control=CACHE,
            keep_identity=False,
        ),
        "csv-latin-1-header": Payload.build(
            csv,
            media_type="text/csv; charset=utf-8",
            last_modified=WHEN,
            cache_control=CACHE,
            extra_headers=(("Content-Disposition", 'attachment; filename="résumé.csv"'),),
        ),
    }


@pytest.mark.parametrize("name", list(serialized_examples()))
def test_serialized_form_round_trips_exactly(name: str) -> None:
    payload = serialized_examples()[name]
    data = payload.to_bytes()
    assert data.startswith(FORMAT_MAGIC)
    back = Payload.from_bytes(data)
    same_payload(payload, back)
    assert back.identity == payload.identity
    assert back.to_bytes() == data
    assert payload.to_bytes() == data, "the same payload serializes to the same bytes"


def test_serialized_on_demand_identity_shares_the_zstd_buffer() -> None:
    payload = serialized_examples()["json-on-demand"]
    assert payload.zstd is not None
    data = payload.to_bytes()
    # The zstd body is written once although the identity variant holds it too.
    assert len(data) < payload.nbytes + 8192
    back = Payload.from_bytes(data)
    assert back.identity_on_demand
    assert back.variants["identity"].stored is back.zstd
    assert back.variants["zstd"].stored is back.zstd
    assert back.gzip is back.variants["gzip"].stored


def test_from_bytes_reads_an_mmap_and_lets_it_close(tmp_path: Path) -> None:
    payload = serialized_examples()["csv-latin-1-header"]
    file = tmp_path / "p.bin"
    file.write_bytes(payload.to_bytes())
    with file.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        back = Payload.from_bytes(memoryview(mapped))
        mapped.close()  # raises BufferError if any slice still pointed into the map
    same_payload(payload, back)


def test_header_fields_holding_nul_and_shared_values_round_trip() -> None:
    payload = Payload.build(
        table_body(),
        media_type="application/json",
        last_modified=WHEN,
        cache_control=CACHE,
        extra_headers=(("x-odd", "a\0b"),),
    )
    back = Payload.from_bytes(payload.to_bytes())
    same_payload(payload, back)
    plain = Payload.from_bytes(build(table_body()).to_bytes())
    gzip_headers = dict(plain.variants["gzip"].headers)
    br_headers = dict(plain.variants["br"].headers)
    # Equal names and values are one object per payload, as when built.
    assert gzip_headers[b"cache-control"] is br_headers[b"cache-control"]
    assert next(iter(gzip_headers)) is next(iter(br_headers))


def test_a_hand_made_payload_with_unrelated_304_headers_round_trips() -> None:
    built = build(table_body())
    odd = dataclasses.replace(
        built.variants["gzip"], not_modified_headers=((b"etag", b"x"), (b"x-other", b"1"))
    )
    variants = {**built.variants, "gzip": odd}
    payload = dataclasses.replace(
        built,
        variants=MappingProxyType(variants),
        by_etag=MappingProxyType({v.etag: v for v in variants.values()}),
    )
    same_payload(payload, Payload.from_bytes(payload.to_bytes()))


def test_read_fetches_large_bodies_one_read_each() -> None:
    payload = Payload.build(
        os.urandom(200_000) + b"x" * 400_000,
        media_type="application/octet-stream",
        last_modified=WHEN,
        cache_control=CACHE,
    )
    data = payload.to_bytes()
    reads: list[tuple[int, int]] = []

    def read_at(at: int, n: int) -> bytes:
        reads.append((at, n))
        return data[at : at + n]

    same_payload(payload, Payload.read(read_at, len(data)))
    assert len(reads) == 1 + len(payload.variants)
    assert sum(n for _, n in reads[1:]) == len(data) - reads[1][0]


def test_every_truncation_and_any_trailing_byte_is_corrupt() -> None:
    data = build(table_body(40)).to_bytes()
    for cut in range(len(data)):
        with pytest.raises(CorruptPayload, match="truncated"):
            Payload.from_bytes(data[:cut])
    with pytest.raises(CorruptPayload, match="trailing"):
        Payload.from_bytes(data + b"\0")


def test_wrong_magic_version_and_flipped_bytes_are_corrupt() -> None:
    data = build(table_body()).to_bytes()
    with pytest.raises(CorruptPayload, match="magic"):
        Payload.from_bytes(b"NOTAPAYL" + data[8:])
    future = bytearray(data)
    future[8:10] = (FORMAT_VERSION + 1).to_bytes(2, "little")
    with pytest.raises(CorruptPayload, match="version"):
        Payload.from_bytes(future)
    header = bytearray(data)
    header[30] ^= 0x01
    with pytest.raises(CorruptPayload, match="header checksum"):
        Payload.from_bytes(header)
    body = bytearray(data)
    body[-10] ^= 0x01
    with pytest.raises(CorruptPayload, match="body 3 checksum"):
        Payload.from_bytes(body)
    assert Payload.from_bytes(body, verify=False).identity != table_body()
    assert issubclass(CorruptPayload, ValueError)


def test_a_well_checksummed_but_malformed_header_is_corrupt() -> None:
    def framed(header: object, tail: bytes = b"") -> bytes:
        text = orjson.dumps(header)
        prelude = struct.pack(
            "<8sHHII", FORMAT_MAGIC, FORMAT_VERSION, 0, len(text), zlib.crc32(text)
        )
        return prelude + text + tail

    good = orjson.loads(build(b"{}").to_parts()[1])
    cases: list[object] = [
        [],
        {"bodies": "x"},
        {**good, "variants": []},
        {**good, "variants": [{**good["variants"][0], "body": 5}]},
        {**good, "variants": [{**good["variants"][0], "etag": 7}]},
        {**good, "variants": [{**good["variants"][0], "headers": [["a"]]}]},
        {**good, "variants": [{**good["variants"][0], "headers": "a\u0000b\u0000c"}]},
        {**good, "variants": [{**good["variants"][0], "headers": 5}]},
        {**good, "variants": [{**good["variants"][0], "not_modified_headers": 99}]},
        {**good, "variants": [{**good["variants"][0], "headers": [["a", "\u20ac"]]}]},
        {**good, "by_etag": [["x", 3]]},
        {**good, "last_modified_epoch": -1},
        {key: value for key, value in good.items() if key != "media_type"},
    ]
    for case in cases:
        with pytest.raises(CorruptPayload, match=r"corrupt payload header|expected|index|codings"):
            Payload.from_bytes(framed(case, b"{}"))


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_raise_only_corrupt_payload(data: bytes) -> None:
    for candidate in (data, FORMAT_MAGIC + data, build(b"{}").to_bytes()[:20] + data):
        with pytest.raises(CorruptPayload):
            Payload.from_bytes(candidate)
