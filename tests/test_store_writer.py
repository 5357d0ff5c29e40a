"""A busy sink's events go to the store through a writer process (store_writer.py): the same
records as writing them itself, nothing lost when the writer dies, nothing half-applied when it
cannot apply a batch."""

from __future__ import annotations

import os
import signal

import flowprov as fp
import pytest
from flowprov import instance as inst_mod
from flowprov import store_writer
from flowprov.events import (
    ArtifactRef,
    ArtifactUsed,
    RunFinished,
    RunRef,
    RunStarted,
    TransformSpec,
)
from flowprov.spool import Sink
from flowprov.uids import RUN_UID, random_uid

from tests.conftest import wait_until

T = TransformSpec(name="align", type="task")


def run_events(uid: str, ref: str) -> list:
    return [
        RunStarted(uid=uid, transform=T, engine="test", reference=ref, created_by="svc"),
        RunFinished(run=RunRef(uid=uid), status="completed", created_by="svc"),
    ]


def completed() -> set[str]:
    inst_mod.reset_cache()
    return {r.uid for r in fp.Run.filter(status="completed")}


@pytest.fixture
def busy_sink(instance, fp_env, monkeypatch):
    """A sink that starts its writer after 4 events, having applied the first 6 itself."""
    monkeypatch.setattr(store_writer, "WRITER_AFTER", 4)
    monkeypatch.setenv("FLOWPROV_STORE_WRITER", "on")
    sink = Sink(fp_env / "spool.jsonl", "test")
    uids = [random_uid(RUN_UID) for _ in range(3)]
    for i, uid in enumerate(uids):
        sink.send(run_events(uid, f"first{i}"))
    assert sink._writer is None  # not yet: 6 events applied here
    yield sink, uids
    sink.close()


def test_a_busy_sink_hands_its_events_to_a_writer_process(busy_sink):
    sink, uids = busy_sink
    more = [random_uid(RUN_UID) for _ in range(40)]
    for i, uid in enumerate(more):
        sink.send(run_events(uid, f"more{i}"), buffered=True)
    sink._ship()  # on their way, not waited for
    writer = sink._writer
    assert writer is not None and writer.proc.pid != os.getpid() and writer.proc.poll() is None
    assert sink._journal.pending  # the journal keeps them until the writer says they are in
    sink.flush()
    assert writer.idle and not sink._journal.pending and not sink.spooling
    assert completed() == set(uids + more)
    journal = sink.journal_path
    sink.close()
    assert writer.proc.returncode == 0
    assert not journal.exists()  # everything reached the store: no journal left behind


def test_a_writer_killed_midway_loses_nothing(busy_sink, caplog):
    sink, uids = busy_sink
    more = [random_uid(RUN_UID) for _ in range(20)]
    for i, uid in enumerate(more[:10]):
        sink.send(run_events(uid, f"a{i}"), buffered=True)
    sink._ship()
    writer = sink._writer
    os.kill(writer.proc.pid, signal.SIGKILL)  # whether it applied them or not: unknown here
    writer.proc.wait(timeout=30)
    for i, uid in enumerate(more[10:]):
        sink.send(run_events(uid, f"b{i}"), buffered=True)
    sink.flush()
    # this process wrote again, from its journal: every run once, none lost, none doubled
    assert sink._writer is None and not sink.spooling and not sink._journal.pending
    assert completed() == set(uids + more)
    assert fp.Run.filter(reference__startswith="a").count() == 10
    assert not [r for r in caplog.records if "cannot write" in r.getMessage()]


def test_a_batch_the_writer_cannot_apply_stays_in_the_journal(busy_sink, caplog):
    sink, uids = busy_sink
    good = random_uid(RUN_UID)
    sink.send(run_events(good, "good"), buffered=True)
    sink.flush()
    assert sink._writer is not None and completed() == set(uids + [good])
    bad = random_uid(RUN_UID)
    unknown = ArtifactRef(uid="nosuchartifact0000000")
    sink.send(
        [
            *run_events(bad, "bad")[:1],
            ArtifactUsed(run=RunRef(uid=bad), artifact=unknown, created_by="svc"),
        ],
        buffered=True,
    )
    sink.flush()
    # the writer refused the batch (all or nothing: not even its run is in); this process could
    # not apply it either: the events wait in the journal, said once
    assert sink._writer is None and sink.spooling
    assert bad not in {r.uid for r in fp.Run.filter()}
    assert sink._journal.pending and "nosuchartifact0000000" in sink.journal_path.read_text()
    warnings = [r for r in caplog.records if "cannot write to the provenance store" in r.message]
    assert len(warnings) == 1


def test_the_writer_answers_what_it_could_not_apply(instance, fp_env):
    """The protocol itself: an answer per batch, in order, and an error for a refused one."""
    w = store_writer.Writer()
    try:
        uid = random_uid(RUN_UID)
        line = sink_line(run_events(uid, "p1"))
        w.ship(str(instance.config_path), [line])
        assert w.wait(timeout=120) and w.idle
        assert uid in completed()
        bad = ArtifactUsed(
            run=RunRef(uid=uid), artifact=ArtifactRef(uid="nosuchartifact0000000"), created_by="s"
        )
        # the refusal is read by whichever call polls next: ship() itself if the answer is quick
        with pytest.raises(store_writer.WriterGone, match="nosuchartifact0000000"):
            w.ship(str(instance.config_path), [sink_line([bad])])
            w.wait(timeout=120)
        wait_until(lambda: w.proc.poll() is not None, timeout=60, what="the writer's exit")
        assert w.proc.returncode == 1
    finally:
        w.close(timeout=10)


def sink_line(events) -> bytes:
    from flowprov.events import EventBatch

    return (EventBatch(events=list(events)).model_dump_json() + "\n").encode()
