"""The sink engine plugins write through: store, or spool file + `flowprov replay`."""

import flowprov as fp
import fsspec
import pytest
from flowprov import config as C
from flowprov import instance as inst_mod
from flowprov.artifacts import in_place_event
from flowprov.errors import ValidationError
from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec
from flowprov.spool import Sink, replay


def _events():
    t = TransformSpec(name="align", type="task")
    return [
        RunStarted(
            uid="spoolrun000000000001", transform=t, engine="test", reference="r1", created_by="svc"
        ),
        RunFinished(
            run=RunRef(engine="test", reference="r1"), status="completed", created_by="svc"
        ),
    ]


def test_sink_writes_to_the_store(instance, fp_env):
    sink = Sink(fp_env / "spool.jsonl", source="test")
    sink.send(_events())
    assert not sink.spooling and not (fp_env / "spool.jsonl").exists()
    assert fp.Run.get("spoolrun000000000001").status == "completed"


def test_unreachable_store_spools_warns_once_and_replays_exactly_once(
    instance, fp_env, monkeypatch, caplog
):
    C.save_instance_config(
        C.InstanceConfig(
            name="down", uid="x", db="postgresql://nobody@127.0.0.1:9/none", storage=str(fp_env)
        ),
        make_current=False,
    )
    monkeypatch.setenv("FLOWPROV_INSTANCE", "down")
    sink = Sink(fp_env / "spool.jsonl", source="test")
    with caplog.at_level("WARNING", logger="flowprov"):
        sink.send(_events()[:1])
        sink.send(_events()[1:])
    assert sink.spooling and sink.spooled == 2
    assert caplog.text.count("cannot write to the provenance store") == 1
    assert len((fp_env / "spool.jsonl").read_text().splitlines()) == 2

    monkeypatch.setenv("FLOWPROV_INSTANCE", "mydata")
    inst_mod.reset_cache()
    assert replay(fp_env / "spool.jsonl") == (2, 2)
    run = fp.Run.get("spoolrun000000000001")
    assert run.status == "completed" and run.created_by.handle == "svc"
    replay(fp_env / "spool.jsonl")
    assert fp.Run.filter().count() == 1 and fp.Run.get(run.uid).finished_at == run.finished_at


def test_replay_of_a_damaged_spool_names_the_line(instance, fp_env):
    p = fp_env / "bad.jsonl"
    p.write_text('{"events": []}\n{"events": [{"kind": "run_started"\n')
    with pytest.raises(ValidationError, match="bad.jsonl, line 2"):
        replay(p)


def test_remote_objects_are_hashed_by_streaming(instance):
    fs = fsspec.filesystem("memory")
    fs.pipe("/lab-bucket/runs/r1/counts.tsv", b"gene\tn\nIFNG\t7\n")
    ev = in_place_event("memory://lab-bucket/runs/r1/counts.tsv", roots=[])
    assert ev.storage_root == "memory://lab-bucket" and ev.key == "runs/r1/counts.tsv"
    assert ev.size == 14 and ev.suffix == ".tsv" and not ev.managed
    a = fp.Artifact.get(instance.store.apply([ev])[0].uid)
    assert a.storage.type == "memory" and a.key == "runs/r1/counts.tsv"
