"""benchmarks/run_all.py's before/after table: the FIGURE lines every benchmark prints
(_common.figure), gathered over runs into medians beside the floor, the target and an earlier
table's medians."""

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import _common  # noqa: E402
import run_all  # noqa: E402


def printed(*args, **kwargs) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        _common.figure(*args, **kwargs)
    return out.getvalue()


def test_a_figure_line_reads_back_with_its_floor_and_target():
    line = printed("walk | odd", 0.8123456, "ms", floor=0.05, target=0.5)
    assert line.startswith("FIGURE | ") and line.rstrip().endswith("MISSED")
    fig = run_all.parse_figure(line.replace("walk | odd", "walk"))
    assert fig == {
        "path": "walk",
        "value": 0.812346,
        "unit": "ms",
        "floor": 0.05,
        "target": "≤ 0.5",
    }
    rate = run_all.parse_figure(printed("writers", 12000, "files/s", target=10000, at_least=True))
    assert rate["floor"] is None and rate["target"] == "≥ 10000"
    assert (
        printed("writers", 9000, "files/s", target=10000, at_least=True).rstrip().endswith("MISSED")
    )
    assert run_all.parse_figure("target: walk ≤ 0.5 ms [MISSED]") is None


def test_the_table_takes_medians_of_the_runs_and_compares_with_before():
    def fig(path, v, floor=None, target="≤ 1"):
        return {"path": path, "value": v, "unit": "ms", "floor": floor, "target": target}

    before = run_all.gather([fig("walk", v, 0.05) for v in (1.6, 1.7, 9.0)])
    now = run_all.gather([fig("walk", v, 0.05) for v in (0.8, 0.7, 0.9)] + [fig("new", 2.0)])
    table = run_all.table(now, json.loads(json.dumps(before)))  # as --save writes and reads it
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    walk = rows["walk"].split(" | ")
    assert walk[2] == "0.8 (0.7–0.9)" and walk[3] == "3"  # median of the three runs, not 9.0
    assert walk[4] == "1.7 (3 runs)" and walk[5] == "0.47"  # before's median; after/before
    assert walk[7] == "16.0" and walk[-1].startswith("ok")  # ×floor; 0.8 ≤ 1
    assert rows["new"].split(" | ")[4] == "—" and "MISSED" in rows["new"]


def test_run_all_gathers_a_real_benchmarks_figures(tmp_path):
    """End to end: bench_ls.py --quick, twice, into figures.json and the table."""
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--quick",
            "--runs",
            "2",
            "--save",
            str(tmp_path),
            "bench_ls",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    saved = json.loads((tmp_path / "figures.json").read_text())
    ls = saved["`flowprov ls artifacts`, whole process"]
    assert len(ls["values"]) == 2 and ls["unit"] == "s" and ls["target"] == "≤ 0.15"
    assert all(v > f > 0 for v, f in zip(ls["values"], ls["floors"], strict=True))
    assert "| `flowprov ls artifacts`, whole process | s |" in out.stdout


def test_appended_runs_add_to_the_saved_ones():
    def fig(v):
        return {"path": "walk", "value": v, "unit": "ms", "floor": 0.05, "target": "≤ 1"}

    saved = json.loads(json.dumps(run_all.gather([fig(1.0), fig(2.0)])))
    both = run_all.merge(saved, run_all.gather([fig(3.0)]))
    assert both["walk"]["values"] == [1.0, 2.0, 3.0] and len(both["walk"]["floors"]) == 3
    assert saved["walk"]["values"] == [1.0, 2.0]  # the earlier table is not changed
