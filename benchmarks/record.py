"""Append a dated, machine-stamped section to benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def record(title: str, *, command: str, lines: list[str]) -> None:
    """Print ``lines`` and append them under a heading with date, machine and command."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = [
        f"## {title}",
        "",
        f"- date: {stamp}",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        "",
        *lines,
        "",
    ]
    text = "\n".join(block)
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nNewest sections last; every figure below was measured "
            "by the script named in its command.\n\n"
        )
    with RESULTS.open("a") as fh:
        fh.write(text + "\n")


def command_line() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])
