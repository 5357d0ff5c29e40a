"""Ingest a 100,000-task Nextflow trace (trace only): wall time and peak memory.

The trace is generated from the shape of the real nf-core rows in tests/nextflow (Nextflow's 14
default fields, human formats, a few processes, tags, unique task hashes). Ingestion runs in a
child process so its peak RSS (ru_maxrss) is its own. Targets (issue 18): ≤ 4 s, ≤ 150 MB.

A second case adds a `container` column (one image per process, as nf-core pipelines run; every
task then links to its software environment): still ≤ 10 s (issue 14). Beside them, this
machine's raw floor: the same trace split with the stdlib and one row per task inserted by the
stdlib sqlite3 in one transaction.

    python benchmarks/bench_nextflow.py [--tasks 100000] [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import figure, header, median, temp_base  # noqa: E402

HEADER = "task_id\thash\tnative_id\tname\tstatus\texit\tsubmit\tduration\trealtime\t%cpu\tpeak_rss\tpeak_vmem\trchar\twchar"
IMAGES = {  # nf-core's containers for these processes
    "FASTQC": "quay.io/biocontainers/fastqc:0.12.1--hdfd78af_0",
    "TRIMGALORE": "quay.io/biocontainers/trim-galore:0.6.7--hdfd78af_0",
    "STAR_ALIGN": "quay.io/biocontainers/mulled-v2-1fa26d1ce03c295fe2fdcf85831a92fbcbd7e8c2:1df389393721fc66f3fd8778ad938ac711951107-0",
    "SALMON_QUANT": "quay.io/biocontainers/salmon:1.10.1--h7e5ed60_0",
    "MULTIQC": "quay.io/biocontainers/multiqc:1.19--pyhdfd78af_0",
}
PROCESSES = [
    "NFCORE_RNASEQ:RNASEQ:FASTQC",
    "NFCORE_RNASEQ:RNASEQ:TRIMGALORE",
    "NFCORE_RNASEQ:RNASEQ:STAR_ALIGN",
    "NFCORE_RNASEQ:RNASEQ:SALMON_QUANT",
    "NFCORE_RNASEQ:RNASEQ:MULTIQC",
]

CHILD = """
import resource, sys, time
from flowprov import instance
from flowprov_nextflow import ingest_trace
instance.init(sys.argv[2])
t0 = time.perf_counter()
r = ingest_trace(sys.argv[1], pipeline="nf-core/rnaseq", version="3.14.0")
dt = time.perf_counter() - t0
import flowprov as fp
envs = fp.Environment.filter().count()
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, r.new_runs, envs)
"""

RAW = """
import sqlite3, sys, time
t0 = time.perf_counter()
con = sqlite3.connect(sys.argv[2])
con.execute("create table runs (id integer primary key, uid text unique, name text, status text, "
            "params text, environment_id integer)")
with open(sys.argv[1]) as f, con:
    header = f.readline().rstrip("\\n").split("\\t")
    con.executemany(
        "insert into runs (uid, name, status, params, environment_id) values (?, ?, ?, ?, ?)",
        ((f"r{i}", v[3], v[4], "\\t".join(v), 1) for i, v in
         enumerate(line.rstrip("\\n").split("\\t") for line in f)),
    )
print(time.perf_counter() - t0)
"""

# The ingest's own SQL on flowprov's own schema: the runs rows an ingest wrote, inserted again by
# the stdlib into an empty database of the same schema the way the ingest does it (one
# transaction; the search trigger dropped, the index filled with one INSERT … SELECT after the
# rows, the trigger put back: search_index.sqlite_indexed_after). What is left above it is Python.
SCHEMA = """
import os, sqlite3, sys, time
src = sqlite3.connect(sys.argv[1])
cols = [r[1] for r in src.execute("PRAGMA table_info(runs)")]
names = ", ".join(f'"{c}"' for c in cols)
rows = src.execute(f"SELECT {names} FROM runs WHERE parent_id IS NOT NULL").fetchall()
keep = src.execute("SELECT * FROM runs WHERE parent_id IS NULL").fetchall()
schema = src.execute(
    "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
).fetchall()
others = {t: src.execute(f'SELECT * FROM "{t}"').fetchall() for t in ("users", "storages", "transforms")}
shadow = ("_data", "_idx", "_docsize", "_config", "_content")
con = sqlite3.connect(sys.argv[2], isolation_level=None)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA synchronous=NORMAL")
con.execute("PRAGMA foreign_keys=ON")
for kind, name, sql in sorted(schema, key=lambda r: r[0] != "table"):  # tables first
    if kind == "table" and name.startswith("search_") and name.endswith(shadow):
        continue  # made by their FTS5 table
    con.execute(sql)
for t, got in {**others, "runs": keep}.items():
    if got:
        con.executemany(f'INSERT INTO "{t}" VALUES ({", ".join("?" * len(got[0]))})', got)
(trigger,) = src.execute("SELECT sql FROM sqlite_master WHERE name = 'search_runs_insert'").fetchone()
t0 = time.perf_counter()
con.execute("BEGIN IMMEDIATE")
con.execute("DROP TRIGGER search_runs_insert")
con.executemany(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(cols))})", rows)
con.execute(
    "INSERT INTO search_runs(rowid, name, reference) SELECT id, name, reference FROM runs"
    " WHERE parent_id IS NOT NULL"
)
con.execute(trigger)
con.execute("COMMIT")
dt = time.perf_counter() - t0
assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == len(rows) + len(keep)
print(dt, len(rows))
"""


def make_trace(path: Path, n: int, container: bool = False) -> None:
    rng = random.Random(7)
    with open(path, "w") as f:
        f.write(HEADER + ("\tcontainer" if container else "") + "\n")
        for i in range(1, n + 1):
            h = f"{rng.getrandbits(8):02x}/{rng.getrandbits(24):06x}{i:x}"
            proc = PROCESSES[i % len(PROCESSES)]
            status = "FAILED" if i % 997 == 0 else "COMPLETED"
            image = f"\t{IMAGES[proc.rsplit(':', 1)[1]]}" if container else ""
            f.write(
                f"{i}\t{h}\t{12000 + i}\t{proc} (sample_{i // 5})\t{status}\t{1 if status == 'FAILED' else 0}\t"
                f"2021-03-29 19:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}\t{i % 50}.{i % 10}s\t"
                f"{i % 40}.2s\t{(i % 300) / 3:.1f}%\t{i % 900}.1 MB\t{i % 4}.9 GB\t{i % 700}.9 KB\t{i % 90} MB"
                f"{image}\n"
            )


def child(code: str, *args) -> str:
    """What `python -c code args...` prints (a fresh process: its peak RSS is its own)."""
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(f"ingest failed:\n{out.stderr[-3000:]}")
    return out.stdout


def trials(base: str, trace: Path, args, label: str, envs_expected: int):
    """Ingest `trace` into a fresh instance per trial; returns the times and peak RSS (and prints
    each)."""
    times, mems = [], []
    for trial in range(args.trials):
        store = Path(base) / f"store-{label}-{trial}"
        dt, mem, runs, envs = child(CHILD, trace, store).split()
        if int(runs) != args.tasks + 1:
            sys.exit(f"expected {args.tasks + 1} runs, recorded {runs}")
        if int(envs) != envs_expected:
            sys.exit(f"expected {envs_expected} environments, recorded {envs}")
        times.append(float(dt))
        mems.append(float(mem))
        print(
            f"  trial {trial + 1}/{args.trials}: {float(dt):.2f} s, peak RSS {float(mem):.0f} MB, {runs} runs, {envs} environments"
        )
    rate = args.tasks / median(times)
    print(
        f"\nmedian {median(times):.2f} s ({rate:,.0f} tasks/s), peak RSS median {median(mems):.0f} MB"
    )
    scale = 100_000 / args.tasks
    print(
        f"target ≤ 4 s for 100,000 tasks: {median(times) * scale:.2f} s"
        f"{' (scaled)' if scale != 1 else ''}  [{'ok' if median(times) * scale <= 4 else 'MISSED'}]"
    )
    print(
        f"target peak memory ≤ 150 MB: {max(mems):.0f} MB  [{'ok' if max(mems) <= 150 else 'MISSED'}]"
    )
    return times, mems


def raw_floor(base: str, trace: Path, args) -> list[float]:
    """The stdlib split + sqlite3 insert of the same trace, one fresh file per trial."""
    floors = []
    for trial in range(args.trials):
        floors.append(float(child(RAW, trace, Path(base) / f"raw-{trace.stem}-{trial}.db")))
    return floors


def schema_floor(base: str, args) -> list[float]:
    """The ingest's own SQL (SCHEMA above) on the schema and rows of each plain trial's store."""
    floors = []
    for trial in range(args.trials):
        db = Path(base) / f"store-plain-{trial}" / ".flowprov" / "flowprov.sqlite"
        out = Path(base) / f"schema-{trial}.sqlite"
        dt, n = child(SCHEMA, db, out).split()
        if int(n) != args.tasks:
            sys.exit(f"schema floor: {n} task rows in {db}, expected {args.tasks}")
        floors.append(float(dt))
    return floors


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20,000 tasks, 2 trials")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.trials = 20_000, 2
    with temp_base("nextflow") as base:
        header(f"bench_nextflow: ingest a {args.tasks:,}-task trace, trace only")
        trace = Path(base) / "execution_trace.txt"
        t0 = time.perf_counter()
        make_trace(trace, args.tasks)
        print(
            f"generated {trace.stat().st_size / 2**20:.1f} MiB trace in {time.perf_counter() - t0:.1f} s"
        )
        times, mems = trials(base, trace, args, "plain", 0)
        floor = median(raw_floor(base, trace, args))
        scale = 100_000 / args.tasks
        print(f"raw floor of the same trace: median {floor:.2f} s")
        figure(
            f"100,000-task trace ingest{' (scaled)' if scale != 1 else ''}",
            median(times) * scale,
            "s",
            floor=floor * scale,
            target=4,
        )
        figure(f"{args.tasks:,}-task trace ingest, peak RSS", max(mems), "MB", target=150)
        own = median(schema_floor(base, args))
        print(
            f"the ingest's own SQL on flowprov's schema (its runs rows re-inserted by stdlib sqlite3"
            f" as the ingest does: 10 indexes on runs, the search index filled after): median"
            f" {own:.2f} s;\n  the rest (Python: reading the trace, events, rows) {median(times) - own:.2f} s;"
            f" the 4 s target (per 100,000 tasks) leaves {4 / scale - own:.2f} s for it"
        )
        figure(
            f"100,000-task trace ingest: its SQL alone on flowprov's schema{' (scaled)' if scale != 1 else ''}",
            own * scale,
            "s",
            floor=floor * scale,
        )

        print(f"\n-- with a container column: {len(IMAGES)} images, one per process --")
        with_container = Path(base) / "execution_trace_container.txt"
        make_trace(with_container, args.tasks, container=True)
        times_c, _ = trials(base, with_container, args, "container", len(IMAGES))
        print(f"container column costs {median(times_c) / median(times):.2f}× the plain trace")

        floors = raw_floor(base, with_container, args)
        print(
            f"\nraw floor (stdlib split + sqlite3, one transaction, same trace): "
            f"median {median(floors):.2f} s; the ingest is {median(times_c) / median(floors):.1f}× it"
        )


if __name__ == "__main__":
    main()
