"""The fast path's answer memo: byte-identical to unmemoized answers, bounded, weakly held."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from leaderboard_api.serving.fastpath import FastPath, send_payload
from leaderboard_api.serving.payload import Payload
from tests.api_support import asgi_call, serve_in_thread

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
RawHeaders = list[tuple[bytes, bytes]]
Result = tuple[int, RawHeaders, bytes]

PATH = "/v1/benchmarks/MTEB(eng, v2)/scores"
WHEN = datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC)


def make_payload(seed: int = 0, *, rows: int = 300) -> Payload:
    body = orjson.dumps({"rows": [{"model": f"m-{seed}-{i}", "score": i / 7} for i in range(rows)]})
    return Payload.build(
        body, media_type="application/json", last_modified=WHEN, cache_control="public"
    )


PAYLOAD = make_payload()
SMALL = Payload.build(b"{}", media_type="application/json", last_modified=WHEN, cache_control="x")
TAGS = {name: variant.etag for name, variant in PAYLOAD.variants.items()}

ACCEPTS: list[bytes | None] = [
    None,
    b"",
    b"gzip",
    b"identity",
    b"gzip, deflate, br, zstd",
    b"br;q=0.5, gzip;q=0.9",
    b"gzip;q=0, *",
    b"*;q=0",
    b"identity;q=0",
    b"zstd;q=0.1, br;q=0.1, gzip;q=0.1",
    b"GZIP;Q=1.0",
    b"x-gzip",
    b"br;q=bad, gzip",
]
IF_NONE_MATCH: list[bytes | None] = [
    None,
    TAGS["identity"].encode(),
    TAGS["gzip"].encode(),
    f"W/{TAGS['br']}".encode(),
    f'"other", {TAGS["zstd"]}, {TAGS["gzip"]}'.encode(),
    b"*",
    b' "nope" ',
    b'"nope", W/"also-not"',
    TAGS["identity"].removeprefix('"').removesuffix('"').encode(),  # unquoted
]
IF_MODIFIED_SINCE: list[bytes | None] = [
    None,
    PAYLOAD.last_modified.encode(),
    b"Sat, 18 May 2024 00:00:00 GMT",
    b"Thu, 16 May 2024 00:00:00 GMT",
    b"not a date",
]


def request_headers(
    accept: bytes | None, inm: bytes | None, ims: bytes | None, *, origin: bytes | None = None
) -> RawHeaders:
    headers: RawHeaders = [(b"host", b"test")]
    for name, value in (
        (b"accept-encoding", accept),
        (b"if-none-match", inm),
        (b"if-modified-since", ims),
        (b"origin", origin),
    ):
        if value is not None:
            headers.append((name, value))
    return headers


async def call(
    app: Callable[[Scope, Any, Any], Awaitable[None]], method: str, headers: RawHeaders
) -> Result:
    return await asgi_call(app, method=method, path=PATH, headers=headers)


async def not_found(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def cors(origin: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin)] if origin == b"https://ok.example" else []


def fast(table: dict[str, Payload], *, memo_entries: int = 4096) -> FastPath:
    return FastPath(
        not_found,
        lookup=lambda path, query: table.get(path),
        extra_headers=[(b"x-extra", b"1")],
        origin_headers=cors,
        memo_entries=memo_entries,
    )


async def test_memoized_answers_are_byte_identical_to_unmemoized_ones() -> None:
    memoized = fast({PATH: PAYLOAD})
    plain = fast({PATH: PAYLOAD}, memo_entries=0)

    async def cold(scope: Scope, receive: Any, send: Any) -> None:
        await send_payload(scope, receive, send, PAYLOAD, extra_headers=[(b"x-extra", b"1")])

    cases = list(itertools.product(ACCEPTS, IF_NONE_MATCH, IF_MODIFIED_SINCE))
    statuses = set()
    for _ in range(2):  # the second pass is answered from the memo
        for method, (accept, inm, ims) in itertools.product(("GET", "HEAD"), cases):
            headers = request_headers(accept, inm, ims)
            expected = await call(plain, method, headers)
            assert await call(memoized, method, headers) == expected, (method, headers)
            assert await call(cold, method, headers) == expected, (method, headers)
            statuses.add(expected[0])
    assert statuses == {200, 304}
    assert len(memoized.memo) == len(cases)
    assert len(plain.memo) == 0


async def test_memo_keeps_origin_headers_per_request() -> None:
    app = fast({PATH: PAYLOAD})
    for origin in (b"https://ok.example", b"https://other.example", None, b"https://ok.example"):
        status, headers, _ = await call(
            app, "GET", request_headers(b"gzip", None, None, origin=origin)
        )
        assert status == 200
        allowed = (b"access-control-allow-origin", b"https://ok.example") in headers
        assert allowed == (origin == b"https://ok.example")


async def test_repeated_header_fields_are_joined_before_the_memo() -> None:
    app = fast({PATH: PAYLOAD})
    headers = [(b"if-none-match", b'"nope"'), (b"if-none-match", TAGS["gzip"].encode())]
    status, out, _ = await call(app, "GET", headers)
    assert status == 304
    assert (b"etag", TAGS["gzip"].encode()) in out
    status, _, _ = await call(app, "GET", headers[:1])
    assert status == 200


async def test_memo_is_bounded_by_entries_and_header_length() -> None:
    app = fast({PATH: PAYLOAD, "/small": SMALL}, memo_entries=8)
    plain = fast({PATH: PAYLOAD}, memo_entries=0)
    for index in range(100):
        headers = request_headers(
            f"gzip;q=0.{index % 10}, br;q=0.{index // 10}".encode(), None, None
        )
        assert await call(app, "GET", headers) == await call(plain, "GET", headers)
        assert len(app.memo) <= 8
    app.memo.clear()
    long_header = b"gzip, " + b"x" * app.memo.max_header_bytes
    headers = request_headers(long_header, None, None)
    assert await call(app, "GET", headers) == await call(plain, "GET", headers)
    assert len(app.memo) == 0


async def test_a_replaced_payload_is_answered_afresh_and_the_old_one_forgotten() -> None:
    table = {PATH: make_payload(1)}
    app = fast(table)
    headers = request_headers(b"identity", None, None)
    first = await call(app, "GET", headers)
    assert app.memo.payloads == 1
    table[PATH] = make_payload(2)  # a reload: same path, new content
    gc.collect()
    assert app.memo.payloads == 0  # the dropped payload took its answers with it
    assert len(app.memo) == 0
    second = await call(app, "GET", headers)
    assert second[2] == table[PATH].identity != first[2]
    etag = dict(second[1])[b"etag"]
    assert (await call(app, "GET", request_headers(b"identity", etag, None)))[0] == 304


async def test_many_short_lived_payloads_never_mix_up_answers() -> None:
    # Ids of dead payloads are reused by new ones; every answer must be the current one's.
    table: dict[str, Payload] = {}
    app = fast(table)
    for seed in range(50):
        table[PATH] = make_payload(seed, rows=20)
        _, headers, body = await call(app, "GET", request_headers(b"identity", None, None))
        assert body == table[PATH].identity
        assert dict(headers)[b"etag"] == table[PATH].etag.encode()
    assert app.memo.payloads <= 2


def test_memoized_fast_path_on_a_real_server() -> None:
    memoized, plain = fast({PATH: PAYLOAD}), fast({PATH: PAYLOAD}, memo_entries=0)
    drop = {b"date", b"server"}
    with (
        serve_in_thread(memoized) as a,
        serve_in_thread(plain) as b,
        httpx.Client(base_url=a) as one,
        httpx.Client(base_url=b) as two,
    ):
        for accept, inm in itertools.product(ACCEPTS[2:6], IF_NONE_MATCH[:6]):
            headers = {"accept-encoding": accept.decode() if accept else ""}
            if inm is not None:
                headers["if-none-match"] = inm.decode()
            for _ in range(2):
                x, y = one.get(PATH, headers=headers), two.get(PATH, headers=headers)
                assert x.status_code == y.status_code
                assert x.content == y.content
                assert [h for h in x.headers.raw if h[0].lower() not in drop] == [
                    h for h in y.headers.raw if h[0].lower() not in drop
                ]
    assert len(memoized.memo) > 0


async def test_identity_decoded_on_demand_is_answered_alike_but_never_memoized() -> None:
    body = PAYLOAD.identity
    lean = Payload.build(
        body,
        media_type="application/json",
        last_modified=WHEN,
        cache_control="public",
        keep_identity=False,
    )
    assert lean.identity_on_demand
    app = fast({PATH: lean})
    held = fast({PATH: PAYLOAD}, memo_entries=0)
    for accept in ACCEPTS:
        for inm in (None, TAGS["identity"].encode()):
            headers = request_headers(accept, inm, None)
            assert await call(app, "GET", headers) == await call(held, "GET", headers)
    identity = request_headers(b"identity", None, None)
    before = len(app.memo)
    for _ in range(3):
        status, _, sent = await call(app, "GET", identity)
        assert (status, sent) == (200, body)
    assert len(app.memo) == before  # a decoded body is not kept
    coded = request_headers(b"br;q=0.3, gzip", None, None)  # not asked above
    await call(app, "GET", coded)
    assert len(app.memo) == before + 1
