"""What OpenLineage emission costs, with the client's file transport configured.

Snakemake: bench_snakemake.py's 500-job workflow (its Snakefile and its `run`, imported) in three
ways, interleaved, from a clean output folder each time — no flowprov, `--logger flowprov` with
no transport, and `--logger flowprov` with OPENLINEAGE__TRANSPORT__TYPE=file. The Snakemake
process sends its events before it exits, so its wall time includes them. Target: the logger with
the transport ≤ 10 % over plain Snakemake (median of per-trial ratios).

Prefect: bench_prefect.py's flow of small chained tasks (_prefect.py) in one process with
Prefect's temporary server warm — plain, `@track()` with no transport, and `@track()` with the
file transport — at two flow sizes (200 and 600 tasks by default), with Prefect's flow-run
heartbeat off while timing (_prefect.py says why). The transport's time is counted until its last
event is written (`flowprov.openlineage` flushed). Each of these flows starts with a fresh
emitter, as a new process would: it pays the sender process's start. What the transport adds is
split into a cost per task (the slope between the sizes) and a cost per flow run. Target: ≤ 2 ms
added per task over the plain flow; the smaller flow's added time per task, its per-run costs
included, is printed beside it. A last phase keeps one emitter across flows (a long-lived worker)
and prints what the transport adds per task once that start is paid.

Each case checks its result: every job/task recorded, and START + final event per run in the file.

    python benchmarks/bench_openlineage.py [--jobs 500] [--tasks 200] [--trials 5] [--quick]
        [--only snakemake|prefect]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _prefect as bp  # noqa: E402
from _common import header, median, temp_base, verdict  # noqa: E402


def set_transport(path: Path | None) -> None:
    """Configure the client's file transport through the environment (or remove it)."""
    for k in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[k]
    if path is not None:
        os.environ["OPENLINEAGE__TRANSPORT__TYPE"] = "file"
        os.environ["OPENLINEAGE__TRANSPORT__LOG_FILE_PATH"] = str(path)
        os.environ["OPENLINEAGE__TRANSPORT__APPEND"] = "true"


def count_events(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            t = json.loads(line)["eventType"]
            out[t] = out.get(t, 0) + 1
    return out


def check_events(path: Path, runs: int, what: str) -> None:
    got = count_events(path)
    final = sum(v for k, v in got.items() if k != "START")
    if got.get("START") != runs or final != runs:
        sys.exit(f"{what}: expected {runs} START and {runs} final events in {path}, found {got}")


def bench_snakemake(base: Path, jobs: int, trials: int, cores: int) -> None:
    import bench_snakemake as bs
    import flowprov as fp
    from flowprov import instance

    header(f"bench_openlineage / Snakemake: {jobs}-job workflow, --cores {cores}, {trials} trials")
    wf = base / "wf"
    wf.mkdir()
    (wf / "Snakefile").write_text(bs.SNAKEFILE.format())
    instance.init(base / "store")
    fp.Storage(wf, description="the benchmark's workflow").save()
    events = base / "ol" / "snakemake.ndjson"
    events.parent.mkdir()
    times: dict[str, list[float]] = {"plain": [], "logger": [], "logger+ol": []}
    cases = list(times)
    for trial in range(trials):
        order = cases[trial % 3 :] + cases[: trial % 3]  # each case first in turn
        for case in order:
            set_transport(events if case == "logger+ol" else None)
            before = count_events(events).get("START", 0)
            times[case].append(bs.run(wf, jobs, cores, logger=case != "plain"))
            set_transport(None)
            if case == "logger+ol":
                check_events_added(events, before, jobs)
        print(
            f"  trial {trial + 1}/{trials}: "
            + ", ".join(f"{c} {times[c][-1]:.2f} s" for c in cases)
        )
    instance.reset_cache()
    recorded = fp.Run.filter(transform__name="work", status="completed").count()
    if recorded != 2 * jobs * trials:
        sys.exit(f"expected {2 * jobs * trials} recorded job runs, found {recorded}")
    # the jobs, rule all and the workflow run, per trial with the transport
    check_events(events, (jobs + 2) * trials, "Snakemake with the file transport")
    ratio_ol = median([a / b for a, b in zip(times["logger+ol"], times["plain"], strict=True)])
    ratio_logger = median([a / b for a, b in zip(times["logger"], times["plain"], strict=True)])
    ratio_vs_logger = median(
        [a / b for a, b in zip(times["logger+ol"], times["logger"], strict=True)]
    )
    print(f"\nwall time, median of {trials} (min–max):")
    for c in cases:
        print(f"  {c:10s} {median(times[c]):6.2f} s  ({min(times[c]):.2f}–{max(times[c]):.2f})")
    print(f"  events written: {sum(count_events(events).values())} ({jobs + 2} runs × 2 per trial)")
    print(f"  logger (no transport) / plain:     {ratio_logger:.3f}")
    print(f"  logger + file transport / logger:  {ratio_vs_logger:.3f}")
    print(f"  logger + file transport / plain:   {ratio_ol:.3f}")
    print(
        f"target: logger with the file transport ≤ 10 % over plain Snakemake (median of "
        f"per-trial ratios): {100 * (ratio_ol - 1):+.1f} %  [{verdict(ratio_ol <= 1.10)}]"
    )


def check_events_added(path: Path, before: int, jobs: int) -> None:
    after = count_events(path).get("START", 0)
    if after - before != jobs + 2:
        sys.exit(
            f"a Snakemake run with the transport wrote {after - before} START events, not {jobs + 2}"
        )


def bench_prefect(base: Path, tasks: int, trials: int) -> None:
    bp.configure(base)
    import flowprov as fp
    from flowprov import instance
    from flowprov.openlineage import emitter

    sizes = (tasks, 3 * tasks)
    header(
        f"bench_openlineage / Prefect: flows of {sizes[0]} and {sizes[1]} tasks, {trials} trials"
    )
    instance.init(base / "pstore")
    work = base / "work"
    work.mkdir()
    os.chdir(work)
    events = base / "ol" / "prefect.ndjson"
    events.parent.mkdir(exist_ok=True)
    plain, tracked = bp.flows()

    def run(case: str, n: int) -> None:
        set_transport(events if case == "tracked+ol" else None)
        # the process's emitter keeps the client it made (and its sender process): a case
        # without the transport must not reuse one; each flow starts as a new process would
        emitter.reset()
        (plain if case == "plain" else tracked)(n)
        if case == "tracked+ol":
            emitter.flush(120)  # until the last event is written
        set_transport(None)

    for case in ("plain", "tracked", "tracked+ol"):  # start the server, warm every path
        run(case, 5)
    warm = count_events(events).get("START", 0)
    cases = ["plain", "tracked", "tracked+ol"]
    times = bp.interleaved(run, cases, sizes, trials)
    emitter.reset()
    recorded = fp.Run.filter(transform__name="step", status="completed").count()
    expected = 2 * (trials * sum(sizes) + 5)
    if recorded != expected:
        sys.exit(f"expected {expected} recorded task runs, found {recorded}")
    starts = count_events(events).get("START", 0) - warm
    if starts != trials * (sum(sizes) + 2):
        sys.exit(
            f"expected {trials * (sum(sizes) + 2)} START events with the transport, found {starts}"
        )
    check_events(events, trials * (sum(sizes) + 2) + 6, "Prefect with the file transport")
    print(f"\nms per task, median of {trials}:")
    for c in cases:
        print(
            "  "
            + f"{c:11s}"
            + "".join(f"  {n} tasks {bp.per_task_ms(times, c, n):6.2f}" for n in sizes)
        )
    ol = bp.split(times, "tracked+ol", "plain", sizes)
    tr = bp.split(times, "tracked", "plain", sizes)
    only = bp.split(times, "tracked+ol", "tracked", sizes)
    for what, d in (
        ("@track() without a transport", tr),
        ("@track() with the file transport", ol),
        ("the file transport alone (over @track())", only),
    ):
        print(
            f"  {what}: {d['per_task']:+.2f} ms per task, {d['per_flow']:+.0f} ms per flow run; "
            f"the {sizes[0]}-task flow, all told: {d['at_small']:+.2f} ms/task"
        )
    print(
        "  (per flow run: recording the flow run, and with the transport starting the process"
        " that sends the events — a new process pays it once, see the last line)"
    )
    print(
        f"target: ≤ 2 ms added per task with the file transport (median of per-trial slopes): "
        f"{ol['per_task']:+.2f} ms  [{verdict(ol['per_task'] <= 2)}]; "
        f"the {sizes[0]}-task flow with its per-run costs: {ol['at_small']:+.2f} ms/task "
        f"[{verdict(ol['at_small'] <= 2)}]"
    )
    kept_emitter(tracked, tasks, trials, events)


def kept_emitter(tracked, tasks: int, trials: int, events: Path) -> None:
    """The transport's cost per task in a process that keeps its emitter and sender across flows
    (a long-lived worker): the per-process start — importing the client, starting the sender — is
    paid once, before the timed flows. Tracked flows with and without the transport interleave;
    without it, the emitter is idle (the transport is looked up at every write)."""
    from flowprov.openlineage import emitter

    set_transport(events)
    emitter.reset()
    before = count_events(events).get("START", 0)
    tracked(tasks)  # pays the process's start
    emitter.flush(120)
    times: dict[str, list[float]] = {"tracked": [], "tracked+ol": []}
    for trial in range(trials):
        for case in list(times)[:: 1 if trial % 2 == 0 else -1]:
            set_transport(events if case == "tracked+ol" else None)
            m: dict = {}
            with bp.timer(m):
                tracked(tasks)
                if case == "tracked+ol":
                    emitter.flush(120)  # until the last event is written
            times[case].append(m["wall"] / tasks * 1000)
    emitter.reset()
    set_transport(None)
    starts = count_events(events).get("START", 0) - before
    if starts != (trials + 1) * (tasks + 1):
        sys.exit(f"expected {(trials + 1) * (tasks + 1)} START events (kept emitter), got {starts}")
    added = median([a - b for a, b in zip(times["tracked+ol"], times["tracked"], strict=True)])
    print(
        f"\nkept emitter (a long-lived process), median of {trials}: tracked "
        f"{median(times['tracked']):.2f}, tracked+ol {median(times['tracked+ol']):.2f} ms/task; "
        f"the file transport adds {added:+.2f} ms/task (median of per-trial differences)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--only", choices=("snakemake", "prefect"))
    ap.add_argument("--quick", action="store_true", help="100 jobs, 50 tasks, 3 trials")
    args = ap.parse_args()
    if args.quick:
        args.jobs, args.tasks, args.trials = 100, 50, 3
    set_transport(None)
    with temp_base("openlineage") as base:
        if args.only in (None, "snakemake"):
            bench_snakemake(Path(base), args.jobs, args.trials, args.cores)
        if args.only in (None, "prefect"):
            bench_prefect(Path(base), args.tasks, args.trials)


if __name__ == "__main__":
    main()
