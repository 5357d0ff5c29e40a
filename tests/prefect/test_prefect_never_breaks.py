"""flowprov never breaks the user's flow: not a Prefect it was not tested with (issue 12, point
14), not an unreachable store.

Each case is a real flow in a fresh Python process, as a user runs it; for the version cases its
`sitecustomize` changes Prefect before the user's module imports it: a newer version number, or an
engine internal flowprov hooks removed.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import flowprov as fp

FLOW = """
import sys
from pathlib import Path

from flowprov.prefect import track
from prefect import flow, task


@task
def double(path: Path) -> Path:
    out = path.with_name("double.txt")
    out.write_text(path.read_text() * 2)
    return out


@track()
@flow
def doubling(path: Path) -> Path:
    return double(path)


@track()
@flow
def second(path: Path) -> Path:
    return double(path)


if __name__ == "__main__":
    print("RESULT", doubling(Path(sys.argv[1])).read_text().strip(), second(Path(sys.argv[1])).name)
"""


def run_flow(tmp: Path, shim: str = "") -> subprocess.CompletedProcess:
    (tmp / "shim").mkdir()
    (tmp / "shim" / "sitecustomize.py").write_text(textwrap.dedent(shim))
    (tmp / "user_flow.py").write_text(FLOW)
    (tmp / "in.txt").write_text("ab\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp / "shim"), *sys.path]))
    proc = subprocess.run(
        [sys.executable, "user_flow.py", str(tmp / "in.txt")],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT ab\nab double.txt" in proc.stdout  # the flows ran and returned their results
    return proc


def flowprov_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "flowprov:" in line or "flowprov (" in line]


def test_a_newer_prefect_gets_one_warning_and_is_recorded(instance, fp_env):
    proc = run_flow(
        fp_env,
        """
        import prefect
        prefect.__version__ = "3.10.0"
        """,
    )
    (warning,) = flowprov_warnings(proc.stderr)
    assert "Prefect 3.10.0" in warning and "tested" in warning
    # flowprov tried, and the internals it hooks were there: both flows are recorded
    runs = fp.Run.filter(transform__type="flow").all()
    assert sorted(r.transform.name for r in runs) == ["doubling", "second"]
    assert {r.status for r in runs} == {"completed"}
    assert fp.Run.filter(transform__name="double").count() == 2


def test_missing_prefect_internals_one_warning_and_the_flow_runs_unrecorded(instance, fp_env):
    proc = run_flow(
        fp_env,
        """
        import prefect.task_engine
        del prefect.task_engine.AsyncTaskRunEngine.call_hooks  # as if a release renamed it
        """,
    )
    (warning,) = flowprov_warnings(proc.stderr)
    assert "AsyncTaskRunEngine.call_hooks" in warning and "not recorded" in warning
    assert fp.Run.filter().count() == 0  # nothing half-recorded (flows without their tasks)


def test_store_unreachable_one_warning_the_flow_runs_then_replay(instance, fp_env, run_flowprov):
    from flowprov import config as C
    from flowprov import instance as inst_mod

    good = C.load_instance_config(instance.config_path)
    C.save_instance_config(good.copy(db="postgresql://nobody@127.0.0.1:9/none"), make_current=False)
    inst_mod.reset_cache()
    try:
        proc = run_flow(fp_env)
    finally:
        C.save_instance_config(good, make_current=False)  # the database is back
        inst_mod.reset_cache()
    (warning,) = flowprov_warnings(proc.stderr)
    assert "cannot write to the provenance store" in warning and "`flowprov replay`" in proc.stderr
    assert fp.Run.filter().count() == 0
    run_flowprov("replay")
    run_flowprov("replay")  # nothing left, nothing doubled
    inst_mod.reset_cache()
    runs = fp.Run.filter().all()
    assert sorted(r.transform.name for r in runs) == ["double", "double", "doubling", "second"]
    assert {r.status for r in runs} == {"completed"}
    (made,) = fp.Artifact.filter(key__endswith="double.txt", storage__root="/")
    assert made.path == fp_env / "double.txt" and made.output_of.count() == 2


def test_the_prefect_extra_does_not_cap_prefect():
    import tomllib

    from packaging.requirements import Requirement

    meta = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (req,) = [Requirement(r) for r in meta["project"]["optional-dependencies"]["prefect"]]
    assert req.name == "prefect"
    # installing flowprov never downgrades a lab's Prefect
    assert not [s for s in req.specifier if s.operator in ("<", "<=", "==", "~=", "===")]


def test_the_installed_prefect_is_in_the_tested_range():
    """The suite runs against the newest Prefect installable; when that is newer than TESTED and
    this suite passes, TESTED moves up (until then users of it get the one warning)."""
    import prefect
    from flowprov_prefect._engine import TESTED, _version

    assert TESTED[0] <= _version(prefect.__version__) <= TESTED[1]
