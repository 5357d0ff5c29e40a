"""One graph across engines: an upload → a real Snakemake job → a Nextflow task (trace + work
directory) → a real Prefect flow's task → a notebook run, joined by content hash alone."""

from pathlib import Path

import flowprov as fp
from flowprov.prefect import track
from prefect import flow, task

from tests.conftest import TEST_ARTIFACTS, write
from tests.nextflow.test_ingest import _row, _task, _trace
from tests.snakemake.conftest import Workflow


@task
def plot(counts: Path) -> Path:
    out = Path("figures") / "counts.png"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(b"PNG " + counts.read_bytes())
    return out


@track()
@flow
def integrated_analysis(counts: Path) -> Path:
    return plot(counts)


def test_upload_snakemake_nextflow_prefect_notebook_is_one_graph(workdir, fp_env):
    from flowprov_nextflow import ingest_trace

    # 1. an upload
    with fp.Run(transform=fp.Transform(name="Sequencer upload", type="upload").save()):
        reads = fp.Artifact(write(fp_env / "mydata" / "reads.fastq", "@r1\nacgt\n+\nFFFF\n")).save()
    # 2. a Snakemake job reads it
    wf = Workflow(fp_env / "workflow")
    wf.write(
        "Snakefile",
        f"""
        rule trim:
            input: "{reads.path}"
            output: "trimmed.fastq"
            shell: "tr a-z A-Z < {{input}} > {{output}}"
        """,
    )
    wf.run()
    trimmed = fp.Artifact.filter(key__endswith="trimmed.fastq").one()
    assert trimmed.run.engine == "snakemake"
    # 3. a Nextflow task stages the Snakemake output and counts it
    work = fp_env / "work"
    _task(
        work,
        "aa/111111",
        {"counts.tsv": "r1\t1\n"},
        {"trimmed.fastq": wf.root / "trimmed.fastq"},
        "count\n",
    )
    ingest_trace(
        _trace(fp_env / "trace.txt", [_row(1, "aa/111111", "QUANT:COUNT (s1)")]),
        workdir=work,
        pipeline="nf-core/quant",
    )
    counts = fp.Artifact.filter(key__endswith="counts.tsv").one()
    assert counts.run.engine == "nextflow" and list(counts.run.inputs) == [trimmed]
    # 4. a Prefect flow's task plots the Nextflow output
    integrated_analysis(Path(counts.path))
    figure = fp.Artifact.filter(key__endswith="counts.png").one()
    assert figure.run.engine == "prefect"
    # 5. a notebook loads the figure
    review = fp.Transform(name="Review", type="notebook").save()
    with fp.Run(transform=review) as nb:
        figure.cache()

    g = nb.lineage()
    assert {reads.uid, trimmed.uid, counts.uid, figure.uid} <= g.uids("artifact")
    engines = {n.record["engine"] for n in g.runs}
    assert {"snakemake", "nextflow", "prefect"} <= engines
    assert {n.record["transform"].split(" (")[0] for n in g.runs} >= {
        "Sequencer upload",
        "trim",
        "QUANT:COUNT",
        "plot",
        "Review",
    }
    # the same from the raw file's side, and as transforms
    down = reads.lineage("downstream")
    assert nb.uid in down.uids("run") and figure.uid in down.uids("artifact")
    assert {t.name for t in review.ancestors()} >= {
        "Sequencer upload",
        "trim",
        "QUANT:COUNT",
        "plot",
    }
    # the enclosing workflow / pipeline / flow runs are boxes around their members
    assert {n.record["engine"] for n in g.groups.values()} >= {"snakemake", "nextflow", "prefect"}

    import shutil

    if shutil.which("dot"):  # kept for people to look at (test-artifacts/ is not committed)
        TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
        png = g.save(
            TEST_ARTIFACTS / "cross-engine-lineage.png",
            title="upload → Snakemake → Nextflow → Prefect → notebook",
        )
        assert png.stat().st_size > 10_000
