"""`make test` runs every bench in its quick form: it must finish and report one RESULT line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
RESULT_LINE = re.compile(
    r"^RESULT (?P<name>\w+)(?: \w+=\S+)* ratio=(?P<ratio>[0-9.]+) target=\S+ "
    r"(?P<verdict>PASS|FAIL)$"
)


@pytest.mark.parametrize(
    "bench", sorted(p.name for p in BENCH_DIR.glob("bench_*.py")), ids=lambda name: name[:-3]
)
def test_bench_quick_form_passes(bench: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH_DIR / bench), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=BENCH_DIR.parent,
    )
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    match = RESULT_LINE.match(last_line)
    assert match is not None, last_line
    assert match["verdict"] == "PASS", last_line
