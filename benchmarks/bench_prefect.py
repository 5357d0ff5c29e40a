"""Overhead of `@track()` on a Prefect flow of 200 small tasks.

The same 200-task flow (each task writes a small file and returns its path; the next reads it)
runs with and without `@track()`, interleaved, in one process with Prefect's temporary server
already warm and the same settings for both. The figure is the median, over trials, of the added
milliseconds per task. Target: ≤ 2 ms per task.

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

        plain = flow(name="plain")(body)
        tracked = track()(flow(name="tracked")(body))
        plain(5)  # start Prefect's temporary server and warm both paths
        tracked(5)
        t_plain, t_tracked = [], []
        for trial in range(args.trials):
            for _name, fl, sink in (("plain", plain, t_plain), ("tracked", tracked, t_tracked))[
                :: 1 if trial % 2 == 0 else -1
            ]:
                t0 = time.perf_counter()
                fl(args.tasks)
                sink.append((time.perf_counter() - t0) / args.tasks * 1000)
            print(
                f"  trial {trial + 1}/{args.trials}: {t_plain[-1]:.2f} ms/task plain, {t_tracked[-1]:.2f} ms/task tracked"
            )
        recorded = fp.Run.filter(transform__name="step", status="completed").count()
        expected = (args.trials * args.tasks) + 5
        if recorded != expected:
            sys.exit(f"expected {expected} recorded task runs, found {recorded}")
        added = median([t - p for t, p in zip(t_tracked, t_plain, strict=True)])
        print(
            f"\nms per task, median of {args.trials}: plain {median(t_plain):.2f}, tracked {median(t_tracked):.2f}"
        )
        print(f"  recorded {recorded} task runs with their input and output files")
        print(
            f"target: ≤ 2 ms added per task (median of per-trial differences): {added:+.2f} ms  "
            f"[{'ok' if added <= 2 else 'MISSED'}]"
        )


if __name__ == "__main__":
    main()
