"""Overhead of `@track()` on a Prefect flow of 200 small tasks.

The same 200-task flow (each task writes a small file and returns its path; the next reads it)
runs with and without `@track()`, interleaved, in one process with Prefect's temporary server
already warm and the same settings for both. The figure is the median, over trials, of the added
milliseconds per task. Target: ≤ 2 ms per task.

Each tracked flow starts as in a fresh process (its sink made anew, and ended with it). A third
case, "writer", turns the store writer on (FLOWPROV_STORE_WRITER=on: a child process applies the
events, store_writer.py; off by default): what it buys on this machine. "machine CPU" is the whole
machine's busy time per task (every process: Prefect's temporary server runs in its own; time the
hypervisor took away is not counted), against the cores' capacity: on a machine plain Prefect
already keeps busy, any CPU added anywhere adds wall time.

    python benchmarks/bench_prefect.py [--tasks 200] [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import header, median, temp_base  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="50 tasks, 3 trials")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.trials = 50, 3
    with temp_base("prefect") as base:
        os.environ["PREFECT_HOME"] = tempfile.mkdtemp(dir=base)
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
        # Prefect's file-backed SQLite makes per-task times swing 1–17 s per flow here (see
        # ../shared/reference/engines.md); its in-memory database keeps them comparable
        os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = "sqlite+aiosqlite:///:memory:"
        import flowprov as fp
        from flowprov import instance
        from flowprov.prefect import track
        from prefect import flow, task

        header(f"bench_prefect: a {args.tasks}-task flow with and without @track()")
        instance.init(Path(base) / "store")
        work = Path(base) / "work"
        work.mkdir()
        os.chdir(work)

        @task
        def step(prev: Path, i: int) -> Path:
            out = Path(f"step_{i % 10}.txt")
            out.write_text(prev.read_text()[:50] + f"{i}\n")
            return out

        def body(n: int) -> Path:
            p = Path("seed.txt")
            p.write_text("seed\n")
            for i in range(n):
                p = step(p, i)
            return p

        from flowprov_prefect import recorder

        plain = flow(name="plain")(body)
        tracked = track()(flow(name="tracked")(body))
        plain(5)  # start Prefect's temporary server and warm both paths
        tracked(5)
        recorder.close()

        def run(case: str) -> tuple[float, float]:
            """(wall ms, machine CPU ms) per task of one flow, as a fresh process would run it."""
            os.environ["FLOWPROV_STORE_WRITER"] = "on" if case == "writer" else "off"
            cpu0, t0 = machine_cpu(), time.perf_counter()
            (plain if case == "plain" else tracked)(args.tasks)
            recorder.close()  # what the process's exit would wait for
            wall, cpu = time.perf_counter() - t0, machine_cpu() - cpu0
            return wall / args.tasks * 1000, cpu / args.tasks * 1000

        cases = ["plain", "tracked", "writer"]
        wall: dict[str, list[float]] = {c: [] for c in cases}
        cpu: dict[str, list[float]] = {c: [] for c in cases}
        for trial in range(args.trials):
            for case in cases[trial % 3 :] + cases[: trial % 3]:
                w, c = run(case)
                wall[case].append(w)
                cpu[case].append(c)
            print(
                f"  trial {trial + 1}/{args.trials}: "
                + ", ".join(f"{c} {wall[c][-1]:.2f}" for c in cases)
                + " ms/task"
            )
        os.environ.pop("FLOWPROV_STORE_WRITER", None)
        recorded = fp.Run.filter(transform__name="step", status="completed").count()
        expected = 2 * args.trials * args.tasks + 5
        if recorded != expected:
            sys.exit(f"expected {expected} recorded task runs, found {recorded}")
        cores = os.cpu_count() or 1
        print(
            f"\nms per task, median of {args.trials} (machine CPU: all processes, {cores} cores):"
        )
        for c in cases:
            print(
                f"  {c:8s} wall {median(wall[c]):6.2f}  machine CPU {median(cpu[c]):6.2f}"
                f"  (busy {median(cpu[c]) / median(wall[c]) / cores:.0%} of the cores)"
            )

        def added(case: str, what: dict) -> float:
            return median([t - p for t, p in zip(what[case], what["plain"], strict=True)])

        print(f"  recorded {recorded} task runs with their input and output files")
        print(f"  machine CPU added per task by @track(): {added('tracked', cpu):+.2f} ms")
        print(f"  with the store writer on: {added('writer', wall):+.2f} ms/task wall")
        print(
            f"target: ≤ 2 ms added per task (median of per-trial differences): "
            f"{added('tracked', wall):+.2f} ms  [{'ok' if added('tracked', wall) <= 2 else 'MISSED'}]"
        )


def machine_cpu() -> float:
    """Seconds of CPU the whole machine has been busy (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    busy = sum(ticks[:3]) + sum(ticks[5:7])  # user, nice, system, irq, softirq (not steal)
    return busy / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
