"""The one contract: pydantic events applied in one transaction, idempotent by natural keys."""

import pytest
from flowprov import schema as S
from flowprov.errors import ValidationError
from flowprov.events import (
    ArtifactRef,
    ArtifactRegistered,
    ArtifactUsed,
    EventBatch,
    RunFinished,
    RunRef,
    RunStarted,
    TransformSpec,
)
from sqlalchemy import select


def snapshot(inst) -> dict:
    with inst.engine.connect() as c:
        return {
            name: c.execute(select(t).order_by(*t.primary_key.columns)).all()
            for name, t in {**S.TABLES, "run_inputs": S.run_inputs}.items()
        }


def engine_batch(root: str) -> list:
    wf = TransformSpec(name="rnaseq", type="pipeline", key="Snakefile", source_code="rule all: ...")
    rule = TransformSpec(name="align", type="rule", source_code="shell: 'bwa mem ...'")
    return [
        RunStarted(
            uid="wfrun00000000000000A",
            transform=wf,
            engine="snakemake",
            reference="wf-uuid-1",
            params={"genome": "GRCh38"},
            created_by="testuser2",
        ),
        RunStarted(
            uid="jobrun0000000000000A",
            transform=rule,
            engine="snakemake",
            reference="wf-uuid-1/3",
            parent=RunRef(engine="snakemake", reference="wf-uuid-1"),
            created_by="testuser2",
        ),
        ArtifactRegistered(
            stem="rawfastq00000000",
            storage_root=root,
            key="raw/R1.fastq.gz",
            hash="a" * 64,
            hash_type="blake3",
            size=10,
            suffix=".fastq.gz",
            created_by="testuser2",
        ),
        ArtifactUsed(
            run=RunRef(engine="snakemake", reference="wf-uuid-1/3"),
            artifact=ArtifactRef(hash="a" * 64),
        ),
        ArtifactRegistered(
            stem="bam0000000000000",
            storage_root=root,
            key="aligned/R1.bam",
            hash="b" * 64,
            hash_type="blake3",
            size=20,
            suffix=".bam",
            run=RunRef(engine="snakemake", reference="wf-uuid-1/3"),
            created_by="testuser2",
        ),
        RunFinished(run=RunRef(engine="snakemake", reference="wf-uuid-1/3"), status="completed"),
        RunFinished(run=RunRef(uid="wfrun00000000000000A"), status="completed"),
    ]


def test_same_batch_twice_changes_nothing(instance):
    batch = engine_batch(instance.storage.root)
    first = instance.store.apply(batch)
    assert [r.existed for r in first] == [False, False, False, False, False, True, True]
    before = snapshot(instance)
    second = instance.store.apply(batch)
    assert all(r.existed for r in second)
    assert [r.uid for r in first] == [r.uid for r in second]
    assert snapshot(instance) == before


def test_replay_from_json_is_idempotent(instance):
    """Events survive a JSON round trip (a spool file) and replaying them changes nothing."""
    batch = engine_batch(instance.storage.root)
    line = EventBatch(events=batch).model_dump_json()
    instance.store.apply(EventBatch.model_validate_json(line).events)
    before = snapshot(instance)
    instance.store.apply(EventBatch.model_validate_json(line).events)
    assert snapshot(instance) == before
    import flowprov as fp

    job = fp.Run.get("jobrun0000000000000A")
    assert job.parent.reference == "wf-uuid-1" and job.transform.type == "rule"
    assert [a.key for a in job.inputs] == ["raw/R1.fastq.gz"]
    assert [a.key for a in job.outputs] == ["aligned/R1.bam"]
    assert job.created_by.handle == "testuser2"


def test_engine_reference_is_a_natural_key(instance):
    t = TransformSpec(name="p", type="process")
    a = instance.store.apply(
        [
            RunStarted(
                uid="r1aaaaaaaaaaaaaaaaaa", transform=t, engine="nextflow", reference="a9/0da8f1"
            )
        ]
    )
    b = instance.store.apply(
        [
            RunStarted(
                uid="r2bbbbbbbbbbbbbbbbbb", transform=t, engine="nextflow", reference="a9/0da8f1"
            )
        ]
    )
    assert b[0].existed and b[0].uid == a[0].uid == "r1aaaaaaaaaaaaaaaaaa"


def test_a_bad_event_writes_nothing_of_its_batch(instance):
    before = snapshot(instance)
    batch = engine_batch(instance.storage.root)
    batch.insert(
        3, ArtifactUsed(run=RunRef(uid="no-such-run-00000000"), artifact=ArtifactRef(hash="a" * 64))
    )
    with pytest.raises(ValidationError, match="unknown run"):
        instance.store.apply(batch)
    assert snapshot(instance) == before


def test_event_models_validate_their_input():
    from pydantic import ValidationError as PydanticError

    with pytest.raises(PydanticError):
        RunRef()  # neither uid nor engine+reference
    with pytest.raises(PydanticError):
        TransformSpec(name="x", type="spreadsheet")
    with pytest.raises(PydanticError):
        RunFinished(run=RunRef(uid="x"), status="exploded")
