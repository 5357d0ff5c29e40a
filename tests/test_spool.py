"""The sink engine plugins write through: a journal on local disk first, then the store; a journal
that no store has taken (a killed process, an unreachable database) waits for `flowprov replay`."""

import os
import shutil
import subprocess
import sys

import flowprov as fp
import fsspec
import pytest
from flowprov import config as C
from flowprov import instance as inst_mod
from flowprov import spool
from flowprov.artifacts import in_place_event
from flowprov.errors import ValidationError
from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec
from flowprov.spool import Sink, append, read, replay

UID = "spoolrun000000000001"


def _events(uid=UID, ref="r1"):
    t = TransformSpec(name="align", type="task")
    return [
        RunStarted(uid=uid, transform=t, engine="test", reference=ref, created_by="svc"),
        RunFinished(run=RunRef(engine="test", reference=ref), status="completed", created_by="svc"),
    ]


# a process that hands events to a Sink, then ends (normally, or killed)
SENDER = """
import os, sys
from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec
from flowprov.spool import Sink

uid, ref, how = sys.argv[1:4]
t = TransformSpec(name="align", type="task")
sink = Sink(os.path.join(os.getcwd(), "spool.jsonl"), source="sender")
sink.send([RunStarted(uid=uid, transform=t, engine="test", reference=ref, created_by="svc")],
          buffered=True)
sink.send([RunFinished(run=RunRef(engine="test", reference=ref), status="completed",
                       created_by="svc")], buffered=True)
if how == "kill":
    os.kill(os.getpid(), 9)
"""


def sender(fp_env, uid=UID, ref="r1", how="exit", instance=None):
    env = dict(os.environ)
    if instance:
        env["FLOWPROV_INSTANCE"] = instance
    proc = subprocess.run(
        [sys.executable, "-c", SENDER, uid, ref, how],
        cwd=fp_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == (-9 if how == "kill" else 0), proc.stderr
    return proc


def journals(fp_env) -> list:
    return sorted((fp_env / "cache" / "journal").glob("*.jsonl"))


def down(inst):
    """The instance's database goes away (same instance, same uid: the server is down)."""
    good = C.load_instance_config(inst.config_path)
    C.save_instance_config(good.copy(db="postgresql://nobody@127.0.0.1:9/none"), make_current=False)
    inst_mod.reset_cache()
    return good


def up(good):
    C.save_instance_config(good, make_current=False)
    inst_mod.reset_cache()


def n_runs() -> int:
    inst_mod.reset_cache()
    return inst_mod.current().counts()["runs"]


def test_sink_writes_to_the_store_and_leaves_no_journal(instance, fp_env):
    sink = Sink(fp_env / "spool.jsonl", source="test")
    sink.send(_events())
    assert not sink.spooling and fp.Run.get(UID).status == "completed"
    assert read(sink.journal_path).batches == []  # applied: the journal is back to its header
    sink.close()
    assert journals(fp_env) == [] and not (fp_env / "spool.jsonl").exists()


def test_events_are_on_disk_before_send_returns(instance, fp_env):
    sink = Sink(fp_env / "spool.jsonl", source="test")
    sink.send(_events()[:1], buffered=True)
    sink.send(_events()[1:], buffered=True)
    assert n_runs() == 0  # waiting in memory for one transaction ...
    kept = read(sink.journal_path)
    assert [e.kind for e in kept.events] == ["run_started", "run_finished"]  # ... and on disk
    assert kept.header["instance_uid"] == instance.config.uid
    assert kept.header["instance"] == str(instance.config_path.resolve())
    sink.flush()
    assert n_runs() == 1 and read(sink.journal_path).batches == []
    sink.close()


def test_a_killed_process_loses_nothing(instance, fp_env, run_flowprov):
    sender(fp_env, how="kill")
    assert n_runs() == 0  # both events were buffered when the process died
    (j,) = journals(fp_env)
    out = run_flowprov("replay").stdout
    assert f"replayed 2 events in 2 batches from {j}" in out.replace("\n", "") and not j.exists()
    assert fp.Run.get(UID).status == "completed" and fp.Run.get(UID).created_by.handle == "svc"


def test_unreachable_store_keeps_events_warns_once_and_replays_exactly_once(
    instance, fp_env, run_flowprov, caplog
):
    good = down(instance)
    sink = Sink(fp_env / "spool.jsonl", source="test")
    with caplog.at_level("WARNING", logger="flowprov"):
        sink.send(_events()[:1])
        sink.send(_events()[1:])
    assert sink.spooling and sink.spooled == 2
    assert caplog.text.count("cannot write to the provenance store") == 1
    assert str(sink.journal_path) in caplog.text and "`flowprov replay`" in caplog.text
    assert len(read(sink.journal_path).batches) == 2 and not (fp_env / "spool.jsonl").exists()
    up(good)
    # a live process's journal is never applied
    out = run_flowprov("replay").stdout
    assert f"still being written by process {os.getpid()}" in out and n_runs() == 0
    proc = run_flowprov("replay", str(sink.journal_path), check=False)
    assert proc.returncode == 1 and "still being written" in proc.stderr and n_runs() == 0
    sink.close()

    # the same, in a process that ends while its store is away: the journal outlives it
    down(instance)
    sender(fp_env, uid="spoolrun000000000002", ref="r2")
    up(good)
    pending = [j for j in journals(fp_env) if j != sink.journal_path]
    assert len(pending) == 1 and len(read(pending[0]).batches) == 2
    copy = shutil.copy(pending[0], fp_env / "copy.jsonl")
    out = run_flowprov("replay").stdout
    assert "replayed 2 events in 2 batches" in out and not pending[0].exists()
    run = fp.Run.get("spoolrun000000000002")
    assert run.status == "completed" and run.created_by.handle == "svc"
    assert "still being written" in run_flowprov("replay").stdout  # only the live one is left
    run_flowprov("replay", str(copy))  # the same events again: nothing changes
    inst_mod.reset_cache()
    assert fp.Run.filter().count() == 1 and fp.Run.get(run.uid).finished_at == run.finished_at


def test_a_sink_applies_its_journal_when_the_store_is_back(instance, fp_env, monkeypatch):
    good = down(instance)
    sink = Sink(fp_env / "spool.jsonl", source="test")
    sink.send(_events()[:1])
    assert sink.spooling
    up(good)
    monkeypatch.setattr(spool, "RETRY_SECONDS", 0.0)
    sink.send(_events()[1:])
    assert not sink.spooling and read(sink.journal_path).batches == []
    assert fp.Run.get(UID).status == "completed"
    sink.close()
    assert journals(fp_env) == []


def test_the_next_sink_applies_what_dead_processes_left_for_its_instance(
    instance, fp_env, run_flowprov
):
    _second_instance(fp_env)
    sender(fp_env, uid="spoolrun00000000000a", ref="ra", how="kill", instance="other")
    sender(fp_env, how="kill")  # the current instance's
    assert len(journals(fp_env)) == 2 and n_runs() == 0

    sink = Sink(fp_env / "spool.jsonl", source="test")
    sink.send(_events("spoolrun000000000003", "r3"))  # reaches mydata: applies mydata's journal
    assert {r.uid for r in fp.Run.filter()} == {UID, "spoolrun000000000003"}
    sink.close()
    (left,) = journals(fp_env)  # the other instance's journal is not ours to apply
    assert read(left).header["instance_name"] == "other"

    # a journal goes to the instance it names, whichever instance is current
    run_flowprov("replay")
    assert journals(fp_env) == [] and n_runs() == 2
    assert inst_mod.current("other").counts()["runs"] == 1


def _second_instance(fp_env):
    """Another instance ("other", SQLite), while mydata stays current."""
    current = (fp_env / "config" / "current_instance").read_text()
    inst_mod.init(fp_env / "other")
    (fp_env / "config" / "current_instance").write_text(current)
    inst_mod.reset_cache()


def test_a_cut_last_line_is_skipped_with_a_warning(instance, fp_env, run_flowprov):
    sender(fp_env, how="kill")
    (j,) = journals(fp_env)
    with open(j, "a") as f:
        f.write('{"events": [{"kind": "run_sta')  # killed in the middle of a write
    proc = run_flowprov("replay")
    assert "cut short" in proc.stdout.replace("\n", " ") and "cut short" in proc.stderr
    assert fp.Run.get(UID).status == "completed" and journals(fp_env) == []


def test_damage_inside_a_spool_file_names_the_line(instance, fp_env):
    p = fp_env / "bad.jsonl"
    p.write_text('{"events": []}\n{"events": [{"kind": "run_started"\n{"events": []}\n')
    with pytest.raises(ValidationError, match="bad.jsonl, line 2"):
        replay(p)


def test_a_spool_file_of_an_earlier_flowprov_replays_to_the_current_instance(
    instance, fp_env, run_flowprov
):
    old = fp_env / "flowprov-spool.jsonl"
    append(old, _events()[:1])
    append(old, _events()[1:])
    assert "replayed 2 events in 2 batches" in run_flowprov("replay", str(old)).stdout
    run_flowprov("replay", str(old))  # twice: nothing changes
    assert old.is_file() and n_runs() == 1 and fp.Run.get(UID).status == "completed"


def test_without_a_journal_events_go_to_the_spool_file(instance, fp_env, monkeypatch, caplog):
    """The cache folder cannot be written and the store cannot be reached: the spool file."""
    good = down(instance)
    monkeypatch.setenv("FLOWPROV_CACHE_DIR", str(fp_env / "not-a-folder"))
    (fp_env / "not-a-folder").write_text("")
    sink = Sink(fp_env / "spool.jsonl", source="test")
    with caplog.at_level("WARNING", logger="flowprov"):
        sink.send(_events())
    assert "cannot write its journal" in caplog.text and sink.spooled == 2
    up(good)
    assert replay(fp_env / "spool.jsonl") == (1, 2) and fp.Run.get(UID).status == "completed"


def test_remote_objects_are_hashed_by_streaming(instance):
    fs = fsspec.filesystem("memory")
    fs.pipe("/lab-bucket/runs/r1/counts.tsv", b"gene\tn\nIFNG\t7\n")
    ev = in_place_event("memory://lab-bucket/runs/r1/counts.tsv", roots=[])
    assert ev.storage_root == "memory://lab-bucket" and ev.key == "runs/r1/counts.tsv"
    assert ev.size == 14 and ev.suffix == ".tsv" and not ev.managed
    a = fp.Artifact.get(instance.store.apply([ev])[0].uid)
    assert a.storage.type == "memory" and a.key == "runs/r1/counts.tsv"


def test_a_journal_written_without_an_instance_is_applied_only_on_request(fp_env, run_flowprov):
    """No instance was set up when the process ran: `flowprov replay` cannot know where its events
    belong and keeps the journal; `flowprov replay FILE` applies it to the current instance."""
    sender(fp_env, how="kill")
    (j,) = journals(fp_env)
    assert "instance_uid" not in read(j).header
    inst_mod.init(fp_env / "mydata")
    proc = run_flowprov("replay", check=False)
    assert proc.returncode == 1 and "knew no instance" in proc.stderr and j.exists()
    run_flowprov("replay", str(j))
    assert fp.Run.get(UID).status == "completed" and journals(fp_env) == []


FORKER = """
import os, sys, time
from flowprov.events import RunStarted, TransformSpec
from flowprov.spool import Sink

sink = Sink(os.path.join(os.getcwd(), "spool.jsonl"), source="forker")
t = TransformSpec(name="align", type="task")
sink.send([RunStarted(uid=sys.argv[1], transform=t, engine="test", reference="r1")], buffered=True)
child = os.fork()
if child == 0:  # a worker forked by the engine lives on after its parent is killed
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    time.sleep(120)
    os._exit(0)
print(child, flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_forked_child_does_not_keep_its_killed_parents_journal_alive(
    instance, fp_env, run_flowprov
):
    proc = subprocess.run(
        [sys.executable, "-c", FORKER, UID], cwd=fp_env, capture_output=True, text=True
    )
    child = int(proc.stdout.split()[0])
    try:
        assert proc.returncode == -9 and journals(fp_env)
        out = run_flowprov("replay").stdout
        assert "replayed 1 events" in out and journals(fp_env) == []
        assert fp.Run.get(UID).status == "started"
    finally:
        os.kill(child, 9)
