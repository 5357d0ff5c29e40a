"""Faults survived with nothing lost: a database that goes away in the middle of a workflow, and
processes killed with SIGKILL in the middle of an ingest or of a batch."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import flowprov as fp
from flowprov import instance as inst_mod
from flowprov import schema as S
from sqlalchemy import func, select

from tests.conftest import wait_until, write

REPO = Path(__file__).parent.parent


def count(table) -> int:
    with inst_mod.current().engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar()


SNAKEFILE = """
rule all:
    input: expand("out/{s}.done", s=["a", "b", "c", "d"])

rule first:
    output: "mid/{s}.txt"
    shell: "echo {wildcards.s} > {output}"

rule slow:
    input: "mid/{s}.txt"
    output: "out/{s}.done"
    shell: "sleep 1; cat {input} > {output}; echo done >> {output}"
"""


def test_database_cut_in_the_middle_of_a_workflow(postgres, pg_database, fp_env, run_flowprov):
    """PostgreSQL stops accepting connections while Snakemake runs: the plugin spools the rest,
    warns once, the workflow ends normally; `flowprov replay` applies the rest exactly once."""
    from tests.snakemake.conftest import Workflow

    inst, _ = inst_mod.init(fp_env / "mydata", db=pg_database)
    dbname = pg_database.rsplit("/", 1)[1]
    wf = Workflow(fp_env / "mydata" / "wf")
    wf.write("Snakefile", SNAKEFILE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--logger", "flowprov"],
        cwd=wf.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the first jobs are recorded, then the database goes away for everyone but its owner
        wait_until(lambda: count(S.run_outputs) >= 2, what="the first recorded outputs")
        inst_mod.reset_cache()
        postgres.admin(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        postgres.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            params=(dbname,),
        )
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        postgres.admin(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    assert proc.returncode == 0, err[-3000:]
    assert all((wf.root / "out" / f"{s}.done").exists() for s in "abcd")
    assert err.count("cannot write to the provenance store") == 1  # warned once
    (journal,) = (fp_env / "cache" / "journal").glob("*.jsonl")  # kept: the store was away
    spool = shutil.copy(journal, fp_env / "journal-copy.jsonl")
    before = count(S.runs)
    assert (
        0 < before < 1 + 9
    )  # some of the workflow run and its 9 jobs were recorded before the cut

    run_flowprov("replay")  # every pending journal
    assert not journal.exists()
    inst_mod.reset_cache()
    runs = fp.Run.filter().all()
    assert len(runs) == 1 + 9 and {r.status for r in runs} == {"completed"}
    assert fp.Artifact.filter().count() == 8  # mid/*.txt and out/*.done, each once
    snapshot = sorted((r.uid, r.status, str(r.finished_at)) for r in runs)
    run_flowprov("replay", str(spool))  # twice: nothing changes
    inst_mod.reset_cache()
    assert sorted((r.uid, r.status, str(r.finished_at)) for r in fp.Run.filter()) == snapshot
    assert count(S.run_outputs) == 8 and count(S.run_inputs) == 4 + 4  # slow jobs, then `all`


def _trace(path: Path, n: int) -> Path:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_nextflow import make_trace

    make_trace(path, n)
    return path


def test_sigkill_in_the_middle_of_an_ingest(instance, fp_env, run_flowprov):
    """One transaction: a killed ingest leaves nothing of itself; running it again completes."""
    trace = _trace(fp_env / "trace.txt", 60_000)
    cmd = [
        sys.executable,
        "-m",
        "flowprov.cli",
        "nextflow",
        "ingest",
        str(trace),
        "--pipeline",
        "nf-core/rnaseq",
    ]
    proc = subprocess.Popen(cmd, cwd=fp_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)  # well inside the ingest (5 s or more for 60,000 rows here)
    assert proc.poll() is None, "the ingest ended before it could be killed: make the trace bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    inst_mod.reset_cache()
    assert count(S.runs) == 0 and count(S.transforms) == 0  # nothing half-written
    # the complete ingest: 60,000 tasks take 40-120 s on PostgreSQL on a busy 2-core machine,
    # beyond run_flowprov's 120 s guard; this test is about completeness, not speed
    subprocess.run(cmd, cwd=fp_env, check=True, capture_output=True, timeout=900)
    inst_mod.reset_cache()
    assert count(S.runs) == 60_000 + 1


KILLED_BATCH = """
import sys
from pathlib import Path
import flowprov as fp
src = Path(sys.argv[1])
with fp.Run(transform=fp.Transform(name="batch", type="script").save()) as run:
    print("started", flush=True)
    fp.save([fp.Artifact(p, run=run) for p in sorted(src.iterdir())])
"""


def test_sigkill_in_the_middle_of_a_batch(instance, fp_env):
    """Files copied into storage, then one transaction: killed anywhere, the database holds all of
    the batch or none of it, and the second attempt completes it (reusing what was copied)."""
    src = fp_env / "incoming"
    n = 6000
    for i in range(n):
        write(src / f"f{i:04d}.txt", f"file {i}\n" * 400)
    script = write(fp_env / "batch.py", KILLED_BATCH)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(src)],
        cwd=fp_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.5)  # hashing and copying 6,000 files takes seconds
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    inst_mod.reset_cache()
    assert count(S.artifacts) == 0 and count(S.runs) == 1  # the run was saved; none of its batch
    subprocess.run(
        [sys.executable, str(script), str(src)], cwd=fp_env, check=True, capture_output=True
    )
    inst_mod.reset_cache()
    assert count(S.artifacts) == n and count(S.run_outputs) == n
    from flowprov.verify import verify

    assert {c.status for c in verify()} == {"ok"}


TRACKED_SCRIPT = """
import sys, time
from pathlib import Path
import flowprov as fp
fp.track(path=sys.argv[1])
screen = fp.Artifact.get(sys.argv[2])
print("ready", flush=True)
while not Path(sys.argv[3]).exists():
    time.sleep(0.05)
df = screen.load()          # the input is noticed while the database is gone
print("analysed", len(df), flush=True)
"""  # ... and the run ends (at exit) while it is still gone


def test_database_cut_while_a_tracked_script_runs(postgres, pg_database, fp_env, run_flowprov):
    """The API's background writes (a run input, the run's end at exit) go to a spool file when
    the database is unreachable: the script goes on, one warning, replay completes the record."""
    import pandas as pd

    inst, _ = inst_mod.init(fp_env / "mydata", db=pg_database)
    pd.DataFrame({"gene": ["IFNG", "CD4"]}).to_parquet(fp_env / "mydata" / "screen.parquet")
    with fp.Run(transform=fp.Transform(name="upload", type="upload").save()):
        screen = fp.Artifact(fp_env / "mydata" / "screen.parquet").save()
    script = write(fp_env / "analysis.py", TRACKED_SCRIPT)
    go = fp_env / "go"
    dbname = pg_database.rsplit("/", 1)[1]
    proc = subprocess.Popen(
        [sys.executable, str(script), str(script), screen.uid, str(go)],
        cwd=fp_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        inst_mod.reset_cache()
        postgres.admin(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        postgres.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            params=(dbname,),
        )
        go.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        postgres.admin(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    assert proc.returncode == 0 and "analysed 2" in out, err[-3000:]
    assert err.count("cannot write to the provenance store") == 1
    (journal,) = (fp_env / "cache" / "journal").glob("*.jsonl")
    assert len(journal.read_text().splitlines()) == 1 + 2  # header; the input, the run's end
    spool = shutil.copy(journal, fp_env / "journal-copy.jsonl")
    run = fp.Run.filter(transform__key=script.resolve().as_posix()).one()  # outside git
    assert run.status == "started" and run.inputs.count() == 0
    run_flowprov("replay")
    run_flowprov("replay", str(spool))  # twice: nothing changes
    inst_mod.reset_cache()
    run = fp.Run.get(run.uid)
    assert run.status == "completed" and list(run.inputs) == [screen]
