"""Issue 12, point 4: a pipeline run's identity and status.

Identity must not depend on the machine's time zone (trace dates are local wall times) nor on
`--pipeline` being repeated; the status comes from each task's last attempt."""

import flowprov as fp
import pytest
from flowprov.errors import ValidationError
from flowprov_nextflow import ingest_trace

from tests.nextflow.test_ingest import FIXTURE, HEADER, _row, _trace


def test_another_time_zone_is_the_same_run(instance, fp_env, run_flowprov):
    args = ("nextflow", "ingest", str(FIXTURE), "--pipeline", "nf-core/hlatyping")
    out = run_flowprov(*args, env={"TZ": "Europe/Berlin"}).stdout
    assert "6 tasks; 7 runs recorded, 0 already known" in out
    out = run_flowprov(*args, env={"TZ": "America/New_York"}).stdout
    assert "6 tasks; 0 runs recorded, 7 already known" in out
    run = fp.Run.filter(transform__type="pipeline").one()
    assert run.children.count() == 6
    # the wall times are read in the zone the run was first recorded with, and kept as written
    assert run.params["timezone"] == "Europe/Berlin"
    remap = fp.Run.filter(transform__name="remap_to_hla").one()
    assert remap.params["submit"] == "2021-03-29T19:55:04.247"
    assert remap.started_at.isoformat() == "2021-03-29T17:55:04.247000+00:00"


def test_ingesting_again_without_pipeline_reuses_the_recorded_pipeline(
    instance, fp_env, run_flowprov
):
    out = run_flowprov(
        "nextflow", "ingest", str(FIXTURE), "--pipeline", "nf-core/hlatyping", "--version", "1.2.0"
    ).stdout
    assert "7 runs recorded" in out
    out = run_flowprov("nextflow", "ingest", str(FIXTURE)).stdout
    assert "6 tasks; 0 runs recorded, 7 already known" in out
    assert fp.Run.filter(transform__type="pipeline").count() == 1
    assert [t.name for t in fp.Transform.filter(type="pipeline")] == ["nf-core/hlatyping"]
    # a longer trace of the same run, without --pipeline: its new rows join the recorded pipeline
    longer = fp_env / "longer.txt"
    longer.write_text(
        FIXTURE.read_text()
        + "7\tab/cdef01\t12700\tmultiqc (2)\tCOMPLETED\t0\t2021-03-29 19:58:16.522\t1s\t1s\t1%\t1 MB\t1 MB\t1 KB\t1 KB\n"
    )
    r = ingest_trace(longer)
    assert (r.new_runs, r.known_runs) == (1, 7)
    new = fp.Run.filter(params__isnull=False, transform__name="multiqc").all()
    assert {x.transform.key for x in new} == {"nextflow:nf-core/hlatyping:multiqc"}
    # naming another pipeline for a recorded run is refused, not silently split
    with pytest.raises(ValidationError, match="nf-core/hlatyping"):
        ingest_trace(FIXTURE, pipeline="nf-core/other")


def _retry_trace(path, retried_ok: bool):
    """12 tasks fail (exit 137, out of memory) and are retried; the retries complete, or not."""
    rows, n = [], 0
    for i in range(12):
        n += 1
        rows.append(_row(n, f"a{i:x}/f{i:05x}", f"STAR_ALIGN (s{i})", "FAILED", "137"))
    for i in range(12):
        n += 1
        status, exit_ = ("COMPLETED", "0") if retried_ok or i else ("FAILED", "137")
        rows.append(
            _row(
                n,
                f"b{i:x}/e{i:05x}",
                f"STAR_ALIGN (s{i})",
                status,
                exit_,
                submit="2025-01-02 10:05:00.000",
            )
        )
    return _trace(path, rows)


def test_failed_attempts_retried_to_completion_make_a_completed_pipeline(instance, fp_env):
    ingest_trace(_retry_trace(fp_env / "trace.txt", retried_ok=True), pipeline="nf-core/rnaseq")
    run = fp.Run.filter(transform__type="pipeline").one()
    assert run.status == "completed" and run.error is None
    attempts = fp.Run.filter(parent=run, status="failed").all()
    assert len(attempts) == 12  # the failed attempts stay failed runs
    assert all("exit status 137" in a.error for a in attempts)
    assert fp.Run.filter(parent=run, status="completed").count() == 12


def test_a_task_whose_last_attempt_failed_fails_the_pipeline_with_its_reason(instance, fp_env):
    ingest_trace(_retry_trace(fp_env / "trace.txt", retried_ok=False), pipeline="nf-core/rnaseq")
    run = fp.Run.filter(transform__type="pipeline").one()
    assert run.status == "failed"
    assert "STAR_ALIGN (s0)" in run.error and "exit status 137" in run.error
    assert "STAR_ALIGN (s1)" not in run.error


def test_the_error_strategy_column_decides(instance, fp_env):
    header = HEADER + "\terror_action\tattempt"
    rows = [
        _row(1, "aa/111111", "A (x)", "FAILED", "1") + "\tRETRY\t1",
        _row(2, "bb/222222", "A (x)", "COMPLETED", "0") + "\t-\t2",
        _row(3, "cc/333333", "B (x)", "FAILED", "2") + "\tIGNORE\t1",
    ]
    t = fp_env / "trace.txt"
    t.write_text(header + "\n" + "\n".join(rows) + "\n")
    ingest_trace(t, pipeline="p")
    run = fp.Run.filter(transform__type="pipeline").one()
    assert run.status == "completed"
    first = fp.Run.filter(params__isnull=False, status="failed", transform__name="A").one()
    assert "exit status 1" in first.error and "retry" in first.error.lower()
    assert first.params["error_action"] == "RETRY" and first.params["attempt"] == 1
    ignored = fp.Run.filter(transform__name="B").one()
    assert ignored.status == "failed" and "ignore" in ignored.error.lower()
