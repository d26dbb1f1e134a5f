"""Export mteb's per-task descriptive statistics into a catalog folder (descriptive_stats/)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _default_src() -> Path | None:
    spec = importlib.util.find_spec("mteb")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by ``None`` (JSON null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def export(src: Path, out: Path) -> tuple[int, list[tuple[str, str]]]:
    """Write ``out/descriptive_stats/<Task>.json`` for every task file under ``src``.

    Parameters
    ----------
    src
        The ``mteb`` package folder (holding ``descriptive_stats/<TaskType>/<Task>.json``).
    out
        The catalog folder to write into.

    Returns
    -------
    tuple
        Files written, and (file, reason) of the files skipped.
    """
    stats = src / "descriptive_stats"
    if not stats.is_dir():
        msg = f"{stats}: no descriptive_stats folder (is this the mteb package folder?)"
        raise SystemExit(msg)
    dst = out / "descriptive_stats"
    dst.mkdir(parents=True, exist_ok=True)
    written, skipped, seen = 0, [], set()
    for path in sorted(stats.rglob("*.json")):
        rel = path.relative_to(stats).as_posix()
        name = path.stem
        if name.startswith(".") or name in seen:
            skipped.append((rel, "duplicate task name" if name in seen else "hidden file"))
            continue
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError) as exc:
            skipped.append((rel, f"unreadable ({type(exc).__name__})"))
            continue
        text = json.dumps(_finite(data), sort_keys=True, ensure_ascii=False, allow_nan=False)
        (dst / f"{name}.json").write_text(text + "\n", encoding="utf-8")
        seen.add(name)
        written += 1
    return written, skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mteb-src", type=Path, help="the mteb package folder (default: mteb's)")
    parser.add_argument("--out", type=Path, required=True, help="catalog folder to write into")
    args = parser.parse_args(argv)
    src = args.mteb_src or _default_src()
    if src is None:
        print("error: mteb is not importable; pass --mteb-src", file=sys.stderr)
        return 2
    written, skipped = export(src, args.out)
    print(f"wrote {written} file(s) to {args.out / 'descriptive_stats'}")
    for rel, reason in skipped:
        print(f"skipped {rel}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
