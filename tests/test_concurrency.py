"""Many writers at once: 8 processes × 500 operations against one instance, on SQLite and on
PostgreSQL — every record exactly once, every path its own Artifact (half of them holding bytes
every writer also wrote), no error surfaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import flowprov as fp
from flowprov import schema as S
from sqlalchemy import func, select

WORKERS, RUNS, PER_RUN = 8, 100, 3  # 100 × (start + 3 files + finish) = 500 operations each
REPO = Path(__file__).parent.parent


def start_writers(n: int, runs: int, per_run: int, batch: bool = False, users: int = 3):
    start_at = time.time() + 4  # after every interpreter has started: they collide
    procs = []
    for w in range(n):
        env = dict(os.environ, FLOWPROV_USER=f"writer{w % users}")
        cmd = [
            sys.executable,
            "-m",
            "tests.concurrency_worker",
            str(w),
            str(runs),
            str(per_run),
            str(start_at),
        ] + (["--batch"] if batch else [])
        procs.append(
            subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    return procs


def test_eight_writers_every_record_once(instance):
    procs = start_writers(WORKERS, RUNS, PER_RUN)
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        lines = [ln for ln in err.splitlines() if ln.strip() and " - created " not in ln]
        assert not [ln for ln in lines if "rror" in ln or "arning" in ln or "Traceback" in ln], (
            lines
        )
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["ops"] for r in reports) == WORKERS * 500

    with instance.engine.connect() as c:

        def n(table, *where):
            return c.execute(select(func.count()).select_from(table).where(*where)).scalar()

        assert n(S.runs) == WORKERS * RUNS
        assert n(S.runs, S.runs.c.status == "completed") == WORKERS * RUNS
        pairs = c.execute(select(S.runs.c.params)).scalars().all()
        assert sorted((p["worker"], p["run"]) for p in pairs) == sorted(
            (w, r) for w in range(WORKERS) for r in range(RUNS)
        )
        files = RUNS * PER_RUN
        shared = (files + 1) // 2  # even-numbered files: the same bytes in every writer
        # a place is an artifact: 8 writers × 300 paths are 2,400 records, whatever their bytes
        assert n(S.artifacts) == WORKERS * files
        keys = c.execute(select(S.artifacts.c.key)).scalars().all()
        assert len(set(keys)) == WORKERS * files
        assert sorted(keys) == sorted(
            f"w{w}/r{r}_{i}.txt"
            for w in range(WORKERS)
            for r in range(RUNS)
            for i in range(PER_RUN)
        )
        per_hash = c.execute(
            select(func.count()).select_from(S.artifacts).group_by(S.artifacts.c.hash)
        ).scalars()
        assert sorted(per_hash) == [1] * (WORKERS * (files - shared)) + [WORKERS] * shared
        assert n(S.run_outputs) == WORKERS * files  # every run made its 3 files, shared or not
        assert n(S.transforms) == 1 and n(S.users) == 1 + 3  # the instance's user + 3 writers
    copies = fp.Artifact.filter(hash=fp.Artifact.filter(key="w0/r0_0.txt").one().hash)
    assert copies.count() == WORKERS
    assert all(a.output_of.count() == 1 for a in copies)  # each made by its own writer
