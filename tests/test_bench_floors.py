"""The benchmarks' floors on flowprov's own schema: the SQL the store issues, replayed by the
stdlib sqlite3 on a copy of the instance a benchmark just filled (bench_register.py) or on the
schema and rows of an ingest (bench_nextflow.py). Each must sit between the machine's raw floor
(a bare table) and flowprov's own figure (the same SQL plus flowprov's Python)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import run_all  # noqa: E402


def figures(*argv: str) -> dict[str, dict]:
    out = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=900, cwd=BENCH
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    found = [run_all.parse_figure(line) for line in out.stdout.splitlines()]
    return {f["path"]: f for f in found if f is not None}


@pytest.mark.parametrize(
    ("argv", "whole", "alone", "unit"),
    [
        (
            ("bench_register.py", "--files", "150", "--trials", "1"),
            "register 1 KB in place, one by one",
            "register 1 KB in place, one by one: its SQL alone on flowprov's schema",
            "ms/file",
        ),
        (
            ("bench_nextflow.py", "--tasks", "3000", "--trials", "1"),
            "100,000-task trace ingest (scaled)",
            "100,000-task trace ingest: its SQL alone on flowprov's schema (scaled)",
            "s",
        ),
    ],
    ids=["register", "ingest"],
)
def test_a_hot_path_prints_its_sql_alone_on_flowprovs_schema(argv, whole, alone, unit):
    got = figures(*argv)
    whole, schema = got[whole], got[alone]
    assert schema["unit"] == whole["unit"] == unit and not schema["target"]
    # the bare table's insert is the floor beside it; flowprov does the same SQL and more
    assert 0 < schema["floor"] < schema["value"] < whole["value"]
