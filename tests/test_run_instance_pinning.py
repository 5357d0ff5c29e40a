"""A tracked run finishes where it started, whatever FLOWPROV_INSTANCE says later.

A script tracked under instance `a` that points FLOWPROV_INSTANCE at instance `b` midway: the
run's end (however the script ends), its outputs and its inputs stay in `a` — a run cannot have
an end, outputs or inputs in another database. What the script saves after its run is finished,
outside any run, follows the environment to `b`. An artifact read through `b` while the run lives
in `a` is not a record of `a`: it is not recorded as an input anywhere, and a warning says so.

Real scripts in real subprocesses, two real instances on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import flowprov as fp
import pytest
from flowprov.errors import ValidationError

from tests.conftest import write

PROLOGUE = """\
import os
import sys
from pathlib import Path

import flowprov as fp

run = fp.track()
print(run.uid, flush=True)
os.environ["FLOWPROV_INSTANCE"] = "b"  # midway, the script points flowprov elsewhere
"""


@pytest.fixture
def two_instances(fp_env, db_url, backend, request, monkeypatch):
    """Instances `a` and `b` (each its own database and storage folder) on the test's backend;
    FLOWPROV_INSTANCE=a."""
    from flowprov import instance as inst_mod

    b_db = None
    pg = None
    if backend == "postgresql":
        pg = request.getfixturevalue("postgres")
        b_name = pg.new_database()
        b_db = pg.url(b_name)
    inst_mod.init(fp_env / "a-data", db=db_url, name="a")
    inst_mod.init(fp_env / "b-data", db=b_db, name="b")
    monkeypatch.setenv("FLOWPROV_INSTANCE", "a")
    yield fp_env
    if pg is not None:
        inst_mod.reset_cache()  # close pooled connections before the drop
        pg.drop_database(b_name)


def use(name: str, monkeypatch) -> None:
    """Point this (the test's) process at an instance to look at what it holds."""
    monkeypatch.setenv("FLOWPROV_INSTANCE", name)


def _default_signals() -> None:
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, signal.SIG_DFL)


def _script(folder: Path, body: str) -> Path:
    return write(folder / "step.py", PROLOGUE + textwrap.dedent(body))


def _run(script: Path, expect: int = 0) -> tuple[str, list[str]]:
    """Run the script in its folder: (its stderr, the lines it printed — the run's uid first)."""
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=script.parent,
        preexec_fn=_default_signals,
    )
    assert proc.returncode == expect, proc.stderr
    return proc.stderr, proc.stdout.split()


def _nothing_in_b(monkeypatch) -> None:
    use("b", monkeypatch)
    assert fp.Run.filter().count() == 0
    assert fp.Artifact.filter(run__isnull=False).count() == 0


# -- (a)-(c): the run's end, however the script ends ---------------------------------------------
ENDINGS = {
    "normal exit": ("x = 1\n", 0, "completed", None),
    "fp.finish()": ("fp.finish()\n", 0, "completed", None),
    "sys.exit(3)": ("sys.exit(3)\n", 3, "failed", "exit code 3"),
    "uncaught exception": ("raise ValueError('bad sample sheet')\n", 1, "failed", "ValueError"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_the_run_ends_in_the_instance_it_started_in(two_instances, monkeypatch, ending):
    body, code, status, error = ENDINGS[ending]
    stderr, (uid, *_) = _run(_script(two_instances / "work", body), expect=code)
    run = fp.Run.get(uid)  # in a
    assert run.status == status, stderr
    assert run.finished_at is not None
    if error is None:
        assert run.error is None
    else:
        assert error in run.error
    assert "could not record the end" not in stderr and "cannot write" not in stderr
    _nothing_in_b(monkeypatch)


def test_sigterm_after_the_switch_aborts_the_run_where_it_lives(two_instances, monkeypatch):
    body = "import time\nprint('ready', flush=True)\ntime.sleep(60)\n"
    script = _script(two_instances / "work", body)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=script.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )
    uid = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    run = fp.Run.get(uid)
    assert run.status == "aborted" and run.error == "terminated by SIGTERM", stderr
    _nothing_in_b(monkeypatch)


def test_a_relative_instance_path_still_names_the_instance_after_a_chdir(two_instances):
    """FLOWPROV_INSTANCE as a path relative to where the script started; the script then changes
    its working folder: the run still ends, and its output lands, where it started."""
    script = write(
        two_instances / "work" / "step.py",
        """\
import os

import flowprov as fp

run = fp.track()
print(run.uid, flush=True)
os.chdir("/")
with open(os.path.join(os.path.dirname(__file__), "out.txt"), "w") as f:
    f.write("made elsewhere")
print(fp.Artifact(os.path.join(os.path.dirname(__file__), "out.txt")).save().uid, flush=True)
""",
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=two_instances,
        env={**os.environ, "FLOWPROV_INSTANCE": "config/instances/a.yaml"},
    )
    assert proc.returncode == 0, proc.stderr
    uid, out_uid = proc.stdout.split()
    run = fp.Run.get(uid)
    assert run.status == "completed", proc.stderr
    assert [a.uid for a in run.outputs] == [out_uid]


# -- (d): what the run saves and reads after the switch ------------------------------------------
def test_outputs_and_inputs_after_the_switch_stay_with_the_run(two_instances, monkeypatch):
    """Saved after the switch, inside the run: an output of the run, in a (bytes in a's storage).
    Read before the switch: a's input. Read through b after it: no input anywhere, a warning."""
    work = two_instances / "work"
    a_input = fp.Artifact(write(work / "in-a.txt", "a's sample sheet"), key="in-a.txt").save()
    use("b", monkeypatch)
    b_input = fp.Artifact(write(work / "in-b.txt", "b's sample sheet"), key="in-b.txt").save()
    use("a", monkeypatch)
    script = write(
        work / "step.py",
        f"""\
import os
from pathlib import Path

import flowprov as fp

run = fp.track()
print(run.uid, flush=True)
fp.Artifact.get("{a_input.uid}").cache()  # a's, read while the environment names a: an input
os.environ["FLOWPROV_INSTANCE"] = "b"
Path("made.txt").write_text("made after the switch")
made = fp.Artifact("made.txt", description="made after the switch").save()
print(made.uid, flush=True)
fp.Artifact.get("{b_input.uid}").cache()  # found and read through b
Path("made2.txt").write_text("saved with fp.save")
fp.save([fp.Artifact("made2.txt", description="saved with fp.save")])
""",
    )
    stderr, (uid, made_uid) = _run(script)
    run = fp.Run.get(uid)
    assert run.status == "completed", stderr
    made = fp.Artifact.get(made_uid)
    assert made.run == run
    assert {a.description for a in run.outputs} == {"made after the switch", "saved with fp.save"}
    assert Path(made.path).read_text() == "made after the switch"
    assert Path(made.path).is_relative_to(two_instances / "a-data")
    assert [a.uid for a in run.inputs] == [a_input.uid]
    assert f"Artifact('{b_input.uid}') was read through instance 'b'" in stderr
    assert "not recorded as its input" in stderr
    use("b", monkeypatch)
    assert fp.Run.filter().count() == 0
    assert [a.uid for a in fp.Artifact.filter()] == [b_input.uid]  # nothing saved into b
    assert fp.Artifact.get(b_input.uid).input_of.count() == 0


def test_a_save_after_the_run_is_finished_follows_the_environment(two_instances, monkeypatch):
    """Outside any run, a save goes to the instance the environment names (here b)."""
    script = _script(
        two_instances / "work",
        """
        fp.finish()
        Path("later.txt").write_text("after the run")
        print(fp.Artifact("later.txt", key="later.txt").save().uid, flush=True)
        """,
    )
    stderr, (uid, later_uid) = _run(script)
    assert fp.Run.get(uid).status == "completed", stderr
    assert fp.Artifact.filter(uid=later_uid).count() == 0  # not in a
    use("b", monkeypatch)
    later = fp.Artifact.get(later_uid)
    assert later.run is None and Path(later.path).is_relative_to(two_instances / "b-data")
    assert fp.Run.filter().count() == 0


# -- `with Run`, in this process -------------------------------------------------------------------
def test_a_with_run_block_ends_where_it_started(two_instances, monkeypatch):
    """A `with Run` block, and a child run started after the switch: a child lives with its
    parent (the link cannot cross databases)."""
    t = fp.Transform(name="QC", type="pipeline").save()
    with fp.Run(transform=t) as run:
        use("b", monkeypatch)
        out = fp.Artifact(write(two_instances / "qc.txt", "qc ok")).save()
        step = fp.Transform(name="QC step", type="pipeline")  # saved with its run
        with fp.Run(transform=step, parent=run) as child:
            fp.Artifact(write(two_instances / "step.txt", "step ok")).save()
    assert run.status == "completed" and run.finished_at is not None
    assert child.status == "completed" and step.uid is not None
    assert out.run_id == run.id
    assert fp.Run.filter().count() == 0  # b
    assert fp.Transform.filter(name="QC step").count() == 0
    use("a", monkeypatch)
    assert fp.Run.get(run.uid).status == "completed"
    assert [a.uid for a in fp.Run.get(run.uid).outputs] == [out.uid]
    assert fp.Run.get(child.uid).parent == run
    assert fp.Run.get(child.uid).transform == step
    assert [a.description for a in fp.Run.get(child.uid).outputs] == [None]


def test_artifacts_of_runs_in_two_instances_are_not_saved_together(two_instances, monkeypatch):
    """One batch, one transaction, one database: runs in two instances are refused, nothing is
    written."""
    t = fp.Transform(name="QC", type="pipeline").save()
    in_a = fp.Run(transform=t).save()
    use("b", monkeypatch)
    in_b = fp.Run(transform=fp.Transform(name="QC", type="pipeline").save()).save()
    arts = [
        fp.Artifact(write(two_instances / "x.txt", "x"), run=in_a),
        fp.Artifact(write(two_instances / "y.txt", "y"), run=in_b),
    ]
    with pytest.raises(ValidationError, match="different instances"):
        fp.save(arts)
    assert fp.Artifact.filter().count() == 0
    use("a", monkeypatch)
    assert fp.Artifact.filter().count() == 0


# -- a Sink given no instance pins the one of its first event -------------------------------------
def test_a_sink_stays_with_the_instance_of_its_first_event(two_instances, monkeypatch):
    """Even with no journal (the cache folder cannot be written), a Sink made for "the current
    instance" sends a run's end to where it sent the run's start."""
    from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec
    from flowprov.spool import Sink

    (two_instances / "not-a-folder").write_text("")
    monkeypatch.setenv("FLOWPROV_CACHE_DIR", str(two_instances / "not-a-folder"))
    sink = Sink(two_instances / "spool.jsonl", source="test")
    started = RunStarted(
        uid="r" * 20, transform=TransformSpec(name="align", type="rule"), engine="test"
    )
    sink.send([started])
    use("b", monkeypatch)
    sink.send([RunFinished(run=RunRef(uid="r" * 20), status="completed")])
    assert sink.spooled == 0 and not (two_instances / "spool.jsonl").exists()
    assert fp.Run.filter().count() == 0  # b
    use("a", monkeypatch)
    assert fp.Run.get("r" * 20).status == "completed"
