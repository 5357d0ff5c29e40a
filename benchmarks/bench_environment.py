"""What recording a run's software costs: the Python environment, read once per interpreter.

    python benchmarks/bench_environment.py            # 7 trials, 200 runs each
    python benchmarks/bench_environment.py --quick    # 5 trials, 50 runs each

Figures (medians over trials):

- first capture in a process, nothing cached: importlib.metadata over every installed
  distribution (+ conda-meta), written to the disk cache; the floor beside it is a bare
  `importlib.metadata.distributions()` pass reading each name and version;
- first capture in a new process with the disk cache (a fresh subprocess each trial);
- capture per run after the first in a process (target ≤ 5 ms);
- `Run(...).save()` + `finish()` per run with the environment recorded, beside the same with the
  environment switched off — the difference is what a run pays for it; and the floor, one raw
  SQLite insert in its own transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

from _common import check, header, median, temp_base, verdict

TARGET_MS = 5.0


def _floor_distributions() -> float:
    from importlib.metadata import distributions

    t = time.perf_counter()
    n = sum(1 for d in distributions() if d.metadata["Name"] and d.version)
    check(n > 0, "no distributions installed?")
    return time.perf_counter() - t


def _first_capture() -> tuple[float, int]:
    from flowprov import environments as E

    E._python_env = None
    for f in (E._cache_file(E._fingerprint()),):
        if f.exists():
            f.unlink()
    t = time.perf_counter()
    env = E.python_environment()
    return time.perf_counter() - t, len(env.packages)


def _cached_process_capture() -> float:
    code = (
        "import time, json; t0 = time.perf_counter();"
        "from flowprov.environments import python_environment as p; t = time.perf_counter();"
        "p(); print(json.dumps(time.perf_counter() - t))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _per_run_capture(n: int) -> float:
    from flowprov.context import environment

    environment()
    t = time.perf_counter()
    for _ in range(n):
        environment()
    return (time.perf_counter() - t) / n


def _runs(fp, t, n: int, with_env: bool) -> float:
    from flowprov import context

    original = context.environment
    if not with_env:
        context.environment = lambda: None
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fp.Run(transform=t).save().finish()
        return (time.perf_counter() - t0) / n
    finally:
        context.environment = original


def _raw_insert(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        con = sqlite3.connect(os.path.join(d, "raw.sqlite"), isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, uid TEXT UNIQUE, environment_id INT)"
        )
        t = time.perf_counter()
        for i in range(n):
            con.execute("BEGIN")
            con.execute("INSERT INTO runs (uid, environment_id) VALUES (?, 1)", (f"r{i}",))
            con.execute("COMMIT")
        dt = (time.perf_counter() - t) / n
        con.close()
        return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--trials", type=int)
    ap.add_argument("--runs", type=int)
    a = ap.parse_args()
    trials = a.trials or (5 if a.quick else 7)
    n = a.runs or (50 if a.quick else 200)
    with temp_base("env") as base:
        import flowprov as fp
        from flowprov import instance

        header("bench_environment: recording a run's software", f"{trials} trials, {n} runs each")
        inst, created = instance.init(os.path.join(base, "store"), name="bench-env")
        check(created, "the benchmark instance was not freshly created")
        first, floor, cached, per_run, with_env, without, raw = [], [], [], [], [], [], []
        npk = 0
        t = fp.Transform(name="bench-env", type="script").save()
        for _ in range(trials):
            floor.append(_floor_distributions())
            dt, npk = _first_capture()
            first.append(dt)
            cached.append(_cached_process_capture())
            per_run.append(_per_run_capture(n))
            with_env.append(_runs(fp, t, n, True))
            without.append(_runs(fp, t, n, False))
            raw.append(_raw_insert(n))
        env_runs = fp.Run.filter(environment__isnull=False)
        check(env_runs.count() == trials * n, "runs with the environment on lack it")
        check(fp.Environment.filter().count() == 1, "one interpreter made several records")
        ms = lambda xs: median(xs) * 1000  # noqa: E731
        print(f"installed distributions: {npk}")
        print(
            f"first capture, nothing cached:        {ms(first):8.1f} ms  "
            f"(floor: importlib.metadata pass {ms(floor):.1f} ms; ratio {median(first) / median(floor):.2f})"
        )
        print(f"first capture in a new process, disk cache: {ms(cached):6.2f} ms")
        print(
            f"capture per run after the first:     {ms(per_run):8.3f} ms  "
            f"(target ≤ {TARGET_MS} ms: {verdict(ms(per_run) <= TARGET_MS)})"
        )
        extra = median(with_env) - median(without)
        print(
            f"Run save+finish with environment:     {ms(with_env):8.3f} ms; without "
            f"{ms(without):.3f} ms; difference {extra * 1000:+.3f} ms per run "
            f"(target ≤ {TARGET_MS} ms: {verdict(extra * 1000 <= TARGET_MS)})"
        )
        print(
            f"floor: raw SQLite insert, own transaction: {ms(raw):.3f} ms "
            f"(a run costs {median(with_env) / median(raw):.1f}× it)"
        )


if __name__ == "__main__":
    main()
