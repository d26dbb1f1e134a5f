"""Parse MTEB result files into compact column lists (no per-row Python objects kept)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from leaderboard_api.dataset.importers.common import BASE_SCHEMA
from leaderboard_api.dataset.importers.mteb_catalog import MAIN_SCORE, TaskMeta

#: Legacy metric groups and the prefix their metrics carry in the current format.
METRIC_GROUPS = {
    "cos_sim": "cosine",
    "cosine": "cosine",
    "euclidean": "euclidean",
    "manhattan": "manhattan",
    "dot": "dot",
    "max": "max",
    "similarity": "similarity",
}
#: Columns of every written results file, in this order.
#: The importers' shared columns with ``variant`` after the revision, then MTEB's extras.
SCHEMA: dict[str, pl.DataType] = {
    **dict(list(BASE_SCHEMA.items())[:2]),
    "variant": pl.String(),
    **dict(list(BASE_SCHEMA.items())[2:]),
    "evaluation_time": pl.Float64(),
    "mteb_version": pl.String(),
    "dataset_revision": pl.String(),
}
_NOT_METRICS = frozenset(
    {"hf_subset", "languages", "main_score", "evaluation_time", "mteb_version"}
)
_LEGACY_META = frozenset(
    {"mteb_dataset_name", "mteb_version", "dataset_revision", "evaluation_time"}
)
# Python's json module writes bare NaN / Infinity, which orjson refuses; quoting them in value
# position lets orjson parse the file, and the quoted tokens are read back as non-finite scores.
_NONFINITE_TOKEN = re.compile(rb"(?<=[\[:,\s])(-?Infinity|NaN)(?=[\s,\]}])")
_NAN_TEXT = "NaN"
_INF_TEXT = frozenset({"Infinity", "-Infinity"})
_INF = math.inf

# Skip reasons (file level) and notes (value level) shared by the importer's modules.
UNREADABLE = "unreadable file"
INVALID_JSON = "invalid JSON"
TOO_DEEP = "JSON nested too deeply"
NOT_MTEB = "not an MTEB result file"
NAN_NOTE = "NaN scores written as null"
INF_NOTE = "infinite scores skipped"
NO_MAIN_NOTE = "entries without a main score (no main row)"
MAIN_DIFFERS_NOTE = "main_score differs from the task's main metric (main_score kept)"
EMPTY_NOTE = "result files without scores"

Entry = tuple[str, str, Any, Mapping[str, Any]]  # split, subset, languages, scores


class SkipFile(Exception):
    """A file that cannot be imported; ``reason`` is its skip reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def blob_id(raw: bytes) -> str:
    """The git blob id of ``raw`` (so a manifest can be compared with ``git ls-files -s``)."""
    digest = hashlib.sha1(b"blob %d\0" % len(raw), usedforsecurity=False)
    digest.update(raw)
    return digest.hexdigest()


def read_bytes(path: str) -> bytes:
    """The file's bytes; raises SkipFile for missing, unreadable or dangling files."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise SkipFile(UNREADABLE) from exc


def parse_json(raw: bytes) -> Any:
    """Parse JSON with orjson, accepting bare NaN/Infinity; raises SkipFile when invalid."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc):
            raise SkipFile(TOO_DEEP) from exc
    if b"Infinity" not in raw:  # the common case: NaN only, quoted by a plain replace
        try:
            return orjson.loads(raw.replace(b"NaN", b'"NaN"'))
        except orjson.JSONDecodeError:
            pass  # "NaN" inside a string: quote only the bare tokens below
    try:
        return orjson.loads(_NONFINITE_TOKEN.sub(rb'"\1"', raw))
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise SkipFile(TOO_DEEP) from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise SkipFile(INVALID_JSON) from exc


def entries(data: Mapping[str, Any]) -> tuple[str, list[Entry], float | None] | None:
    """Task name, (split, subset, languages, scores) entries and evaluation time of one file."""
    scores = data.get("scores")
    if isinstance(scores, dict) and isinstance(data.get("task_name"), str):
        found: list[Entry] = [
            (str(split), str(item.get("hf_subset", "default")), item.get("languages"), item)
            for split, items in scores.items()
            if isinstance(items, list)
            for item in items
            if isinstance(item, dict)
        ]
        return data["task_name"], found, finite(data.get("evaluation_time"))
    if not isinstance(data.get("mteb_dataset_name"), str):
        return None
    found, total = [], None
    for split, value in data.items():
        if split in _LEGACY_META or not isinstance(value, dict):
            continue
        seconds = finite(value.get("evaluation_time"))
        total = seconds if total is None else total + (seconds or 0.0)
        subsets = [
            k
            for k, v in value.items()
            if isinstance(v, dict) and k not in METRIC_GROUPS and k != "v_measures"
        ]
        if subsets:
            found.extend((split, subset, None, value[subset]) for subset in subsets)
        else:
            found.append((split, "default", None, value))
    return data["mteb_dataset_name"], found, total


def finite(value: Any) -> float | None:
    """A finite number, else ``None`` (booleans, strings, NaN and infinities included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


@dataclass(slots=True)
class FileSummary:
    """What parsing one file found: its task, rows added and value-level notes."""

    task: str
    rows: int
    notes: Counter[str] = field(default_factory=Counter)


@dataclass
class ColumnBatch:
    """Rows of one model folder as column lists at three levels: file, entry and value."""

    files: dict[str, list[Any]] = field(
        default_factory=lambda: {
            "model_name": [],
            "model_revision": [],
            "variant": [],
            "task_name": [],
            "evaluated_at": [],
            "evaluation_time": [],
            "mteb_version": [],
            "dataset_revision": [],
        }
    )
    entry_file: list[int] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    subset: list[str] = field(default_factory=list)
    languages: list[int] = field(default_factory=list)
    language_lists: dict[tuple[str, ...], int] = field(default_factory=dict)
    row_entry: list[int] = field(default_factory=list)
    metric: list[str] = field(default_factory=list)
    score: list[float | None] = field(default_factory=list)

    def add_file(
        self,
        data: Mapping[str, Any],
        *,
        model: tuple[str, str, str | None],
        tasks: Mapping[str, TaskMeta],
        main_only: bool,
    ) -> FileSummary:
        """Add the rows of one parsed file; ``model`` is (name, revision folder, variant).

        Raises
        ------
        SkipFile
            When ``data`` is not an MTEB result file.
        """
        parsed = entries(data)
        if parsed is None:
            raise SkipFile(NOT_MTEB)
        task_name, found, seconds = parsed
        summary = FileSummary(task_name, 0)
        notes = summary.notes
        notes[EMPTY_NOTE] += not found
        task = tasks.get(task_name)
        main = task.main_metric if task else MAIN_SCORE
        stamp = finite(data.get("date"))
        version, dataset_revision = data.get("mteb_version"), data.get("dataset_revision")
        file_no = len(self.files["task_name"])
        for name, value in zip(
            self.files,
            (
                *model,
                task_name,
                None if stamp is None else round(stamp * 1_000_000),
                seconds,
                version if isinstance(version, str) else None,
                dataset_revision if isinstance(dataset_revision, str) else None,
            ),
            strict=True,
        ):
            self.files[name].append(value)
        for split, subset, langs, scores in found:
            values = _metrics(scores, notes)
            if "main_score" in scores:
                _main_score(scores["main_score"], values, main=main, notes=notes)
            elif main not in values:
                notes[NO_MAIN_NOTE] += 1
            if main_only:
                values = {main: values[main]} if main in values else {}
            if isinstance(langs, list):
                languages = tuple(str(lang) for lang in langs)
            else:
                languages = tuple(task.languages_of(subset)) if task else ()
            entry_no = len(self.split)
            self.entry_file.append(file_no)
            self.split.append(split)
            self.subset.append(subset)
            self.languages.append(
                self.language_lists.setdefault(languages, len(self.language_lists))
            )
            self.row_entry.extend([entry_no] * len(values))
            self.metric.extend(values)
            self.score.extend(values.values())
            summary.rows += len(values)
        return summary

    def frame(self) -> pl.DataFrame:
        """All rows, sorted by the result key (stable: file order breaks ties).

        Columns: those of SCHEMA, ``_file`` (the file's number in the batch) and ``_k``
        (an integer whose order is the key's; equal keys have equal ``_k``). The order is
        found on the small file and entry levels, so the wide rows are gathered once.
        """
        files = pl.DataFrame(
            self.files,
            schema={
                **{k: SCHEMA[k] for k in self.files if k != "evaluated_at"},
                "evaluated_at": pl.Int64(),
            },
        ).with_columns(pl.col("evaluated_at").cast(pl.Datetime("us", "UTC")))
        # Few distinct language lists: build each once, then gather (list columns built
        # from Python lists cost a conversion per element).
        offsets: list[int] = [0]
        flat: list[str] = []
        for langs in self.language_lists:
            flat.extend(langs)
            offsets.append(len(flat))
        arrow = pa.LargeListArray.from_arrays(
            pa.array(offsets, pa.int64()), pa.array(flat, pa.large_string())
        )
        distinct = pl.Series("languages", arrow, dtype=SCHEMA["languages"])
        file_rank = dense_rank(files, ["model_name", "model_revision", "variant", "task_name"])
        ents = pl.DataFrame(
            {"_file": self.entry_file, "split": self.split, "subset": self.subset},
            schema={"_file": pl.Int64(), "split": pl.String(), "subset": pl.String()},
        ).with_columns(
            distinct.gather(pl.Series(self.languages, dtype=pl.Int64())),
            file_rank.gather(pl.Series(self.entry_file, dtype=pl.Int64())).alias("_fr"),
        )
        entry_rank = dense_rank(ents, ["_fr", "split", "subset"])
        ents = pl.concat(
            [ents.drop("_fr"), files.select(pl.all().gather(ents["_file"]))], how="horizontal"
        )
        metric = pl.Series("metric", self.metric, dtype=pl.String())
        names = metric.unique().sort()
        ranks = pl.Series(range(len(names)), dtype=pl.UInt64())
        row_entry = pl.Series(self.row_entry, dtype=pl.Int64())
        key = entry_rank.gather(row_entry) * len(names)
        if len(names):  # replace_strict on an empty mapping would keep the string type
            key += metric.replace_strict(names, ranks, return_dtype=pl.UInt64())
        perm = pl.DataFrame({"_k": key}).with_row_index("_i").sort("_k", maintain_order=True)["_i"]
        score = pl.Series("score", self.score, dtype=pl.Float64())
        out = ents.select(pl.all().gather(row_entry.gather(perm))).with_columns(
            metric.gather(perm), score.gather(perm), key.gather(perm).alias("_k")
        )
        return out.select(*SCHEMA, "_file", "_k")


def dense_rank(df: pl.DataFrame, columns: list[str]) -> pl.Series:
    """Per row, the rank of its ``columns`` values in lexical order (nulls last), from 0."""
    ordered = df.select(columns).with_row_index("_i").sort(columns, nulls_last=True)
    new = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in columns)
    ranked = ordered.select(
        "_i", (new.fill_null(True).cast(pl.UInt64()).cum_sum() - 1).alias("rank")
    )
    return ranked.sort("_i")["rank"]


def _put(out: dict[str, float | None], key: str, value: Any, notes: Counter[str]) -> None:
    kind = type(value)
    if kind is float:
        if value != value:
            out[key] = None
            notes[NAN_NOTE] += 1
        elif value == _INF or value == -_INF:
            notes[INF_NOTE] += 1
        else:
            out[key] = value
    elif kind is int:
        out[key] = float(value)
    elif kind is str:
        if value == _NAN_TEXT:
            out[key] = None
            notes[NAN_NOTE] += 1
        elif value in _INF_TEXT:
            notes[INF_NOTE] += 1


def _metrics(scores: Mapping[str, Any], notes: Counter[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in scores.items():
        kind = type(value)
        if kind is float and value - value == 0.0:  # finite: the hot path, checked first
            out[key] = value
        elif kind is dict:
            prefix = METRIC_GROUPS.get(key, key)
            for sub, inner in value.items():
                _put(out, f"{prefix}_{sub}", inner, notes)
        elif key not in _NOT_METRICS:
            _put(out, key, value, notes)
    for key in _NOT_METRICS:
        out.pop(key, None)
    return out


def _main_score(
    raw: Any, values: dict[str, float | None], *, main: str, notes: Counter[str]
) -> None:
    found: dict[str, float | None] = {}
    if raw is None:
        found["v"] = None
    else:
        _put(found, "v", raw, notes)
    if "v" not in found:
        if main not in values:
            notes[NO_MAIN_NOTE] += 1
        return
    value = found["v"]
    old = values.get(main)
    if main in values and not _same(old, value):
        notes[MAIN_DIFFERS_NOTE] += 1
    values[main] = value


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
