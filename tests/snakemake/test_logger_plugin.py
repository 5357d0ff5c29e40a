"""The Snakemake logger plugin, on real workflows: exact records for every job and file."""

import json

import flowprov as fp
import pytest
from flowprov import instance as inst_mod

from tests.snakemake.conftest import host_key

BASIC = """
configfile: "config.yaml"

rule all:
    input: "results/summary.txt"

rule upper:
    input: "data/{sample}.txt"
    output: "up/{sample}.txt"
    log: "logs/upper_{sample}.log"
    threads: 1
    resources: mem_mb=100
    shell: "tr a-z A-Z < {input} > {output}; echo done {wildcards.sample} > {log}"

rule summarize:
    input: expand("up/{sample}.txt", sample=config["samples"])
    output: "results/summary.txt"
    run:
        with open(output[0], "w") as f:
            for p in input:
                f.write(open(p).read())
"""


def basic(workflow, samples=("a", "b")):
    workflow.write("Snakefile", BASIC)
    workflow.write("config.yaml", f"samples: {json.dumps(list(samples))}\n")
    for s in samples:
        workflow.write(f"data/{s}.txt", f"raw {s}\n")


def keys(artifacts) -> list[str]:
    return sorted(a.key for a in artifacts)


def refresh():
    inst_mod.reset_cache()


def test_every_job_with_its_files(workflow):
    basic(workflow)
    workflow.run()
    wf = fp.Transform.filter(type="pipeline").one()
    # outside a git work tree, a workflow is known by its Snakefile's absolute location
    assert wf.key == str(workflow.root / "Snakefile") and wf.name == "workflow"
    assert "rule summarize" in wf.source_code
    wf_run = wf.runs.one()
    assert (
        wf_run.status == "completed"
        and wf_run.finished_at
        and wf_run.params == {"samples": ["a", "b"]}
    )
    assert wf_run.engine == "snakemake" and len(wf_run.reference) == 36  # Snakemake's workflow id
    assert "--logger flowprov" in wf_run.runtime["cmd"] and wf_run.runtime["snakemake"].startswith(
        "9."
    )

    rules = {t.name: t for t in fp.Transform.filter(type="rule")}
    assert set(rules) == {"upper", "summarize", "all"}
    assert all(t.parent == wf for t in rules.values())
    assert rules["upper"].source_code.startswith("shell: tr a-z A-Z < {input}")
    assert "f.write(open(p).read())" in rules["summarize"].source_code

    jobs = list(wf_run.children)
    assert len(jobs) == 4 and {j.status for j in jobs} == {"completed"}
    by_sample = {
        j.params["wildcards"].get("sample"): j for j in jobs if j.transform.name == "upper"
    }
    a = by_sample["a"]
    assert a.params["threads"] == 1 and a.params["resources"]["mem_mb"] == 100
    assert a.params["shellcmd"].startswith("tr a-z A-Z < data/a.txt > up/a.txt")
    assert a.reference.startswith(wf_run.reference + "/") and a.finished_at >= a.started_at
    assert keys(a.inputs) == ["data/a.txt"] and keys(a.outputs) == ["logs/upper_a.log", "up/a.txt"]
    summarize = next(j for j in jobs if j.transform.name == "summarize")
    assert keys(summarize.inputs) == ["up/a.txt", "up/b.txt"] and keys(summarize.outputs) == [
        "results/summary.txt"
    ]
    # lineage flows job → job, and the raw inputs have no creating run
    out = fp.Artifact.filter(key="results/summary.txt").one()
    assert (
        out.run == summarize and out.managed is False and out.path.read_text() == "RAW A\nRAW B\n"
    )
    assert fp.Artifact.filter(key="data/a.txt").one().run is None
    assert set(rules["summarize"].parents) == {rules["upper"]}
    assert fp.Artifact.count() if hasattr(fp.Artifact, "count") else True
    assert fp.Artifact.filter().count() == 7  # 2 raw, 2 up, 2 logs, 1 summary


def test_rerun_with_nothing_to_do_records_a_run_without_jobs(workflow):
    basic(workflow)
    workflow.run()
    workflow.run()
    wf = fp.Transform.filter(type="pipeline").one()
    runs = wf.runs.order_by("id").all()
    assert len(runs) == 2 and runs[1].status == "completed" and runs[1].children.count() == 0
    assert fp.Artifact.filter().count() == 7


def test_rerun_after_an_input_changed(workflow):
    basic(workflow)
    workflow.run()
    old = fp.Artifact.filter(key="results/summary.txt").one()
    workflow.write("data/b.txt", "raw b, corrected\n")
    workflow.run()
    versions = fp.Artifact.filter(key="results/summary.txt").order_by("uid").all()
    assert len(versions) == 2 and versions[0] == old and versions[1].stem == old.stem
    assert versions[1].is_latest and not fp.Artifact.get(old.uid).is_latest
    assert versions[0].run != versions[1].run  # the old run and its outputs are kept
    new_jobs = versions[1].run.parent.children
    assert sorted(j.transform.name for j in new_jobs) == [
        "all",
        "summarize",
        "upper",
    ]  # only b's branch re-ran
    assert keys(fp.Artifact.filter(key__startswith="data/b")) == ["data/b.txt", "data/b.txt"]


def test_input_registered_beforehand_joins_the_lineage(workflow, fp_env):
    basic(workflow, samples=("a",))
    up = fp.Transform(name="Sequencer upload", type="upload").save()
    with fp.Run(transform=up) as upload_run:
        raw = fp.Artifact(workflow.root / "data/a.txt", description="raw a").save()
    workflow.run()
    job = fp.Run.filter(transform__name="upper").one()
    assert list(job.inputs) == [raw] and raw.run == upload_run
    assert list(fp.Transform.filter(name="upper").one().parents) == [up]


def test_directory_and_temp_outputs(workflow):
    workflow.write(
        "Snakefile",
        """
        rule all:
            input: "final.txt"

        rule make_dir:
            output: directory("matrix")
            shell: "mkdir -p matrix && echo 1 > matrix/barcodes.tsv && echo 2 > matrix/features.tsv && echo 3 > matrix/matrix.mtx"

        rule make_temp:
            input: "matrix"
            output: temp("intermediate.txt")
            shell: "cat matrix/* > {output}"

        rule final:
            input: "intermediate.txt"
            output: "final.txt"
            shell: "wc -l < {input} > {output}"
        """,
    )
    workflow.run()
    folder = fp.Artifact.filter(key="matrix").one()
    assert folder.n_objects == 3 and folder.hash_type == "blake3-dir"
    assert not (workflow.root / "intermediate.txt").exists()  # Snakemake removed the temp file ...
    temp = fp.Artifact.filter(key="intermediate.txt").one()  # ... after flowprov hashed it
    assert temp.size == 6 and temp.run.transform.name == "make_temp"
    assert list(fp.Run.filter(transform__name="final").one().inputs) == [temp]


def test_checkpoint(workflow):
    workflow.write(
        "Snakefile",
        """
        import os

        def gathered(wildcards):
            folder = checkpoints.split.get().output[0]
            parts = glob_wildcards(os.path.join(folder, "{i}.txt")).i
            return expand("processed/{i}.txt", i=parts)

        rule all:
            input: "merged.txt"

        checkpoint split:
            output: directory("parts")
            shell: "mkdir -p parts && for i in 1 2 3; do echo part $i > parts/$i.txt; done"

        rule process:
            input: "parts/{i}.txt"
            output: "processed/{i}.txt"
            shell: "rev {input} > {output}"

        rule merge:
            input: gathered
            output: "merged.txt"
            shell: "cat {input} > {output}"
        """,
    )
    workflow.run()
    jobs = fp.Run.filter(parent__transform__type="pipeline").all()
    names = sorted(j.transform.name for j in jobs)
    assert names == ["all", "merge", "process", "process", "process", "split"]
    assert {j.status for j in jobs} == {"completed"}
    split = next(j for j in jobs if j.transform.name == "split")
    assert split.params["is_checkpoint"] is True
    assert keys(fp.Run.filter(transform__name="merge").one().inputs) == [
        f"processed/{i}.txt" for i in (1, 2, 3)
    ]


def test_failing_rule(workflow):
    workflow.write(
        "Snakefile",
        """
        rule all:
            input: "b.txt"

        rule a:
            output: "a.txt"
            shell: "echo a > {output}"

        rule b:
            input: "a.txt"
            output: "b.txt"
            shell: "echo partial > {output}; exit 3"
        """,
    )
    proc = workflow.run(check=False)
    assert proc.returncode != 0
    wf_run = fp.Run.filter(transform__type="pipeline").one()
    assert wf_run.status == "failed"
    a = fp.Run.filter(transform__name="a").one()
    b = fp.Run.filter(transform__name="b").one()
    assert a.status == "completed" and b.status == "failed"
    assert "exit status 3" in b.error
    assert b.outputs.count() == 0 and keys(b.inputs) == [
        "a.txt"
    ]  # Snakemake removed the partial output


def test_parallel_jobs_finishing_out_of_order(workflow):
    workflow.write(
        "Snakefile",
        """
        N = range(8)

        rule all:
            input: expand("out/{n}.txt", n=N)

        rule work:
            output: "out/{n}.txt"
            shell: "sleep $(( (7 - {wildcards.n}) % 4 ))e-1; echo {wildcards.n} > {output}"
        """,
    )
    workflow.run("--cores", "2")
    jobs = fp.Run.filter(transform__name="work").all()
    assert len(jobs) == 8 and {j.status for j in jobs} == {"completed"}
    for j in jobs:
        n = j.params["wildcards"]["n"]
        out = j.outputs.one()
        assert out.key == f"out/{n}.txt" and out.path.read_text() == f"{n}\n"


def test_quiet_run_closes_jobs_at_the_end(workflow):
    basic(workflow)
    workflow.run("-q")
    jobs = fp.Run.filter(parent__transform__type="pipeline").all()
    assert len(jobs) == 4 and {j.status for j in jobs} == {"completed"}
    assert keys(fp.Run.filter(transform__name="summarize").one().outputs) == ["results/summary.txt"]
    assert fp.Run.filter(transform__type="pipeline").one().status == "completed"


def test_dry_run_records_nothing(workflow):
    basic(workflow)
    workflow.run("-n")
    assert fp.Run.filter().count() == 0 and fp.Artifact.filter().count() == 0


def test_settings_outputs_only_and_pipeline_identity(workflow):
    basic(workflow)
    workflow.run(
        "--logger-flowprov-register",
        "outputs",
        env={
            "SNAKEMAKE_LOGGER_FLOWPROV_NAME": "Cell Ranger",
            "SNAKEMAKE_LOGGER_FLOWPROV_VERSION": "7.2.0",
            "SNAKEMAKE_LOGGER_FLOWPROV_REFERENCE": "https://www.10xgenomics.com/support/software/cell-ranger",
        },
    )
    wf = fp.Transform.filter(type="pipeline").one()
    assert (wf.name, wf.version) == ("Cell Ranger", "7.2.0") and wf.reference.startswith(
        "https://www.10xgenomics"
    )
    assert fp.Artifact.filter(key__startswith="data/").count() == 0  # inputs not registered
    assert fp.Run.filter(inputs__isnull=False).count() == 0
    assert fp.Artifact.filter(key="results/summary.txt").count() == 1


def test_code_changes_make_new_versions(workflow):
    basic(workflow)
    workflow.run()
    wf1 = fp.Transform.filter(type="pipeline").one()
    upper1 = fp.Transform.filter(name="upper").one()
    workflow.write("Snakefile", BASIC.replace("tr a-z A-Z", "tr 'a-z' 'A-Z'"))
    workflow.run("--forceall")
    wf2 = fp.Transform.filter(type="pipeline", is_latest=True).one()
    upper2 = fp.Transform.filter(name="upper", is_latest=True).one()
    assert wf2.uid[:12] == wf1.uid[:12] and wf2 != wf1
    assert upper2.uid[:12] == upper1.uid[:12] and upper2 != upper1 and upper2.parent == wf2
    assert fp.Transform.filter(name="summarize").count() == 1  # unchanged rule: same Transform


def test_store_unreachable_then_replay(workflow, run_flowprov, fp_env, instance):
    basic(workflow)
    # the plugin records into an instance whose database cannot be reached while the workflow
    # runs (the test's own instance, with its database out of reach), and is back afterwards
    down = fp_env / "config" / "instances" / "down.yaml"
    config = f"name: down\nuid: {instance.config.uid}\ndb: {{db}}\nstorage: {workflow.root}\n"
    down.write_text(config.format(db="postgresql://nobody@127.0.0.1:9/none"))
    proc = workflow.run("--logger-flowprov-instance", "down")
    assert (workflow.root / "results/summary.txt").exists()  # the workflow ran to its normal end
    assert proc.stderr.count("cannot write to the provenance store") == 1  # warned once
    assert fp.Run.filter().count() == 0
    down.write_text(config.format(db=instance.config.db))  # the database is back
    run_flowprov("replay")  # every pending journal of this machine
    refresh()
    assert fp.Run.filter().count() == 5 and fp.Artifact.filter().count() == 7
    assert {r.status for r in fp.Run.filter()} == {"completed"}
    snapshot = sorted((r.uid, r.status, str(r.finished_at)) for r in fp.Run.filter())
    run_flowprov("replay")  # twice: nothing changes
    refresh()
    assert sorted((r.uid, r.status, str(r.finished_at)) for r in fp.Run.filter()) == snapshot
    assert fp.Artifact.filter().count() == 7


@pytest.mark.parametrize("cores", ["2"])
def test_group_jobs_with_a_pipe(workflow, cores):
    workflow.write(
        "Snakefile",
        """
        rule all:
            input: "counted.txt"

        rule produce:
            output: pipe("stream.txt")
            group: "g"
            shell: "seq 1 100 > {output}"

        rule consume:
            input: "stream.txt"
            output: "counted.txt"
            group: "g"
            shell: "wc -l < {input} > {output}"
        """,
    )
    workflow.run("--cores", cores)
    jobs = {j.transform.name: j for j in fp.Run.filter(parent__transform__type="pipeline")}
    assert set(jobs) == {"all", "produce", "consume"}
    assert {j.status for j in jobs.values()} == {"completed"}
    assert jobs["produce"].outputs.count() == 0  # a pipe is not a file: nothing to hash
    assert keys(jobs["consume"].outputs) == ["counted.txt"]


def test_snakemake_lists_the_plugin_and_its_settings(workflow):
    import subprocess

    from tests.snakemake.conftest import snakemake_exe

    out = subprocess.run(
        [snakemake_exe(), "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    for setting in ("instance", "register", "name", "version", "reference", "spool"):
        assert f"--logger-flowprov-{setting}" in out
    assert "SNAKEMAKE_LOGGER_FLOWPROV_REGISTER" in out.replace("\n", "").replace(" ", "")


def test_included_files_version_the_workflow(workflow):
    basic(workflow)
    workflow.write("Snakefile", BASIC + '\ninclude: "rules/extra.smk"\n')
    workflow.write(
        "rules/extra.smk", 'rule extra:\n    output: "extra.txt"\n    shell: "echo 1 > {output}"\n'
    )
    workflow.run()
    workflow.write(
        "rules/extra.smk", 'rule extra:\n    output: "extra.txt"\n    shell: "echo 2 > {output}"\n'
    )
    workflow.run()  # nothing to re-run, but the code changed: a new version of the pipeline
    versions = fp.Transform.filter(type="pipeline").order_by("uid").all()
    assert len(versions) == 2 and versions[0].uid[:12] == versions[1].uid[:12]
    assert (
        versions[1].is_latest and versions[0].source_code == versions[1].source_code
    )  # the main file
    assert versions[0].hash != versions[1].hash


def test_storage_plugin_files_are_registered_by_their_storage_query(workflow, fp_env):
    """Files behind a Snakemake storage plugin are logged by their query (a URL for s3/gs, an
    absolute path for the `fs` plugin), not by Snakemake's local copy in .snakemake/storage."""
    import os
    import shutil

    pytest.importorskip("snakemake_storage_plugin_fs")
    if shutil.which("rsync") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise AssertionError("rsync is missing: .ci/run installs it for the fs storage plugin")
        pytest.skip("the fs storage plugin needs rsync")
    remote = fp_env / "shared-fs"
    remote.mkdir()
    (remote / "in.txt").write_text("remote input\n")
    workflow.write(
        "Snakefile",
        f"""
        rule all:
            input: storage.fs("{remote}/out.txt")

        rule copy:
            input: storage.fs("{remote}/in.txt")
            output: storage.fs("{remote}/out.txt")
            shell: "tr a-z A-Z < {{input}} > {{output}}"
        """,
    )
    workflow.run()
    job = fp.Run.filter(transform__name="copy").one()
    assert ".snakemake/storage/fs" in job.params["shellcmd"]  # Snakemake works on a local copy ...
    (inp,), (out,) = list(job.inputs), list(job.outputs)
    # ... flowprov records the real place: outside every declared root, by absolute location
    assert (inp.storage.root, inp.key) == ("/", host_key(remote / "in.txt"))
    assert (out.storage.root, out.key) == ("/", host_key(remote / "out.txt"))
    assert out.path.read_text() == "REMOTE INPUT\n"


def test_a_failing_job_inside_a_group(workflow):
    workflow.write(
        "Snakefile",
        """
        rule all:
            input: "b.txt"

        rule a:
            output: "a.txt"
            group: "g"
            shell: "echo a > {output}"

        rule b:
            input: "a.txt"
            output: "b.txt"
            group: "g"
            shell: "exit 5"
        """,
    )
    assert workflow.run("--cores", "2", check=False).returncode != 0
    jobs = {j.transform.name: j for j in fp.Run.filter(parent__transform__type="pipeline")}
    assert jobs["a"].status == "completed" and keys(jobs["a"].outputs) == ["a.txt"]
    assert jobs["b"].status == "failed" and "exit status 5" in jobs["b"].error
    assert fp.Run.filter(transform__type="pipeline").one().status == "failed"
