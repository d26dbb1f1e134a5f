"""Whatever an importer writes, ``validate`` accepts; what it cannot import, it refuses cleanly.

Every importer runs over the shared real data and over deliberately broken raw inputs. Each
case ends one of two ways: the import raises ``DatasetError`` (``leaderboard-api import``
exits 1 with one line, no traceback), or it writes a dataset that ``leaderboard-api
validate`` accepts. Writing a dataset that ``validate`` then refuses, or crashing, fails.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from leaderboard_api import cli
from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.importers.common import ImportReport
from leaderboard_api.dataset.importers.llmperf import import_llmperf
from leaderboard_api.dataset.importers.mteb import import_mteb
from leaderboard_api.dataset.importers.openllm import import_openllm
from tests.api_support import SHARED

OPENLLM = SHARED / "openllm"
LLMPERF = SHARED / "llmperf"
MTEB = SHARED / "mteb"
MTEB_MODELS = ("BAAI__bge-base-zh", "BAAI__bge-m3")
#: Nested deeper than any JSON parser's recursion limit.
DEEP = b"[" * 100_000 + b"]" * 100_000

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not available")


@dataclass(frozen=True)
class Case:
    """One raw input: ``make(tmp)`` writes it and returns the import to run on it."""

    id: str
    make: Callable[[Path], Callable[[Path], ImportReport]]
    #: True when the right answer is a refusal (DatasetError), not a dataset.
    refused: bool = False


def _openllm_lines(tmp: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    lines = (OPENLLM / "open-llm-leaderboard_new.csv").read_text(encoding="utf-8").splitlines()
    path = tmp / "table.csv"
    path.write_text("\n".join(edit(lines[:30])) + "\n", encoding="utf-8")
    return path


def _with_score(lines: list[str], column: str, value: str) -> list[str]:
    header = lines[0].split(",")
    index = header.index(column)
    # Only rows without quoted commas, so splitting on commas finds the column.
    rows = [line for line in lines[1:] if '"' not in line][:5]
    edited = []
    for n, line in enumerate(rows):
        fields = line.split(",")
        fields[index] = value if n % 2 == 0 else "-" + value
        edited.append(",".join(fields))
    return [lines[0], *edited]


def openllm(make_csv: Callable[[Path], Path]) -> Callable[[Path], Callable[[Path], ImportReport]]:
    def make(tmp: Path) -> Callable[[Path], ImportReport]:
        path = make_csv(tmp)
        return lambda out: import_openllm(path, out=out)

    return make


def llmperf(make_dir: Callable[[Path], Path]) -> Callable[[Path], Callable[[Path], ImportReport]]:
    def make(tmp: Path) -> Callable[[Path], ImportReport]:
        path = make_dir(tmp)
        return lambda out: import_llmperf(path, out=out)

    return make


def mteb(make_dir: Callable[[Path], Path]) -> Callable[[Path], Callable[[Path], ImportReport]]:
    def make(tmp: Path) -> Callable[[Path], ImportReport]:
        path = make_dir(tmp)
        return lambda out: import_mteb(path, out=out, catalog=MTEB / "catalog", jobs=1)

    return make


def _llmperf_copy(tmp: Path, n: int = 3) -> Path:
    summary = tmp / "llmperf" / "summary"
    summary.mkdir(parents=True)
    for path in sorted((LLMPERF / "summary").glob("*.json"))[:n]:
        shutil.copy(path, summary / path.name)
    return summary


def _llmperf_infinite(tmp: Path) -> Path:
    summary = _llmperf_copy(tmp)
    first = sorted(summary.glob("*.json"))[0]
    data = json.loads(first.read_text())
    for key in list(data)[:40]:
        if isinstance(data[key], float):
            data[key] = float("inf")
    first.write_text(json.dumps(data))  # json writes bare Infinity, as Python tools do
    return summary


def _llmperf_deep(tmp: Path) -> Path:
    summary = _llmperf_copy(tmp)
    (summary / "deep.json").write_bytes(DEEP)
    return summary


def _llmperf_dangling(tmp: Path) -> Path:
    summary = _llmperf_copy(tmp)
    (summary / "gone.json").symlink_to(tmp / "nowhere.json")
    return summary


def _mteb_copy(tmp: Path) -> Path:
    root = tmp / "mteb" / "results"
    for model in MTEB_MODELS:
        shutil.copytree(MTEB / "results-sample" / "results" / model, root / model)
    return tmp / "mteb"


def _mteb_files(tmp: Path) -> list[Path]:
    return sorted(
        p for p in (tmp / "mteb" / "results").rglob("*.json") if p.name != "model_meta.json"
    )


def _mteb_infinite(tmp: Path) -> Path:
    source = _mteb_copy(tmp)
    path = _mteb_files(tmp)[0]
    path.write_text(path.read_text().replace('"main_score": ', '"main_score": Infinity, "x": '))
    return source


def _mteb_deep(tmp: Path) -> Path:
    source = _mteb_copy(tmp)
    _mteb_files(tmp)[0].write_bytes(DEEP)
    return source


def _mteb_dangling(tmp: Path) -> Path:
    source = _mteb_copy(tmp)
    folder = _mteb_files(tmp)[0].parent
    (folder / "Gone.json").symlink_to(tmp / "nowhere.json")
    return source


CASES = [
    Case("openllm-v2-shared", openllm(lambda _: OPENLLM / "open-llm-leaderboard_new.csv")),
    Case("openllm-v1-shared", openllm(lambda _: OPENLLM / "open-llm-leaderboard_old.csv")),
    Case(
        "openllm-infinite-scores",
        openllm(lambda t: _openllm_lines(t, lambda ls: _with_score(ls, "IFEval", "inf"))),
    ),
    Case(
        "openllm-infinite-raw-scores",
        openllm(lambda t: _openllm_lines(t, lambda ls: _with_score(ls, "BBH Raw", "Infinity"))),
    ),
    Case("openllm-repeated-rows", openllm(lambda t: _openllm_lines(t, lambda ls: ls + ls[1:]))),
    Case(
        "openllm-header-only", openllm(lambda t: _openllm_lines(t, lambda ls: ls[:1])), refused=True
    ),
    Case(
        "openllm-truncated-last-line",
        openllm(lambda t: _openllm_lines(t, lambda ls: [*ls[:-1], ls[-1][: len(ls[-1]) // 3]])),
        refused=True,
    ),
    Case("llmperf-shared", llmperf(lambda _: LLMPERF)),
    Case("llmperf-infinite", llmperf(_llmperf_infinite)),
    Case("llmperf-deeply-nested", llmperf(_llmperf_deep)),
    Case("llmperf-dangling-symlink", llmperf(_llmperf_dangling)),
    Case("mteb-shared", mteb(lambda _: MTEB / "results-sample")),
    Case("mteb-infinite", mteb(_mteb_infinite)),
    Case("mteb-deeply-nested", mteb(_mteb_deep)),
    Case("mteb-dangling-symlink", mteb(_mteb_dangling)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_importer_output_validates_or_import_refuses(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = case.make(tmp_path)
    out = tmp_path / "out"
    if case.refused:
        with pytest.raises(DatasetError) as refused:
            run(out)
        assert str(refused.value).strip()
        return
    report = run(out)
    assert report.written, report.render()
    assert any((out / "results").glob("*.parquet")), "no results written"
    capsys.readouterr()
    code = cli.main(["validate", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.startswith("ok:"), printed.out
    assert " 0 rows kept" not in printed.out, printed.out


def test_refusals_are_one_line_errors_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _openllm_lines(tmp_path, lambda ls: [*ls[:-1], ls[-1][:20]])
    code = cli.main(["import", "openllm", str(table), "--out", str(tmp_path / "a"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ")
    assert "fields" in err
    assert "Traceback" not in err
    header = _openllm_lines(tmp_path, lambda ls: ls[:1])
    code = cli.main(["import", "openllm", str(header), "--out", str(tmp_path / "b"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no rows" in err


def test_repeated_openllm_rows_are_counted_and_kept_once(tmp_path: Path) -> None:
    table = _openllm_lines(tmp_path, lambda ls: ls + ls[1:4])
    report = import_openllm(table, out=tmp_path / "out")
    names = [
        json.loads(line)["name"]
        for line in (tmp_path / "out" / "models.jsonl").read_text().splitlines()
    ]
    assert len(names) == len(set(names)) == 29
    assert report.skipped["repeated model and precision (first row kept)"] == 3


def test_infinite_scores_become_null_and_are_counted(tmp_path: Path) -> None:
    table = _openllm_lines(tmp_path, lambda ls: _with_score(ls, "IFEval", "inf"))
    report = import_openllm(table, out=tmp_path / "out")
    assert report.notes["infinite scores written as null"] == 5
    perf = import_llmperf(_llmperf_infinite(tmp_path), out=tmp_path / "perf")
    assert perf.notes["infinite figures written as null"] > 0
    deep = import_llmperf(_llmperf_deep(tmp_path / "deep"), out=tmp_path / "deep-out")
    assert deep.skipped["invalid JSON"] == 1
