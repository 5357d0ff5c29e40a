"""Issue 12, point 3: a Nextflow task is never identified by the trace's 32-bit short hash alone.

The traces are the real nf-core/hlatyping fixture, copied and edited into a "chipseq" and an
"rnaseq" run whose short hashes collide (a lab store reaches a 50 % chance of one such collision
at about 77,000 tasks)."""

from pathlib import Path

import flowprov as fp

from tests.nextflow.test_ingest import FIXTURE, HEADER, _row, _trace

FIELDS = FIXTURE.read_text().splitlines()[0].split("\t")


def _edit(rows: list[str], **changes_by_line) -> list[str]:
    """Rows of the fixture with some cells changed: {line index: {field: value}}."""
    out = []
    for i, row in enumerate(rows):
        cells = row.split("\t")
        for field, value in changes_by_line.get(f"r{i}", {}).items():
            cells[FIELDS.index(field)] = value
        out.append("\t".join(cells))
    return out


def chipseq_trace(path: Path) -> Path:
    """The fixture as a chipseq run: the same hashes, CHIPSEQ: process names."""
    header, *rows = FIXTURE.read_text().splitlines()
    renamed = []
    for row in rows:
        cells = row.split("\t")
        cells[FIELDS.index("name")] = "CHIPSEQ:" + cells[FIELDS.index("name")].upper()
        renamed.append("\t".join(cells))
    path.write_text("\n".join([header, *renamed]) + "\n")
    return path


def rnaseq_trace(path: Path) -> Path:
    """Three rows of another pipeline, a year later; the third's short hash equals the chipseq
    OUTPUT_DOCUMENTATION task's (02/0f3625)."""
    header, *rows = FIXTURE.read_text().splitlines()
    day = "2022-06-01 10:0"
    picked = _edit(
        rows[:3],
        r0={"hash": "c1/0ffee1", "name": "RNASEQ:FASTQC (s1)", "submit": day + "0:00.000"},
        r1={"hash": "c2/0ffee2", "name": "RNASEQ:TRIMGALORE (s1)", "submit": day + "1:00.000"},
        r2={"hash": "02/0f3625", "name": "RNASEQ:SALMON_QUANT (s1)", "submit": day + "2:00.000"},
    )
    path.write_text("\n".join([header, *picked]) + "\n")
    return path


def test_a_short_hash_shared_across_pipelines_is_two_tasks(instance, fp_env, run_flowprov):
    chip = chipseq_trace(fp_env / "chipseq_trace.txt")
    rna = rnaseq_trace(fp_env / "rnaseq_trace.txt")
    out = run_flowprov("nextflow", "ingest", str(chip), "--pipeline", "nf-core/chipseq").stdout
    assert "6 tasks; 7 runs recorded, 0 already known" in out
    out = run_flowprov("nextflow", "ingest", str(rna), "--pipeline", "nf-core/rnaseq").stdout
    assert "3 tasks; 4 runs recorded, 0 already known" in out  # was: 3 recorded, 1 already known

    rnaseq = fp.Run.filter(transform__name="nf-core/rnaseq").one()
    assert sorted(r.transform.name for r in rnaseq.children) == [
        "RNASEQ:FASTQC",
        "RNASEQ:SALMON_QUANT",
        "RNASEQ:TRIMGALORE",
    ]
    assert fp.Run.filter(transform__name="CHIPSEQ:OUTPUT_DOCUMENTATION").count() == 1
    salmon = fp.Run.filter(transform__name="RNASEQ:SALMON_QUANT").one()
    assert salmon.parent == rnaseq and salmon.params["hash"] == "02/0f3625"
    # without the work directory, a row is its pipeline run's task_id
    assert salmon.reference == f"{rnaseq.reference}/task/{salmon.params['task_id']}"


def test_short_hashes_collide_inside_one_run_too(instance, fp_env):
    t = _trace(
        fp_env / "trace.txt",
        [_row(1, "ab/cdef01", "ALIGN (s1)"), _row(2, "ab/cdef01", "ALIGN (s2)")],
    )
    r = ingest_trace_(t)
    assert (r.tasks, r.new_runs) == (2, 3)
    assert sorted(x.params["tag"] for x in fp.Run.filter(transform__name="ALIGN")) == ["s1", "s2"]


def ingest_trace_(t, **kw):
    from flowprov_nextflow import ingest_trace

    return ingest_trace(t, pipeline=kw.pop("pipeline", "demo"), **kw)


def test_the_workdir_column_gives_the_full_hash(instance, fp_env):
    full1 = "ab/cdef01" + "1" * 24
    full2 = "ab/cdef01" + "2" * 24
    header = HEADER + "\tworkdir"
    rows = [
        _row(1, "ab/cdef01", "ALIGN (s1)") + f"\t/scratch/run/work/{full1}",
        _row(2, "ab/cdef01", "ALIGN (s2)") + f"\t/scratch/run/work/{full2}",
    ]
    t = fp_env / "trace.txt"
    t.write_text(header + "\n" + "\n".join(rows) + "\n")
    ingest_trace_(t)
    refs = {x.params["tag"]: x.reference for x in fp.Run.filter(transform__name="ALIGN")}
    assert refs == {"s1": full1, "s2": full2}
    assert {x.reference_type for x in fp.Run.filter(transform__name="ALIGN")} == {
        "nextflow task hash"
    }


def test_a_cached_row_reuses_the_earlier_task_of_its_own_pipeline_only(instance, fp_env):
    first = _trace(
        fp_env / "t1.txt",
        [_row(1, "aa/111111", "ALIGN (s1)"), _row(2, "bb/222222", "ALIGN (s2)", "FAILED", "1")],
    )
    ingest_trace_(first, pipeline="nf-core/rnaseq")
    # another pipeline ran a task with the same short hash, process name and tag
    other = _trace(
        fp_env / "other.txt", [_row(1, "aa/111111", "ALIGN (s1)", submit="2025-01-02 11:00:00.000")]
    )
    ingest_trace_(other, pipeline="lab/other")
    resumed = _trace(
        fp_env / "t2.txt",
        [
            _row(1, "aa/111111", "ALIGN (s1)", "CACHED"),  # a cached row keeps the original times
            _row(3, "dd/444444", "ALIGN (s2)", submit="2025-01-03 09:00:01.000"),
        ],
    )
    r = ingest_trace_(resumed, pipeline="nf-core/rnaseq")
    assert (r.new_runs, r.known_runs) == (2, 1)  # the resumed pipeline run and ALIGN (s2)
    rnaseq_runs = fp.Run.filter(transform__name="nf-core/rnaseq").order_by("started_at").all()
    assert len(rnaseq_runs) == 2
    cached = fp.Run.filter(transform__key="nextflow:nf-core/rnaseq:ALIGN", params__isnull=False)
    s1 = [x for x in cached if x.params["tag"] == "s1"]
    assert len(s1) == 1 and s1[0].parent == rnaseq_runs[0] and s1[0].status == "completed"
    assert any("1 CACHED row" in n and "reuse" in n for n in r.notes)


def test_a_cached_row_that_cannot_be_matched_is_its_own_run_and_said(
    instance, fp_env, run_flowprov
):
    # two earlier tasks share short hash, process and tag: which one is reused cannot be known
    ingest_trace_(_trace(fp_env / "a.txt", [_row(1, "aa/111111", "ALIGN (s1)")]), pipeline="p")
    ingest_trace_(
        _trace(
            fp_env / "b.txt",
            [_row(1, "aa/111111", "ALIGN (s1)", submit="2025-01-05 10:00:00.000")],
        ),
        pipeline="p",
    )
    c = _trace(
        fp_env / "c.txt",
        [
            _row(1, "aa/111111", "ALIGN (s1)", "CACHED", submit="2025-01-06 10:00:00.000"),
            _row(2, "ee/555555", "ALIGN (s9)", "CACHED", submit="2025-01-06 10:00:00.000"),
        ],
    )
    out = run_flowprov("nextflow", "ingest", str(c), "--pipeline", "p").stdout
    assert "2 tasks; 3 runs recorded, 0 already known" in out
    assert fp.Run.filter(status="cached").count() == 2
    own = [line for line in out.splitlines() if "CACHED row recorded as its own run" in line]
    assert len(own) == 2
    assert "c.txt:2" in own[0] and "several" in own[0]  # ambiguous
    assert "c.txt:3" in own[1] and "no earlier" in own[1]  # not found
