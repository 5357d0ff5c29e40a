"""Many writers: 8 processes registering small files in batches of 100 (half of them the same
content in every process), on SQLite and on PostgreSQL.

    python benchmarks/bench_concurrency.py            # 8 writers × 2,000 files, 3 trials per backend
    python benchmarks/bench_concurrency.py --quick    # 8 writers × 500 files, 1 trial

Prints registrations per second in total (files / wall time from the common start to the last
writer's end; median of the trials) against the targets (issue 18: PostgreSQL ≥ 8,000/s, SQLite ≥ 10,000/s;
LaminDB 2.12: about 57/s with 4 writers on SQLite), beside this machine's raw floor: one process
inserting the same number of artifact rows with the stdlib sqlite3 module in one transaction.
PostgreSQL is started by the benchmark (tests/services.py), as the tests do.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)
from _common import check, figure, header, import_flowprov, median, temp_base, verdict  # noqa: E402

WRITERS = 8
BATCH = 100


def trial(db: str | None, base: str, files_per_writer: int, n: int) -> float:
    """One fresh instance, 8 writers; returns registrations per second."""
    from flowprov import instance

    instance.reset_cache()
    inst, _ = instance.init(os.path.join(base, f"data{n}"), db=db, name=f"bench{n}")
    os.environ["FLOWPROV_INSTANCE"] = inst.name
    runs = files_per_writer // BATCH
    start_at = time.time() + 4
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.concurrency_worker",
                str(w),
                str(runs),
                str(BATCH),
                str(start_at),
                "--batch",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, FLOWPROV_USER=f"writer{w}"),
        )
        for w in range(WRITERS)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        check(p.returncode == 0, f"writer failed:\n{err[-2000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["seconds"] for r in reports)
    total = sum(r["files"] for r in reports)
    from flowprov.records import Artifact

    # every path is its own artifact, shared bytes or not
    check(Artifact.filter().count() == total, "artifact count is wrong")
    instance.reset_cache()
    return total / wall


def raw_floor(base: str, rows: int) -> float:
    con = sqlite3.connect(os.path.join(base, "raw.sqlite"))
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, uid TEXT UNIQUE, key TEXT, hash TEXT UNIQUE,"
        " size INT, run_id INT)"
    )
    data = [(f"u{i:019d}", f"w/r{i}.txt", f"{i:064x}", 12, i // BATCH) for i in range(rows)]
    t0 = time.perf_counter()
    with con:
        con.executemany("INSERT INTO a (uid, key, hash, size, run_id) VALUES (?,?,?,?,?)", data)
    dt = time.perf_counter() - t0
    con.close()
    return rows / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--trials", type=int, default=None)
    a = ap.parse_args()
    per_writer = 500 if a.quick else 2000
    trials = a.trials or (1 if a.quick else 3)
    header(
        "concurrency",
        f"{WRITERS} writers × {per_writer:,} files, batches of {BATCH}, {trials} trial(s)",
    )
    with temp_base("concurrency") as base:
        import_flowprov()
        floor = raw_floor(base, WRITERS * per_writer)
        print(f"raw floor: one process, stdlib sqlite3, one transaction: {floor:,.0f} rows/s")
        results = {}
        lite = [trial(None, base, per_writer, i) for i in range(trials)]
        results["SQLite"] = (median(lite), 10_000)
        try:
            from tests.services import ServiceMissing, start_postgres

            pg = start_postgres()
        except (ImportError, ServiceMissing) as e:
            pg = None
            print(f"PostgreSQL: skipped ({e})")
        if pg is not None:
            os.environ["PGPASSFILE"] = str(pg.pgpass)
            try:
                rates = []
                for i in range(trials):
                    rates.append(trial(pg.url(pg.new_database()), base, per_writer, 100 + i))
                results["PostgreSQL"] = (median(rates), 8_000)
            finally:
                pg.stop()
        for name, (rate, target) in results.items():
            print(
                f"{name}: {rate:,.0f} registrations/s in total (median of {trials}; "
                f"{rate / floor:.1%} of the raw floor) target ≥ {target:,}/s: {verdict(rate >= target)}; "
                f"LaminDB ≈ 57/s → ×{rate / 57:.0f}"
            )
            figure(
                f"{WRITERS} concurrent writers, batches of {BATCH}: {name}",
                rate,
                "files/s",
                floor=floor,
                target=target,
                at_least=True,
            )


if __name__ == "__main__":
    main()
