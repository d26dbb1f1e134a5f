"""The generic serving layer: payload bytes, the single-flight cache and the ASGI fast path.

Nothing here knows about polars or the dataset: it deals in hashable keys, build
callables and bytes.
"""

from leaderboard_api.serving.cache import CacheStats, PayloadCache
from leaderboard_api.serving.conditional import (
    EncodingNegotiator,
    choose_encoding,
    if_none_match_matches,
    is_not_modified,
    parse_accept_encoding,
)
from leaderboard_api.serving.fastpath import FastPath, PayloadResponse, send_payload
from leaderboard_api.serving.payload import (
    DEFAULT_COMPRESSION,
    CompressionPolicy,
    Payload,
    Variant,
    http_date,
    json_payload,
)

__all__ = [
    "DEFAULT_COMPRESSION",
    "CacheStats",
    "CompressionPolicy",
    "EncodingNegotiator",
    "FastPath",
    "Payload",
    "PayloadCache",
    "PayloadResponse",
    "Variant",
    "choose_encoding",
    "http_date",
    "if_none_match_matches",
    "is_not_modified",
    "json_payload",
    "parse_accept_encoding",
    "send_payload",
]
