"""Lineage speed: the upstream walk of an artifact, small instance and big, and drawing a run with
1,000 outputs.

    python benchmarks/bench_lineage.py            # 1,000,000 artifacts / 200,000 runs (≈1-2 min)
    python benchmarks/bench_lineage.py --quick    # 100,000 / 20,000

Figures (medians; targets from issue 18, LaminDB 2.12 on this kind of machine in brackets):
  1. upstream of the end of a 10-step chain, fresh instance          ≤ 0.5 ms [view_lineage 77 ms]
  2. the same walk in an instance of 1,000,000 artifacts, 200,000 runs ≤ 1 ms
  3. SVG of a run with 1,000 outputs (collapsed, the default)          ≤ 300 ms [250 ms graph, 540 ms SVG]
Each is printed beside the machine's own floor: the same recursive SQL run by the stdlib sqlite3
module (no flowprov, no SQLAlchemy), and Graphviz's `dot` on the same DOT text.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import check, figure, header, import_flowprov, median, temp_base, verdict  # noqa: E402

RAW_WALK = """
WITH RECURSIVE walk(run_id) AS (
  SELECT run_id FROM run_outputs WHERE artifact_id = ?
  UNION
  SELECT o.run_id FROM walk JOIN run_inputs i ON i.run_id = walk.run_id
                            JOIN run_outputs o ON o.artifact_id = i.artifact_id
)
SELECT 'i', i.run_id, i.artifact_id FROM run_inputs i WHERE i.run_id IN (SELECT run_id FROM walk)
UNION ALL
SELECT 'o', o.run_id, o.artifact_id FROM run_outputs o WHERE o.run_id IN (SELECT run_id FROM walk)
"""


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def make_chain(fp, root: str, steps: int = 10):
    """An upload and `steps` script runs, each reading the previous output (through the API)."""
    from pathlib import Path

    d = Path(root)
    with fp.Run(transform=fp.Transform(name="upload", type="upload").save()) as run:
        (d / "raw.txt").write_text("raw")
        prev = fp.Artifact(str(d / "raw.txt"), run=run).save()
    for i in range(steps):
        with fp.Run(transform=fp.Transform(name=f"step{i}", type="script").save()) as run:
            prev.cache()
            (d / f"out{i}.txt").write_text(f"out {i}")
            prev = fp.Artifact(str(d / f"out{i}.txt"), run=run).save()
    return prev


def fill_big(db: str, n_runs: int, outputs_per_run: int = 5) -> None:
    """Add n_runs runs and n_runs × outputs_per_run artifacts with the stdlib (fast), shaped like a
    lab's store: pipelines of 10 steps, each step reading one or two outputs of the step before."""
    con = sqlite3.connect(db)
    now = "2026-01-01 00:00:00.000000"
    cur = con.cursor()
    storage = cur.execute("SELECT id FROM storages LIMIT 1").fetchone()[0]
    user = cur.execute("SELECT id FROM users LIMIT 1").fetchone()[0]
    cur.execute(
        "INSERT INTO transforms (uid, stem, family, version_tag, name, type, is_latest, created_at,"
        " updated_at) VALUES ('bigbenchTf000000', 'bigbenchTf00', 'rule:bench', '', 'bench rule',"
        " 'rule', 1, ?, ?)",
        (now, now),
    )
    tf = cur.lastrowid
    run0 = cur.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0] + 1
    art0 = cur.execute("SELECT coalesce(max(id), 0) FROM artifacts").fetchone()[0] + 1
    rng = random.Random(1)
    runs, arts, outs, ins = [], [], [], []
    for k in range(n_runs):
        rid = run0 + k
        runs.append((rid, f"bench{rid:015d}", tf, now, "completed", user, now, now))
        for j in range(outputs_per_run):
            aid = art0 + k * outputs_per_run + j
            h = f"{aid:064x}"
            arts.append(
                (
                    aid,
                    f"b{aid:019d}",
                    f"b{aid:015d}",
                    f"bench/{aid}.tsv",
                    ".tsv",
                    100,
                    h,
                    "blake3",
                    storage,
                    rid,
                    user,
                    now,
                    now,
                )
            )
            outs.append((rid, aid, now))
        if k % 10:  # not the first step of its pipeline: read outputs of the step before
            prev_first = art0 + (k - 1) * outputs_per_run
            for j in rng.sample(range(outputs_per_run), rng.choice((1, 2))):
                ins.append((rid, prev_first + j, now))
    cur.executemany(
        "INSERT INTO runs (id, uid, transform_id, started_at, status, created_by_id, created_at,"
        " updated_at) VALUES (?,?,?,?,?,?,?,?)",
        runs,
    )
    cur.executemany(
        "INSERT INTO artifacts (id, uid, stem, key, key_is_virtual, suffix, size, hash, hash_type,"
        " n_objects, is_latest, managed, storage_id, run_id, created_by_id, created_at, updated_at)"
        " VALUES (?,?,?,?,0,?,?,?,?,1,1,0,?,?,?,?,?)",
        arts,
    )
    cur.executemany(
        "INSERT INTO run_outputs (run_id, artifact_id, created_at) VALUES (?,?,?)", outs
    )
    cur.executemany("INSERT INTO run_inputs (run_id, artifact_id, created_at) VALUES (?,?,?)", ins)
    con.commit()
    cur.execute("ANALYZE")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--trials", type=int, default=51)
    a = ap.parse_args()
    n_runs = 20_000 if a.quick else 200_000
    header("lineage", f"big instance: {n_runs * 5:,} artifacts, {n_runs:,} runs (+ the chain)")
    with temp_base("lineage") as base:
        fp = import_flowprov()
        from flowprov import instance

        root = os.path.join(base, "data")
        inst, _ = instance.init(root)
        end = make_chain(fp, root)
        db = inst.engine.url.database

        g = end.lineage()
        check(len(g.runs) == 11 and len(g.artifacts) == 11, f"chain lineage wrong: {g}")
        small = timed(lambda: end.lineage(), a.trials)
        raw_con = sqlite3.connect(db)
        raw_small = timed(lambda: raw_con.execute(RAW_WALK, (end.id,)).fetchall(), a.trials)
        m, r = median(small) * 1e3, median(raw_small) * 1e3
        print(
            f"1. upstream of a 10-step chain's end: {m:.2f} ms median of {a.trials} "
            f"(raw sqlite3 walk {r:.2f} ms, ×{m / r:.1f}) target ≤ 0.5 ms: {verdict(m <= 0.5)}; "
            f"LaminDB 77 ms → ×{77 / m:.0f} faster"
        )
        figure("upstream walk, 10-step chain", m, "ms", floor=r, target=0.5)

        t0 = time.perf_counter()
        fill_big(db, n_runs)
        print(f"   (filled the big instance in {time.perf_counter() - t0:.1f} s)")
        raw_con.close()
        raw_con = sqlite3.connect(db)
        inst.close()
        instance.reset_cache()
        n_art = raw_con.execute("SELECT count(*) FROM artifacts").fetchone()[0]
        n_run = raw_con.execute("SELECT count(*) FROM runs").fetchone()[0]
        end = fp.Artifact.get(end.uid)
        g = end.lineage()
        check(len(g.runs) == 11, f"big-instance chain lineage wrong: {g}")
        big = timed(lambda: end.lineage(), a.trials)
        raw_big = timed(lambda: raw_con.execute(RAW_WALK, (end.id,)).fetchall(), a.trials)
        m, r = median(big) * 1e3, median(raw_big) * 1e3
        print(
            f"2. the same walk among {n_art:,} artifacts and {n_run:,} runs: {m:.2f} ms "
            f"(raw sqlite3 {r:.2f} ms, ×{m / r:.1f}) target ≤ 1 ms: {verdict(m <= 1)}"
        )
        figure(f"upstream walk, same among {n_art:,} artifacts", m, "ms", floor=r, target=1)
        # a pipeline of the big store: 10 steps, 5 outputs each, one or two read per step
        deep = fp.Artifact.filter(
            key=f"bench/{raw_con.execute('SELECT max(id) FROM artifacts').fetchone()[0]}.tsv"
        ).one()
        wide = timed(lambda: deep.lineage(), a.trials)
        gd = deep.lineage()
        print(
            f"   upstream of the last artifact of a generated 10-step pipeline "
            f"({len(gd.runs)} runs, {len(gd.artifacts)} artifacts): {median(wide) * 1e3:.2f} ms"
        )
        raw_con.close()

        # 3. a run with 1,000 outputs, drawn
        from pathlib import Path

        d = Path(root) / "many"
        d.mkdir()
        src = fp.Artifact(str(Path(root) / "raw.txt")).save()
        with fp.Run(transform=fp.Transform(name="scatter", type="rule").save()) as run:
            src.cache()
            arts = []
            for i in range(1000):
                (d / f"part{i}.tsv").write_text(str(i))
                arts.append(fp.Artifact(str(d / f"part{i}.tsv"), run=run))
            fp.save(arts)
        g = run.lineage()
        check(len(g.artifacts) == 1001, f"1,000-output run: {g}")
        svg_times = timed(lambda: run.lineage().to_svg(), 7)
        graph_times = timed(lambda: run.lineage(), 21)
        dot_text = g.to_dot()
        dot_only = timed(
            lambda: subprocess.run(
                ["dot", "-Tsvg"], input=dot_text.encode(), capture_output=True, check=True
            ),
            7,
        )
        m = median(svg_times) * 1e3
        print(
            f"3. SVG of a run with 1,000 outputs (collapsed into one node): {m:.0f} ms "
            f"(graph alone {median(graph_times) * 1e3:.1f} ms; `dot` alone on the same text "
            f"{median(dot_only) * 1e3:.0f} ms) target ≤ 300 ms: {verdict(m <= 300)}; "
            f"LaminDB 540 ms"
        )
        full = timed(lambda: run.lineage().to_svg(collapse_over=None), 3)
        print(f"   the same with every one of the 1,000 outputs drawn: {median(full) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
