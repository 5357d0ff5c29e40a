"""What the weblog receiver records, checked against what is known to have happened (the tasks a
stream was built from) and against `flowprov nextflow ingest` of the same launch's trace, in both
orders. Events are translated and applied here as the receiver's applier does (in batches); the
receiver itself (HTTP, journal, kills) is tested in test_weblog_receiver.py."""

from __future__ import annotations

import json
from pathlib import Path

import flowprov as fp
from flowprov_nextflow import ingest_trace
from flowprov_nextflow.weblog.envelope import parse_body
from flowprov_nextflow.weblog.translate import Translator

from .weblog_streams import (
    PIPELINE,
    VERSION,
    make_workdirs,
    retry,
    stream,
    tasks_from_fixture,
    write_trace,
)

RUN_ID = "3f0e8b52-5c4e-4bd2-9a51-8a6c7b0f2d11"


def hear(envelopes: list[dict], batch: int = 40, translator: Translator | None = None):
    """Apply a stream as the receiver does: each POST body parsed, batches translated and
    applied in one transaction each."""
    tr = translator or Translator()
    store = fp.instance.current().store
    for i in range(0, len(envelopes), batch):
        evs = [parse_body(json.dumps(e).encode()) for e in envelopes[i : i + batch]]
        store.apply(tr.translate(evs))
    return tr


def tasks_snapshot() -> dict:
    """{task reference: (status, process, pipeline run name, inputs, outputs)} — files by their
    path and content hash."""
    out = {}
    for r in fp.Run.filter(engine="nextflow", transform__type="process"):
        out[r.reference] = (
            r.status,
            r.transform.name,
            r.parent.name if r.parent else None,
            sorted((str(a.path), a.hash) for a in r.inputs),
            sorted((str(a.path), a.hash) for a in r.outputs),
        )
    return out


def expected(tasks) -> dict:
    """What happened: each task attempt, its status, its staged input and its output."""
    import blake3

    def h(path: Path) -> str:
        return blake3.blake3(path.read_bytes()).hexdigest()

    out = {}
    for t in tasks:
        d = Path(t.workdir)
        ok = t.status == "COMPLETED"
        src = (d / "input.txt").resolve()
        out[t.full_hash] = (
            "completed" if ok else "failed",
            t.process,
            None,  # filled by the caller: the pipeline run's name
            [(str(src), h(src))] if ok else [],
            [(str(d / f"{t.process}.out"), h(d / f"{t.process}.out"))] if ok else [],
        )
    return out


def _hash_prefix(snapshot: dict) -> dict:
    """Hashes as their first 16 hex digits (how `Artifact.hash` may be shown)."""
    return {
        ref: (s, p, n, [(a, h[:16]) for a, h in i], [(a, h[:16]) for a, h in o])
        for ref, (s, p, n, i, o) in snapshot.items()
    }


def _with_name(exp: dict, name: str) -> dict:
    return {k: (s, p, name, i, o) for k, (s, p, _, i, o) in exp.items()}


def test_a_50_task_pipeline_heard_live_is_what_happened_and_ingest_adds_nothing(instance, fp_env):
    work = fp_env / "launch" / "work"
    tasks = tasks_from_fixture(50, RUN_ID, work)
    make_workdirs(tasks, fp_env / "inputs")
    hear(stream(tasks, RUN_ID, "happy_turing", work_root=work))

    wf = fp.Run.filter(engine="nextflow", transform__type="pipeline").one()
    assert (wf.reference, wf.reference_type) == (f"{RUN_ID}/happy_turing", "nextflow launch")
    assert (wf.transform.name, wf.transform.version) == (PIPELINE, VERSION)
    assert wf.status == "completed" and wf.name == "happy_turing"
    assert wf.params["sessionId"] == RUN_ID and wf.params["outdir"] == "results"
    assert wf.runtime["source"] == "weblog" and wf.runtime["profile"] == "docker"
    assert wf.runtime["nextflow_version"] == "24.10.4"
    assert wf.created_by.handle == "jdoe"  # Nextflow's userName (no FLOWPROV_USER, no login)
    heard = tasks_snapshot()
    assert _hash_prefix(heard) == _hash_prefix(_with_name(expected(tasks), "happy_turing"))
    t = fp.Run.filter(reference=tasks[3].full_hash).one()
    assert (
        t.params["task_id"] == 4 and t.params["realtime_ms"] == tasks[3].complete - tasks[3].start
    )
    assert t.params["time_ms"] == 3_600_000 and t.params["attempt"] == 1
    assert t.started_at.timestamp() * 1000 == tasks[3].start
    assert t.created_by.handle == "jdoe"

    # the same launch's trace, ingested afterwards: joins the launch, adds nothing
    trace = write_trace(tasks, fp_env / "launch" / "trace.txt")
    n_runs, n_arts = fp.Run.filter().count(), fp.Artifact.filter().count()
    r = ingest_trace(trace, workdir=work)
    assert r.pipeline_run == wf.reference and r.new_runs == 0 and r.new_artifacts == 0
    assert (fp.Run.filter().count(), fp.Artifact.filter().count()) == (n_runs, n_arts)
    assert tasks_snapshot() == heard


def test_ingest_first_then_the_stream_make_one_launch(instance, fp_env):
    work = fp_env / "launch" / "work"
    tasks = tasks_from_fixture(20, RUN_ID, work)
    make_workdirs(tasks, fp_env / "inputs")
    trace = write_trace(tasks, fp_env / "launch" / "trace.txt")
    ingest_trace(trace, workdir=work, pipeline=PIPELINE, version=VERSION)
    from_trace = tasks_snapshot()
    assert _hash_prefix(from_trace) == _hash_prefix(_with_name(expected(tasks), None))

    hear(stream(tasks, RUN_ID, "happy_turing", work_root=work))
    wf = fp.Run.filter(engine="nextflow", transform__type="pipeline").one()  # merged: one
    assert wf.reference == f"{RUN_ID}/happy_turing" and wf.status == "completed"
    assert wf.params["trace"] == str(trace.resolve())  # what the trace's record knew, kept
    assert wf.children.count() == 20
    assert _hash_prefix(tasks_snapshot()) == _hash_prefix(_with_name(from_trace, "happy_turing"))
    # and the trace again: still one launch, nothing new
    again = ingest_trace(trace, workdir=work)
    assert again.pipeline_run == wf.reference and again.new_runs == 0
    assert fp.Run.filter(engine="nextflow", transform__type="pipeline").count() == 1


def test_two_concurrent_launches_interleaved(instance, fp_env):
    a_work, b_work = fp_env / "a" / "work", fp_env / "b" / "work"
    a = tasks_from_fixture(12, RUN_ID, a_work)
    b = tasks_from_fixture(12, "9d1c0000-0000-4000-8000-000000000002", b_work, t0=a[0].submit + 7)
    make_workdirs(a + b, fp_env / "inputs")
    sa = stream(a, RUN_ID, "happy_turing", work_root=a_work)
    sb = stream(b, "9d1c0000-0000-4000-8000-000000000002", "sad_hopper", work_root=b_work)
    mixed = [e for pair in zip(sa, sb, strict=False) for e in pair]
    mixed += sa[len(sb) :] + sb[len(sa) :]
    hear(mixed, batch=7)
    runs = {r.name: r for r in fp.Run.filter(transform__type="pipeline")}
    assert set(runs) == {"happy_turing", "sad_hopper"}
    for name, ts in (("happy_turing", a), ("sad_hopper", b)):
        kids = {c.reference for c in runs[name].children}
        assert kids == {t.full_hash for t in ts}
        assert runs[name].status == "completed"


def test_a_retried_task_and_a_failing_pipeline(instance, fp_env):
    work = fp_env / "launch" / "work"
    tasks = tasks_from_fixture(8, RUN_ID, work)
    failed, second = retry(tasks[2], RUN_ID, work)
    last = tasks[5]
    doomed = type(last)(
        **{**last.__dict__, "status": "FAILED", "exit": 1, "error_action": "TERMINATE"}
    )
    attempts = [tasks[0], tasks[1], failed, second, tasks[3], tasks[4], doomed]
    make_workdirs(attempts, fp_env / "inputs")
    hear(
        stream(
            attempts,
            RUN_ID,
            "happy_turing",
            work_root=work,
            success=False,
            error="Process `run_optitype` terminated with an error exit status (1)",
            error_task=doomed,
        )
    )
    r1 = fp.Run.filter(reference=failed.full_hash).one()
    r2 = fp.Run.filter(reference=second.full_hash).one()
    assert (r1.status, r1.error) == ("failed", "exit status 137 (error strategy: RETRY)")
    assert (r2.status, r2.params["attempt"]) == ("completed", 2)
    assert r1.outputs.count() == 0 and r2.outputs.count() == 1
    d = fp.Run.filter(reference=doomed.full_hash).one()
    assert (d.status, d.error) == ("failed", "exit status 1 (error strategy: TERMINATE)")
    wf = fp.Run.filter(transform__type="pipeline").one()
    assert wf.status == "failed" and "terminated with an error exit status (1)" in wf.error
    assert wf.params["exitStatus"] == 1


def test_duplicates_and_redelivery_change_nothing(instance, fp_env):
    work = fp_env / "launch" / "work"
    tasks = tasks_from_fixture(10, RUN_ID, work)
    make_workdirs(tasks, fp_env / "inputs")
    s = stream(tasks, RUN_ID, "happy_turing", work_root=work)
    hear(s)
    before = tasks_snapshot()
    n = (fp.Run.filter().count(), fp.Artifact.filter().count())
    # every event twice more, in another batching, and a stale `process_started` after the end
    hear(s + s[::-1] + [e for e in s if e["event"] == "process_started"], batch=13)
    assert tasks_snapshot() == before
    assert (fp.Run.filter().count(), fp.Artifact.filter().count()) == n
    assert fp.Run.filter(transform__type="pipeline").one().status == "completed"


def test_a_resumed_launch_then_its_trace_with_cached_rows(instance, fp_env):
    work = fp_env / "launch" / "work"
    first = tasks_from_fixture(10, RUN_ID, work)
    make_workdirs(first, fp_env / "inputs")
    # the first launch dies after 6 tasks; it is resumed (same runId, new runName): 6 tasks are
    # cached (never reported by the weblog), 4 run again in new work folders
    hear(stream(first[:6], RUN_ID, "happy_turing", work_root=work, success=False, error="killed"))
    rest = tasks_from_fixture(10, RUN_ID + "-resume", work, t0=first[-1].complete + 60_000)[6:]
    make_workdirs(rest, fp_env / "inputs")
    hear(stream(rest, RUN_ID, "brave_curie", work_root=work))
    launches = {r.name: r for r in fp.Run.filter(transform__type="pipeline")}
    assert set(launches) == {"happy_turing", "brave_curie"}
    assert launches["brave_curie"].reference == f"{RUN_ID}/brave_curie"
    assert launches["brave_curie"].children.count() == 4

    trace = write_trace(rest, fp_env / "launch" / "trace-resume.txt", cached=first[:6])
    r = ingest_trace(trace, workdir=work)
    assert r.pipeline_run == f"{RUN_ID}/brave_curie"  # the trace is the resumed launch
    assert r.new_runs == 0 and "6 CACHED row(s) reuse the task runs recorded before" in r.notes
    assert fp.Run.filter(transform__type="pipeline").count() == 2
    # the cached tasks stay the first launch's runs
    assert {c.reference for c in launches["happy_turing"].children} == {
        t.full_hash for t in first[:6]
    }


def test_a_task_heard_before_its_end_is_ended_by_the_trace(instance, fp_env):
    """The receiver missed a `process_completed` (Nextflow drops a POST that fails): the task
    stays `started` until the trace, ingested later, says how it ended."""
    work = fp_env / "launch" / "work"
    tasks = tasks_from_fixture(4, RUN_ID, work)
    make_workdirs(tasks, fp_env / "inputs")
    s = stream(tasks, RUN_ID, "happy_turing", work_root=work)
    lost = next(e for e in s if e["event"] == "process_completed" and e["trace"]["task_id"] == 2)
    hear([e for e in s if e is not lost])
    assert fp.Run.filter(reference=tasks[1].full_hash).one().status == "started"
    ingest_trace(write_trace(tasks, fp_env / "launch" / "trace.txt"), workdir=work)
    t = fp.Run.filter(reference=tasks[1].full_hash).one()
    assert t.status == "completed" and t.finished_at.timestamp() * 1000 == tasks[1].complete
    assert t.outputs.count() == 1


def test_unknown_kinds_and_a_launch_heard_late(instance, fp_env):
    work = fp_env / "launch" / "work"
    tasks = tasks_from_fixture(3, RUN_ID, work)
    s = stream(tasks, RUN_ID, "happy_turing", work_root=work)
    odd = {**s[1], "event": "process_paused"}
    tr = hear([odd] + s[1:])  # no `started`: the receiver came up after the launch began
    assert any("unknown event kind 'process_paused'" in k for k in tr.ignored)
    assert any("`started` was not heard" in k for k in tr.ignored)
    wf = fp.Run.filter(transform__type="pipeline").one()
    assert wf.transform.name == "nextflow pipeline" and wf.status == "completed"
    assert wf.children.count() == 3
    # no work folders here: the runs stand, their files are left for `ingest --workdir`
    assert all(c.outputs.count() == 0 for c in wf.children)


def _tutorial_launch(fp_env):
    """The data-lineage tutorial's launch (peaceful_blackwell, its MULTIQC task) as the weblog
    would have told it: same session id, run name and task work folder."""
    from .test_lineage_store import TASK_REF
    from .weblog_streams import Task

    session = "065bdc6b-89b4-42ee-92c1-2a5af37f2c50"
    t0 = 1_746_815_240_000
    task = Task(
        task_id=7,
        process="MULTIQC",
        tag=None,
        hash=TASK_REF[:9],
        workdir=f"/nonexistent/work/{TASK_REF}",
        submit=t0,
        start=t0 + 100,
        complete=t0 + 5_000,
    )
    return session, task


def test_the_lineage_store_of_a_launch_heard_live_adds_to_it(instance, fp_env):
    from .test_lineage_store import TASK_REF, _ingest, _lineage_store

    session, task = _tutorial_launch(fp_env)
    hear(stream([task], session, "peaceful_blackwell", work_root="/nonexistent/work"))
    _ingest(_lineage_store(fp_env))
    wf = fp.Run.filter(transform__type="pipeline").one()  # the launch, not a second record
    assert wf.reference == f"{session}/peaceful_blackwell" and wf.status == "completed"
    multiqc = fp.Run.filter(transform__type="process").one()
    assert multiqc.reference == TASK_REF and multiqc.parent == wf
    # the lineage store adds the files the receiver could not read (no work folder here)
    assert multiqc.outputs.count() >= 1


def test_a_launch_read_from_its_lineage_store_is_found_by_the_receiver(instance, fp_env):
    from .test_lineage_store import TASK_REF, _ingest, _lineage_store

    _ingest(_lineage_store(fp_env))
    lid_run = fp.Run.filter(transform__type="pipeline").one()
    session, task = _tutorial_launch(fp_env)
    hear(stream([task], session, "peaceful_blackwell", work_root="/nonexistent/work"))
    wf = fp.Run.filter(transform__type="pipeline").one()
    assert wf.uid == lid_run.uid and wf.reference == "lid://16b31030474f2e96c55f4940bca3ab64"
    assert fp.Run.filter(transform__type="process").one().reference == TASK_REF


def test_values_of_the_wrong_type_are_left_out_not_fatal(instance, fp_env):
    work = fp_env / "launch" / "work"
    tasks = tasks_from_fixture(2, RUN_ID, work)
    s = stream(tasks, RUN_ID, "happy_turing", work_root=work)
    odd = json.loads(json.dumps(s))
    for e in odd:
        if e["event"] == "process_completed" and e["trace"]["task_id"] == 1:
            e["trace"].update(realtime="fast", complete=True, peak_rss=[1], module={"x": 1})
        if e["event"] == "process_submitted" and e["trace"]["task_id"] == 2:
            e["trace"]["workdir"] = ["not", "a", "path"]
    tr = hear(odd)
    assert any("wrong type left out" in k for k in tr.ignored)
    one = fp.Run.filter(reference=tasks[0].full_hash).one()
    assert one.status == "completed" and "realtime_ms" not in one.params
    assert fp.Run.filter(reference=tasks[1].full_hash).one().status == "completed"


def test_the_receivers_named_user_wins_over_nextflows_username(instance, fp_env, monkeypatch):
    monkeypatch.setenv("FLOWPROV_USER", "alice")
    work = fp_env / "launch" / "work"
    tasks = tasks_from_fixture(2, RUN_ID, work)
    hear(stream(tasks, RUN_ID, "happy_turing", work_root=work))
    wf = fp.Run.filter(transform__type="pipeline").one()
    assert wf.created_by.handle == "alice" and wf.runtime["user_name"] == "jdoe"
    assert {c.created_by.handle for c in wf.children} == {"alice"}


def test_a_task_only_the_lineage_store_knows_joins_the_launchs_pipeline(instance, fp_env):
    from .test_lineage_store import TASK_REF, _ingest, _lineage_store

    session, task = _tutorial_launch(fp_env)
    s = stream([task], session, "peaceful_blackwell", work_root="/nonexistent/work")
    hear(s[:1])  # only `started`: the receiver heard none of its tasks
    _ingest(_lineage_store(fp_env))
    wf = fp.Run.filter(transform__type="pipeline").one()
    multiqc = fp.Run.filter(reference=TASK_REF).one()
    assert multiqc.parent == wf
    assert multiqc.transform.parent == wf.transform  # the launch's pipeline, not a second one
    assert multiqc.transform.key == f"{wf.transform.key}:MULTIQC"
    assert fp.Transform.filter(type="pipeline").count() == 1
