"""OpenLineage events of runs made through the Python API (a tracked script in its own process,
`fp.Run` in this one) and of an ingested Nextflow trace; the job namespace; and silence when
nothing is configured."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import flowprov as fp

from tests.conftest import write
from tests.openlineage.helpers import (
    check_against_store,
    facet,
    flush,
    run_id,
    validate_all,
)

TRACE = Path(__file__).parent.parent / "nextflow" / "hlatyping_execution_trace.txt"

SCRIPT = """
import sys
import flowprov as fp

fp.track()
raw = fp.Artifact.filter(key="raw.txt").one()
text = open(raw.cache()).read()  # a run input
open("hits.txt", "w").write(text.upper())
fp.Artifact("hits.txt", description="hits").save()
if len(sys.argv) > 1:
    sys.exit(int(sys.argv[1]))
fp.finish()
"""


def run_script(folder: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    script = write(folder / "step.py", textwrap.dedent(SCRIPT))
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_a_tracked_script_emits_start_and_complete(instance, ol_file, fp_env):
    folder = fp_env / "work"
    folder.mkdir()
    write(folder / "raw.txt", "gene\nifng\n")
    fp.Storage(folder, description="work").save()
    fp.Artifact(folder / "raw.txt").save()
    proc = run_script(folder)
    assert proc.returncode == 0, proc.stderr
    events = ol_file.events()
    validate_all(events)
    run = fp.Run.filter(transform__type="script").one()
    pairs = check_against_store(events, [run], "oltest", None)
    start, final = pairs[run_id(run.uid)]
    assert final["eventType"] == "COMPLETE"
    assert final["job"]["facets"]["jobType"]["integration"] == "FLOWPROV"
    assert [d["name"] for d in final["outputs"]] == [str(folder / "hits.txt")]
    assert [d["name"] for d in final["inputs"]] == [str(folder / "raw.txt")]
    sc = facet(final, "job", "sourceCode")
    assert sc["language"] == "python" and "fp.track()" in sc["sourceCode"]


def test_a_script_that_exits_2_is_a_fail_with_its_error(instance, ol_file, fp_env):
    folder = fp_env / "work"
    folder.mkdir()
    write(folder / "raw.txt", "gene\n")
    fp.Storage(folder, description="work").save()
    fp.Artifact(folder / "raw.txt").save()
    assert run_script(folder, "2").returncode == 2
    events = ol_file.events()
    validate_all(events)
    run = fp.Run.filter(transform__type="script").one()
    assert run.status == "failed"
    pairs = check_against_store(events, [run], "oltest", None)
    _, final = pairs[run_id(run.uid)]
    assert final["eventType"] == "FAIL" and facet(final, "run", "errorMessage")["message"]


def test_runs_of_the_python_api_in_this_process(instance, ol_file):
    t = fp.Transform(name="Upload GWS CRISPRa result", type="upload").save()
    with fp.Run(transform=t):
        pass
    run = fp.Run(transform=t).save()
    run.finish()
    flush()
    events = ol_file.events()
    validate_all(events)
    runs = fp.Run.filter().all()
    pairs = check_against_store(events, runs, "oltest", None)
    assert {f["job"]["name"] for _, f in pairs.values()} == {"Upload GWS CRISPRa result"}
    assert len(pairs) == 2  # one job, two runs


def test_an_ingested_trace(instance, ol_file):
    from flowprov_nextflow import ingest_trace

    ingest_trace(TRACE, pipeline="nf-core/hlatyping", version="1.2.0")
    flush()
    events = ol_file.events()
    validate_all(events)
    runs = fp.Run.filter().all()
    assert len(runs) == 7
    pairs = check_against_store(events, runs, "oltest", "nextflow")
    names = {f["job"]["name"] for _, f in pairs.values()}
    assert "nf-core/hlatyping.run_optitype" in names and "nf-core/hlatyping" in names
    launch = fp.Run.filter(transform__type="pipeline").one()
    for r in launch.children:
        parent = facet(pairs[run_id(r.uid)][1], "run", "parent")
        assert parent["run"]["runId"] == run_id(launch.uid)


def test_a_nextflow_lineage_store_names_the_pipelines_repository_at_its_commit(
    instance, ol_file, fp_env
):
    from tests.nextflow.test_lineage_store import _ingest, _lineage_store

    _ingest(_lineage_store(fp_env))
    flush()
    events = ol_file.events()
    validate_all(events)
    pipeline = [e for e in events if e["job"]["facets"]["jobType"]["jobType"] == "PIPELINE"]
    assert pipeline and {e["eventType"] for e in pipeline} >= {"START"}
    loc = pipeline[0]["job"]["facets"]["sourceCodeLocation"]
    assert loc["type"] == "git" and loc["url"] == "https://github.com/nextflow-io/rnaseq-nf"
    assert loc["version"] == "86165b8c81d43a1f57363964431395152e353e56"
    # its task is a job of the pipeline, its file a dataset with the recorded hash as version
    multiqc = [e for e in events if e["job"]["name"].endswith(".MULTIQC")]
    assert multiqc and multiqc[-1]["outputs"]
    assert multiqc[-1]["outputs"][0]["facets"]["version"]["datasetVersion"] == (
        "b14f5171a48ce5c22ea27d7b8e57b6c4"
    )


def test_an_ingested_trace_through_the_cli(run_flowprov, fp_env, ol_file):
    run_flowprov("init", "--storage", str(fp_env / "store"))
    run_flowprov(
        "nextflow", "ingest", str(TRACE), "--pipeline", "nf-core/hlatyping", "--version", "1.2.0"
    )
    events = ol_file.events()
    validate_all(events)
    assert len(events) == 14  # 7 runs: START + final each
    assert {e["job"]["namespace"] for e in events} == {"oltest"}


def test_the_namespace_is_the_instances_name_or_its_setting(instance, ol_file, monkeypatch):
    monkeypatch.delenv("OPENLINEAGE_NAMESPACE")
    t = fp.Transform(name="step", type="script").save()
    fp.Run(transform=t).save().finish()
    flush()
    assert {e["job"]["namespace"] for e in ol_file.events()} == {instance.name}
    from flowprov import instance_settings

    from tests.openlineage.conftest import _reset_emitter

    instance_settings.set(instance, "openlineage.namespace", "lab-ns")
    _reset_emitter()  # a process reads the setting once
    fp.Run(transform=t).save().finish()
    flush()
    assert {e["job"]["namespace"] for e in ol_file.events()[-2:]} == {"lab-ns"}
    validate_all(ol_file.events())


def test_nothing_configured_nothing_imported_in_a_fresh_process(instance, fp_env, tmp_path):
    code = textwrap.dedent(
        """
        import sys
        import flowprov as fp

        t = fp.Transform(name="step", type="script").save()
        with fp.Run(transform=t):
            open("out.txt", "w").write("x")
            fp.Artifact("out.txt", description="x").save()
        from flowprov.openlineage import emitter

        emitter.flush(30)  # what is queued is sent (it imports nothing more)
        print(sorted(m for m in sys.modules if m == "openlineage" or m.startswith("openlineage.")))
        """
    )
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    env["HOME"] = str(tmp_path / "home")  # no ~/.openlineage/openlineage.yml
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert fp.Run.filter().count() == 1
    assert not (fp_env / "cache" / "journal" / "openlineage").exists()
    # the same with a transport configured, to show the check can see it
    env.update(OPENLINEAGE__TRANSPORT__TYPE="console")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "openlineage.client" in proc.stdout, proc.stderr


def test_configured_follows_the_variables_as_they_change(monkeypatch, tmp_path):
    """configured() is asked on every write and reads os.environ's own keys: a transport variable
    set or removed in this process counts at once, as the client would see it."""
    import os

    from flowprov.openlineage import configured

    for k in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.openlineage/openlineage.yml
    assert configured() is False
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "console")
    assert configured() is True
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert configured() is False
    monkeypatch.delenv("OPENLINEAGE_DISABLED")
    monkeypatch.delenv("OPENLINEAGE__TRANSPORT__TYPE")
    assert configured() is False
    (tmp_path / "openlineage.yml").write_text("transport:\n  type: console\n")
    assert configured() is True
