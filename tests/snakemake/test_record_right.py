"""Issue 12 on real Snakemake workflows: every path its own record, temp() files removed on
purpose, failed jobs' logs, every ending as it was, and a Snakemake the plugin does not know."""

import os
import re
import signal
import subprocess
import time

import flowprov as fp
import pytest

from tests.snakemake.conftest import host_key

COUNT = """
SAMPLES = ["A", "B", "C"]

rule all:
    input: "summary.txt"

rule count:
    output: "counts/{s}.txt"
    log: "logs/count/{s}.log"
    shell: "echo {wildcards.s} > {output}; echo ok > {log}"

rule summarize:
    input: counts=expand("counts/{s}.txt", s=SAMPLES), logs=expand("logs/count/{s}.log", s=SAMPLES)
    output: "summary.txt"
    shell: "cat {input.counts} > {output}"
"""

ONE = """
rule s1:
    output: "out/s1.txt"
    shell: "echo ok > {output}"
"""


def keys(artifacts) -> list[str]:
    return sorted(a.key for a in artifacts)


def test_same_bytes_at_many_paths_each_its_own_artifact(undeclared_workflow, instance):
    """Three logs holding `ok\\n`, and a second workflow elsewhere writing `ok\\n`: four places,
    four artifacts, each made by its own job and found by its key (its absolute location: no one
    declared these folders as storage, and the plugin declares none)."""
    first, second = undeclared_workflow("counting"), undeclared_workflow("elsewhere")
    first.write("Snakefile", COUNT)
    second.write("Snakefile", ONE)
    first.run()
    second.run()

    logs = {}
    for s in "ABC":
        log = fp.Artifact.filter(key=host_key(first.root / f"logs/count/{s}.log")).one()
        assert log.storage.root == "/" and log.path.read_text() == "ok\n"
        assert log.run.transform.name == "count" and log.run.params["wildcards"] == {"s": s}
        assert keys(log.run.outputs) == sorted(
            host_key(first.root / p) for p in (f"counts/{s}.txt", f"logs/count/{s}.log")
        )
        logs[s] = log
    assert len({a.run for a in logs.values()}) == 3 and len({a.hash for a in logs.values()}) == 1
    summarize = fp.Run.filter(transform__name="summarize").one()
    assert set(summarize.inputs) >= set(logs.values())  # read exactly those places

    s1 = fp.Artifact.filter(key=host_key(second.root / "out/s1.txt")).one()
    assert s1.hash == logs["B"].hash and s1 not in logs.values()
    assert s1.run.transform.name == "s1" and list(s1.run.outputs) == [s1]
    # the two workflows are two pipelines (both files are called "Snakefile")
    pipelines = fp.Transform.filter(type="pipeline").all()
    assert sorted(t.key for t in pipelines) == sorted(
        str(w.root / "Snakefile") for w in (first, second)
    )
    # no storage root per workflow folder: the instance's own, and the host root
    assert sorted(s.root for s in fp.Storage.filter()) == ["/", instance.storage.root]


def test_a_workflow_in_a_repository_is_keyed_by_its_remote_and_path(workflow):
    subprocess.run(["git", "init", "-q", str(workflow.root)], check=True)
    subprocess.run(
        ["git", "-C", str(workflow.root), "remote", "add", "origin", "git@github.com:lab/rna.git"],
        check=True,
    )
    workflow.write("workflow/Snakefile", ONE)
    workflow.run("-s", "workflow/Snakefile")
    pipeline = fp.Transform.filter(type="pipeline").one()
    assert pipeline.key == "github.com/lab/rna/workflow/Snakefile"
    assert fp.Transform.filter(type="rule").one().key == pipeline.key + ":s1"


TEMP = """
rule all:
    input: "final.txt"

rule make_temp:
    output: temp("intermediate.txt")
    shell: "echo intermediate > {output}"

rule make_temp_dir:
    output: temp(directory("scratch"))
    shell: "mkdir -p scratch && echo 1 > scratch/one.txt"

rule final:
    input: "intermediate.txt", "scratch"
    output: "final.txt"
    shell: "cat {input[0]} scratch/one.txt > {output}"
"""


@pytest.mark.parametrize("quiet", [False, True], ids=["default", "quiet"])
def test_temp_files_snakemake_removed_are_recorded_as_removed(workflow, quiet):
    workflow.write("Snakefile", TEMP)
    workflow.run(*(["-q"] if quiet else []))
    assert not (workflow.root / "intermediate.txt").exists()
    for key, rule in (("intermediate.txt", "make_temp"), ("scratch", "make_temp_dir")):
        temp = fp.Artifact.filter(key=key).one()
        assert temp.removed == "temp" and temp.removed_at is not None
        assert temp.run.transform.name == rule
        assert temp in list(fp.Run.filter(transform__name="final").one().inputs)
    final = fp.Artifact.filter(key="final.txt").one()
    assert final.removed is None and final.path.read_text() == "intermediate\n1\n"


def test_stale_after_a_rerun_with_nothing_to_do(workflow, run_flowprov):
    """Right after a successful rerun ("Nothing to be done"), nothing is stale: the temp() files
    Snakemake deleted are removed on purpose, not missing. (Needs `stale` to honour `removed`.)"""
    workflow.write("Snakefile", TEMP)
    workflow.run()
    rerun = workflow.run()
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    proc = run_flowprov("stale", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing is stale" in proc.stdout
    assert run_flowprov("verify", check=False).returncode == 0


def test_stale_after_a_rerun_that_rewrote_outputs_with_the_same_bytes(workflow, run_flowprov):
    """An input changes, the rerun rewrites the downstream files — some with the bytes they
    already held: they are the new run's now, and nothing is stale (nor missing: temp)."""
    workflow.write(
        "Snakefile",
        """
        rule all:
            input: "lines.txt"

        rule clean:
            input: "data/reads.txt"
            output: temp("clean.txt")
            shell: "tr a-z A-Z < {input} > {output}"

        rule count:
            input: "clean.txt"
            output: "lines.txt"
            shell: "wc -l < {input} > {output}"
        """,
    )
    workflow.write("data/reads.txt", "acgt\nttga\n")
    workflow.run()
    first = fp.Artifact.filter(key="lines.txt").one()
    workflow.write("data/reads.txt", "acgt\ngggg\n")  # new bytes, the same number of lines
    workflow.run()
    rerun = workflow.run()
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    lines = fp.Artifact.filter(key="lines.txt").one()  # one version: the same bytes
    assert lines == first and lines.path.read_text() == "2\n"
    proc = run_flowprov("stale", check=False)
    assert proc.returncode == 0 and "nothing is stale" in proc.stdout, proc.stdout


def test_failed_job_keeps_its_log_and_the_error_once(workflow):
    workflow.write(
        "Snakefile",
        """
        rule all:
            input: "b.txt"

        rule a:
            output: "a.txt"
            log: "logs/a.log"
            shell: "echo a > {output}; echo fine > {log}"

        rule b:
            input: "a.txt"
            output: "b.txt"
            log: "logs/b.log"
            shell: "echo partial > {output}; echo 'reads: 0, giving up' > {log}; exit 3"
        """,
    )
    assert workflow.run(check=False).returncode != 0
    b = fp.Run.filter(transform__name="b").one()
    assert b.status == "failed" and "exit status 3" in b.error
    (log,) = b.outputs  # the log, not the partial output Snakemake removed
    assert log.key == "logs/b.log" and log.path.read_text() == "reads: 0, giving up\n"
    assert log.run == b and keys(fp.Run.filter(transform__name="a").one().outputs) == [
        "a.txt",
        "logs/a.log",
    ]
    wf_run = fp.Run.filter(transform__type="pipeline").one()
    assert wf_run.status == "failed"
    lines = [line for line in wf_run.error.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), wf_run.error  # every line of it once
    assert wf_run.error.count("did not complete successfully") == 1


RUN_BLOCK = """
    run:
        # one line per sample, header first
        if input:
            with open(output[0], "w") as f:
                f.write("sample\\n")
        else:
            raise ValueError(
                "no input"
            )

        total = sum([
            1,
            2,
        ])
        shell("echo {total} > {output[1]}")
"""


def test_run_block_source_is_stored_as_written(workflow):
    workflow.write(
        "Snakefile",
        'rule all:\n    input: "t.txt", "n.txt"\n\n'
        'rule write:\n    input: "Snakefile"\n    output: "t.txt", "n.txt"\n'
        + RUN_BLOCK.lstrip("\n")
        + '\nrule other:\n    output: "o.txt"\n    shell: "touch {output}"\n',
    )
    workflow.run()
    rule = fp.Transform.filter(type="rule", name="write").one()
    body = RUN_BLOCK.split("    run:\n", 1)[1].rstrip("\n")  # comments, blank line, else: too
    assert rule.source_code == "run:\n" + body


VERSION_10 = """
import snakemake
snakemake.__version__ = "10.0.0"  # as if a Snakemake 10 were installed
"""

NO_GET_RULE = """
import snakemake.api  # noqa: F401 (imports snakemake.workflow without a cycle)
from snakemake.workflow import Workflow
del Workflow.get_rule  # an internal the plugin reads, gone in this "release"
"""


def flowprov_lines(stderr: str) -> list[str]:
    """flowprov's own messages (Snakemake's banner also names the logger).

    Found anywhere in a line: Snakemake writes "Building DAG of jobs..." and its newline in two
    writes, so our warning can land between them (seen once in CI on PostgreSQL).
    """
    return re.findall(r"flowprov: [^\n]*", stderr)


def test_a_snakemake_outside_the_tested_range_warns_once_and_records(workflow, shim):
    workflow.write("Snakefile", ONE)
    proc = workflow.run(env=shim(VERSION_10))
    lines = flowprov_lines(proc.stderr)
    assert len(lines) == 1 and "10.0.0" in lines[0] and "tested" in lines[0], proc.stderr
    job = fp.Run.filter(transform__name="s1").one()
    assert job.status == "completed" and keys(job.outputs) == ["out/s1.txt"]


def test_missing_internals_warn_once_and_the_workflow_runs_unrecorded(workflow, shim):
    workflow.write("Snakefile", COUNT)
    proc = workflow.run(env=shim(NO_GET_RULE))
    assert (workflow.root / "summary.txt").read_text() == "A\nB\nC\n"  # the workflow did its work
    lines = flowprov_lines(proc.stderr)
    assert len(lines) == 1 and "get_rule" in lines[0] and "not recorded" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert fp.Run.filter().count() == 0 and fp.Artifact.filter().count() == 0


SLOW = """
rule all:
    input: "c.txt"

rule a:
    output: "a.txt"
    shell: "echo a > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    log: "logs/b.log"
    shell: "echo started > {log}; for i in $(seq 600); do [ -f go ] && break; sleep 0.05; done; echo b > {output}"

rule c:
    input: "b.txt"
    output: "c.txt"
    shell: "echo c > {output}"
"""


def _interrupt(workflow, sig: signal.Signals, whole_group: bool) -> int:
    """Run SLOW, send `sig` while job b runs (to Snakemake alone, or to its whole process group
    as Ctrl-C in a terminal does), then let b go on; Snakemake's exit status."""
    workflow.write("Snakefile", SLOW)
    proc = subprocess.Popen(
        workflow.command(),
        cwd=workflow.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (workflow.root / "logs/b.log").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        if whole_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        time.sleep(1.0)  # Snakemake has seen it before the job can end
        (workflow.root / "go").touch()
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode


@pytest.mark.parametrize(
    "sig,whole_group",
    [
        (signal.SIGTERM, False),
        (signal.SIGTERM, True),  # SLURM's scancel signals every process of the job
        (signal.SIGINT, False),
        (signal.SIGINT, True),  # Ctrl-C in a terminal signals the foreground process group
    ],
    ids=["SIGTERM", "scancel", "SIGINT", "ctrl-c"],
)
def test_an_interrupted_workflow_is_recorded_as_it_ended(workflow, sig, whole_group):
    assert _interrupt(workflow, sig, whole_group) != 0
    name = sig.name
    wf_run = fp.Run.filter(transform__type="pipeline").one()
    assert wf_run.status == "aborted" and name in wf_run.error, (wf_run.status, wf_run.error)
    assert wf_run.runtime["exit"] == {"signal": name} and wf_run.finished_at
    jobs = {j.transform.name: j for j in wf_run.children}
    assert "c" not in jobs  # never started
    assert jobs["a"].status == "completed" and keys(jobs["a"].outputs) == ["a.txt"]
    b = jobs["b"]
    if sig == signal.SIGTERM and not whole_group:  # Snakemake lets running jobs finish, then stops
        assert b.status == "completed" and keys(b.outputs) == ["b.txt", "logs/b.log"]
    else:  # the job was killed, or Snakemake gave up on it: its output is not trusted
        assert b.status == "aborted" and name in b.error, (b.status, b.error)
        assert keys(b.outputs) == ["logs/b.log"]
    assert fp.Run.filter(status="started").count() == 0


BUILDING = """
import os, time

def slow(wildcards):  # Snakemake calls this while it builds the DAG, before its scheduler runs
    open("building", "w").close()
    for _ in range(1200):
        if os.path.exists("go"):
            break
        time.sleep(0.05)
    return "a.txt"

rule all:
    input: slow

rule a:
    output: "a.txt"
    shell: "echo a > {output}"
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_that_kills_snakemake_outright_is_recorded(workflow, sig):
    """Before its scheduler starts (a big DAG takes minutes), SIGTERM kills Snakemake at once, as
    SIGHUP always does: the workflow run is recorded as ended by it, and Snakemake still dies of
    the signal."""
    workflow.write("Snakefile", BUILDING)
    proc = subprocess.Popen(
        workflow.command(),
        cwd=workflow.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # as from a terminal: a test run under nohup would hand Snakemake an ignored SIGHUP
        preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not (workflow.root / "building").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -sig  # died of it, as without flowprov
    wf_run = fp.Run.filter(transform__type="pipeline").one()
    assert wf_run.status == "aborted" and wf_run.error == f"terminated by {sig.name}"
    assert wf_run.runtime["exit"] == {"signal": sig.name} and wf_run.finished_at
    assert wf_run.children.count() == 0 and not (workflow.root / "a.txt").exists()
