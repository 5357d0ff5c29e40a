"""`flowprov nextflow ingest` on real files: the nf-core fixture trace, work directories built in
Nextflow's layout, and the data-lineage tutorial's records."""

import os
from pathlib import Path

import flowprov as fp
import pytest
from flowprov.errors import FileMissingError, ValidationError
from flowprov_nextflow import ingest_lineage, ingest_trace
from flowprov_nextflow.trace import TraceError

HERE = Path(__file__).parent
FIXTURE = HERE / "hlatyping_execution_trace.txt"
HEADER = "task_id\thash\tnative_id\tname\tstatus\texit\tsubmit\tstart\tcomplete\tduration\trealtime\t%cpu\tpeak_rss\trchar\twchar"


def test_the_real_trace_end_to_end(instance):
    r = ingest_trace(FIXTURE, pipeline="nf-core/hlatyping", version="1.2.0")
    assert r.tasks == 6
    wf = fp.Transform.filter(type="pipeline").one()
    assert (wf.name, wf.version) == ("nf-core/hlatyping", "1.2.0")
    run = wf.runs.one()
    assert run.status == "completed" and run.children.count() == 6
    procs = {t.name for t in fp.Transform.filter(type="process")}
    assert procs == {
        "make_ot_config",
        "get_software_versions",
        "output_documentation",
        "remap_to_hla",
        "multiqc",
        "run_optitype",
    }
    assert all(t.parent == wf for t in fp.Transform.filter(type="process"))
    remap = fp.Run.filter(transform__name="remap_to_hla").one()
    p = remap.params
    assert (
        p["task_id"] == 4
        and p["exit"] == 0
        and p["hash"] == "53/40f1bc"
        and p["native_id"] == "12525"
    )
    assert p["tag"] == "1" and p["duration_ms"] == 54_800 and p["realtime_ms"] == 53_300
    assert (
        p["cpu_percent"] == 32.8
        and p["peak_rss_bytes"] == round(141.1 * 2**20)
        and p["wchar_bytes"] == 103 * 2**20
    )
    # no work directory: the task is its pipeline run's task_id, not the 32-bit short hash
    assert remap.reference == f"{run.reference}/task/4" and remap.status == "completed"
    assert remap.reference_type == "nextflow task id"
    assert (
        remap.finished_at - remap.started_at
    ).total_seconds() == 54.8  # submit + duration (no start column)

    again = ingest_trace(FIXTURE, pipeline="nf-core/hlatyping", version="1.2.0")
    assert (again.new_runs, again.known_runs) == (0, 7) and fp.Run.filter().count() == 7


def _trace(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def _row(task_id, hash_, name, status="COMPLETED", exit_="0", submit="2025-01-02 10:00:00.000"):
    return "\t".join(
        [
            str(task_id),
            hash_,
            str(1000 + task_id),
            name,
            status,
            exit_,
            submit,
            submit,
            submit,
            "1.5s",
            "1.2s",
            "95.0%",
            "20 MB",
            "1 KB",
            "2 KB",
        ]
    )


def test_a_later_trace_of_the_same_run_adds_only_what_is_new(instance, fp_env):
    t = fp_env / "trace.txt"
    _trace(t, [_row(1, "aa/111111", "A (x)"), _row(2, "bb/222222", "B (x)")])
    ingest_trace(t, pipeline="demo")
    _trace(
        t,
        [
            _row(1, "aa/111111", "A (x)"),
            _row(2, "bb/222222", "B (x)"),
            _row(3, "cc/333333", "C (x)", "FAILED", "1"),
        ],
    )
    r = ingest_trace(t, pipeline="demo")
    assert fp.Run.filter(transform__type="process").count() == 3
    assert (r.new_runs, r.known_runs) == (1, 3) and fp.Run.filter(
        transform__name="C"
    ).one().status == "failed"
    assert "exit status 1" in fp.Run.filter(transform__name="C").one().error
    assert fp.Run.filter(transform__type="pipeline").one().status == "failed"


def test_resumed_run_links_cached_tasks(instance, fp_env):
    first = _trace(
        fp_env / "t1.txt",
        [_row(1, "aa/111111", "ALIGN (s1)"), _row(2, "bb/222222", "ALIGN (s2)", "FAILED", "137")],
    )
    ingest_trace(first, pipeline="demo")
    resumed = _trace(
        fp_env / "t2.txt",
        [
            _row(1, "aa/111111", "ALIGN (s1)", "CACHED", submit="2025-01-03 09:00:00.000"),
            _row(3, "dd/444444", "ALIGN (s2)", submit="2025-01-03 09:00:01.000"),
        ],
    )
    ingest_trace(resumed, pipeline="demo")
    pipelines = fp.Run.filter(transform__type="pipeline").order_by("started_at").all()
    assert len(pipelines) == 2  # two invocations ...
    tasks = fp.Run.filter(transform__type="process").all()
    assert len(tasks) == 3  # ... but the cached task is the one recorded before, not a copy
    (cached,) = [t for t in tasks if t.params["tag"] == "s1"]
    assert cached.parent == pipelines[0] and cached.status == "completed"


def test_custom_separator_and_bad_input_write_nothing(instance, fp_env):
    t = fp_env / "t.csv"
    t.write_text(
        HEADER.replace("\t", ";") + "\n" + _row(1, "aa/111111", "A").replace("\t", ";") + "\n"
    )
    ingest_trace(t, pipeline="sep")
    assert fp.Run.filter(transform__name="A").count() == 1
    bad = _trace(fp_env / "bad.txt", [_row(1, "ee/555555", "X"), "2\tff/666666\tbroken"])
    with pytest.raises(TraceError, match=r"bad.txt:3"):
        ingest_trace(bad, pipeline="bad")
    assert fp.Transform.filter(name="bad").count() == 0 and fp.Run.filter().count() == 2
    r = ingest_trace(bad, pipeline="bad", skip_bad_rows=True)
    assert len(r.skipped) == 1 and "bad.txt:3" in r.skipped[0]
    assert fp.Run.filter(transform__name="X").count() == 1


def _task(work: Path, hash_: str, outputs: dict, inputs: dict, script: str) -> Path:
    d = work / hash_[:2] / (hash_[3:] + "0" * 24)
    d.mkdir(parents=True)
    (d / ".command.sh").write_text(script)
    (d / ".exitcode").write_text("0")
    (d / ".command.out").write_text("")
    for name, text in outputs.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    for name, target in inputs.items():
        os.symlink(target, d / name)
    return d


def test_work_directories_give_files_and_lineage_across_three_processes(instance, fp_env):
    raw = fp_env / "data" / "sample.fastq"
    raw.parent.mkdir()
    raw.write_text("@r1\nACGT\n+\nFFFF\n")
    with fp.Run(transform=fp.Transform(name="Sequencer upload", type="upload")):
        uploaded = fp.Artifact(raw, description="raw reads").save()
    work = fp_env / "work"
    a = _task(
        work,
        "aa/111111",
        {"trimmed.fastq": "ACGT\n"},
        {"sample.fastq": raw},
        "#!/bin/bash\ntrim sample.fastq\n",
    )
    b = _task(
        work,
        "bb/222222",
        {"out/aligned.sam": "r1\tchr1\t100\n"},
        {"trimmed.fastq": a / "trimmed.fastq"},
        "#!/bin/bash\nalign\n",
    )
    _task(
        work,
        "cc/333333",
        {"counts.tsv": "chr1\t1\n"},
        {"aligned.sam": b / "out/aligned.sam"},
        "#!/bin/bash\ncount\n",
    )
    t = _trace(
        fp_env / "trace.txt",
        [
            _row(1, "aa/111111", "RNASEQ:TRIM (s1)"),
            _row(2, "bb/222222", "RNASEQ:ALIGN (s1)"),
            _row(3, "cc/333333", "RNASEQ:COUNT (s1)"),
        ],
    )
    mapping = fp_env / "transforms.yaml"
    mapping.write_text(
        "processes:\n  - match: '*:ALIGN'\n    name: STAR\n    version: 2.7.11b\n    reference: https://github.com/alexdobin/STAR\n"
    )
    ingest_trace(t, workdir=work, pipeline="nf-core/rnaseq", version="3.14.0", mapping=mapping)
    # with the work directory known, a task is its full hash
    trim, align, count = (
        fp.Run.filter(reference=h + "0" * 24).one() for h in ("aa/111111", "bb/222222", "cc/333333")
    )
    # the staged file is read where it is; the store joins it to the upload by content
    (staged,) = trim.inputs
    assert staged.key == str(raw).lstrip("/") and staged.hash == uploaded.hash
    assert uploaded.run.uid in trim.lineage("upstream").uids("run")
    # in place, by absolute location: the work folder does not become a storage root
    (out,) = trim.outputs
    assert out.key == str(a / "trimmed.fastq").lstrip("/") and out.storage.root == "/"
    assert {s.root for s in fp.Storage.filter()} == {str(fp_env / "mydata"), "/"}
    assert list(align.inputs) == list(trim.outputs) and list(count.inputs) == list(align.outputs)
    assert align.outputs.one().key.endswith("out/aligned.sam")
    star = align.transform
    assert (star.name, star.version, star.type) == ("STAR", "2.7.11b", "process")
    assert star.reference == "https://github.com/alexdobin/STAR" and "align" in star.source_code
    assert count.transform.name == "RNASEQ:COUNT"  # unmapped: the Nextflow path is kept
    assert set(count.transform.parents) == {star}
    assert (
        fp.Artifact.filter(key__endswith=".command.sh").count() == 0
    )  # Nextflow's files are not outputs

    # new code → a new task hash in Nextflow, and a new version of the process here
    _task(
        work,
        "ee/555555",
        {"counts.tsv": "chr1\t2\n"},
        {"aligned.sam": b / "out/aligned.sam"},
        "#!/bin/bash\ncount --strand\n",
    )
    t2 = _trace(
        fp_env / "t2.txt",
        [_row(4, "ee/555555", "RNASEQ:COUNT (s1)", submit="2025-02-01 10:00:00.000")],
    )
    ingest_trace(t2, workdir=work, pipeline="nf-core/rnaseq", version="3.14.0", run_id="second")
    assert fp.Transform.filter(name="RNASEQ:COUNT").count() == 2


def test_a_staged_input_is_the_place_it_was_read_from(instance, fp_env):
    """Two places hold the same bytes: the task's input is the one it staged, not either."""
    root = fp_env / "mydata"
    a, b = root / "raw" / "a.fastq", root / "raw" / "b.fastq"
    a.parent.mkdir()
    for p in (a, b):
        p.write_text("@r1\nACGT\n+\nFFFF\n")
    fp.save([fp.Artifact(a), fp.Artifact(b)])
    work = fp_env / "work"
    _task(work, "aa/111111", {"trimmed.fastq": "ACGT\n"}, {"reads.fastq": b}, "trim\n")
    t = _trace(fp_env / "trace.txt", [_row(1, "aa/111111", "TRIM (s1)")])
    ingest_trace(t, workdir=work, pipeline="p")
    (read,) = fp.Run.filter(transform__name="TRIM").one().inputs
    assert read.key == "raw/b.fastq" and read.storage.root == str(root)


def test_missing_work_directory_is_an_error_naming_the_row(instance, fp_env):
    (fp_env / "work").mkdir()
    t = _trace(fp_env / "trace.txt", [_row(1, "aa/111111", "A")])
    with pytest.raises(
        FileMissingError, match=r"trace.txt:2: no work directory for task aa/111111"
    ):
        ingest_trace(t, workdir=fp_env / "work", pipeline="p")
    assert fp.Run.filter().count() == 0


def test_bad_lineage_input(instance, fp_env):
    with pytest.raises(ValidationError, match="no such folder"):
        ingest_lineage(fp_env / "nope")
    d = fp_env / ".lineage" / "abc"
    d.mkdir(parents=True)
    (d / ".data.json").write_text("{not json")
    with pytest.raises(ValidationError, match=r"abc/.data.json: not a lineage record"):
        ingest_lineage(fp_env / ".lineage")


def test_cli(run_flowprov, fp_env):
    run_flowprov("init", "--storage", str(fp_env / "store"))
    out = run_flowprov(
        "nextflow", "ingest", str(FIXTURE), "--pipeline", "nf-core/hlatyping", "--version", "1.2.0"
    ).stdout
    assert "6 tasks; 7 runs recorded, 0 already known" in out
    p = run_flowprov("nextflow", "ingest", check=False)
    assert p.returncode == 2 and "give a TRACE file" in p.stderr
    p = run_flowprov("nextflow", "ingest", str(fp_env / "missing.txt"), check=False)
    assert p.returncode == 1 and "cannot read trace" in p.stderr
