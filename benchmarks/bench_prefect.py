"""Overhead of `@track()` on a Prefect flow of small tasks.

The same flow (each task writes a small file and returns its path; the next reads it) runs with
and without `@track()`, interleaved, in one process with Prefect's temporary server already warm
and the same settings for both, at two sizes (200 and 600 tasks by default). What `@track()` adds
is split into a cost per task (the slope between the two sizes) and a cost per flow run (the
rest): see _prefect.py, which also explains why Prefect's flow-run heartbeat is off while timing.
Target (issue 18): ≤ 0.5 ms per task, median of per-trial figures; the 200-task flow's whole added
time per task is printed beside it.

Each tracked flow starts as in a fresh process (its sink made anew, and ended with it). A third
case, "writer", turns the store writer on (FLOWPROV_STORE_WRITER=on: a child process applies the
events, store_writer.py; off by default): what it buys on this machine. "machine CPU" is the whole
machine's busy time (every process: Prefect's temporary server runs in its own; time the
hypervisor took away is not counted): on a machine plain Prefect already keeps busy, any CPU
added anywhere adds wall time.

    python benchmarks/bench_prefect.py [--tasks 200] [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _prefect as bp  # noqa: E402
from _common import figure, header, temp_base, verdict  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=200, help="the smaller flow; the other is 3×")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="50 tasks, 3 trials")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.trials = 50, 3
    sizes = (args.tasks, 3 * args.tasks)
    with temp_base("prefect") as base:
        bp.configure(base)
        import flowprov as fp
        from flowprov import instance
        from flowprov_prefect import recorder

        header(f"bench_prefect: flows of {sizes[0]} and {sizes[1]} tasks with and without @track()")
        instance.init(Path(base) / "store")
        work = Path(base) / "work"
        work.mkdir()
        os.chdir(work)
        plain, tracked = bp.flows()
        plain(5)  # start Prefect's temporary server and warm both paths
        tracked(5)
        recorder.close()

        def run(case: str, n: int) -> None:
            """One flow of n tasks, as a fresh process would run it."""
            os.environ["FLOWPROV_STORE_WRITER"] = "on" if case == "writer" else "off"
            (plain if case == "plain" else tracked)(n)
            recorder.close()  # what the process's exit would wait for

        cases = ["plain", "tracked", "writer"]
        times = bp.interleaved(run, cases, sizes, args.trials)
        os.environ.pop("FLOWPROV_STORE_WRITER", None)
        recorded = fp.Run.filter(transform__name="step", status="completed").count()
        expected = 2 * args.trials * sum(sizes) + 5
        if recorded != expected:
            sys.exit(f"expected {expected} recorded task runs, found {recorded}")
        cores = os.cpu_count() or 1
        print(
            f"\nms per task, median of {args.trials} (machine CPU: all processes, {cores} cores):"
        )
        for c in cases:
            for n in sizes:
                w, cpu = bp.per_task_ms(times, c, n), bp.per_task_ms(times, c, n, what=1)
                print(
                    f"  {c:8s} {n:4d} tasks: wall {w:6.2f}  machine CPU {cpu:6.2f}"
                    f"  (busy {cpu / w / cores:.0%} of the cores)"
                )
        print(f"  recorded {recorded} task runs with their input and output files")
        for case in ("tracked", "writer"):
            wall, cpu = (
                bp.split(times, case, "plain", sizes),
                bp.split(times, case, "plain", sizes, 1),
            )
            print(
                f"  {case}: adds {wall['per_task']:+.2f} ms per task (machine CPU "
                f"{cpu['per_task']:+.2f}) and {wall['per_flow']:+.1f} ms per flow run "
                f"(CPU {cpu['per_flow']:+.1f}); the {sizes[0]}-task flow, all told: "
                f"{wall['at_small']:+.2f} ms/task"
            )
        got = bp.split(times, "tracked", "plain", sizes)["per_task"]
        print(
            f"target: @track() ≤ 0.5 ms added per task (median of per-trial slopes): "
            f"{got:+.2f} ms  [{verdict(got <= 0.5)}]"
        )
        figure("Prefect @track(), added per task", got, "ms", target=0.5)


if __name__ == "__main__":
    main()
