"""Tests for leaderboard_api.serving.payload: codings, ETags, headers, determinism."""

from __future__ import annotations

import gzip
import math
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import brotli
import orjson
import pytest
import zstandard

from leaderboard_api.serving.payload import (
    DEFAULT_COMPRESSION,
    ENCODINGS,
    CompressionPolicy,
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
