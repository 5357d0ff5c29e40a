"""An RO-Crate's main workflow is the workflow definition when one is known and it made the
whole lineage; otherwise the recorded lineage (PROV-JSON) stays the main workflow (issue 17)."""

from __future__ import annotations

import json

import flowprov as fp
import pytest
from flowprov.exports import export

from tests.nextflow.test_lineage_store import _ingest, _lineage_store
from tests.snakemake.conftest import Workflow

SNAKEFILE = """
rule all:
    input: "results/b.txt"

rule a:
    input: "raw/in.txt"
    output: "results/a.txt"
    shell: "tr a-z A-Z < {input} > {output}"

rule b:
    input: "results/a.txt"
    output: "results/b.txt"
    shell: "cat {input} {input} > {output}"
"""


def _graph(crate_dir):
    data = json.loads((crate_dir / "ro-crate-metadata.json").read_text())
    return {e["@id"]: e for e in data["@graph"]}


def _types(e) -> set:
    t = e.get("@type")
    return set(t if isinstance(t, list) else [t])


@pytest.fixture
def snakemake_run(instance, fp_env):
    from tests.snakemake.conftest import snakemake_exe  # noqa: F401 - skips without Snakemake

    root = fp_env / "workflow"
    root.mkdir()
    fp.Storage(root, description="the workflow's folder").save()
    wf = Workflow(root)
    wf.write("Snakefile", SNAKEFILE)
    wf.write("raw/in.txt", "hello\n")
    return wf


def test_a_snakemake_workflow_alone_is_the_crates_main_workflow(snakemake_run, fp_env):
    snakemake_run.run()
    out = fp.Artifact.filter(key="results/b.txt").one()
    crate = export(out, fp_env / "crate", "ro-crate", license="CC-BY-4.0")
    g = _graph(crate)
    main = g[g["./"]["mainEntity"]["@id"]]
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= _types(main)
    assert main["programmingLanguage"]["@id"].endswith("#snakemake")
    # the file in the crate is the Snakefile as recorded
    assert (crate / main["@id"]).read_text() == (snakemake_run.root / "Snakefile").read_text()
    # the recorded lineage stays beside it, and the rules are its steps
    assert "lineage.prov.json" in g
    steps = [g[s["@id"]] for s in main.get("step", [])]
    assert {"a", "b"} <= {s["name"] for s in steps}


def test_a_workflow_fed_by_a_script_keeps_the_recorded_lineage_as_main_workflow(
    snakemake_run, fp_env
):
    # the workflow's input is a tracked script's output: the Snakefile did not make it all
    with fp.Run(fp.Transform(name="make-input", type="script", key="make_input.py")):
        (snakemake_run.root / "raw" / "in.txt").write_text("from a script\n")
        fp.Artifact(snakemake_run.root / "raw" / "in.txt").save()
    snakemake_run.run()
    out = fp.Artifact.filter(key="results/b.txt").one()
    crate = export(out, fp_env / "crate", "ro-crate", license="CC-BY-4.0")
    g = _graph(crate)
    assert g["./"]["mainEntity"]["@id"] == "lineage.prov.json"
    # the Snakefile is still in the crate, as the code of the workflow's transform
    snakefiles = [e for e in g.values() if e["@id"].endswith("/Snakefile")]
    assert snakefiles and all("ComputationalWorkflow" not in _types(e) for e in snakefiles)


def test_a_nextflow_pipeline_with_its_repository_and_commit_is_the_main_workflow(instance, fp_env):
    _ingest(_lineage_store(fp_env))
    report = fp.Artifact.filter(key="results/multiqc_report.html").one()
    crate = export(report, fp_env / "crate", "ro-crate", license="CC-BY-4.0")
    g = _graph(crate)
    main_id = g["./"]["mainEntity"]["@id"]
    assert main_id == (
        "https://github.com/nextflow-io/rnaseq-nf/blob/"
        "86165b8c81d43a1f57363964431395152e353e56/main.nf"
    )
    assert "ComputationalWorkflow" in _types(g[main_id])
    assert g[main_id]["programmingLanguage"]["@id"].endswith("#nextflow")
