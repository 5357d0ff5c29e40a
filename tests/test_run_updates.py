"""The run events live sources need: a run's end figures (RunFinished.params), its signs of life
and start after queueing (RunAlive), a run recorded twice joined into one (RunMerged), and a run
heard going whose end another source reports (a later RunStarted with finished_at) — on SQLite
and PostgreSQL, each idempotent."""

from datetime import UTC, datetime, timedelta

import flowprov as fp
from flowprov.events import (
    ArtifactRegistered,
    ArtifactUsed,
    RunAlive,
    RunFinished,
    RunMerged,
    RunRef,
    RunStarted,
    TransformSpec,
)

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
PIPE = TransformSpec(name="demo", type="pipeline", key="nextflow:demo")
PROC = TransformSpec(name="align", type="process", key="nextflow:demo:align", parent=PIPE)


def ref(r: str) -> RunRef:
    return RunRef(engine="nextflow", reference=r)


def started(uid, reference, *, parent=None, status="started", at=T0, finished_at=None, **kw):
    return RunStarted(
        uid=uid,
        transform=PROC if parent else PIPE,
        engine="nextflow",
        reference=reference,
        parent=ref(parent) if parent else None,
        status=status,
        at=at,
        finished_at=finished_at,
        **kw,
    )


def test_end_params_alive_and_scheduled_to_started(instance):
    store = instance.store
    store.apply(
        [
            started("RUNPIPE0000000000000", "launch"),
            started(
                "RUNTASK0000000000000",
                "aa/1",
                parent="launch",
                status="scheduled",
                params={"task_id": 1, "time_ms": 60_000},
            ),
        ]
    )
    t = fp.Run.get(reference="aa/1")
    assert t.status == "scheduled"
    store.apply([RunAlive(run=ref("aa/1"), began=True, at=T0 + timedelta(seconds=5))])
    t = fp.Run.get(reference="aa/1")
    assert t.status == "started" and t.started_at == T0 + timedelta(seconds=5)
    # a second `began` (a duplicate event) does not move the start
    store.apply([RunAlive(run=ref("aa/1"), began=True, at=T0 + timedelta(seconds=9))])
    assert fp.Run.get(reference="aa/1").started_at == T0 + timedelta(seconds=5)
    end = RunFinished(
        run=ref("aa/1"), at=T0 + timedelta(minutes=1), params={"realtime_ms": 55_000, "exit": 0}
    )
    store.apply([end, end])
    t = fp.Run.get(reference="aa/1")
    assert t.status == "completed"
    assert t.params == {"task_id": 1, "time_ms": 60_000, "realtime_ms": 55_000, "exit": 0}
    # a sign of life moves updated_at of a going run only, and never backwards
    store.apply([RunAlive(run=ref("launch"), at=T0 + timedelta(minutes=2))])
    store.apply([RunAlive(run=ref("launch"), at=T0 + timedelta(minutes=1))])
    assert fp.Run.get(reference="launch").updated_at == T0 + timedelta(minutes=2)
    store.apply([RunAlive(run=ref("aa/1"), at=T0 + timedelta(hours=1))])
    assert fp.Run.get(reference="aa/1").updated_at == T0 + timedelta(minutes=1)


def test_a_run_heard_going_takes_the_end_another_source_reports_an_ended_one_not(instance):
    store = instance.store
    store.apply([started("RUNPIPE0000000000000", "launch")])
    store.apply([started("RUNTASK0000000000001", "aa/1", parent="launch")])
    store.apply([started("RUNTASK0000000000002", "aa/2", parent="launch")])
    store.apply([RunFinished(run=ref("aa/2"), status="failed", error="exit 1", at=T0)])
    end = T0 + timedelta(minutes=3)
    again = [  # a trace's rows, 60 of them to go through the bulk path too
        started(
            f"RUNTRACE{i:012d}", f"aa/{i}", parent="launch", status="completed", finished_at=end
        )
        for i in range(1, 61)
    ]
    store.apply(again)
    assert fp.Run.get(reference="aa/1").status == "completed"
    assert fp.Run.get(reference="aa/1").finished_at == end
    two = fp.Run.get(reference="aa/2")
    assert (two.status, two.error) == ("failed", "exit 1")  # an ended run is never changed
    # the one-at-a-time path
    store.apply([started("RUNTASK0000000000099", "aa/99", parent="launch")])
    store.apply(
        [
            started(
                "RUNTRACE000000000099",
                "aa/99",
                parent="launch",
                status="aborted",
                finished_at=end,
                error="aborted",
            )
        ]
    )
    assert fp.Run.get(reference="aa/99").status == "aborted"


def test_merge_moves_tasks_files_and_params_and_is_idempotent(instance, fp_env):
    store = instance.store
    f = fp_env / "mydata" / "out.txt"
    f.write_text("x")
    store.apply(
        [
            started("RUNLAUNCH00000000000", "launch", params={"sessionId": "s"}),
            started(
                "RUNTRACE000000000000", "trace:abc", params={"trace": "/t.txt", "sessionId": "?"}
            ),
            started("RUNTASK0000000000001", "aa/1", parent="trace:abc"),
            started("RUNTASK0000000000002", "aa/2", parent="launch"),
        ]
    )
    reg = ArtifactRegistered(
        stem="ARTSTEM000000000",
        storage_root=str(fp_env / "mydata"),
        key="out.txt",
        hash="h1",
        hash_type="blake3",
        run=ref("trace:abc"),
        size=1,
    )
    used = ArtifactUsed(
        run=ref("trace:abc"),
        artifact={"hash": "h1", "storage_root": str(fp_env / "mydata"), "key": "out.txt"},
    )
    store.apply([reg, used])
    merge = RunMerged(run=ref("launch"), duplicate=ref("trace:abc"))
    store.apply([merge])
    store.apply([merge])  # again: the duplicate is gone, nothing to do
    launch = fp.Run.get(reference="launch")
    assert {c.reference for c in launch.children} == {"aa/1", "aa/2"}
    assert launch.params == {"sessionId": "s", "trace": "/t.txt"}  # its own value wins
    assert fp.Run.filter(reference="trace:abc").count() == 0
    assert launch.outputs.one().key == "out.txt" and launch.inputs.count() == 1
    # later events name the launch; the store's caches do not hand out the deleted run's id
    store.apply([started("RUNTASK0000000000003", "aa/3", parent="launch")])
    assert launch.children.count() == 3
