"""`flowprov status`: what runs now in every engine, and how a run whose process died is shown lost.

Real engines in real processes: a Snakemake workflow with the flowprov logger and a Prefect flow
run side by side, each holding a job that waits for a file the test writes; tracked scripts
SIGKILLed (same host: lost at once) or frozen while their run claims another host (lost once the
heartbeat stops); a Nextflow pipeline heard through the weblog (lost past its tasks' time limits).
Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flowprov as fp
import pytest
from flowprov.status import current_runs

from tests.conftest import wait_until

HEARTBEAT = "0.5"  # seconds: lost from "another host" after 4 × 0.5 s of silence


def _env(**extra) -> dict:
    return {**os.environ, "FLOWPROV_HEARTBEAT": HEARTBEAT, **extra}


def _status(run_flowprov, *args) -> dict:
    """`flowprov status --format json`, by run uid."""
    proc = run_flowprov("status", "--format", "json", *args)
    return {r["uid"]: r for r in json.loads(proc.stdout)}


def _by_name(run_flowprov, name: str, *args) -> dict | None:
    found = [r for r in _status(run_flowprov, *args).values() if r["name"] == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def _activity(name: str, **kw):
    found = [a for a in current_runs(**kw) if a.name == name]
    return found[0] if found else None


# -- Snakemake and Prefect, running at once ------------------------------------------------------
SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(3))

rule prep:
    output: "prep.txt"
    shell: "echo ready > {output}"

rule part:
    input: "prep.txt"
    output: "out/{i}.txt"
    shell: "while [ ! -e go ]; do sleep 0.1; done; echo {wildcards.i} > {output}"
"""

FLOW = """
import sys, time
from pathlib import Path

from flowprov.prefect import track
from prefect import flow, task


@task
def first() -> int:
    return 1


@task
def wait_for_go(n: int) -> int:
    while not Path("go").exists():
        time.sleep(0.1)
    return n + 1


@track()
@flow(name="waiting-flow")
def waiting() -> int:
    return wait_for_go(first())


if __name__ == "__main__":
    print("RESULT", waiting())
"""


def _prefect_env(tmp: Path) -> dict:
    return _env(
        PREFECT_HOME=str(tmp / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",
        PREFECT_LOGGING_TO_API_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )


def _snakemake_exe() -> str:
    beside = Path(sys.executable).with_name("snakemake")
    return str(beside) if beside.exists() else "snakemake"


def test_snakemake_and_prefect_shown_running_with_counts_then_finished(
    instance, fp_env, run_flowprov
):
    pytest.importorskip("snakemake")
    pytest.importorskip("prefect")
    wf = fp_env / "wf"
    wf.mkdir()
    (wf / "Snakefile").write_text(textwrap.dedent(SNAKEFILE).lstrip())
    fl = fp_env / "fl"
    fl.mkdir()
    (fl / "user_flow.py").write_text(FLOW)
    smk = subprocess.Popen(
        [_snakemake_exe(), "--cores", "1", "--logger", "flowprov"],
        cwd=wf,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pf = subprocess.Popen(
        [sys.executable, "user_flow.py"],
        cwd=fl,
        env=_prefect_env(fp_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Snakemake: `prep` done, a `part` waiting for "go", of 5 jobs (prep, 3 parts, `all`)
        def snakemake_running():
            a = _activity("wf")
            return a is not None and a.tasks.done == 1 and a.tasks.running == 1

        wait_until(snakemake_running, 180, "the workflow's first job done, the second running")

        def prefect_running():
            a = _activity("waiting-flow")
            return a is not None and a.tasks.done == 1 and a.tasks.running == 1

        wait_until(prefect_running, 300, "the flow's first task done, the second running")
        runs = _status(run_flowprov)
        (sm,) = [r for r in runs.values() if r["name"] == "wf"]
        (pr,) = [r for r in runs.values() if r["name"] == "waiting-flow"]
        assert (sm["kind"], sm["state"], sm["status"]) == ("snakemake", "running", "started")
        assert sm["tasks"] == {
            "done": 1,
            "running": 1,
            "queued": 0,
            "failed": 0,
            "unknown": 0,
            "total": 5,
        }
        assert sm["user"] == pr["user"] == fp.settings.instance.owner
        assert (pr["kind"], pr["state"]) == ("prefect", "running")
        assert pr["tasks"]["done"] == 1 and pr["tasks"]["running"] == 1
        assert pr["tasks"]["total"] is None  # Prefect does not say how many tasks will come
        # liveness facts: this host, the engine's own process; and it is alive
        assert (
            "its process" in sm["why"] and f"pid {smk.pid} " in sm["why"] and "alive" in sm["why"]
        )
        assert f"pid {pf.pid} " in pr["why"] and "alive" in pr["why"]
        # the heartbeat moves the last event on while the jobs wait
        before = _activity("wf").last_event
        wait_until(lambda: _activity("wf").last_event > before, 10, "a heartbeat")
        # the table too
        table = run_flowprov("status").stdout
        assert "wf" in table and "waiting-flow" in table and "1 done · 1 running / 5" in table

        (wf / "go").touch()
        (fl / "go").touch()
        assert smk.wait(180) == 0, smk.stdout.read()
        assert pf.wait(300) == 0, pf.stdout.read()
    finally:
        for p in (smk, pf):
            if p.poll() is None:
                p.kill()
                p.wait()
    runs = _status(run_flowprov)
    (sm,) = [r for r in runs.values() if r["name"] == "wf"]
    (pr,) = [r for r in runs.values() if r["name"] == "waiting-flow"]
    assert sm["state"] == "completed" and sm["tasks"]["done"] == 5 and sm["tasks"]["total"] == 5
    assert sm["tasks"]["running"] == 0 and sm["finished_at"] is not None
    assert pr["state"] == "completed" and pr["tasks"]["done"] == 2 and pr["tasks"]["running"] == 0
    # ended long enough ago: not shown with a shorter --since
    time.sleep(1.2)
    assert not [r for r in _status(run_flowprov, "--since", "1s").values() if r["name"] == "wf"]
    assert _status(run_flowprov, "--engine", "prefect").keys() == {pr["uid"]}
    assert _status(run_flowprov, "--user", "nobody-here") == {}


# -- tracked scripts -----------------------------------------------------------------------------
SCRIPT = """
import time
import flowprov as fp

fp.track()
print("TRACKING", fp.context.current_run().uid, flush=True)
time.sleep(120)
"""


def _start_script(fp_env: Path, name: str = "work.py") -> tuple[subprocess.Popen, str]:
    path = fp_env / name
    path.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(path)],
        cwd=fp_env,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("TRACKING"), line
    return proc, line.split()[1]


def test_a_sigkilled_script_is_lost_at_once_on_its_host(instance, fp_env, run_flowprov):
    proc, uid = _start_script(fp_env)
    try:
        run = _status(run_flowprov)[uid]
        assert (run["state"], run["kind"]) == ("running", "script")
        liveness = fp.Run.get(uid).runtime["liveness"]
        assert liveness["pid"] == proc.pid and liveness["heartbeat"] == float(HEARTBEAT)
        assert isinstance(liveness["pid_start"], int)
        # its heartbeat moves its last event on while it sleeps
        first = _activity("work.py").last_event
        wait_until(lambda: _activity("work.py").last_event > first, 10, "a heartbeat")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = _status(run_flowprov)[uid]
    assert run["state"] == "lost" and run["status"] == "started"  # the store still says started
    assert f"pid {proc.pid} " in run["why"] and "gone" in run["why"]
    assert fp.Run.get(uid).status == "started"  # lost is never written to the store
    assert "lost" in run_flowprov("status").stdout


def test_a_reused_pid_is_not_taken_for_the_run(instance, fp_env, run_flowprov):
    """The run's process is dead, but its pid now belongs to another process (here: the test's):
    the start time differs, so the run is lost, not running."""
    proc, uid = _start_script(fp_env)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from flowprov.events import RunAlive, RunRef

    facts = dict(fp.Run.get(uid).runtime["liveness"], pid=os.getpid())  # a live pid, reused
    started = fp.Run.get(uid).started_at
    instance.store.apply([RunAlive(run=RunRef(uid=uid), runtime={"liveness": facts}, at=started)])
    run = _status(run_flowprov)[uid]
    assert run["state"] == "lost" and f"pid {os.getpid()} " in run["why"]


def test_a_run_on_another_host_is_lost_when_its_heartbeat_stops(instance, fp_env, run_flowprov):
    """Its pid cannot be looked at from here: the heartbeat decides. Frozen (SIGSTOP: a node
    gone silent), it is lost after 4 intervals; thawed, it is running again (lost is a view)."""
    proc, uid = _start_script(fp_env)
    try:
        from flowprov.events import RunAlive, RunRef

        run = fp.Run.get(uid)
        facts = dict(run.runtime["liveness"], host="node-elsewhere")
        instance.store.apply(
            [RunAlive(run=RunRef(uid=uid), runtime={"liveness": facts}, at=run.started_at)]
        )
        time.sleep(3)  # longer than the silence limit: heartbeats kept it alive
        run = _status(run_flowprov)[uid]
        assert run["state"] == "running" and run["why"] is None
        proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: _activity("work.py").state == "lost", 15, "lost after the heartbeat")
        run = _status(run_flowprov)[uid]
        assert run["state"] == "lost" and "no heartbeat for" in run["why"]
        assert "every 0.5s" in run["why"]
        proc.send_signal(signal.SIGCONT)
        wait_until(lambda: _activity("work.py").state == "running", 15, "alive again")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_finished_script_beats_no_more_and_its_end_is_shown(instance, fp_env, run_flowprov):
    path = fp_env / "short.py"
    path.write_text("import time, flowprov as fp\nfp.track()\ntime.sleep(1.5)\n")
    subprocess.run([sys.executable, str(path)], cwd=fp_env, env=_env(), check=True, timeout=120)
    (run,) = [r for r in _status(run_flowprov).values() if r["name"] == "short.py"]
    assert run["state"] == "completed" and run["elapsed"] >= 1.5
    stored = fp.Run.get(run["uid"])
    assert stored.runtime == {"exit": {"code": 0}}  # the end replaces the liveness facts


def test_a_run_without_liveness_facts_is_lost_after_lost_after(instance, fp_env, run_flowprov):
    """Recorded by an older flowprov, or through the API without a heartbeat: nothing to judge
    by but silence, `--lost-after` (default 12 h)."""
    t = fp.Transform(name="old-style", type="script").save()
    run = fp.Run(transform=t).save()
    assert _status(run_flowprov)[run.uid]["state"] == "running"
    time.sleep(1.1)
    shown = _status(run_flowprov, "--lost-after", "1s")[run.uid]
    assert shown["state"] == "lost" and "no heartbeat to judge by" in shown["why"]


def test_bad_durations_are_one_line_errors(instance, run_flowprov):
    for args in (["--since", "soon"], ["--lost-after", "-3h"], ["--watch", "--interval", "0"]):
        proc = run_flowprov("status", *args, check=False)
        assert proc.returncode != 0
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1 and "flowprov" in err and "Traceback" not in err, err


def test_watch_refreshes_in_place(instance, fp_env):
    """`--watch` on a terminal draws the table again every interval, in place, until Ctrl-C."""
    import pty

    t = fp.Transform(name="watched", type="script").save()
    fp.Run(transform=t).save()
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowprov.cli", "status", "--watch", "--interval", "0.3s"],
        cwd=fp_env,
        env=_env(COLUMNS="200", LINES="50", TERM="xterm"),
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    out = b""
    deadline = time.monotonic() + 60
    while out.count(b"watched") < 4 and time.monotonic() < deadline:
        try:
            out += os.read(main, 65536)
        except OSError:
            break
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    os.close(main)
    assert out.count(b"watched") >= 4  # drawn again and again
    assert b"\x1b[" in out  # in place: the cursor moved back over the last drawing


# -- Nextflow, through the weblog ----------------------------------------------------------------
def _translate_and_apply(instance, envelopes: list[dict]) -> None:
    translate = pytest.importorskip("flowprov_nextflow.weblog.translate")
    from flowprov_nextflow.weblog.envelope import parse_body

    tr = translate.Translator()
    try:
        events = tr.translate([parse_body(json.dumps(e).encode()) for e in envelopes])
    except NotImplementedError:
        pytest.skip("the weblog Translator has not landed yet")
    instance.store.apply(events)


def test_nextflow_pipeline_running_then_lost_past_its_time_limits(instance, fp_env):
    """No heartbeat from Nextflow: while tasks run, the next event is due by the end of their time
    limits (`time` of the TraceRecord, 1 h in these streams) plus a grace; judged at chosen
    moments (the fixture's events are from the past)."""
    streams = pytest.importorskip("tests.nextflow.weblog_streams")
    envelopes = streams.fake_run(3, "8c1e4a0f-0000-4000-8000-000000000001", "happy_turing")
    kinds = [e["event"] for e in envelopes]
    last_start = max(i for i, k in enumerate(kinds) if k == "process_started")
    # up to the last task's start: the pipeline runs, none of its tasks has finished
    _translate_and_apply(instance, envelopes[: last_start + 1])
    (a,) = [x for x in current_runs(since=ALL) if x.kind == "nextflow"]
    assert a.status == "started" and a.tasks.running == 3 and a.tasks.total is None
    limits = [r.params["time_ms"] for r in fp.Run.filter(parent__uid=a.uid, status="started")]
    assert limits == [3_600_000] * 3
    last = a.last_event
    assert _state(a.uid, last + timedelta(minutes=5)) == "running"
    # the last task started at `last`: its hour, then 15 minutes' grace
    assert _state(a.uid, last + timedelta(minutes=74)) == "running"
    lost = _activity_at(a.uid, last + timedelta(minutes=76))
    assert lost.state == "lost" and "time limits" in lost.why
    assert lost.elapsed == (last - a.started_at).total_seconds()  # to its last sign of life
    _translate_and_apply(instance, envelopes)  # the rest: the tasks and the pipeline complete
    (a,) = [x for x in current_runs(since=ALL) if x.kind == "nextflow"]
    assert a.state == "completed" and a.tasks.running == 0 and a.tasks.done == 3
    assert a.user is not None


def test_nextflow_without_time_limits_is_lost_after_lost_after(instance, fp_env):
    streams = pytest.importorskip("tests.nextflow.weblog_streams")
    envelopes = streams.fake_run(2, "8c1e4a0f-0000-4000-8000-000000000002", "sad_curie")
    for e in envelopes:
        if "trace" in e:
            e["trace"].pop("time", None)  # processes with no `time` directive
    kinds = [e["event"] for e in envelopes]
    _translate_and_apply(instance, envelopes[: kinds.index("process_started") + 1])
    (a,) = [x for x in current_runs(since=ALL) if x.kind == "nextflow"]
    last = a.last_event
    assert _state(a.uid, last + timedelta(hours=11)) == "running"  # default: 12 h
    assert _state(a.uid, last + timedelta(hours=13)) == "lost"
    assert _state(a.uid, last + timedelta(hours=2), lost_after=3600) == "lost"


ALL = 100 * 365 * 86400.0


def _activity_at(uid: str, now: datetime, **kw):
    (a,) = [x for x in current_runs(now=now.astimezone(UTC), since=ALL, **kw) if x.uid == uid]
    return a


def _state(uid: str, now: datetime, **kw) -> str:
    return _activity_at(uid, now, **kw).state
