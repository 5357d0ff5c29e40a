"""What a Prefect-like task's events cost the engine's process: applied in it, or by a store writer.

Each "task" sends what the Prefect plugin sends for `step(prev) -> out` (bench_prefect.py's task):
its RunStarted, then, at its end, its input (the previous task's output: a place and bytes the
store knows) and its use, its output (a new version of one of 10 places) and its RunFinished —
built beforehand, so only the sink's work is timed: the journal line, and applying to the store
(in this process, or handing the line to the writer process). No engine runs beside it, so a
core is free for the writer: what it buys where the machine is not already busy (compare
bench_prefect.py, where Prefect's temporary server keeps one of 2 cores busy).

Figures per task, median of trials: "engine" is the time spent in `send` (what the engine waits
for), "total" adds the final flush (everything in the store). The floor: the same rows written
with the stdlib sqlite3 (4 inserts and 3 updates per task, a transaction per 25 tasks).

    python benchmarks/bench_sink.py [--tasks 2000] [--trials 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import check, header, median, temp_base  # noqa: E402


def build_tasks(work: Path, n: int, flow_uid: str, roots) -> list[tuple[list, list]]:
    """(events at the task's start, events at its end) for n chained tasks, as the plugin makes
    them (real files hashed in full)."""
    from flowprov.artifacts import in_place_event, input_events
    from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec
    from flowprov.uids import RUN_UID, random_uid

    flow = TransformSpec(name="bench-flow", type="flow", key="prefect:bench.flow")
    spec = TransformSpec(
        name="step",
        type="task",
        key="prefect:bench.step",
        source_code="def step(prev, i):\n    ...\n",
        parent=flow,
    )
    prev = work / "seed.txt"
    prev.write_text("seed\n")
    out = []
    for i in range(n):
        uid = random_uid(RUN_UID)
        run = RunRef(uid=uid)
        started = RunStarted(
            uid=uid,
            transform=spec,
            parent=RunRef(uid=flow_uid),
            engine="prefect",
            reference=f"{flow_uid}-{i}",
            reference_type="prefect task run",
            name=f"step-{i}",
            params={"parameters": {"prev": str(prev), "i": i}},
            created_by="bench",
        )
        used = input_events(str(prev), run=run, roots=roots, created_by="bench")
        path = work / f"step_{i % 10}.txt"
        path.write_text(f"{flow_uid} {i}\n")
        made = in_place_event(str(path), roots=roots, run=run, created_by="bench")
        done = RunFinished(run=run, status="completed", created_by="bench")
        out.append(([started], [*used, made, done]))
        prev = path
    return out


def one_flow(work: Path, n: int, writer: bool) -> tuple[float, float]:
    """(engine ms, total ms) per task of one flow of n tasks through a fresh sink."""
    from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec
    from flowprov.instance import current
    from flowprov.spool import Sink
    from flowprov.uids import RUN_UID, random_uid

    os.environ["FLOWPROV_STORE_WRITER"] = "on" if writer else "off"
    flow_uid = random_uid(RUN_UID)
    roots = list(current().storages().values())
    tasks = build_tasks(work, n, flow_uid, roots)
    sink = Sink(work / "spool.jsonl", "bench")
    flow = TransformSpec(name="bench-flow", type="flow", key="prefect:bench.flow")
    sink.send([RunStarted(uid=flow_uid, transform=flow, engine="prefect", created_by="bench")])
    engine = 0.0
    t0 = time.perf_counter()
    for start, end in tasks:
        t = time.perf_counter()
        sink.send(start, buffered=True)
        sink.send(end, buffered=True)
        engine += time.perf_counter() - t
    sink.send([RunFinished(run=RunRef(uid=flow_uid), status="completed", created_by="bench")])
    total = time.perf_counter() - t0
    used_writer = sink._writer is not None
    sink.close()
    check(used_writer == writer, f"store writer {'not ' if writer else ''}used")
    return engine / n * 1000, total / n * 1000


def raw_floor(d: str, n: int) -> float:
    """ms per task: the rows of a task (a run, an artifact version, its input and output links;
    three updates) with the stdlib sqlite3, a transaction per 25 tasks."""
    conn = sqlite3.connect(os.path.join(d, "raw.sqlite"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, uid TEXT UNIQUE, status TEXT)")
    conn.execute(
        "CREATE TABLE artifacts (id INTEGER PRIMARY KEY, uid TEXT UNIQUE, key TEXT, hash TEXT,"
        " is_latest INT, updated_at TEXT)"
    )
    conn.execute("CREATE INDEX a_key ON artifacts(key)")
    conn.execute("CREATE TABLE links (run_id INT, artifact_id INT, kind TEXT)")
    t0 = time.perf_counter()
    for i in range(n):
        if i % 25 == 0:
            conn.execute("BEGIN")
        rid = conn.execute("INSERT INTO runs (uid, status) VALUES (?, 'started')", (f"r{i}",))
        rid = rid.lastrowid
        conn.execute("UPDATE artifacts SET updated_at = ? WHERE key = ?", (str(i), f"k{i % 10}"))
        conn.execute("INSERT INTO links VALUES (?, ?, 'in')", (rid, i))
        conn.execute("UPDATE artifacts SET is_latest = 0 WHERE key = ?", (f"k{i % 10}",))
        aid = conn.execute(
            "INSERT INTO artifacts (uid, key, hash, is_latest, updated_at) VALUES (?, ?, ?, 1, ?)",
            (f"a{i}", f"k{i % 10}", f"h{i}", str(i)),
        ).lastrowid
        conn.execute("INSERT INTO links VALUES (?, ?, 'out')", (rid, aid))
        conn.execute("UPDATE runs SET status = 'completed' WHERE id = ?", (rid,))
        if i % 25 == 24 or i == n - 1:
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    check(conn.execute("SELECT count(*) FROM runs").fetchone()[0] == n, "raw sqlite: rows missing")
    conn.close()
    return elapsed / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="600 tasks, 2 trials")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.trials = 600, 2
    with temp_base("sink") as base:
        import flowprov as fp
        from flowprov import instance

        header(f"bench_sink: {args.tasks} Prefect-like tasks' events through a sink")
        instance.init(Path(base) / "store")
        cases = ["in-process", "writer"]
        engine: dict[str, list[float]] = {c: [] for c in cases}
        total: dict[str, list[float]] = {c: [] for c in cases}
        floor: list[float] = []
        for trial in range(args.trials):
            for case in cases[trial % 2 :] + cases[: trial % 2]:
                work = Path(base) / f"work-{case}-{trial}"
                work.mkdir()
                e, t = one_flow(work, args.tasks, writer=case == "writer")
                engine[case].append(e)
                total[case].append(t)
            d = Path(base) / f"raw{trial}"
            d.mkdir()
            floor.append(raw_floor(str(d), args.tasks))
            print(
                f"  trial {trial + 1}/{args.trials}: "
                + ", ".join(f"{c} {engine[c][-1]:.3f} / {total[c][-1]:.3f}" for c in cases)
                + f" ms/task (engine / total); raw sqlite3 {floor[-1]:.3f}"
            )
        os.environ.pop("FLOWPROV_STORE_WRITER", None)
        recorded = fp.Run.filter(transform__name="step", status="completed").count()
        check(recorded == 2 * args.trials * args.tasks, f"{recorded} task runs recorded")
        raw = median(floor)
        print(f"\nms per task, median of {args.trials} (raw sqlite3 floor {raw:.3f}):")
        for c in cases:
            print(
                f"  {c:10s} engine {median(engine[c]):.3f}  total {median(total[c]):.3f}"
                f"  ({median(total[c]) / raw:.0f}x the floor)"
            )
        print(
            f"  the writer takes {1 - median(engine['writer']) / median(engine['in-process']):.0%}"
            " of the sink's time off the engine's process"
        )


if __name__ == "__main__":
    main()
