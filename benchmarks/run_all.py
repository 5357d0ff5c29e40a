"""Run every benchmark, one after the other, and say which failed.

    python benchmarks/run_all.py                  # the defaults (about 2 minutes)
    python benchmarks/run_all.py --quick          # smaller sizes (well under a minute)
    python benchmarks/run_all.py --save benchmarks/results   # also write <name>.txt per script
    python benchmarks/run_all.py --runs 3 --save after --before before/figures.json \\
        bench_register bench_nextflow          # 3 runs each, a table beside an earlier one
    python benchmarks/run_all.py --runs 0 --save after --before before/figures.json
                                               # only the table of what was saved

Every benchmark prints its headline figures as `FIGURE | path | value | unit | floor | target |
verdict` lines (_common.figure). This script gathers them over --runs runs into one table: the
median of the runs (min–max), the machine's floor for the same work, the target; with --before
(the figures.json an earlier --save wrote, e.g. from a checkout of the previous commit) also the
earlier median and after/before. --save writes figures.json (every run's values) beside the
outputs; with --append it adds this invocation's runs to the figures.json already there, so that
runs of two checkouts can alternate (before, after, before, ...) on a machine whose load drifts.

Exits non-zero if any benchmark failed (a missed target is not a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import FIGURE  # noqa: E402

BENCHMARKS = [
    "bench_register.py",
    "bench_hash.py",
    "bench_ls.py",
    "bench_snakemake.py",
    "bench_nextflow.py",
    "bench_prefect.py",
    "bench_sink.py",
    "bench_lineage.py",
    "bench_environment.py",
    "bench_concurrency.py",
    "bench_weblog.py",
    "bench_search.py",
    "bench_serve.py",
]


def parse_figure(line: str) -> dict | None:
    """A FIGURE line as a dict, or None for any other line."""
    if not line.startswith(FIGURE + " | "):
        return None
    _, path, value, unit, floor, target, _verdict = (f.strip() for f in line.split(" | "))
    return {
        "path": path,
        "value": float(value),
        "unit": unit,
        "floor": float(floor) if floor else None,
        "target": target,
    }


def gather(figures: list[dict]) -> dict[str, dict]:
    """Every run's values of each path, in the order the paths were first printed."""
    out: dict[str, dict] = {}
    for f in figures:
        g = out.setdefault(
            f["path"], {"unit": f["unit"], "target": f["target"], "values": [], "floors": []}
        )
        g["values"].append(f["value"])
        if f["floor"] is not None:
            g["floors"].append(f["floor"])
    return out


def merge(earlier: dict[str, dict], new: dict[str, dict]) -> dict[str, dict]:
    """The runs of both (earlier first); a path's unit and target are the newer ones."""
    out = {
        p: {**g, "values": list(g["values"]), "floors": list(g["floors"])}
        for p, g in earlier.items()
    }
    for path, g in new.items():
        if path in out:
            out[path]["values"] += g["values"]
            out[path]["floors"] += g["floors"]
            out[path].update(unit=g["unit"], target=g["target"])
        else:
            out[path] = g
    return out


def meets(value: float, target: str) -> bool | None:
    if not target:
        return None
    op, bound = target.split()
    return value >= float(bound) if op == "≥" else value <= float(bound)


def ratio(value: float, floor: float | None, target: str) -> str:
    """How far from the machine's floor: ×floor for a time, % of it for a rate (≥ targets)."""
    if not floor:
        return ""
    return f"{value / floor:.1%}" if target.startswith("≥") else f"{value / floor:.1f}"


def table(now: dict[str, dict], before: dict[str, dict] | None) -> str:
    """A Markdown table: one row per path, medians over the runs."""

    def num(x: float) -> str:
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"

    head = ["path", "unit", "median (min–max)", "runs", "floor", "×floor (rate: %)", "target", ""]
    if before is not None:
        head[4:4] = ["before", "after/before"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for path, g in now.items():
        v = g["values"]
        m = statistics.median(v)
        fl = statistics.median(g["floors"]) if g["floors"] else None
        ok = meets(m, g["target"])
        cells = [
            path,
            g["unit"],
            f"{num(m)} ({num(min(v))}–{num(max(v))})",
            str(len(v)),
            num(fl) if fl is not None else "",
            ratio(m, fl, g["target"]),
            " ".join(g["target"].split()[:1] + [num(float(x)) for x in g["target"].split()[1:]]),
            "" if ok is None else ("ok" if ok else "MISSED"),
        ]
        if before is not None:
            b = before.get(path)
            bm = statistics.median(b["values"]) if b else None
            cells[4:4] = [
                f"{num(bm)} ({len(b['values'])} runs)" if b else "—",
                f"{m / bm:.2f}" if bm else "",
            ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument(
        "--runs", type=int, default=1, help="run each benchmark this many times (0: table only)"
    )
    ap.add_argument(
        "--save", metavar="DIR", help="also write each output to DIR/<name>.txt and figures.json"
    )
    ap.add_argument("--append", action="store_true", help="add to --save's figures.json")
    ap.add_argument("--before", metavar="JSON", help="an earlier --save's figures.json to compare")
    ap.add_argument("only", nargs="*", help="run only these (e.g. bench_hash)")
    a = ap.parse_args()
    names = [
        b
        for b in BENCHMARKS
        if not a.only or b.removesuffix(".py") in {o.removesuffix(".py") for o in a.only}
    ]
    if not names:
        sys.exit(f"no benchmark matches {a.only}; choose from {', '.join(BENCHMARKS)}")
    before = None
    if a.before:
        with open(a.before) as f:
            before = json.load(f)
    saved = os.path.join(a.save, "figures.json") if a.save else None
    earlier: dict[str, dict] = {}
    if saved and (a.append or a.runs == 0) and os.path.exists(saved):
        with open(saved) as f:
            earlier = json.load(f)
    if a.save:
        os.makedirs(a.save, exist_ok=True)
    summary, figures = [], []
    for run in range(a.runs):
        for name in names:
            argv = [sys.executable, os.path.join(HERE, name)] + (["--quick"] if a.quick else [])
            shown = " ".join(os.path.relpath(x) if x.endswith(".py") else x for x in argv)
            print(f"\n$ {shown}" + (f"   # run {run + 1}/{a.runs}" if a.runs > 1 else ""))
            sys.stdout.flush()
            t0 = time.perf_counter()
            missed = []
            out = None
            if a.save:
                suffix = f".{run + 1}" if a.runs > 1 else ""
                out = open(os.path.join(a.save, name.removesuffix(".py") + suffix + ".txt"), "w")
            try:
                p = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
                )
                for line in p.stdout:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    if out:
                        out.write(line)
                    fig = parse_figure(line)
                    if fig is not None:
                        figures.append(fig)
                    elif "MISSED" in line:
                        missed.append(line.strip())
                rc = p.wait()
            finally:
                if out:
                    out.close()
            summary.append((name, rc, time.perf_counter() - t0, missed))
    print("\nsummary:")
    for name, rc, dt, missed in summary:
        status = "ran ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"  {name:<20} {status:<16} {dt:6.1f} s   targets missed: {len(missed)}")
        for m in missed:
            print(f"      {m}")
    now = merge(earlier, gather(figures))
    if now:
        runs = sorted({len(g["values"]) for g in now.values()})
        print(f"\nfigures, median of {'/'.join(map(str, runs))} run(s) each:\n")
        print(table(now, before))
    if saved and a.runs > 0:
        with open(saved, "w") as f:
            json.dump(now, f, indent=1, ensure_ascii=False)
    return 0 if all(s[1] == 0 for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
