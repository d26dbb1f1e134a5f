#!/usr/bin/env python3
"""Diff two MTEB-leaderboard-style APIs ("ours" vs "theirs" = official mteb.api).

Usage:
  python benchmarks/compare_mteb_api.py --ours http://127.0.0.1:PORT \
      --theirs http://127.0.0.1:8002 [--benchmarks NAME,...] [--out report.json]
  python -m benchmarks.compare_mteb_api ... --record   # from the repository root

Stdlib only (urllib + json), so it runs with any python3 >= 3.11. --record appends
a summary section to benchmarks/RESULTS.md through benchmarks.record, which needs the
`python -m benchmarks.compare_mteb_api` form so that the package is importable.

Running the official API for the comparison: make a separate venv with
`pip install 'mteb[api]==2.26.24'` and a CPU-only torch wheel, have a local clone of
the MTEB results repository at the commit to compare, and start
`uvicorn mteb.api.app:app --host 127.0.0.1 --port PORT` with its results cache
pointed at that clone and every download disabled: `CACHE_REPO=""` (build the tables
from the local ResultCache instead of loading prebuilt frames from the Hugging Face
hub), `MTEB_CACHE=DIR` where `DIR/remote` is (a symlink to) the clone, and
`HF_HUB_OFFLINE=1` (plus HF_DATASETS_OFFLINE=1, TRANSFORMERS_OFFLINE=1). When the
cache is rebuilt, mteb's `ResultCache.download_from_remote` runs `git fetch --all`
and `git reset --hard origin/HEAD` in `DIR/remote`; the launcher used for the
recorded runs replaced that one method with a no-op returning the local clone (no
other patch), so the clone was neither fetched nor modified. A cold start builds
every per-benchmark frame first (about 85 s here); wait for `/health` to answer.

What is compared (see --help for knobs):
  * /v1/benchmarks/{name}/scores for every benchmark of theirs'
    /v1/benchmarks?include_hidden=true (or --benchmarks): rows matched by
    (model.name, experiments); set of models, rank, meanTask, meanTaskType,
    meanPublic, meanPrivate, every scoresByTask / scoresByTaskType (and
    scoresByCustomGroup) entry, zeroShotPct, the other row fields, the nested
    `model` object, and row-level field names + JSON types; plus the
    summary-level fields (benchmarkName, taskTypes, tasks, tasksMeta, ...).
  * /v1/benchmarks?include_hidden=true, /v1/tasks, /v1/models list entries
    (field names + JSON types for every entry; values for a fixed set of fields,
    or every field with --all-fields).
  * /v1/tasks/{name}/scores (5 tasks), /v1/models/{name}/scores (5 models),
    /v1/benchmarks/{name}/per-language (3 benchmarks),
    /v1/tasks/{name}/descriptive_statistics (3 tasks).

Scores: the scale of each side (0-1 vs 0-100) is DETECTED per section from the
matched score pairs and REPORTED (section["scale"], and a "scale" difference is
counted when the sides disagree). Values are then compared on theirs' scale
(ours divided by the detected factor) with an absolute tolerance (--tol,
default 1e-6). --no-normalize compares raw values instead.

Exit status: 0 = no differences, 1 = differences found, 2 = fatal error.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NotRequired, TextIO, TypedDict

MAX_EXAMPLES = 5

JsonObj = dict[str, Any]
"""A decoded JSON object; values are whatever `json.loads` produced."""
Response = tuple[int | None, Any, str | None]
"""(HTTP status or None, decoded JSON or None, error text or None)."""


class ScaleInfo(TypedDict):
    """Result of `detect_scale` (reported as a section's "scale")."""

    pairs: int
    ours_range: list[float] | None
    theirs_range: list[float] | None
    ours_scale_guess: str
    theirs_scale_guess: str
    median_ratio: NotRequired[float | None]
    note: NotRequired[str]
    factor: NotRequired[float]
    mismatch: NotRequired[bool]


# ----------------------------------------------------------------------------
# HTTP


class Fetcher:
    def __init__(self, base: str, timeout: float) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout

    def get(self, path: str) -> Response:
        """Return (status, parsed_json_or_None, error_text)."""
        url = self.base + path
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            try:
                body = e.read()
            except Exception:
                body = b""
            return e.code, None, body[:300].decode("utf-8", "replace")
        except Exception as e:
            return None, None, f"{type(e).__name__}: {e}"
        try:
            return status, json.loads(body), None
        except ValueError as e:
            return status, None, f"invalid JSON: {e}"


def q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


# ----------------------------------------------------------------------------
# JSON typing


def jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def short(v: Any, n: int = 160) -> Any:
    """Truncate big values for examples."""
    s = json.dumps(v, sort_keys=True, ensure_ascii=False)
    if len(s) <= n:
        return v
    return s[:n] + "...(truncated)"


# ----------------------------------------------------------------------------
# Recording


class FieldCount:
    """How many values of one field were compared / differed, with a few examples."""

    __slots__ = ("compared", "differing", "examples")

    def __init__(self) -> None:
        self.compared = 0
        self.differing = 0
        self.examples: list[JsonObj] = []

    def add(self, ok: bool, example: JsonObj | None) -> None:
        self.compared += 1
        if not ok:
            self.differing += 1
            if example is not None and len(self.examples) < MAX_EXAMPLES:
                self.examples.append(example)


class Section:
    """Counts + examples of one comparison unit (one benchmark, one endpoint...)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status: dict[str, Any] = {}
        self.errors: list[str] = []
        self.only_in_ours: list[Any] = []
        self.only_in_theirs: list[Any] = []
        self.duplicates: dict[str, list[Any]] = {}
        self.counts_ours = 0
        self.counts_theirs = 0
        self.matched = 0
        self.scale: ScaleInfo | None = None
        self.values: dict[str, FieldCount] = {}
        self.schema: dict[str, FieldCount] = {}

    # values
    def val(self, field: str, ok: bool, example: JsonObj | None = None) -> None:
        self.values.setdefault(field, FieldCount()).add(ok, example)

    # schema (field presence / JSON type)
    def sch(self, field: str, ok: bool, example: JsonObj | None = None) -> None:
        self.schema.setdefault(field, FieldCount()).add(ok, example)

    def totals(self) -> dict[str, int]:
        vc = sum(r.compared for r in self.values.values())
        vd = sum(r.differing for r in self.values.values())
        sc = sum(r.compared for r in self.schema.values())
        sd = sum(r.differing for r in self.schema.values())
        # membership: each key of the union is one compared value
        mem = self.matched + len(self.only_in_ours) + len(self.only_in_theirs)
        memd = len(self.only_in_ours) + len(self.only_in_theirs)
        return {
            "values_compared": vc + mem,
            "values_differing": vd + memd,
            "schema_checks": sc,
            "schema_differing": sd,
        }

    def has_diff(self) -> bool:
        t = self.totals()
        return bool(t["values_differing"] or t["schema_differing"] or self.errors)

    def to_json(self) -> JsonObj:
        return {
            "status": self.status,
            "errors": self.errors,
            "rows_ours": self.counts_ours,
            "rows_theirs": self.counts_theirs,
            "rows_matched": self.matched,
            "only_in_ours": self.only_in_ours,
            "only_in_theirs": self.only_in_theirs,
            "duplicate_keys": self.duplicates,
            "scale": self.scale,
            "values": {
                f: {"compared": r.compared, "differing": r.differing, "examples": r.examples}
                for f, r in sorted(self.values.items())
            },
            "schema": {
                f: {"checked": r.compared, "differing": r.differing, "examples": r.examples}
                for f, r in sorted(self.schema.items())
            },
            **self.totals(),
        }

    def print(self, out: TextIO = sys.stdout, verbose: bool = False) -> None:
        t = self.totals()
        flag = "DIFF" if self.has_diff() else "ok  "
        print(
            f"[{flag}] {self.name}: rows ours={self.counts_ours} theirs={self.counts_theirs} "
            f"matched={self.matched}; "
            f"values {t['values_differing']}/{t['values_compared']} differ; "
            f"schema {t['schema_differing']}/{t['schema_checks']} differ",
            file=out,
        )
        if self.status and any(v != 200 for v in self.status.values()):
            print(f"    status: {self.status}", file=out)
        for e in self.errors:
            print(f"    error: {e}", file=out)
        if self.scale and (self.scale.get("mismatch") or verbose):
            print(f"    scale: {json.dumps(self.scale)}", file=out)
        if self.only_in_ours or self.only_in_theirs:
            print(
                f"    models/keys only-in-ours: {len(self.only_in_ours)} "
                f"{short(self.only_in_ours[:MAX_EXAMPLES], 400)}",
                file=out,
            )
            print(
                f"    models/keys only-in-theirs: {len(self.only_in_theirs)} "
                f"{short(self.only_in_theirs[:MAX_EXAMPLES], 400)}",
                file=out,
            )
        for kind, recs in (("values", self.values), ("schema", self.schema)):
            for f, r in sorted(recs.items()):
                if r.differing or verbose:
                    print(f"    {kind} {f}: {r.differing}/{r.compared} differ", file=out)
                    for ex in r.examples:
                        text = json.dumps(ex, ensure_ascii=False, sort_keys=True)
                        print(f"        e.g. {text[:600]}", file=out)
        for k, v in self.duplicates.items():
            print(f"    duplicate keys on {k}: {short(v[:MAX_EXAMPLES], 300)}", file=out)


# ----------------------------------------------------------------------------
# Scale detection


def detect_scale(pairs: list[tuple[float, float]]) -> ScaleInfo:
    """pairs = (ours, theirs). Returns factor such that ours ≈ theirs*factor."""
    ratios = sorted(
        o / t for o, t in pairs if is_num(o) and is_num(t) and abs(t) > 1e-9 and abs(o) > 1e-12
    )

    def rng(vals: list[float]) -> list[float] | None:
        vals = [v for v in vals if is_num(v) and not math.isnan(v)]
        return [min(vals), max(vals)] if vals else None

    r_ours = rng([o for o, _ in pairs])
    r_theirs = rng([t for _, t in pairs])

    def guess(r: list[float] | None) -> str:
        if r is None:
            return "unknown"
        return "0-100" if r[1] > 1.5 else "0-1"

    info: ScaleInfo = {
        "pairs": len(pairs),
        "ours_range": r_ours,
        "theirs_range": r_theirs,
        "ours_scale_guess": guess(r_ours),
        "theirs_scale_guess": guess(r_theirs),
    }
    if not ratios:
        info["factor"] = 1.0
        info["median_ratio"] = None
        info["mismatch"] = False
        return info
    med = ratios[len(ratios) // 2]
    info["median_ratio"] = med
    factor = 1.0
    for cand in (1.0, 100.0, 0.01):
        if abs(med / cand - 1) < 0.05:
            factor = cand
            break
    else:
        info["note"] = "median ratio not near 1, 100 or 0.01: no normalisation applied"
    info["factor"] = factor
    info["mismatch"] = factor != 1.0
    return info


# ----------------------------------------------------------------------------
# Generic deep diff


class Ctx:
    def __init__(
        self, section: Section, tol: float, factor: float = 1.0, lenient_int: bool = False
    ):
        self.s = section
        self.tol = tol
        self.factor = factor
        self.lenient_int = lenient_int


def num_equal(o: float, t: float, tol: float, factor: float = 1.0) -> bool:
    if (isinstance(o, float) and math.isnan(o)) or (isinstance(t, float) and math.isnan(t)):
        return (isinstance(o, float) and math.isnan(o)) and (isinstance(t, float) and math.isnan(t))
    return abs(o / factor - t) <= tol + 1e-12 * abs(t)


def types_compatible(o: Any, t: Any, lenient_int: bool) -> bool:
    to, tt = jtype(o), jtype(t)
    if to == tt:
        return True
    return lenient_int and {to, tt} == {"integer", "number"}


def deep(
    ctx: Ctx,
    field: str,
    o: Any,
    t: Any,
    where: Any,
    scaled: bool = False,
    schema_field: str | None = None,
    order_matters: bool = True,
    record_schema: bool = False,
) -> None:
    """Compare o (ours) vs t (theirs) under counter name `field`.

    Dicts recurse with "field.key" (key normalised to '*' when field ends with '*').
    """
    s = ctx.s
    sf = schema_field or field
    if not types_compatible(o, t, ctx.lenient_int):
        if record_schema:
            s.sch(
                sf,
                False,
                {"at": where, "field": field, "ours_type": jtype(o), "theirs_type": jtype(t)},
            )
        s.val(field, False, {"at": where, "ours": short(o), "theirs": short(t)})
        return
    if record_schema:
        s.sch(sf, True)
    if is_num(o) and is_num(t):
        f = ctx.factor if scaled else 1.0
        tol = ctx.tol if scaled else max(ctx.tol, 1e-9 * abs(t))
        ok = num_equal(o, t, tol, f)
        ex: JsonObj | None = None
        if not ok:
            ex = {"at": where, "ours": o, "theirs": t}
            if f != 1.0:
                ex["ours_normalised"] = o / f
        s.val(field, ok, ex)
        return
    if isinstance(o, dict):
        agg = field.endswith("*")  # aggregated counter: keys collapse into one field name
        for k in sorted(set(o) | set(t), key=str):
            sub = field if agg else f"{field}.{k}"
            sub_where = (
                ({**where, "key": k} if isinstance(where, dict) else {"at": where, "key": k})
                if agg
                else where
            )
            if k not in o or k not in t:
                s.sch(
                    f"{sf} (key presence)" if agg else f"{sf}.{k} (presence)",
                    False,
                    {
                        "at": where,
                        "key": k,
                        "present_in": "theirs" if k in t else "ours",
                        "value": short(t[k] if k in t else o[k]),
                    },
                )
                s.val(
                    sub,
                    False,
                    {
                        "at": sub_where,
                        "ours": short(o.get(k, "<absent>")),
                        "theirs": short(t.get(k, "<absent>")),
                    },
                )
                continue
            deep(
                ctx,
                sub,
                o[k],
                t[k],
                sub_where,
                scaled=scaled,
                schema_field=sf if agg else None,
                order_matters=order_matters,
                record_schema=True,
            )
        return
    if isinstance(o, list):
        if o == t:
            s.val(field, True)
            return
        if len(o) == len(t) and all(is_num(a) and is_num(b) for a, b in zip(o, t, strict=True)):
            f = ctx.factor if scaled else 1.0
            ok = all(num_equal(a, b, ctx.tol, f) for a, b in zip(o, t, strict=True))
            s.val(field, ok, None if ok else {"at": where, "ours": short(o), "theirs": short(t)})
            return
        so: list[str] | None
        st: list[str] | None
        try:
            so = sorted(json.dumps(x, sort_keys=True) for x in o)
            st = sorted(json.dumps(x, sort_keys=True) for x in t)
        except TypeError:
            so, st = None, None
        if so is not None and so == st:
            if order_matters:
                s.val(
                    field + " (order)", False, {"at": where, "ours": short(o), "theirs": short(t)}
                )
            else:
                s.val(field, True)
            return
        ex = {"at": where}
        if so is not None and st is not None:
            a, b = set(so), set(st)
            ex["only_ours"] = short(sorted(a - b)[:10], 300)
            ex["only_theirs"] = short(sorted(b - a)[:10], 300)
            ex["len_ours"], ex["len_theirs"] = len(o), len(t)
        else:
            ex["ours"], ex["theirs"] = short(o), short(t)
        s.val(field, False, ex)
        return
    s.val(field, o == t, None if o == t else {"at": where, "ours": short(o), "theirs": short(t)})


def schema_only(
    section: Section, prefix: str, o: JsonObj, t: JsonObj, where: Any, lenient_int: bool
) -> None:
    """Field names + JSON types of two objects (one level)."""
    for k in sorted(set(o) | set(t)):
        name = f"{prefix}{k}"
        if k not in o or k not in t:
            section.sch(
                name, False, {"at": where, "field": k, "present_in": "theirs" if k in t else "ours"}
            )
            continue
        ok = types_compatible(o[k], t[k], lenient_int)
        section.sch(
            name,
            ok,
            None
            if ok
            else {"at": where, "field": k, "ours_type": jtype(o[k]), "theirs_type": jtype(t[k])},
        )


def exp_key(exp: Any) -> str:
    if not exp:
        return ""
    return json.dumps(exp, sort_keys=True, separators=(",", ":"))


def index_rows(
    rows: list[JsonObj], keyfn: Callable[[JsonObj], Hashable], section: Section, side: str
) -> dict[Hashable, JsonObj]:
    out: dict[Hashable, JsonObj] = {}
    dups: list[Hashable] = []
    for r in rows:
        k = keyfn(r)
        if k in out:
            dups.append(k)
            continue
        out[k] = r
    if dups:
        section.duplicates[side] = [list(k) if isinstance(k, tuple) else k for k in dups]
    return out


def keyrepr(k: Any) -> Any:
    if isinstance(k, tuple):
        return {"model": k[0], "experiments": k[1] or None}
    return k


# ----------------------------------------------------------------------------
# Comparison units

ROW_SCORE_FIELDS = ("meanTask", "meanTaskType", "meanPublic", "meanPrivate")
ROW_DICT_SCORE_FIELDS = ("scoresByTask", "scoresByTaskType")


def fetch_both(o: Fetcher, t: Fetcher, path: str) -> tuple[Response, Response]:
    with ThreadPoolExecutor(max_workers=2) as ex:
        fo = ex.submit(o.get, path)
        ft = ex.submit(t.get, path)
        return fo.result(), ft.result()


def check_status(sec: Section, ro: Response, rt: Response) -> bool:
    sec.status = {"ours": ro[0], "theirs": rt[0]}
    if ro[2]:
        sec.errors.append(f"ours: {ro[0]} {ro[2]}")
    if rt[2]:
        sec.errors.append(f"theirs: {rt[0]} {rt[2]}")
    sec.val(
        "http_status", ro[0] == rt[0], None if ro[0] == rt[0] else {"ours": ro[0], "theirs": rt[0]}
    )
    return ro[1] is not None and rt[1] is not None


def collect_pairs(o: Any, t: Any, out: list[tuple[float, float]]) -> None:
    if is_num(o) and is_num(t):
        out.append((float(o), float(t)))
    elif isinstance(o, dict) and isinstance(t, dict):
        for k in set(o) & set(t):
            collect_pairs(o[k], t[k], out)


def compare_benchmark_scores(
    name: str, ours: Fetcher, theirs: Fetcher, args: argparse.Namespace
) -> Section:
    sec = Section(f"benchmark-scores {name}")
    path = f"/v1/benchmarks/{q(name)}/scores"
    ro, rt = fetch_both(ours, theirs, path)
    if not check_status(sec, ro, rt):
        return sec
    doc_o, doc_t = ro[1], rt[1]
    if not isinstance(doc_o, dict) or not isinstance(doc_t, dict):
        sec.errors.append("payload is not an object")
        return sec
    # summary-level fields
    schema_only(sec, "summary.", doc_o, doc_t, "summary", args.lenient_int)
    ctx = Ctx(sec, args.tol, 1.0, args.lenient_int)
    for k in sorted((set(doc_o) & set(doc_t)) - {"rows", "tasksMeta"}):
        deep(
            ctx,
            f"summary.{k}",
            doc_o[k],
            doc_t[k],
            "summary",
            order_matters=(k not in ("tasks", "taskTypes")),
        )
    if (
        "tasksMeta" in doc_o
        and "tasksMeta" in doc_t
        and isinstance(doc_o["tasksMeta"], list)
        and isinstance(doc_t["tasksMeta"], list)
    ):
        tmo = {m.get("name"): m for m in doc_o["tasksMeta"] if isinstance(m, dict)}
        tmt = {m.get("name"): m for m in doc_t["tasksMeta"] if isinstance(m, dict)}
        for tn in sorted(set(tmo) | set(tmt), key=str):
            if tn not in tmo or tn not in tmt:
                sec.val(
                    "summary.tasksMeta (membership)",
                    False,
                    {"task": tn, "in": "theirs" if tn in tmt else "ours"},
                )
                continue
            schema_only(
                sec, "summary.tasksMeta[].", tmo[tn], tmt[tn], {"task": tn}, args.lenient_int
            )
            for f in sorted(set(tmo[tn]) & set(tmt[tn])):
                if f in ("description", "citation", "reference") and not args.all_fields:
                    continue
                deep(ctx, f"summary.tasksMeta[].{f}", tmo[tn][f], tmt[tn][f], {"task": tn})

    rows_o = doc_o.get("rows") or []
    rows_t = doc_t.get("rows") or []
    sec.counts_ours, sec.counts_theirs = len(rows_o), len(rows_t)

    def key(r: JsonObj) -> tuple[Any, str]:
        m = r.get("model")
        mn = m.get("name") if isinstance(m, dict) else m
        return (mn, exp_key(r.get("experiments")))

    io = index_rows(rows_o, key, sec, "ours")
    it = index_rows(rows_t, key, sec, "theirs")
    common = [k for k in it if k in io]
    sec.only_in_ours = [keyrepr(k) for k in io if k not in it]
    sec.only_in_theirs = [keyrepr(k) for k in it if k not in io]
    sec.matched = len(common)

    # scale detection over score fields of matched rows
    pairs: list[tuple[float, float]] = []
    for k in common:
        a, b = io[k], it[k]
        for f in ROW_SCORE_FIELDS:
            collect_pairs(a.get(f), b.get(f), pairs)
        for f in (*ROW_DICT_SCORE_FIELDS, "scoresByCustomGroup"):
            collect_pairs(a.get(f), b.get(f), pairs)
    sc = detect_scale(pairs)
    sec.scale = sc
    factor = sc["factor"] if not args.no_normalize else 1.0
    if sc["mismatch"]:
        sec.val(
            "scale",
            False,
            {
                "ours": sc["ours_scale_guess"],
                "theirs": sc["theirs_scale_guess"],
                "median_ratio": sc["median_ratio"],
            },
        )
    elif pairs:
        sec.val("scale", True)
    ctx = Ctx(sec, args.tol, factor, args.lenient_int)

    for k in common:
        a, b = io[k], it[k]
        where = keyrepr(k)
        schema_only(sec, "row.", a, b, where, args.lenient_int)
        if isinstance(a.get("model"), dict) and isinstance(b.get("model"), dict):
            schema_only(sec, "row.model.", a["model"], b["model"], where, args.lenient_int)
        for f in sorted(set(a) & set(b)):
            if f == "model":
                continue
            if f in ROW_SCORE_FIELDS:
                deep(ctx, f, a[f], b[f], where, scaled=True)
            elif f in ROW_DICT_SCORE_FIELDS:
                if isinstance(a[f], dict) and isinstance(b[f], dict):
                    deep(ctx, f + ".*", a[f], b[f], where, scaled=True, schema_field=f + ".*")
                else:
                    deep(ctx, f, a[f], b[f], where, scaled=True)
            elif f == "scoresByCustomGroup":
                if isinstance(a[f], dict) and isinstance(b[f], dict):
                    for dim in sorted(set(a[f]) | set(b[f])):
                        if dim not in a[f] or dim not in b[f]:
                            sec.val(
                                f"{f}.{dim}",
                                False,
                                {
                                    "at": where,
                                    "missing_in": "ours" if dim not in a[f] else "theirs",
                                },
                            )
                            continue
                        deep(ctx, f"{f}.{dim}.*", a[f][dim], b[f][dim], where, scaled=True)
                else:
                    deep(ctx, f, a[f], b[f], where, scaled=True)
            elif f == "trainedOnTasks":
                deep(ctx, f, a[f], b[f], where, order_matters=False)
            else:
                deep(ctx, f, a[f], b[f], where)
        if isinstance(a.get("model"), dict) and isinstance(b.get("model"), dict):
            for f in sorted(set(a["model"]) & set(b["model"])):
                if f in ("citation",) and not args.all_fields:
                    continue
                deep(
                    ctx,
                    f"model.{f}",
                    a["model"][f],
                    b["model"][f],
                    where,
                    order_matters=f not in ("trainingDatasets", "languages", "modalities"),
                )
    return sec


LIST_VALUE_FIELDS = {
    "benchmarks": [
        "numModels",
        "languageView",
        "aggregations",
        "showZeroShot",
        "newVersion",
        "simplifiedTaskTypes",
        "displayName",
        "displayOnLeaderboard",
        "taskTypes",
        "tasks",
        "languages",
        "modalities",
        "domains",
        "customGroupings",
        "icon",
    ],
    "tasks": [
        "type",
        "simplifiedType",
        "languages",
        "domains",
        "modalities",
        "isPublic",
        "mainScore",
        "numModels",
        "license",
        "dateFrom",
        "dateTo",
        "sourceDataset",
    ],
    "models": [
        "zeroShotPct",
        "modelType",
        "instructionTuned",
        "openWeights",
        "openness",
        "opennessScore",
        "sentenceTransformersCompatible",
        "activeParamsB",
        "totalParamsB",
        "embeddingDim",
        "maxTokens",
        "releaseDate",
        "modalities",
        "languages",
        "memoryUsageMb",
        "license",
        "url",
        "adaptedFrom",
        "supersededBy",
        "trainingDatasets",
    ],
}
UNORDERED_LIST_FIELDS = {
    "languages",
    "modalities",
    "domains",
    "trainingDatasets",
    "simplifiedTaskTypes",
    "taskTypes",
}


def compare_list(
    kind: str, path: str, ours: Fetcher, theirs: Fetcher, args: argparse.Namespace
) -> tuple[Section, Any]:
    sec = Section(f"list {path}")
    ro, rt = fetch_both(ours, theirs, path)
    if not check_status(sec, ro, rt):
        return sec, rt[1]
    doc_o, doc_t = ro[1], rt[1]
    if not isinstance(doc_o, list) or not isinstance(doc_t, list):
        sec.errors.append(f"payload is not an array (ours={jtype(doc_o)}, theirs={jtype(doc_t)})")
        return sec, doc_t
    sec.counts_ours, sec.counts_theirs = len(doc_o), len(doc_t)
    io = index_rows(doc_o, lambda r: r.get("name"), sec, "ours")
    it = index_rows(doc_t, lambda r: r.get("name"), sec, "theirs")
    common = [k for k in it if k in io]
    sec.only_in_ours = [k for k in io if k not in it]
    sec.only_in_theirs = [k for k in it if k not in io]
    sec.matched = len(common)
    # order of the list (theirs' order of common names)
    order_o = [k for k in io if k in it]
    sec.val(
        "(list order)",
        order_o == common,
        None
        if order_o == common
        else {
            "first_mismatch": next(
                ((i, x, y) for i, (x, y) in enumerate(zip(order_o, common, strict=True)) if x != y),
                None,
            )
        },
    )
    ctx = Ctx(sec, args.tol, 1.0, args.lenient_int)
    fields = LIST_VALUE_FIELDS.get(kind, [])
    for k in common:
        a, b = io[k], it[k]
        schema_only(sec, "entry.", a, b, k, args.lenient_int)
        fs = (
            sorted(set(a) & set(b)) if args.all_fields else [f for f in fields if f in a and f in b]
        )
        for f in fs:
            deep(ctx, f, a[f], b[f], k, order_matters=f not in UNORDERED_LIST_FIELDS)
    return sec, doc_t


def compare_task_scores(
    name: str, ours: Fetcher, theirs: Fetcher, args: argparse.Namespace
) -> Section:
    sec = Section(f"task-scores {name}")
    ro, rt = fetch_both(ours, theirs, f"/v1/tasks/{q(name)}/scores")
    if not check_status(sec, ro, rt):
        return sec
    doc_o, doc_t = ro[1], rt[1]
    schema_only(sec, "top.", doc_o, doc_t, "top", args.lenient_int)
    ctx = Ctx(sec, args.tol, 1.0, args.lenient_int)
    for f in ("benchmarks", "subsets", "splits"):
        if f in doc_o and f in doc_t:
            deep(ctx, f"top.{f}", doc_o[f], doc_t[f], "top")
    if isinstance(doc_o.get("task"), dict) and isinstance(doc_t.get("task"), dict):
        schema_only(sec, "top.task.", doc_o["task"], doc_t["task"], "top", args.lenient_int)
        for f in LIST_VALUE_FIELDS["tasks"]:
            if f in doc_o["task"] and f in doc_t["task"]:
                deep(ctx, f"top.task.{f}", doc_o["task"][f], doc_t["task"][f], "top")
    rows_o, rows_t = doc_o.get("rows") or [], doc_t.get("rows") or []
    sec.counts_ours, sec.counts_theirs = len(rows_o), len(rows_t)
    key = lambda r: (r.get("model") or {}).get("name")  # noqa: E731
    io, it = index_rows(rows_o, key, sec, "ours"), index_rows(rows_t, key, sec, "theirs")
    common = [k for k in it if k in io]
    sec.only_in_ours = [k for k in io if k not in it]
    sec.only_in_theirs = [k for k in it if k not in io]
    sec.matched = len(common)
    pairs: list[tuple[float, float]] = []
    for k in common:
        collect_pairs(io[k].get("score"), it[k].get("score"), pairs)
        collect_pairs(io[k].get("subsetScores"), it[k].get("subsetScores"), pairs)
    sec.scale = detect_scale(pairs)
    if sec.scale["mismatch"]:
        sec.val(
            "scale",
            False,
            {"ours": sec.scale["ours_scale_guess"], "theirs": sec.scale["theirs_scale_guess"]},
        )
    ctx = Ctx(sec, args.tol, 1.0 if args.no_normalize else sec.scale["factor"], args.lenient_int)
    for k in common:
        a, b = io[k], it[k]
        schema_only(sec, "row.", a, b, k, args.lenient_int)
        if isinstance(a.get("model"), dict) and isinstance(b.get("model"), dict):
            schema_only(sec, "row.model.", a["model"], b["model"], k, args.lenient_int)
        for f in sorted(set(a) & set(b)):
            if f == "model":
                continue
            if f == "score":
                deep(ctx, f, a[f], b[f], k, scaled=True)
            elif f == "subsetScores" and isinstance(a[f], dict) and isinstance(b[f], dict):
                for sub in sorted(set(a[f]) | set(b[f])):
                    if sub not in a[f] or sub not in b[f]:
                        sec.val(
                            "subsetScores (subset presence)",
                            False,
                            {
                                "at": k,
                                "subset": sub,
                                "missing_in": "ours" if sub not in a[f] else "theirs",
                            },
                        )
                        continue
                    deep(
                        ctx,
                        "subsetScores.*.*",
                        a[f][sub],
                        b[f][sub],
                        {"model": k, "subset": sub},
                        scaled=True,
                    )
            else:
                deep(ctx, f, a[f], b[f], k)
    return sec


def compare_model_scores(
    name: str, ours: Fetcher, theirs: Fetcher, args: argparse.Namespace
) -> Section:
    sec = Section(f"model-scores {name}")
    ro, rt = fetch_both(ours, theirs, f"/v1/models/{q(name)}/scores")
    if not check_status(sec, ro, rt):
        return sec
    doc_o, doc_t = ro[1], rt[1]
    schema_only(sec, "top.", doc_o, doc_t, "top", args.lenient_int)
    ctx = Ctx(sec, args.tol, 1.0, args.lenient_int)
    if isinstance(doc_o.get("model"), dict) and isinstance(doc_t.get("model"), dict):
        schema_only(sec, "top.model.", doc_o["model"], doc_t["model"], "top", args.lenient_int)
        for f in LIST_VALUE_FIELDS["models"]:
            if f in doc_o["model"] and f in doc_t["model"]:
                deep(
                    ctx,
                    f"top.model.{f}",
                    doc_o["model"][f],
                    doc_t["model"][f],
                    "top",
                    order_matters=f not in UNORDERED_LIST_FIELDS,
                )
    rows_o, rows_t = doc_o.get("rows") or [], doc_t.get("rows") or []
    sec.counts_ours, sec.counts_theirs = len(rows_o), len(rows_t)
    key = lambda r: r.get("benchmarkName")  # noqa: E731
    io, it = index_rows(rows_o, key, sec, "ours"), index_rows(rows_t, key, sec, "theirs")
    common = [k for k in it if k in io]
    sec.only_in_ours = [k for k in io if k not in it]
    sec.only_in_theirs = [k for k in it if k not in io]
    sec.matched = len(common)
    pairs: list[tuple[float, float]] = []
    for k in common:
        for f in ("meanTask", "meanTaskType", "scoresByTaskType"):
            collect_pairs(io[k].get(f), it[k].get(f), pairs)
    sec.scale = detect_scale(pairs)
    if sec.scale["mismatch"]:
        sec.val(
            "scale",
            False,
            {"ours": sec.scale["ours_scale_guess"], "theirs": sec.scale["theirs_scale_guess"]},
        )
    ctx = Ctx(sec, args.tol, 1.0 if args.no_normalize else sec.scale["factor"], args.lenient_int)
    for k in common:
        a, b = io[k], it[k]
        schema_only(sec, "row.", a, b, k, args.lenient_int)
        for f in sorted(set(a) & set(b)):
            if f in ("meanTask", "meanTaskType"):
                deep(ctx, f, a[f], b[f], k, scaled=True)
            elif f == "scoresByTaskType" and isinstance(a[f], dict) and isinstance(b[f], dict):
                deep(ctx, f + ".*", a[f], b[f], k, scaled=True)
            else:
                deep(ctx, f, a[f], b[f], k, order_matters=f != "taskTypes")
    return sec


def compare_per_language(
    name: str, ours: Fetcher, theirs: Fetcher, args: argparse.Namespace
) -> Section:
    sec = Section(f"per-language {name}")
    ro, rt = fetch_both(ours, theirs, f"/v1/benchmarks/{q(name)}/per-language")
    if not check_status(sec, ro, rt):
        return sec
    doc_o, doc_t = ro[1], rt[1]
    schema_only(sec, "top.", doc_o, doc_t, "top", args.lenient_int)
    ctx = Ctx(sec, args.tol, 1.0, args.lenient_int)
    if "benchmarkName" in doc_o and "benchmarkName" in doc_t:
        deep(ctx, "top.benchmarkName", doc_o["benchmarkName"], doc_t["benchmarkName"], "top")
    rows_o, rows_t = doc_o.get("rows") or [], doc_t.get("rows") or []
    sec.counts_ours, sec.counts_theirs = len(rows_o), len(rows_t)
    key = lambda r: (r.get("modelName"), exp_key(r.get("experiments")))  # noqa: E731
    io, it = index_rows(rows_o, key, sec, "ours"), index_rows(rows_t, key, sec, "theirs")
    common = [k for k in it if k in io]
    sec.only_in_ours = [keyrepr(k) for k in io if k not in it]
    sec.only_in_theirs = [keyrepr(k) for k in it if k not in io]
    sec.matched = len(common)
    pairs: list[tuple[float, float]] = []
    for k in common:
        collect_pairs(io[k].get("scoresByLanguage"), it[k].get("scoresByLanguage"), pairs)
    sec.scale = detect_scale(pairs)
    if sec.scale["mismatch"]:
        sec.val(
            "scale",
            False,
            {"ours": sec.scale["ours_scale_guess"], "theirs": sec.scale["theirs_scale_guess"]},
        )
    ctx = Ctx(sec, args.tol, 1.0 if args.no_normalize else sec.scale["factor"], args.lenient_int)
    for k in common:
        a, b = io[k], it[k]
        schema_only(sec, "row.", a, b, keyrepr(k), args.lenient_int)
        for f in sorted(set(a) & set(b)):
            if f == "scoresByLanguage" and isinstance(a[f], dict) and isinstance(b[f], dict):
                deep(ctx, "scoresByLanguage.*", a[f], b[f], keyrepr(k), scaled=True)
            else:
                deep(ctx, f, a[f], b[f], keyrepr(k))
    return sec


def compare_descriptive(
    name: str, ours: Fetcher, theirs: Fetcher, args: argparse.Namespace
) -> Section:
    sec = Section(f"descriptive-statistics {name}")
    ro, rt = fetch_both(ours, theirs, f"/v1/tasks/{q(name)}/descriptive_statistics")
    if not check_status(sec, ro, rt):
        return sec
    doc_o, doc_t = ro[1], rt[1]
    sec.counts_ours = len(doc_o) if isinstance(doc_o, dict) else 0
    sec.counts_theirs = len(doc_t) if isinstance(doc_t, dict) else 0
    ctx = Ctx(sec, args.tol, 1.0, args.lenient_int)
    if isinstance(doc_o, dict) and isinstance(doc_t, dict):
        sec.only_in_ours = [k for k in doc_o if k not in doc_t]
        sec.only_in_theirs = [k for k in doc_t if k not in doc_o]
        common = [k for k in doc_t if k in doc_o]
        sec.matched = len(common)
        for k in common:
            deep(ctx, f"{k}", doc_o[k], doc_t[k], {"split": k}, record_schema=True)
    else:
        deep(ctx, "(payload)", doc_o, doc_t, "top", record_schema=True)
    return sec


# ----------------------------------------------------------------------------
# Selection helpers

PREFERRED_MODELS = [
    "intfloat/multilingual-e5-large-instruct",
    "sentence-transformers/all-MiniLM-L6-v2",
    "BAAI/bge-m3",
    "Qwen/Qwen3-Embedding-8B",
    "google/embeddinggemma-300m",
    "openai/text-embedding-3-large",
    "nomic-ai/nomic-embed-text-v1.5",
]


def pick_tasks(task_list: Any, n: int) -> list[str]:
    if not isinstance(task_list, list):
        return []
    ranked = sorted(
        (t for t in task_list if isinstance(t, dict)),
        key=lambda t: (-(t.get("numModels") or 0), t.get("name", "")),
    )
    out, seen_types = [], set()
    for t in ranked:  # one per type first (diversity), most-evaluated first
        if t.get("type") not in seen_types and (t.get("numModels") or 0) > 0:
            out.append(t["name"])
            seen_types.add(t.get("type"))
        if len(out) >= n:
            return out
    for t in ranked:
        if t["name"] not in out:
            out.append(t["name"])
        if len(out) >= n:
            break
    return out


def pick_models(model_list: Any, n: int) -> list[str]:
    names: list[Any] = [m.get("name") for m in model_list or [] if isinstance(m, dict)]
    s = set(names)
    out = [m for m in PREFERRED_MODELS if m in s][:n]
    for m in names:
        if len(out) >= n:
            break
        if m not in out:
            out.append(m)
    return out


def split_csv(s: str | None) -> list[str] | None:
    if not s:
        return None
    # names contain commas ("MTEB(eng, v2)"): split on commas not inside parentheses
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            if cur.strip():
                out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


ALL_SECTIONS = [
    "benchmarks-list",
    "benchmark-scores",
    "tasks-list",
    "models-list",
    "task-scores",
    "model-scores",
    "per-language",
    "descriptive-stats",
]


# ----------------------------------------------------------------------------
# --record: summary of the benchmark tables for benchmarks/RESULTS.md

OURS_DESC = "leaderboard-api serving the whole MTEB results repository, imported with every metric"
THEIRS_DESC = (
    "the official `mteb.api` app of mteb 2.26.24 on the same results repository, "
    "commit f4cc6c8b365a3c779dbc708d6affe0b0355b2ddf"
)
# (label, value-counter name): a counter counts when its name equals the name or
# starts with name + "." (e.g. "scoresByTask.*", "scoresByCustomGroup.<dim>.*").
KEY_FIELDS = (
    ("scoresByTask entries", "scoresByTask"),
    ("scoresByTaskType entries", "scoresByTaskType"),
    ("meanTask", "meanTask"),
    ("meanTaskType", "meanTaskType"),
    ("meanPublic", "meanPublic"),
    ("meanPrivate", "meanPrivate"),
    ("rank", "rank"),
    ("zeroShotPct", "zeroShotPct"),
    ("scoresByCustomGroup (entries and groups)", "scoresByCustomGroup"),
)
EXACT_FIELDS = ("scoresByTask", "meanTask", "rank")
MAX_LISTED_ROWS = 30


def field_count(sec: Section, name: str) -> tuple[int, int]:
    """(compared, differing) over the value counters of `name` in one section."""
    compared = differing = 0
    for f, r in sec.values.items():
        if f == name or f.startswith(name + "."):
            compared += r.compared
            differing += r.differing
    return compared, differing


def row_label(k: Any) -> str:
    if isinstance(k, dict):
        exp = k.get("experiments")
        return f"{k.get('model')}" + (f" (experiments {exp})" if exp else "")
    return str(k)


def rows_agree(sec: Section) -> bool:
    return not (
        sec.errors
        or sec.only_in_ours
        or sec.only_in_theirs
        or sec.duplicates
        or sec.counts_ours != sec.counts_theirs
    )


def record_lines(
    args: argparse.Namespace, tot: dict[str, float], bench: dict[str, Section]
) -> list[str]:
    lines = [
        f"- ours: `{args.ours}` = {args.ours_desc}",
        f"- theirs: `{args.theirs}` = {args.theirs_desc}",
        f"- settings: absolute tolerance {args.tol:g} on theirs' scale, scale normalisation "
        f"{'off' if args.no_normalize else 'on'}, lenient int/number "
        f"{'on' if args.lenient_int else 'off'}, all fields {'on' if args.all_fields else 'off'}",
        f"- overall ({tot['sections']:.0f} sections, {tot['sections_with_differences']:.0f} "
        f"with differences, {tot['errors']:.0f} errors): {tot['values_compared']:,.0f} values "
        f"compared, {tot['values_differing']:,.0f} differing; {tot['schema_checks']:,.0f} "
        f"schema checks, {tot['schema_differing']:,.0f} differing",
    ]
    if not bench:
        return [*lines, "- benchmark tables: not compared (section benchmark-scores not run)"]
    secs = list(bench.values())
    only_o = [(n, k) for n, s in bench.items() for k in s.only_in_ours]
    only_t = [(n, k) for n, s in bench.items() for k in s.only_in_theirs]
    rows_o = sum(s.counts_ours for s in secs)
    rows_t = sum(s.counts_theirs for s in secs)
    lines.append(
        f"- benchmark tables (`/v1/benchmarks/{{name}}/scores`, {len(secs)} benchmarks): rows "
        f"ours {rows_o:,}, theirs {rows_t:,}, "
        f"matched on (model, experiments) {sum(s.matched for s in secs):,}; "
        f"rows only in ours {len(only_o)}, only in theirs {len(only_t)}; "
        f"{sum(len(s.errors) for s in secs)} fetch errors, "
        f"{sum(1 for s in secs if s.duplicates)} tables with duplicate row keys; "
        f"{sum(s.totals()['values_compared'] for s in secs):,} values compared, "
        f"{sum(s.totals()['values_differing'] for s in secs):,} differing "
        f"({sum(1 for s in secs if s.has_diff())} tables with any difference)"
    )
    for side, only in (("ours", only_o), ("theirs", only_t)):
        if only:
            shown = "; ".join(f"{n}: {row_label(k)}" for n, k in only[:MAX_LISTED_ROWS])
            more = (
                f"; ... and {len(only) - MAX_LISTED_ROWS} more"
                if len(only) > MAX_LISTED_ROWS
                else ""
            )
            lines.append(f"  - rows only in {side}: {shown}{more}")
    lines += [
        "",
        "| field (all benchmark tables) | values compared | differing | tables with differences |",
        "|---|---:|---:|---:|",
    ]
    for label, name in KEY_FIELDS:
        counts = [field_count(s, name) for s in secs]
        lines.append(
            f"| {label} | {sum(c for c, _ in counts):,} | {sum(d for _, d in counts):,} | "
            f"{sum(1 for _, d in counts if d)} |"
        )
    bad = [
        (n, s)
        for n, s in bench.items()
        if not rows_agree(s) or any(field_count(s, f)[1] for f in EXACT_FIELDS)
    ]
    lines += [
        "",
        f"Benchmark tables that agree exactly on rows (same (model, experiments) set, no errors), "
        f"every scoresByTask entry, meanTask and rank: {len(secs) - len(bad)} of {len(secs)}.",
    ]
    if bad:
        lines += [
            "",
            "| benchmark | rows ours / theirs | only in ours | only in theirs "
            "| scoresByTask differing | meanTask differing | rank differing |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for n, s in bad:
            cells = [f"{d}/{c}" for c, d in (field_count(s, f) for f in EXACT_FIELDS)]
            err = f" (errors: {len(s.errors)})" if s.errors else ""
            lines.append(
                f"| {n}{err} | {s.counts_ours} / {s.counts_theirs} | {len(s.only_in_ours)} | "
                f"{len(s.only_in_theirs)} | {' | '.join(cells)} |"
            )
        lines += ["", "Differing counts are shown as differing/compared."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--ours", required=True, help="base URL of our service, e.g. http://127.0.0.1:8000"
    )
    ap.add_argument(
        "--theirs", default="http://127.0.0.1:8002", help="base URL of the official mteb.api"
    )
    ap.add_argument(
        "--benchmarks", help="comma-separated subset (parentheses-aware: 'MTEB(eng, v2),BEIR')"
    )
    ap.add_argument("--tasks", help="tasks for /tasks/{name}/scores (default: 5 auto-picked)")
    ap.add_argument("--models", help="models for /models/{name}/scores (default: 5 auto-picked)")
    ap.add_argument(
        "--per-language", dest="per_language", help="benchmarks for /per-language (default: 3 auto)"
    )
    ap.add_argument(
        "--desc-tasks", help="tasks for /descriptive_statistics (default: first 3 of --tasks)"
    )
    ap.add_argument(
        "--sections", default=",".join(ALL_SECTIONS), help="subset of: " + ",".join(ALL_SECTIONS)
    )
    ap.add_argument("--out", help="write the structured report JSON here")
    ap.add_argument(
        "--tol", type=float, default=1e-6, help="absolute tolerance for scores (theirs' scale)"
    )
    ap.add_argument(
        "--no-normalize",
        action="store_true",
        help="do not divide ours by the detected scale factor",
    )
    ap.add_argument(
        "--lenient-int",
        action="store_true",
        help="treat JSON integer vs number (1 vs 1.0) as same type",
    )
    ap.add_argument(
        "--all-fields",
        action="store_true",
        help="compare values of every field (list endpoints, texts)",
    )
    ap.add_argument("--workers", type=int, default=3, help="parallel benchmark fetches")
    ap.add_argument(
        "--timeout", type=float, default=900.0, help="per-request timeout (s); cold builds are slow"
    )
    ap.add_argument(
        "--verbose", action="store_true", help="print every field count, not only differing ones"
    )
    ap.add_argument(
        "--record",
        action="store_true",
        help="append a summary to benchmarks/RESULTS.md (run as python -m benchmarks....)",
    )
    ap.add_argument(
        "--ours-desc",
        default=OURS_DESC,
        help="what --ours is, for --record (default: %(default)s)",
    )
    ap.add_argument(
        "--theirs-desc",
        default=THEIRS_DESC,
        help="what --theirs is, for --record (default: %(default)s)",
    )
    args = ap.parse_args(argv)

    sections = set(split_csv(args.sections) or [])
    unknown = sections - set(ALL_SECTIONS)
    if unknown:
        ap.error(f"unknown sections: {sorted(unknown)}")
    ours, theirs = Fetcher(args.ours, args.timeout), Fetcher(args.theirs, args.timeout)
    t0 = time.time()
    report: dict[str, Any] = {
        "ours": args.ours,
        "theirs": args.theirs,
        "tolerance": args.tol,
        "normalize_scale": not args.no_normalize,
        "lenient_int": args.lenient_int,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    all_secs: list[Section] = []
    bench_secs: dict[str, Section] = {}

    def emit(group: str, sec: Section, key: str | None = None) -> None:
        all_secs.append(sec)
        if group == "benchmark_scores" and key is not None:
            bench_secs[key] = sec
        sec.print(verbose=args.verbose)
        sys.stdout.flush()
        if key is None:
            report[group] = sec.to_json()
        else:
            report.setdefault(group, {})[key] = sec.to_json()

    # benchmark list (always fetched from theirs: it defines the benchmark set)
    st, bl_theirs, err = theirs.get("/v1/benchmarks?include_hidden=true")
    if bl_theirs is None:
        print(
            f"FATAL: cannot fetch theirs /v1/benchmarks?include_hidden=true: {st} {err}",
            file=sys.stderr,
        )
        return 2
    if "benchmarks-list" in sections:
        sec, _ = compare_list(
            "benchmarks", "/v1/benchmarks?include_hidden=true", ours, theirs, args
        )
        emit("benchmarks_list", sec)
    bnames = split_csv(args.benchmarks) or [b["name"] for b in bl_theirs]
    report["benchmarks_selected"] = bnames

    if "benchmark-scores" in sections:
        print(f"\n== /v1/benchmarks/{{name}}/scores for {len(bnames)} benchmarks ==")
        with ThreadPoolExecutor(max_workers=max(1, args.workers)) as ex:
            for name, sec in zip(
                bnames,
                ex.map(lambda n: compare_benchmark_scores(n, ours, theirs, args), bnames),
                strict=True,
            ):
                emit("benchmark_scores", sec, name)

    task_list = None
    print("\n== list endpoints and detail routes ==")
    if "tasks-list" in sections:
        sec, task_list = compare_list("tasks", "/v1/tasks", ours, theirs, args)
        emit("tasks_list", sec)
    model_list = None
    if "models-list" in sections:
        sec, model_list = compare_list("models", "/v1/models", ours, theirs, args)
        emit("models_list", sec)

    tasks = split_csv(args.tasks)
    if tasks is None and ({"task-scores", "descriptive-stats"} & sections):
        if task_list is None:
            task_list = theirs.get("/v1/tasks")[1]
        tasks = pick_tasks(task_list, 5)
    if "task-scores" in sections:
        report["tasks_selected"] = tasks
        for tn in tasks or []:
            emit("task_scores", compare_task_scores(tn, ours, theirs, args), tn)

    if "model-scores" in sections:
        models = split_csv(args.models)
        if models is None:
            if model_list is None:
                model_list = theirs.get("/v1/models")[1]
            models = pick_models(model_list, 5)
        report["models_selected"] = models
        for mn in models:
            emit("model_scores", compare_model_scores(mn, ours, theirs, args), mn)

    if "per-language" in sections:
        pl = split_csv(args.per_language)
        if pl is None:
            cands = [b["name"] for b in bl_theirs if b.get("languageView") and b["name"] in bnames]
            if not cands:
                cands = [b["name"] for b in bl_theirs if b.get("languageView")]
            pl = cands[:3]
        report["per_language_selected"] = pl
        for bn in pl:
            emit("per_language", compare_per_language(bn, ours, theirs, args), bn)

    if "descriptive-stats" in sections:
        dt = split_csv(args.desc_tasks) or (tasks or [])[:3]
        report["descriptive_selected"] = dt
        for tn in dt:
            emit("descriptive_statistics", compare_descriptive(tn, ours, theirs, args), tn)

    tot: dict[str, float] = {
        "values_compared": 0,
        "values_differing": 0,
        "schema_checks": 0,
        "schema_differing": 0,
    }
    for s in all_secs:
        for k, v in s.totals().items():
            tot[k] += v
    errors = sum(len(s.errors) for s in all_secs)
    tot["sections"] = len(all_secs)
    tot["sections_with_differences"] = sum(1 for s in all_secs if s.has_diff())
    tot["errors"] = errors
    tot["elapsed_s"] = round(time.time() - t0, 1)
    report["total"] = tot
    print(
        f"\nTOTAL: values compared {tot['values_compared']} / "
        f"values differing {tot['values_differing']}; "
        f"schema checks {tot['schema_checks']} / differing {tot['schema_differing']}; "
        f"sections {tot['sections']} "
        f"({tot['sections_with_differences']} with differences, {errors} errors); "
        f"{tot['elapsed_s']}s"
    )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1, ensure_ascii=False, sort_keys=False)
        print(f"report written to {args.out}")
    if args.record:
        from benchmarks.record import record  # only needed with --record

        cmd_args = sys.argv[1:] if argv is None else argv
        print()
        record(
            "MTEB API comparison: leaderboard-api vs the official mteb.api (mteb 2.26.24)",
            command=shlex.join(["python", "-m", "benchmarks.compare_mteb_api", *cmd_args]),
            lines=record_lines(args, tot, bench_secs),
        )
    return 1 if (tot["values_differing"] or tot["schema_differing"] or errors) else 0


if __name__ == "__main__":
    sys.exit(main())
