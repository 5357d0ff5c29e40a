import os
from pathlib import Path

import flowprov as fp
import pytest
from flowprov import schema as S
from flowprov.errors import FileMissingError, NotSaved, ValidationError
from sqlalchemy import func, select

from tests.conftest import write


def count(inst, table) -> int:
    with inst.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar()


# -- transforms ----------------------------------------------------------------------------
def test_transform_uid_is_stem_plus_version_and_new_version_flips_is_latest(instance):
    t1 = fp.Transform(name="Cell Ranger", type="pipeline", version="7.1.0").save()
    assert len(t1.uid) == 16 and t1.uid.endswith("0000") and t1.is_latest
    again = fp.Transform(name="Cell Ranger", type="pipeline", version="7.1.0").save()
    assert again.uid == t1.uid  # same family, same version → the same record
    t2 = fp.Transform(
        name="Cell Ranger",
        type="pipeline",
        version="7.2.0",
        reference="https://www.10xgenomics.com/support/software/cell-ranger",
        reference_type="docs",
    ).save()
    assert t2.uid[:12] == t1.uid[:12] and t2.uid.endswith("0001")
    assert t2.is_latest and not fp.Transform.get(t1.uid).is_latest
    assert t2.reference.startswith("https://www.10xgenomics.com")
    assert [t.uid for t in t2.versions] == [t1.uid, t2.uid]
    assert t1.latest_version == t2


def test_new_source_code_makes_a_new_version(instance):
    a = fp.Transform(
        name="qc.py", key="scripts/qc.py", type="script", source_code="print(1)\n"
    ).save()
    b = fp.Transform(
        name="qc.py", key="scripts/qc.py", type="script", source_code="print(2)\n"
    ).save()
    c = fp.Transform(
        name="qc.py", key="scripts/qc.py", type="script", source_code="print(2)\n"
    ).save()
    assert a.uid != b.uid and b.uid == c.uid and a.uid[:12] == b.uid[:12]
    assert b.hash and b.hash != a.hash and b.source_code == "print(2)\n"


def test_pinned_uid(instance):
    t = fp.Transform(
        name="Project flow", type="notebook", key="project-flow.ipynb", uid="1LCd8kco9lZU0000"
    ).save()
    assert t.uid == "1LCd8kco9lZU0000"
    t2 = fp.Transform(
        name="Project flow",
        type="notebook",
        key="project-flow.ipynb",
        source_code="x=1",
        uid="1LCd8kco9lZU0000",
    ).save()
    assert t2.uid == "1LCd8kco9lZU0001"
    with pytest.raises(ValidationError, match="16 characters"):
        fp.Transform(name="x", type="notebook", uid="short").save()


def test_transform_type_is_checked(instance):
    with pytest.raises(ValidationError, match="unknown transform type"):
        fp.Transform(name="x", type="spreadsheet")
    for kind in (
        "upload",
        "script",
        "notebook",
        "pipeline",
        "flow",
        "task",
        "rule",
        "process",
        "function",
    ):
        assert fp.Transform(name=f"t-{kind}", type=kind).save().type == kind


# -- runs ----------------------------------------------------------------------------------
def test_run_lifecycle(instance):
    t = fp.Transform(name="Upload GWS CRISPRa result", type="upload").save()
    run = fp.Run(transform=t, params={"screen": "GWS", "n": 3}).save()
    assert run.status == "started" and run.finished_at is None and run.started_at is not None
    assert run.params == {"screen": "GWS", "n": 3}
    env = run.environment  # the interpreter's whole installed software, not only the imported
    assert env.interpreter.startswith("CPython") and env.complete and env.deployed
    names = {p.name.lower() for p in env.packages}
    assert {"sqlalchemy", "pluggy", "snakemake"} <= names  # pluggy, snakemake: never imported here
    run.finish()
    assert run.status == "completed" and run.finished_at >= run.started_at
    assert run.environment == env
    assert run.created_by.handle == fp.User.current().handle
    assert list(t.runs) == [run]


def test_failed_run_keeps_the_error(instance):
    t = fp.Transform(name="fails", type="script").save()
    with pytest.raises(ZeroDivisionError):
        with fp.Run(transform=t) as run:
            raise ZeroDivisionError("division by zero")
    assert run.status == "failed" and "ZeroDivisionError" in run.error
    with pytest.raises(ValidationError, match="unknown run status"):
        run.finish("exploded")


def test_child_runs(instance):
    wf = fp.Run(transform=fp.Transform(name="wf", type="pipeline")).save()
    job = fp.Run(transform=fp.Transform(name="align", type="rule"), parent=wf).save()
    assert job.parent == wf and list(wf.children) == [job]


# -- artifacts -----------------------------------------------------------------------------
def test_file_outside_storage_is_copied_in(instance, fp_env):
    src = write(fp_env / "screen.parquet", os.urandom(1000))
    t = fp.Transform(name="Upload GWS CRISPRa result", type="upload").save()
    run = fp.Run(transform=t).save()
    a = fp.Artifact(src, description="Raw data of schmidt22 crispra GWS", run=run).save()
    assert a.managed and a.key is None and a.suffix == ".parquet" and a.size == 1000
    assert a.path.read_bytes() == src.read_bytes()
    assert str(a.path).startswith(str(instance.storage.root))
    assert a.run == run and a.run.transform == t and a.transform == t
    assert a.storage.root == instance.storage.root and a.hash_type == "blake3" and a.n_objects == 1


def test_file_inside_storage_is_registered_in_place(instance):
    root = Path(instance.storage.root)
    p = write(root / "fastq" / "R1_001.fastq.gz", b"@r1\nACGT\n")
    a = fp.Artifact(p).save()
    assert not a.managed and a.key == "fastq/R1_001.fastq.gz" and a.suffix == ".fastq.gz"
    assert a.path == p
    assert not (root / ".flowprov" / "objects" / (a.hash + a.suffix)).exists()  # no copy
    with pytest.raises(ValidationError, match="registered in place"):
        q = write(p.parent / "R2_001.fastq.gz", b"@r2\n")
        fp.Artifact(q, key="elsewhere/R2.fastq.gz").save()


def test_extra_storage_root_allows_in_place_registration(instance, fp_env):
    wf = fp_env / "workflow"
    p = write(wf / "results" / "counts.tsv", "gene\tcount\nA\t1\n")
    fp.Storage(wf, description="snakemake workdir").save()
    a = fp.Artifact(p).save()
    assert not a.managed and a.key == "results/counts.tsv" and a.storage.root == str(wf)


def test_same_bytes_return_the_existing_artifact(instance, fp_env, caplog):
    p1 = write(fp_env / "a.csv", "x,y\n1,2\n")
    p2 = write(fp_env / "copy-of-a.csv", "x,y\n1,2\n")
    a = fp.Artifact(p1, description="first").save()
    with caplog.at_level("INFO", logger="flowprov"):
        b = fp.Artifact(p2, description="second").save()
    assert b.existed and not a.existed and b.uid == a.uid and b.description == "first"
    assert "existing Artifact" in caplog.text
    assert count(instance, S.artifacts) == 1


def test_new_bytes_under_existing_key_make_a_new_version(instance, fp_env):
    p = write(fp_env / "hits.parquet", b"v1")
    a1 = fp.Artifact(p, key="results/hits.parquet").save()
    write(p, b"v2")
    a2 = fp.Artifact(p, key="results/hits.parquet").save()
    assert a1.uid[:16] == a2.uid[:16] and a2.uid.endswith("0001")
    assert a2.is_latest and not fp.Artifact.get(a1.uid).is_latest
    assert a1.path.read_bytes() == b"v1" and a2.path.read_bytes() == b"v2"  # versions kept apart
    assert [x.uid for x in a2.versions] == [a1.uid, a2.uid]


def test_in_place_file_changed_on_disk_becomes_new_version(instance):
    p = write(Path(instance.storage.root) / "tables" / "t.tsv", "a\n")
    a1 = fp.Artifact(p).save()
    write(p, "a\nb\n")
    a2 = fp.Artifact(p).save()
    assert a2.stem == a1.stem and a2.key == a1.key == "tables/t.tsv" and a2.uid != a1.uid


def test_folder_is_one_artifact(instance, fp_env):
    d = fp_env / "filtered_feature_bc_matrix"
    for name in ("barcodes.tsv.gz", "features.tsv.gz", "matrix.mtx.gz"):
        write(d / name, os.urandom(64))
    a = fp.Artifact(d, key="perturbseq/filtered_feature_bc_matrix", description="matrix").save()
    assert a.n_objects == 3 and a.hash_type == "blake3-dir" and a.suffix == ""
    assert sorted(p.name for p in a.cache().iterdir()) == [
        "barcodes.tsv.gz",
        "features.tsv.gz",
        "matrix.mtx.gz",
    ]
    with pytest.raises(ValidationError, match="folder"):
        a.open()


@pytest.mark.parametrize("key", ["../escape.txt", "/abs/path.txt", "a/../../b", "", ".flowprov/x"])
def test_bad_keys_are_refused_and_nothing_is_written(instance, fp_env, key):
    p = write(fp_env / "f.txt", "content")
    with pytest.raises(ValidationError, match="invalid key"):
        fp.Artifact(p, key=key).save()
    assert count(instance, S.artifacts) == 0
    objects = Path(instance.storage.root) / ".flowprov" / "objects"
    assert not objects.exists() or not any(objects.iterdir())


def test_missing_file(instance, fp_env):
    with pytest.raises(FileMissingError, match="no such file"):
        fp.Artifact(fp_env / "missing.parquet").save()


def test_failed_record_leaves_no_object_behind(instance, fp_env):
    """The bytes are copied first; if the record cannot be written they are removed again."""
    p = write(fp_env / "orphan.txt", "orphan")
    ghost = fp.Run(transform=fp.Transform(name="t", type="script"))  # never saved ...
    ghost.save()
    with instance.engine.begin() as c:  # ... and then removed behind flowprov's back
        c.execute(S.runs.delete().where(S.runs.c.uid == ghost.uid))
    from flowprov import instance as inst_mod

    inst_mod.current().store._store._run_ids.clear()
    with pytest.raises(ValidationError, match="unknown run"):
        fp.Artifact(p, run=ghost).save()
    assert count(instance, S.artifacts) == 0
    objects = os.path.join(instance.storage.root, ".flowprov", "objects")
    assert not os.path.exists(objects) or os.listdir(objects) == []


def test_batch_save_is_one_transaction(instance, fp_env):
    paths = [write(fp_env / "in" / f"f{i}.txt", f"file {i}") for i in range(20)]
    arts = fp.save([fp.Artifact(p) for p in paths] + [fp.Artifact(paths[0])])
    assert len({a.uid for a in arts}) == 20 and arts[-1].existed and arts[-1].uid == arts[0].uid
    bad = [
        fp.Artifact(write(fp_env / "in2" / "ok.txt", "ok")),
        fp.Artifact(fp_env / "in2" / "missing.txt"),
    ]
    with pytest.raises(FileMissingError):
        fp.save(bad)
    assert count(instance, S.artifacts) == 20


def test_unsaved_records_cannot_be_related(instance, fp_env):
    a = fp.Artifact(write(fp_env / "x.txt", "x"))
    with pytest.raises(NotSaved):
        _ = a.path


def test_identical_outputs_of_two_runs_are_one_artifact_made_by_both(instance, fp_env):
    t = fp.Transform(name="log writer", type="rule").save()
    r1 = fp.Run(transform=t).save()
    r2 = fp.Run(transform=t).save()
    a = fp.Artifact(write(fp_env / "a.log", ""), run=r1).save()
    b = fp.Artifact(write(fp_env / "b.log", ""), run=r2).save()
    assert b.existed and b.uid == a.uid and b.run == r1  # the first producer stays `run`
    assert list(r1.outputs) == [a] and list(r2.outputs) == [a]  # ... and both runs made it
    assert set(a.output_of) == {r1, r2}
    fp.Artifact(write(fp_env / "c.log", ""), run=r2).save()  # idempotent
    assert a.output_of.count() == 2


def test_bulk_registration_matches_one_by_one(instance, fp_env):
    """fp.save of many files takes the store's bulk path; mixed cases keep their meaning."""
    root = fp_env / "mydata"
    t = fp.Transform(name="bulk", type="rule").save()
    r1 = fp.Run(transform=t).save()
    before = fp.Artifact(write(root / "known.txt", "known bytes"), run=r1).save()
    old = fp.Artifact(write(root / "versioned.txt", "v1"), run=r1).save()
    r2 = fp.Run(transform=t).save()
    paths = [write(root / "new" / f"n{i}.txt", f"new {i}") for i in range(25)]
    paths += [write(root / "twin_a.txt", "twins"), write(root / "twin_b.txt", "twins")]
    paths += [write(root / "copy_of_known.txt", "known bytes")]
    paths += [write(root / "versioned.txt", "v2")]
    arts = fp.save([fp.Artifact(p, run=r2) for p in paths])
    # every place is its own artifact: twins and a copy are new artifacts sharing a hash
    assert [a.existed for a in arts] == [False] * 25 + [False, False, False, False]
    assert arts[25].uid != arts[26].uid and arts[25].hash == arts[26].hash
    assert arts[27].uid != before.uid and arts[27].hash == before.hash
    assert arts[27].key == "copy_of_known.txt" and before.key == "known.txt"
    assert arts[28].uid == old.stem + "0001" and not fp.Artifact.get(old.uid).is_latest
    assert set(before.output_of) == {r1} and before.run == r1
    assert r2.outputs.count() == 25 + 2 + 1 + 1
    assert fp.Artifact.filter(key__startswith="new/").count() == 25
    again = fp.save([fp.Artifact(p, run=r2) for p in paths])  # idempotent
    assert all(a.existed for a in again) and r2.outputs.count() == 29
