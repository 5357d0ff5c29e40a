"""Nothing lost on a kill: a Snakemake workflow, a Prefect flow and a tracked script are SIGKILLed
(an OOM kill, a node failure); everything that finished before the kill is in the store once
`flowprov replay` (no arguments) has run, and replaying again changes nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import flowprov as fp
import pytest
from flowprov import instance as inst_mod

from tests.conftest import wait_until, write

N = 30  # quick jobs / tasks that finish before the kill


def journals(fp_env: Path) -> list[Path]:
    return sorted((fp_env / "cache" / "journal").glob("*.jsonl"))


def snapshot() -> tuple:
    """Everything replaying could change: table sizes and each run's state."""
    inst_mod.reset_cache()
    runs = sorted((r.uid, r.status, str(r.finished_at)) for r in fp.Run.filter())
    return inst_mod.current().counts(), runs


def kill_when_blocked(cmd, cwd: Path, env: dict | None = None) -> None:
    """Run cmd until its blocking step has started (the file `started` exists) and the engine has
    had a moment to report it, then SIGKILL it; release the step's orphaned leftovers."""
    e = dict(os.environ)
    e.update(env or {})
    log = open(cwd / "engine.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=cwd, env=e, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_until(
            lambda: (cwd / "started").exists() or proc.poll() is not None,
            timeout=300,
            what="the blocking step",
        )
        assert proc.poll() is None, (cwd / "engine.log").read_text()[-3000:]
        time.sleep(1.0)  # the engine's own logging thread reports the step to the plugin
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        (cwd / "go").touch()  # an orphaned shell step ends
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # and whatever else the engine had started
        except ProcessLookupError:
            pass
        log.close()


def replay_all_then_again(fp_env: Path, run_flowprov) -> None:
    """`flowprov replay` applies the pending journal; the same events again change nothing."""
    (journal,) = journals(fp_env)
    copy = shutil.copy(journal, fp_env / "journal-copy.jsonl")
    out = run_flowprov("replay").stdout
    assert "replayed" in out and journals(fp_env) == [], out
    after = snapshot()
    assert "no pending journals" in run_flowprov("replay").stdout
    run_flowprov("replay", str(copy))
    assert snapshot() == after


# -- Snakemake ----------------------------------------------------------------------------------
SNAKEFILE = f"""
rule all:
    input: "blocked.txt"

rule work:
    output: "out/{{i}}.txt"
    shell: "echo {{wildcards.i}} > {{output}}"

rule block:
    input: expand("out/{{i}}.txt", i=range({N}))
    output: "blocked.txt"
    shell: "touch started; while [ ! -e go ]; do sleep 0.05; done; touch {{output}}"
"""


def test_snakemake_killed_loses_no_finished_job(instance, fp_env, run_flowprov):
    pytest.importorskip("snakemake")
    from tests.snakemake.conftest import Workflow, snakemake_exe

    (fp_env / "workflow").mkdir()
    workflow = Workflow(fp_env / "workflow")
    workflow.write("Snakefile", SNAKEFILE)
    kill_when_blocked([snakemake_exe(), "--cores", "1", "--logger", "flowprov"], workflow.root)
    assert all((workflow.root / "out" / f"{i}.txt").exists() for i in range(N))
    replay_all_then_again(fp_env, run_flowprov)

    wf_run = fp.Transform.filter(type="pipeline").one().runs.one()
    assert wf_run.status == "started"  # killed: it never finished
    jobs = {j.transform.name: [] for j in wf_run.children}
    for j in wf_run.children:
        jobs[j.transform.name].append(j)
    assert len(jobs["work"]) == N and {j.status for j in jobs["work"]} == {"completed"}
    assert sorted(j.params["wildcards"]["i"] for j in jobs["work"]) == sorted(map(str, range(N)))
    for j in jobs["work"]:
        made = workflow.root / "out" / f"{j.params['wildcards']['i']}.txt"
        assert [str(a.path) for a in j.outputs] == [str(made)]
    assert [j.status for j in jobs["block"]] == ["started"]


# -- Prefect ------------------------------------------------------------------------------------
FLOW = f"""
import sys, time
from pathlib import Path

from flowprov.prefect import track
from prefect import flow, task


@task
def step(i: int) -> Path:
    out = Path("out") / f"{{i}}.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(f"{{i}}\\n")
    return out


@task
def block(paths: list) -> None:
    Path("started").touch()
    while not Path("go").exists():
        time.sleep(0.05)


@track()
@flow
def pipeline() -> None:
    block([step(i) for i in range({N})])


pipeline()
"""


def test_prefect_flow_killed_loses_no_finished_task(instance, fp_env, run_flowprov):
    pytest.importorskip("prefect")
    wd = fp_env / "analysis"
    script = write(wd / "pipeline.py", FLOW)
    home = tempfile.mkdtemp(prefix="flowprov-prefect-home-")
    env = {
        "PREFECT_HOME": home,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///:memory:",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    try:
        kill_when_blocked([sys.executable, str(script)], wd, env)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    replay_all_then_again(fp_env, run_flowprov)

    flow_run = fp.Transform.filter(type="flow").one().runs.one()
    assert flow_run.status == "started"
    tasks: dict[str, list] = {}
    for t in flow_run.children:
        tasks.setdefault(t.transform.name, []).append(t)
    assert len(tasks["step"]) == N and {t.status for t in tasks["step"]} == {"completed"}
    made = sorted(str(a.path) for t in tasks["step"] for a in t.outputs)
    assert made == sorted(str(wd / "out" / f"{i}.txt") for i in range(N))
    (blocked,) = tasks["block"]
    assert blocked.status == "started"


# -- a tracked script -----------------------------------------------------------------------------
SCRIPT = """
import os, sys
from pathlib import Path

import flowprov as fp

fp.track()
fp.Artifact.get(sys.argv[1]).cache()  # an input, noticed in the background
results = Path(sys.argv[2])
results.mkdir()
for i in range(5):
    (results / f"{i}.txt").write_text(f"{i}\\n")
    fp.Artifact(results / f"{i}.txt", description=f"result {i}").save()
fp.Artifact.get(sys.argv[3]).load()  # another input
os.kill(os.getpid(), 9)
"""


def test_tracked_script_killed_loses_nothing(instance, fp_env, run_flowprov):
    root = fp_env / "mydata"
    with fp.Run(transform=fp.Transform(name="upload", type="upload").save()):
        raw = fp.Artifact(write(root / "raw.txt", "reads\n")).save()
        table = fp.Artifact(write(root / "table.csv", "gene,n\nIFNG,3\n")).save()
    script = write(fp_env / "analysis.py", SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), raw.uid, str(root / "results"), table.uid],
        cwd=fp_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    out = run_flowprov("replay").stdout
    assert journals(fp_env) == [], out
    after = snapshot()
    run_flowprov("replay")
    assert snapshot() == after

    run = fp.Transform.filter(type="script").one().runs.one()
    assert run.status == "started"  # killed: unfinished
    assert sorted(a.key for a in run.outputs) == [f"results/{i}.txt" for i in range(5)]
    assert sorted(a.key for a in run.inputs) == ["raw.txt", "table.csv"]
