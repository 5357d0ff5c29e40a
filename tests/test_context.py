"""Run context: scripts and notebooks tracked for real (a subprocess, a kernel via nbclient)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import flowprov as fp
import pandas as pd
import pytest
from flowprov.errors import NoCurrentRun

from tests.conftest import write


@pytest.fixture
def raw_screen(instance, fp_env, monkeypatch):
    """The app upload of the project flow, by testuser1."""
    monkeypatch.setenv("FLOWPROV_USER", "testuser1")
    path = fp_env / "upload" / "schmidt22_crispra_gws_IFNG.parquet"
    path.parent.mkdir()
    pd.DataFrame({"gene": ["IFNG", "CD28", "IL2"], "score": [3.1, 2.4, 0.2]}).to_parquet(path)
    t = fp.Transform(name="Upload GWS CRISPRa result", type="upload").save()
    with fp.Run(transform=t):
        a = fp.Artifact(path, description="Raw data of schmidt22 crispra GWS").save()
    monkeypatch.delenv("FLOWPROV_USER")
    return a


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(extra)
    return env


HIT_SCRIPT = """
import flowprov as fp

fp.track()
raw = fp.Artifact.filter(description="Raw data of schmidt22 crispra GWS").one()
df = raw.load()
df[df.score > 1].to_parquet("hits.parquet")
fp.Artifact("hits.parquet", description="hits from schmidt22 crispra GWS").save()
fp.finish()
"""


def test_script_run_as_a_subprocess_is_tracked(raw_screen, fp_env):
    repo = fp_env / "project"
    (repo / ".git").mkdir(parents=True)  # keyed by its remote and the path in the repository
    (repo / ".git" / "config").write_text(
        '[remote "origin"]\n\turl = git@github.com:lab/project.git\n'
    )
    script = write(repo / "scripts" / "hit_identification.py", HIT_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=script.parent,
        env=_env(FLOWPROV_USER="testuser2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tracking script Transform" in proc.stderr  # the user sees what was recorded
    t = fp.Transform.filter(type="script").one()
    assert t.key == "github.com/lab/project/scripts/hit_identification.py"
    assert t.name == "hit_identification.py"
    assert t.source_code == HIT_SCRIPT and t.created_by.handle == "testuser2"
    run = t.runs.one()
    assert run.status == "completed" and run.finished_at is not None
    assert "pandas" in {p.name for p in run.environment.packages}
    hits = fp.Artifact.filter(description="hits from schmidt22 crispra GWS").one()
    assert hits.run == run and list(run.inputs) == [raw_screen]
    assert list(t.parents) == [raw_screen.transform]
    assert len(hits.load()) == 2

    # same code again: same Transform, a second run; edited code: a new version
    subprocess.run(
        [sys.executable, str(script)], cwd=script.parent, env=_env(), check=True, timeout=120
    )
    assert t.runs.count() == 2
    write(script, HIT_SCRIPT + "# tweak\n")
    subprocess.run(
        [sys.executable, str(script)], cwd=script.parent, env=_env(), check=True, timeout=120
    )
    versions = (
        fp.Transform.filter(key="github.com/lab/project/scripts/hit_identification.py")
        .order_by("uid")
        .all()
    )
    assert (
        len(versions) == 2
        and versions[1].is_latest
        and versions[1].uid[:12] == versions[0].uid[:12]
    )


def test_script_that_crashes_is_recorded_as_failed(instance, fp_env):
    script = write(
        fp_env / "crash.py",
        "import flowprov as fp\nfp.track()\nraise RuntimeError('bad input file')\n",
    )
    proc = subprocess.run(
        [sys.executable, str(script)], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and "RuntimeError" in proc.stderr
    run = fp.Transform.filter(key=script.resolve().as_posix()).one().runs.one()
    assert run.status == "failed" and "RuntimeError: bad input file" in run.error


def test_script_without_finish_is_completed_at_exit(instance, fp_env):
    script = write(fp_env / "nofinish.py", "import flowprov as fp\nfp.track(params={'k': 3})\n")
    subprocess.run([sys.executable, str(script)], env=_env(), check=True, timeout=120)
    run = fp.Run.filter(transform__key=script.resolve().as_posix()).one()
    assert run.status == "completed" and run.params == {"k": 3}


def _notebook(path: Path, title: str, cells: list[str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}")] + [
        nbformat.v4.new_code_cell(c) for c in cells
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def _execute(path: Path, **env):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    # Jupyter Server tells a kernel its notebook through JPY_SESSION_NAME; nbclient does not, so we do.
    client.execute(env=_env(JPY_SESSION_NAME=str(path), **env))
    return nb


def test_notebook_executed_with_nbclient_is_tracked(raw_screen, fp_env):
    nb_path = _notebook(
        fp_env / "hit-identification.ipynb",
        "GWS CRISPRa analysis",
        [
            "import flowprov as fp\nrun = fp.track()",
            "raw = fp.Artifact.filter(description='Raw data of schmidt22 crispra GWS').one()\n"
            "with raw.open() as f:\n    head = f.read(4)\n"
            "df = raw.load()",
            "df.head(2).to_parquet('hits.parquet')\n"
            "hits = fp.Artifact('hits.parquet', description='hits from schmidt22 crispra GWS').save()",
            "fp.finish()",
        ],
    )
    nb = _execute(nb_path, FLOWPROV_USER="testuser2")
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    t = fp.Transform.search("GWS CRIPSRa analysis").first()
    assert (
        t.type == "notebook"
        and t.key == nb_path.resolve().as_posix()  # outside a git work tree: where it is
        and t.name == "GWS CRISPRa analysis"
    )
    assert "fp.track()" in t.source_code and t.created_by.handle == "testuser2"
    run = t.runs.one()
    assert run.status == "completed" and list(run.inputs) == [raw_screen]
    assert (
        fp.Artifact.filter(run__transform=t).one().description == "hits from schmidt22 crispra GWS"
    )
    assert "ipykernel" in {p.name for p in run.environment.packages}

    # outputs and execution counts do not make a new version; code does
    _execute(nb_path)
    assert fp.Transform.filter(key=nb_path.resolve().as_posix()).count() == 1


def test_notebook_with_pinned_uid(instance, fp_env):
    nb_path = _notebook(
        fp_env / "project-flow.ipynb",
        "Project flow",
        ["import flowprov as fp\nfp.track(uid='1LCd8kco9lZU0000')", "fp.finish()"],
    )
    _execute(nb_path, FLOWPROV_USER="testuser1")
    t = fp.Transform.get("1LCd8kco9lZU0000")
    assert t.type == "notebook" and t.name == "Project flow" and t.created_by.handle == "testuser1"


def test_reads_record_run_inputs(raw_screen, fp_env):
    t = fp.Transform(name="reader", type="function").save()
    with fp.Run(transform=t) as r:
        p = raw_screen.cache()
        assert p.exists() and p.suffix == ".parquet"
    assert list(r.inputs) == [raw_screen]
    with fp.Run(transform=t) as r2:
        with raw_screen.open() as f:
            assert f.read(4) == b"PAR1"
    assert list(r2.inputs) == [raw_screen]
    assert raw_screen.input_of.count() == 2


def test_track_run_inputs_off_and_per_call_override(raw_screen, fp_env):
    t = fp.Transform(name="reader", type="function").save()
    import flowprov._settings  # noqa: F401 - a submodule import must not shadow fp.settings

    assert type(fp.settings).__name__ == "Settings"
    fp.settings.track_run_inputs = False
    with fp.Run(transform=t) as r:
        raw_screen.load()
    assert r.inputs.count() == 0
    with fp.Run(transform=t) as r2:
        raw_screen.load(is_run_input=True)
    assert list(r2.inputs) == [raw_screen]
    fp.settings.track_run_inputs = True
    with fp.Run(transform=t) as r3:
        raw_screen.cache(is_run_input=False)
    assert r3.inputs.count() == 0


def test_explicit_run_wins_and_own_outputs_are_not_inputs(instance, fp_env):
    t = fp.Transform(name="writer", type="function").save()
    other = fp.Run(transform=t).save()
    with fp.Run(transform=t) as r:
        a = fp.Artifact(write(fp_env / "x.json", '{"a": 1}'), run=other).save()
        b = fp.Artifact(write(fp_env / "y.json", '{"b": 2}')).save()
        assert b.load() == {"b": 2}  # reading its own output
    assert a.run == other and b.run == r and r.inputs.count() == 0


def test_load_by_suffix(instance, fp_env):
    csv = fp.Artifact(write(fp_env / "t.csv", "a,b\n1,2\n")).save()
    tsv = fp.Artifact(write(fp_env / "t.tsv", "a\tb\n1\t2\n")).save()
    yml = fp.Artifact(write(fp_env / "c.yaml", "k: [1, 2]\n")).save()
    assert list(csv.load().columns) == ["a", "b"] and tsv.load().iloc[0, 1] == 2
    assert yml.load() == {"k": [1, 2]}
    from flowprov.errors import ValidationError

    with pytest.raises(ValidationError, match="cannot load"):
        fp.Artifact(write(fp_env / "x.bam", b"BAM\x01")).save().load()


def test_finish_without_track(instance):
    with pytest.raises(NoCurrentRun):
        fp.finish()


def test_track_in_process_with_explicit_path(instance, fp_env):
    script = write(fp_env / "pipeline_step.py", textwrap.dedent("print('hi')\n"))
    run = fp.track(path=script)
    assert fp.current_run() == run and run.transform.type == "script"
    done = fp.finish()
    assert done.status == "completed" and fp.current_run() is None


# -- code identity: never by file name alone ---------------------------------------------------
def _run_script(script: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=script.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_same_file_name_in_two_folders_outside_git_is_two_transforms(instance, fp_env):
    qc = write(fp_env / "qc" / "analysis.py", "import flowprov as fp\nfp.track()\n# QC\n")
    other = write(fp_env / "otherproj" / "analysis.py", "import flowprov as fp\nfp.track()\n")
    _run_script(qc)
    _run_script(other)
    transforms = fp.Transform.filter(type="script").all()
    assert sorted(t.key for t in transforms) == sorted(
        [other.resolve().as_posix(), qc.resolve().as_posix()]
    )
    assert all(t.is_latest for t in transforms)  # neither is a version of the other
    assert len({t.uid[:12] for t in transforms}) == 2  # two stems, not two versions of one
    qc_t = fp.Transform.filter(key=qc.resolve().as_posix()).one()
    assert qc_t.source_code.endswith("# QC\n") and qc_t.runs.count() == 1


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env=_env(
            GIT_AUTHOR_NAME="t",
            GIT_AUTHOR_EMAIL="t@example.invalid",
            GIT_COMMITTER_NAME="t",
            GIT_COMMITTER_EMAIL="t@example.invalid",
        ),
    )


def test_inside_a_git_work_tree_keyed_by_path_in_the_repository(instance, fp_env):
    repo = fp_env / "lab-analysis"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    body = "import flowprov as fp\nfp.track()\n"
    qc = write(repo / "qc" / "analysis.py", body)
    write(repo / "screen" / "analysis.py", body + "# screen\n")
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "analyses", cwd=repo)
    _run_script(qc)
    _run_script(repo / "screen" / "analysis.py")
    # a repository with no remote: nothing tells it from another one, so its files are keyed
    # where they are
    keys = sorted(t.key for t in fp.Transform.filter(type="script"))
    assert keys == [str(repo / "qc" / "analysis.py"), str(repo / "screen" / "analysis.py")]

    # a clone of it, elsewhere: its remote is the repository, so the same code is the same
    # transform
    clone = fp_env / "elsewhere" / "lab-analysis"
    clone.parent.mkdir()
    _git("clone", "-q", str(repo), str(clone), cwd=fp_env)
    _run_script(clone / "qc" / "analysis.py")
    t = fp.Transform.filter(key=str(repo / "qc" / "analysis.py")).one()
    assert t.runs.count() == 2 and fp.Transform.filter(type="script").count() == 2


def test_two_repositories_with_the_same_path_are_two_transforms(instance, fp_env):
    """analysis.ipynb at the root of two repositories is not one notebook in two versions."""
    body = "import flowprov as fp\nfp.track()\n"
    scripts = []
    for name in ("screen", "otherproj"):
        repo = fp_env / name
        repo.mkdir()
        _git("init", "-q", cwd=repo)
        _git("remote", "add", "origin", f"https://github.com/lab/{name}.git", cwd=repo)
        scripts.append(write(repo / "analysis.py", body + f"# {name}\n"))
    for p in scripts:
        _run_script(p)
    keys = sorted(t.key for t in fp.Transform.filter(type="script"))
    assert keys == ["github.com/lab/otherproj/analysis.py", "github.com/lab/screen/analysis.py"]
    assert all(t.is_latest for t in fp.Transform.filter(type="script"))
