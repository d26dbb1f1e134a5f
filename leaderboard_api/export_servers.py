"""nginx and Caddy configuration that serves a static export with the live service's headers.

Generated from the exported routes (see :mod:`leaderboard_api.export`); pure functions
from routes to text.  What each server can and cannot reproduce is in docs/export.md.

nginx (tested with Debian's nginx-light: no brotli or headers-more module needed)
    ``nginx-maps.conf`` (``http`` level) holds ``map`` blocks: Accept-Encoding to the
    file suffixes worth trying, request path to validators and headers, served file to
    its ETag.  ``nginx.conf.snippet`` (``server`` level) holds the locations: ``try_files``
    picks the first acceptable precompressed file (br, zstd, gzip, identity: the live
    server's preference order), ``add_header`` sends the exact live headers, ``etag off``
    keeps nginx's own ETag out, and an ``If-None-Match`` naming any tag of the path's
    validator family answers 304 from a map (nginx's own check only knows its own ETags).
    ``If-Modified-Since`` and ``If-None-Match: *`` are left to nginx
    (``if_modified_since before``), using file mtimes set to ``Last-Modified``.

Caddy (2.8 or later: ``etag_file_extensions``)
    ``file_server`` with ``precompressed br zstd gzip`` and the ``.etag`` sidecars, one
    ``map`` from path to headers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leaderboard_api.export import ExportedRoute

__all__ = ["caddyfile", "nginx_maps", "nginx_snippet"]

#: nginx variable holding the suffix to try for a coding, and the suffix itself.
_TRY = {"br": ("lb_try_br", ".br"), "zstd": ("lb_try_zst", ".zst"), "gzip": ("lb_try_gz", ".gz")}
#: The suffix tried when a coding is not acceptable: never a file of the export.
_NONE = ".not-acceptable"
_IGNORED_REQUEST_HEADERS = ("Range", "If-Range", "If-Match", "If-Unmodified-Since")
_CODING_NAMES = {"br": "br", "zstd": "zstd", "gzip": "(?:x-)?gzip"}
#: A q-value of zero, and the rest of an Accept-Encoding entry.
_Q0 = r"\s*;[^,]*\bq\s*=\s*(?:0(?:\.0*)?|\.0+)\s*(?:;[^,]*)?(?:,|$)"
_ANY_Q = r"\s*(?:;[^,]*)?(?:,|$)"


class ConfigError(ValueError):
    """A value the server configuration language cannot express literally."""


def _nq(text: str, *, variables: bool = False) -> str:
    """Quote ``text`` for nginx; ``$`` would start a variable, so it must be meant as one."""
    if "$" in text and not variables:
        msg = f"nginx cannot express a literal '$' here: {text!r}"
        raise ConfigError(msg)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exact_regex(text: str) -> str:
    """A case-sensitive PCRE matching exactly ``text`` (bytes escaped, so quoting is moot)."""
    return "~^" + "".join(f"\\x{{{b:02x}}}" for b in text.encode()) + "$"


def _var(header: str) -> str:
    return "lb_hdr_" + re.sub(r"[^a-z0-9]", "_", header.lower())


def most_common(values: Iterable[str]) -> str:
    """The most frequent value (ties: the smallest), used as a map's default."""
    counts = Counter(values)
    if not counts:
        return ""
    best = max(counts.values())
    return min(value for value, count in counts.items() if count == best)


def _map(source: str, name: str, entries: Mapping[str, str], *, default: str = "") -> list[str]:
    """One nginx ``map`` block; keys that differ only by case become exact regexes.

    nginx matches map strings case-insensitively, regexes (``~``) case-sensitively.
    """
    lowered = Counter(key.lower() for key in entries)
    lines = [f"map {_nq(source, variables=True)} ${name} {{", f"    default {_nq(default)};"]
    for key in sorted(entries):
        value = _nq(entries[key])
        if entries[key] == default:
            continue
        pattern = _exact_regex(key) if lowered[key.lower()] > 1 else key
        lines.append(f"    {_nq(pattern, variables=True)} {value};")
    lines.append("}")
    return lines


def _accept_map(coding: str) -> list[str]:
    var, suffix = _TRY[coding]
    name = _CODING_NAMES[coding]
    rules = [
        (f"(?:^|,)\\s*{name}{_Q0}", _NONE),  # named with q=0: refused
        (f"(?:^|,)\\s*{name}{_ANY_Q}", suffix),  # named otherwise: accepted
        (f"(?:^|,)\\s*\\*{_Q0}", _NONE),  # "*;q=0"
        (f"(?:^|,)\\s*\\*{_ANY_Q}", suffix),  # "*" stands for every coding not named
    ]
    lines = [f"map $http_accept_encoding ${var} {{", f"    default {_NONE};"]
    lines += [f"    {_nq('~*' + rule, variables=True)} {value};" for rule, value in rules]
    lines.append("}")
    return lines


def _codings(routes: Sequence[ExportedRoute]) -> list[str]:
    offered = {coding for route in routes for coding in route.files}
    return [coding for coding in _TRY if coding in offered]


def _extra_headers(routes: Sequence[ExportedRoute]) -> list[str]:
    return sorted({name for route in routes for name, _ in route.headers})


def nginx_maps(routes: Sequence[ExportedRoute], *, query_parameters: Sequence[str] = ()) -> str:
    """The ``http``-level maps of the export (include once, inside ``http { }``)."""
    by_path = {route.path: route for route in routes}
    etags = {
        "/" + name: route.etags[coding] for route in routes for coding, name in route.files.items()
    }
    family = {path: route.etags["identity"].strip('"') for path, route in by_path.items()}
    suffixes = sorted(
        {tag.strip('"')[len(family[r.path]) :] for r in routes for tag in r.etags.values()} - {""}
    )
    keys = [*by_path, *etags]
    longest = max((len(key.encode()) for key in keys), default=0)
    bucket = 64
    while bucket < 2 * (longest + 32):
        bucket *= 2
    size = 2048
    while size < 2 * len(etags):
        size *= 2
    out = [
        "# Generated by `leaderboard-api export`: include inside http { } (once), and",
        "# nginx.conf.snippet inside the server { } that serves the export.",
        f"map_hash_max_size {size};",
        f"map_hash_bucket_size {bucket};",
        "",
        "# Accept-Encoding -> the suffix to try for each coding (a missing file is skipped).",
    ]
    for coding in _codings(routes):
        out += _accept_map(coding)
    names = "|".join(re.escape(name) for name in query_parameters)
    unsupported = {f"~(?:^|&)(?:{names})=[^&]": "1"} if names else {}
    out += ["", "# Query parameters the live API honors and the export cannot: 404."]
    out += _map("$args", "lb_query_unsupported", unsupported)
    out += [
        "",
        "# If-None-Match naming any tag of the path's family -> the tag to answer 304 with.",
    ]
    out += _map("$lb_path", "lb_family", family)
    tags = "|".join(re.escape(suffix) for suffix in suffixes)
    match = f'~^(?<lb_h>[^|]+)\\|.*?"(?<lb_t>\\k<lb_h>(?:{tags})?)"'
    out += [
        'map "$lb_family|$http_if_none_match" $lb_not_modified_etag {',
        '    default "";',
        f"    {_nq(match, variables=True)} '\"$lb_t\"';",
        "}",
        "",
        "# The file try_files chose -> its ETag; its coding (200 only).",
    ]
    out += _map("$uri", "lb_etag", etags)
    out += [
        'map "$status:$uri" $lb_content_encoding {',
        '    default "";',
        *(
            f"    {_nq(f'~^200:.*{re.escape(_TRY[c][1])}$', variables=True)} {c};"
            for c in _codings(routes)
        ),
        "}",
        "",
        "# Per-path headers of 200 and 304 responses.",
    ]
    for var, attr in (
        ("lb_cache_control", "cache_control"),
        ("lb_last_modified", "last_modified"),
        ("lb_vary", "vary"),
    ):
        values = {p: getattr(r, attr) or "" for p, r in by_path.items()}
        out += _map("$lb_path", var, values, default=most_common(values.values()))
    for header in _extra_headers(routes):
        values = {p: dict(r.headers).get(header, "") for p, r in by_path.items()}
        out += _map("$lb_path", _var(header), values, default=most_common(values.values()))
    return "\n".join(out) + "\n"


def _location_body(
    *, content_type: str, tries: list[str], extra: Sequence[str], api: bool
) -> list[str]:
    headers = [("ETag", "$lb_etag"), ("Cache-Control", "$lb_cache_control"), ("Vary", "$lb_vary")]
    headers += [(name.title(), f"${_var(name)}") for name in extra]
    not_modified = [
        ("ETag", "$lb_not_modified_etag"),
        *headers[1:],
        ("Last-Modified", "$lb_last_modified"),
    ]
    body = [
        "types { }",
        f"default_type {_nq(content_type)};",
        "charset off;",
        "gzip off;",
        "etag off;",
        "if_modified_since before;",
        "max_ranges 0;",
        "set $lb_path $uri;",
    ]
    if api:
        # Only exported paths: not "X/", "X/index" or a file left over from elsewhere.
        body.append('if ($lb_family = "") { return 404; }')
        body.append("if ($lb_query_unsupported) { return 404; }")
    body.append("if ($lb_not_modified_etag) {")
    body += [f"    add_header {name} {value} always;" for name, value in not_modified]
    body += ["    return 304;", "}"]
    body += [f"add_header {name} {value};" for name, value in headers]
    body.append("add_header Content-Encoding $lb_content_encoding;")
    body.append("try_files " + " ".join(tries) + " =404;")
    return body


def nginx_snippet(routes: Sequence[ExportedRoute], *, root: Path) -> str:
    """The ``server``-level part: root and one location per content type or static file."""
    codings = _codings(routes)
    extra = _extra_headers(routes)
    out = [
        "# Generated by `leaderboard-api export`: include inside the server { } that serves the",
        "# export (it sets root and owns every path), with nginx-maps.conf inside http { }.",
        f"root {_nq(str(root))};",
        "",
    ]
    api = [route for route in routes if route.kind == "dir"]
    prefixes = sorted({"/" + route.path.split("/")[1] + "/" for route in api})
    exact: list[tuple[ExportedRoute, bool]] = []
    for prefix in prefixes:
        members = [route for route in api if route.path.startswith(prefix)]
        default = most_common(route.content_type for route in members)
        exact += [(route, True) for route in members if route.content_type != default]
        tries = [f"$uri/index${_TRY[c][0]}" for c in codings] + ["$uri/index"]
        body = _location_body(content_type=default, tries=tries, extra=extra, api=True)
        out += [f"location {_nq(prefix)} {{", *(f"    {line}" for line in body), "}"]
    exact += [(route, False) for route in routes if route.kind == "file"]
    for route, is_api in exact:
        base = "$uri/index" if is_api else _nq("/" + route.base)[1:-1]
        tries = [f'"{base}${_TRY[c][0]}"' for c in codings] + [f'"{base}"']
        body = _location_body(content_type=route.content_type, tries=tries, extra=extra, api=is_api)
        out += [f"location = {_nq(route.path)} {{", *(f"    {line}" for line in body), "}"]
    out += ["location / {", "    return 404;", "}"]
    return "\n".join(out) + "\n"


def _cq(text: str) -> str:
    """Quote ``text`` as one Caddyfile token."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def caddyfile(
    routes: Sequence[ExportedRoute], *, root: Path, query_parameters: Sequence[str] = ()
) -> str:
    """A Caddyfile site serving the export (address from ``LEADERBOARD_EXPORT_ADDRESS``)."""
    extra = _extra_headers(routes)
    outputs = ["{lb_type}", "{lb_cache}", "{lb_vary}", "{lb_kind}"]
    outputs += ["{" + _var(name) + "}" for name in extra]
    rows = []
    for route in routes:
        values = [route.content_type, route.cache_control, route.vary or "", route.kind]
        values += [dict(route.headers).get(name, "") for name in extra]
        rows.append("\t\t" + " ".join(_cq(v) for v in [route.path, *values]))
    out = [
        "# Generated by `leaderboard-api export`: serves the export with Caddy 2.8 or later.",
        "# caddy run --config Caddyfile  (address: $LEADERBOARD_EXPORT_ADDRESS, default :8080)",
        "{$LEADERBOARD_EXPORT_ADDRESS::8080} {",
        f"\troot * {_cq(str(root))}",
        f"\tmap {{path}} {' '.join(outputs)} {{",
        *rows,
        "\t\tdefault " + " ".join('""' for _ in outputs),
        "\t}",
        "\troute {",
        "\t\t# The live service ignores these; Go's file server would act on them.",
        *(f"\t\trequest_header -{name}" for name in _IGNORED_REQUEST_HEADERS),
        '\t\t@lb_missing vars {lb_type} ""',
        "\t\trespond @lb_missing 404",
    ]
    if query_parameters:
        names = "|".join(re.escape(name) for name in query_parameters)
        out += [
            "\t\t@lb_query {",
            "\t\t\tvars {lb_kind} dir",
            f"\t\t\tvars_regexp {{query}} {_cq(f'(?:^|&)(?:{names})=[^&]')}",
            "\t\t}",
            "\t\trespond @lb_query 404",
        ]
    out += [
        "\t\theader Content-Type {lb_type}",
        "\t\theader Cache-Control {lb_cache}",
        "\t\theader -Accept-Ranges",
        '\t\t@lb_vary not vars {lb_vary} ""',
        "\t\theader @lb_vary >Vary {lb_vary}",
        '\t\t@lb_no_vary vars {lb_vary} ""',
        "\t\theader @lb_no_vary -Vary",
    ]
    for name in extra:
        var = _var(name)
        out += [
            f'\t\t@{var} not vars {{{var}}} ""',
            f"\t\theader @{var} {name.title()} {{{var}}}",
        ]
    out += [
        "\t\tfile_server {",
        "\t\t\tindex index index.html",
        "\t\t\tprecompressed br zstd gzip",
        "\t\t\tetag_file_extensions .etag",
        "\t\t\tdisable_canonical_uris",
        "\t\t}",
        "\t}",
        "}",
    ]
    return "\n".join(out) + "\n"
