"""Tests for leaderboard_api.serving.conditional: Accept-Encoding and conditional GET rules."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from leaderboard_api.serving.conditional import (
    EncodingNegotiator,
    choose_encoding,
    entity_tags,
    if_none_match_matches,
    is_not_modified,
    not_modified_variant,
    parse_accept_encoding,
    parse_http_date,
    rank_encodings,
)
from leaderboard_api.serving.payload import Payload

WHEN = datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC)
ALL = ("br", "zstd", "gzip", "identity")


@pytest.fixture(scope="module")
def payload() -> Payload:
    body = orjson.dumps([{"model": f"m{i}", "score": i / 7} for i in range(200)])
    return Payload.build(
        body, media_type="application/json", last_modified=WHEN, cache_control="no-cache"
    )


def test_parse_accept_encoding_reads_q_values_case_and_aliases() -> None:
    prefs = parse_accept_encoding("GZIP;q=0.5, br ; Q=1, x-gzip;q=0.1, zstd;q=0, *;q=0.2")
    assert prefs == {"gzip": 0.5, "br": 1.0, "zstd": 0.0, "*": 0.2}


@pytest.mark.parametrize(
    "header", ["gzip;q=abc", "gzip;q=1.5", "gzip;q=-1", "gzip;q=nan", "gzip;q=inf"]
)
def test_parse_accept_encoding_skips_malformed_q(header: str) -> None:
    assert parse_accept_encoding(header) == {}


def test_parse_accept_encoding_ignores_other_params_and_empty_items() -> None:
    assert parse_accept_encoding(",, gzip;level=3;q=0.3 ,") == {"gzip": 0.3}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "identity"),  # absent: plain bytes for curl and scripts
        ("", "identity"),  # empty: identity only
        ("   ", "identity"),
        ("gzip, deflate, br, zstd", "br"),  # a browser: server preference breaks the tie
        ("gzip, deflate", "gzip"),
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0", "identity"),
        ("*", "br"),
        ("*;q=0.5, gzip", "gzip"),
        ("*;q=0", "identity"),  # nothing acceptable: identity as the last resort
        ("identity;q=0", "identity"),
        ("identity;q=0, gzip;q=0", "identity"),
        ("identity, gzip;q=0.5", "identity"),
        ("gzip;q=0.5", "gzip"),  # identity not named: after anything the client asked for
        ("zstd", "zstd"),
        ("deflate", "identity"),
        ("x-gzip", "gzip"),
        ("br;q=0.001, gzip;q=0.001", "br"),
    ],
)
def test_choose_encoding(header: str | None, expected: str) -> None:
    assert choose_encoding(header, ALL) == expected


def test_choose_encoding_only_picks_what_is_available() -> None:
    assert choose_encoding("br, gzip", ("gzip", "identity")) == "gzip"
    assert choose_encoding("br", ("identity",)) == "identity"
    assert choose_encoding("gzip, zstd", ("br", "identity")) == "identity"


def test_rank_encodings_orders_by_q_then_preference_and_ends_with_identity() -> None:
    assert rank_encodings("gzip;q=0.8, zstd;q=0.9, br;q=0.8") == ("zstd", "br", "gzip", "identity")
    assert rank_encodings("identity;q=0.9, gzip") == ("gzip", "identity")
    assert rank_encodings("identity;q=0, *") == ("br", "zstd", "gzip", "identity")


codings = st.sampled_from(["br", "zstd", "gzip", "identity", "*", "deflate", "x-gzip"])
qvalues = st.sampled_from(["", ";q=0", ";q=0.5", ";q=1", ";q=0.001", ";q=bad"])


@given(st.lists(st.tuples(codings, qvalues), max_size=6))
def test_choice_is_always_available_and_never_explicitly_refused(
    entries: list[tuple[str, str]],
) -> None:
    header = ", ".join(name + q for name, q in entries)
    chosen = choose_encoding(header, ALL)
    assert chosen in ALL
    prefs = parse_accept_encoding(header)
    effective = {coding: prefs.get(coding, prefs.get("*")) for coding in ALL}
    others = [q for coding, q in effective.items() if coding != "identity" and q]
    if chosen == "identity":
        quality = effective["identity"]
        assert not others or (quality is not None and quality >= max(others))
    else:
        assert effective[chosen] == max(others)


def test_negotiator_memoizes_and_stays_bounded(payload: Payload) -> None:
    negotiator = EncodingNegotiator(limit=3)
    assert negotiator.choose(b"gzip, br", payload).encoding == "br"
    assert negotiator.rank(b"gzip, br") is negotiator.rank(b"gzip, br")
    assert negotiator.choose(None, payload).encoding == "identity"
    for i in range(20):
        assert negotiator.choose(f"gzip;q=0.{i + 1}".encode(), payload).encoding == "gzip"
    assert len(negotiator._memo) <= 3


def test_negotiator_falls_back_to_identity_for_small_payloads() -> None:
    small = Payload.build(
        b"{}", media_type="application/json", last_modified=WHEN, cache_control=""
    )
    assert EncodingNegotiator().choose(b"br, gzip", small).encoding == "identity"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"a"', ['"a"']),
        ('W/"a", "b" ,W/"c"', ['"a"', '"b"', '"c"']),
        ('"a,b", "c"', ['"a,b"', '"c"']),  # a comma is legal inside an entity-tag
        ("abc, def", ['"abc"', '"def"']),  # unquoted tokens tolerated
        ('"a", "unterminated', ['"a"']),
        ("", []),
    ],
)
def test_entity_tags(header: str, expected: list[str]) -> None:
    assert list(entity_tags(header)) == expected


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"x"', True),
        ('W/"x"', True),
        ('"y", W/"x"', True),
        (" * ", True),
        ('"y"', False),
        ('"X"', False),  # tags are case-sensitive
        ("", False),
    ],
)
def test_if_none_match_matches(header: str, matches: bool) -> None:
    assert if_none_match_matches(header, ['"x"']) is matches
    assert if_none_match_matches(header, ['W/"x"']) is matches


def test_inm_matches_any_member_of_the_validator_family(payload: Payload) -> None:
    br = payload.variants["br"]
    for variant in payload.variants.values():
        for header in (variant.etag, f"W/{variant.etag}", f'"nope", {variant.etag}'):
            matched = not_modified_variant(
                payload, if_none_match=header, if_modified_since=None, preferred=br
            )
            assert matched is variant, header


def test_inm_prefers_the_negotiated_variant_when_several_are_named(payload: Payload) -> None:
    gz, br = payload.variants["gzip"], payload.variants["br"]
    header = f"{gz.etag}, {br.etag}"
    assert (
        not_modified_variant(payload, if_none_match=header, if_modified_since=None, preferred=br)
        is br
    )
    assert (
        not_modified_variant(payload, if_none_match=header, if_modified_since=None, preferred=gz)
        is gz
    )


def test_inm_star_and_mismatch(payload: Payload) -> None:
    gz = payload.variants["gzip"]
    assert (
        not_modified_variant(payload, if_none_match="*", if_modified_since=None, preferred=gz) is gz
    )
    other = payload.etag.replace('"', '"0', 1)
    assert (
        not_modified_variant(payload, if_none_match=other, if_modified_since=None, preferred=gz)
        is None
    )


def test_inm_takes_precedence_over_ims(payload: Payload) -> None:
    gz = payload.variants["gzip"]
    later = "Sat, 01 Jan 2050 00:00:00 GMT"
    assert (
        not_modified_variant(
            payload, if_none_match='"stale"', if_modified_since=later, preferred=gz
        )
        is None
    )
    assert (
        not_modified_variant(payload, if_none_match=None, if_modified_since=later, preferred=gz)
        is gz
    )


@pytest.mark.parametrize(
    ("since", "not_modified"),
    [
        ("Fri, 17 May 2024 09:30:12 GMT", True),  # our own date echoed back
        ("Fri, 17 May 2024 09:30:13 GMT", True),
        ("Fri, 17 May 2024 09:30:11 GMT", False),
        ("Friday, 17-May-24 09:30:12 GMT", True),  # RFC 850
        ("Fri May 17 09:30:12 2024", True),  # asctime
        ("Fri, 17 May 2024 11:30:12 +0200", True),
        ("yesterday", False),
        ("", False),
    ],
)
def test_if_modified_since(payload: Payload, since: str, not_modified: bool) -> None:
    identity = payload.variants["identity"]
    matched = not_modified_variant(
        payload, if_none_match=None, if_modified_since=since, preferred=identity
    )
    assert (matched is identity) is not_modified


def test_parse_http_date() -> None:
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 -0000") == 784111777
    assert parse_http_date("not a date") is None


def test_is_not_modified_reads_plain_and_starlette_headers(payload: Payload) -> None:
    assert is_not_modified({"if-none-match": payload.etag}, payload)
    assert is_not_modified(
        Headers({"If-None-Match": f"W/{payload.variants['gzip'].etag}"}), payload
    )
    assert is_not_modified({"if-modified-since": payload.last_modified}, payload)
    assert not is_not_modified(
        {"if-none-match": '"x"', "if-modified-since": payload.last_modified}, payload
    )
    assert not is_not_modified({}, payload)
