"""Headless notebook runs find their notebook: `jupyter nbconvert --execute`, `jupyter execute`,
papermill and nbclient, for real; when the notebook cannot be known, the error says so and names
no file that is not the one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import flowprov as fp
import pytest

from tests.test_context import _notebook

BIN = Path(sys.executable).parent
TRACK = "import flowprov as fp\nrun = fp.track()"


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.pop("JPY_SESSION_NAME", None)
    env.update(extra)
    return env


def _jupyter(*args: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "jupyter"), *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _the_notebook(path: Path):
    return fp.Transform.filter(key=path.resolve().as_posix()).one()


def _analysis(folder: Path, title: str = "QC analysis", extra: str = "x = 1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return _notebook(folder / "analysis.ipynb", title, [TRACK, extra, "fp.finish()"])


def test_jupyter_nbconvert_execute_as_the_readme_runs_it(instance, fp_env):
    nb = _analysis(fp_env / "examples" / "project_flow")
    # from another folder, with a relative path, as examples/project_flow/README.md says
    proc = _jupyter(
        "nbconvert", "--execute", "--to", "notebook", "examples/project_flow/analysis.ipynb",
        cwd=fp_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    t = _the_notebook(nb)
    assert t.type == "notebook" and t.name == "QC analysis"
    assert t.runs.one().status == "completed"
    # the executed copy nbconvert wrote next to it holds the same code: not taken for it later
    assert (nb.parent / "analysis.nbconvert.ipynb").is_file()
    proc = _jupyter("nbconvert", "--execute", "--to", "notebook", "analysis.ipynb", cwd=nb.parent)
    assert proc.returncode == 0, proc.stderr
    assert t.runs.count() == 2 and fp.Transform.filter(type="notebook").count() == 1


def test_jupyter_execute(sqlite_instance, fp_env):
    nb = _analysis(fp_env / "nb")
    proc = _jupyter("execute", "nb/analysis.ipynb", cwd=fp_env)
    assert proc.returncode == 0, proc.stderr
    assert _the_notebook(nb).runs.one().status == "completed"
    proc = _jupyter("execute", "--output={notebook_name}-run", "analysis", cwd=nb.parent)
    assert proc.returncode == 0, proc.stderr  # the suffix left out, as `jupyter execute` allows
    assert _the_notebook(nb).runs.count() == 2


def test_papermill_records_the_input_notebook_not_its_output(sqlite_instance, fp_env):
    import nbformat

    (fp_env / "templates").mkdir()
    nb = _notebook(
        fp_env / "templates" / "analysis.ipynb",
        "QC analysis",
        ["sample = 'A'", TRACK, "fp.finish()"],
    )
    parametrised = nbformat.read(nb, as_version=4)
    parametrised.cells[1].metadata["tags"] = ["parameters"]  # after the title cell
    nbformat.write(parametrised, nb)
    (fp_env / "out").mkdir()
    proc = subprocess.run(
        [str(BIN / "papermill"), "-p", "sample", "B", "templates/analysis.ipynb", "out/analysis.ipynb"],
        cwd=fp_env,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    t = _the_notebook(nb)
    assert t.runs.one().status == "completed"
    assert fp.Transform.filter(type="notebook").count() == 1


def _nbclient(path: Path, cwd: Path, **env):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=_env(**env))  # no JPY_SESSION_NAME: nbclient tells the kernel nothing
    return nb


def test_nbclient_without_a_session_name(sqlite_instance, fp_env):
    nb = _analysis(fp_env / "qc")
    _nbclient(nb, cwd=nb.parent)
    assert _the_notebook(nb).runs.one().status == "completed"


def test_two_notebooks_that_cannot_be_told_apart_are_not_guessed(sqlite_instance, fp_env):
    from nbclient.exceptions import CellExecutionError

    a = _analysis(fp_env / "qc")
    b = _notebook(fp_env / "qc" / "other.ipynb", "Other", [TRACK, "y = 2"])
    with pytest.raises(CellExecutionError) as e:
        _nbclient(a, cwd=a.parent)
    message = str(e.value)
    assert "cannot tell which notebook" in message
    assert str(a.resolve()) in message and str(b.resolve()) in message
    assert fp.Transform.filter(type="notebook").count() == 0


def test_the_hint_names_no_other_notebook(sqlite_instance, fp_env):
    from nbclient.exceptions import CellExecutionError

    nb = _analysis(fp_env / "qc")
    elsewhere = fp_env / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(CellExecutionError) as e:
        _nbclient(nb, cwd=elsewhere)
    message = str(e.value)
    assert "cannot tell which notebook this kernel is running" in message
    assert "fp.track(path=...)" in message and "analysis.ipynb" not in message


def test_inherited_session_name_is_not_believed(sqlite_instance, fp_env):
    """`!jupyter nbconvert --execute report.ipynb` from inside analysis.ipynb: the child kernel
    inherits the outer notebook's JPY_SESSION_NAME; the notebook it runs is report.ipynb."""
    outer = _analysis(fp_env / "work")
    report = _notebook(fp_env / "work" / "report.ipynb", "Report", [TRACK, "fp.finish()"])
    proc = _jupyter(
        "nbconvert", "--execute", "--to", "notebook", "--output", "report-run", "report.ipynb",
        cwd=report.parent,
        JPY_SESSION_NAME=str(outer),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert _the_notebook(report).name == "Report"
    assert fp.Transform.filter(type="notebook").count() == 1


def test_same_notebook_name_in_two_projects_is_two_transforms(instance, fp_env):
    """The observed case: an unrelated otherproj/analysis.ipynb became a new version of the
    "QC analysis" notebook in another folder."""
    qc = _analysis(fp_env / "qc-project")
    other = _analysis(fp_env / "otherproj", title="Other analysis", extra="z = 3")
    for nb in (qc, other):
        proc = _jupyter("nbconvert", "--execute", "--to", "notebook", nb.name, cwd=nb.parent)
        assert proc.returncode == 0, proc.stderr
    qc_t, other_t = _the_notebook(qc), _the_notebook(other)
    assert qc_t.is_latest and other_t.is_latest and qc_t.uid[:12] != other_t.uid[:12]
    assert qc_t.name == "QC analysis" and other_t.name == "Other analysis"


@pytest.mark.parametrize(
    "runner, argv, notebooks",
    [
        ("nbconvert", ["--execute", "--to", "notebook", "--output", "x.ipynb", "a.ipynb"], ["a.ipynb"]),
        ("nbconvert", ["--execute", "-y", "a.ipynb", "b.ipynb"], ["a.ipynb", "b.ipynb"]),
        ("execute", ["--output", "{notebook_name}-run", "--timeout=60", "a"], ["a"]),
        ("papermill", ["-p", "s", "B", "-f", "p.yaml", "in.ipynb", "out.ipynb", "-k", "py"], ["in.ipynb", "out.ipynb"]),
    ],
)  # fmt: skip
def test_runner_command_lines(runner, argv, notebooks):
    from flowprov.notebooks import _positional

    assert _positional(argv, runner) == notebooks
