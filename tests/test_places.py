"""An artifact is a place (issue "The record must be right", points 1 and 2): the same bytes at
two places are two artifacts sharing a hash, joined in lineage by "same content"; a place's
versions are its successive contents, and earlier bytes written back are its latest again."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import flowprov as fp
import pytest
from flowprov import instance as inst_mod
from flowprov import schema as S
from flowprov.errors import ValidationError
from flowprov.events import ArtifactRef, ArtifactRegistered, ArtifactUsed, RunRef, now
from flowprov.storage import HOST_ROOT
from sqlalchemy import func, select

from tests.conftest import write


def count(inst, table, *where) -> int:
    with inst.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*where)).scalar()


def test_equal_bytes_at_two_keys_are_two_artifacts(instance, fp_env):
    root = Path(instance.storage.root)
    a = fp.Artifact(write(root / "proj" / "s1.txt", "ok\n")).save()
    b = fp.Artifact(write(root / "proj" / "s2.txt", "ok\n")).save()
    assert not b.existed and a.uid != b.uid and a.stem != b.stem
    assert (a.key, b.key) == ("proj/s1.txt", "proj/s2.txt") and a.hash == b.hash
    assert fp.Artifact.get(key="proj/s2.txt") == b
    assert set(fp.Artifact.filter(hash=a.hash)) == {a, b}
    assert b.path == root / "proj" / "s2.txt"


def test_equal_outputs_of_jobs_keep_their_own_paths_and_producers(instance, fp_env):
    """Three jobs writing `ok\\n` logs, then another workflow elsewhere writing the same bytes."""
    root = Path(instance.storage.root)
    t = fp.Transform(name="count", type="rule").save()
    runs = {}
    for s in "ABC":
        runs[s] = fp.Run(transform=t, params={"sample": s}).save()
        fp.Artifact(write(root / "logs" / "count" / f"{s}.log", "ok\n"), run=runs[s]).save()
    other = fp.Run(transform=fp.Transform(name="other", type="rule").save()).save()
    fp.Artifact(write(root / "wf2" / "out" / "s1.txt", "ok\n"), run=other).save()
    for s, run in runs.items():
        (out,) = run.outputs
        assert out.key == f"logs/count/{s}.log" and out.run == run
    (out,) = other.outputs
    assert out.key == "wf2/out/s1.txt" and out.run == other
    assert count(instance, S.artifacts) == 4


def test_verify_reports_only_the_deleted_place(instance, fp_env):
    root = Path(instance.storage.root)
    p1, p2 = write(root / "a" / "x.txt", "same"), write(root / "b" / "x.txt", "same")
    a, b = fp.Artifact(p1).save(), fp.Artifact(p2).save()
    os.remove(p1)
    from flowprov.verify import verify

    checks = {c.uid: c.status for c in verify()}
    assert checks == {a.uid: "missing", b.uid: "ok"}


def test_earlier_bytes_written_back_are_the_latest_again(instance, fp_env):
    root = Path(instance.storage.root)
    p = root / "counts.tsv"
    v1 = fp.Artifact(write(p, "gene\tn\nA\t1\n")).save()
    v2 = fp.Artifact(write(p, "gene\tn\nA\t2\n")).save()
    assert v2.stem == v1.stem and v2.uid != v1.uid
    assert [a.is_latest for a in v1.versions] == [False, True]
    again = fp.Artifact(write(p, "gene\tn\nA\t1\n")).save()
    assert again.existed and again.uid == v1.uid
    assert again.is_latest
    assert fp.Artifact.get(v2.uid).is_latest is False
    assert fp.Artifact.filter(key="counts.tsv", is_latest=True).one().hash == v1.hash
    assert fp.Artifact.filter(stem=v1.stem).count() == 2


def test_a_late_replay_of_an_older_version_does_not_become_latest(instance, fp_env):
    """A journal replayed after newer bytes were seen: the place keeps what it holds now."""
    root = Path(instance.storage.root)
    p = write(root / "x.tsv", "new bytes")
    current = fp.Artifact(p).save()
    from flowprov.artifacts import in_place_event

    ev = in_place_event(str(p), roots=list(instance.storages().values()))
    old = ev.model_copy(update={"hash": "0" * 64, "at": now() - timedelta(hours=1)})
    res = inst_mod.current().store.apply([old])
    assert not res[0].existed and res[0].row["is_latest"] is False
    assert fp.Artifact.get(current.uid).is_latest


def test_files_copied_in_without_a_key_are_deduplicated_by_content(instance, fp_env):
    a = fp.Artifact(write(fp_env / "upload" / "screen.csv", "x,y\n")).save()
    b = fp.Artifact(write(fp_env / "elsewhere" / "screen-copy.csv", "x,y\n")).save()
    assert b.existed and b.uid == a.uid and a.managed and a.key is None
    assert a.file_name == "screen.csv"  # its only name, kept
    c = fp.Artifact(write(fp_env / "upload" / "other.csv", "x,y\n"), key="proj/other.csv").save()
    assert not c.existed and c.uid != a.uid and c.key == "proj/other.csv"


def test_engine_files_outside_every_root_are_recorded_where_they_are(instance, fp_env):
    """No new root per folder: one host root, keyed by absolute location."""
    from flowprov.artifacts import in_place_event

    roots = list(instance.storages().values())
    p1 = write(fp_env / "scratch" / "job1" / "out.txt", "1")
    p2 = write(fp_env / "scratch" / "job2" / "deep" / "out.txt", "2")
    evs = [in_place_event(str(p), roots=roots) for p in (p1, p2)]
    inst_mod.current().store.apply(evs)
    roots_now = [s.root for s in fp.Storage.all()]
    assert sorted(roots_now) == sorted([instance.storage.root, HOST_ROOT])
    a = fp.Artifact.get(key=str(p1).lstrip("/"))
    assert a.storage.root == HOST_ROOT and a.path == p1


def test_a_root_declared_inside_another_never_changes_keys(instance, fp_env):
    root = Path(instance.storage.root)
    p = write(root / "proj" / "data" / "x.csv", "x")
    a = fp.Artifact(p).save()
    fp.Storage(root / "proj", description="nested").save()
    inst_mod.current().storages(refresh=True)
    b = fp.Artifact(write(p, "x")).save()  # seen again
    assert b.existed and b.uid == a.uid and b.key == "proj/data/x.csv"


def test_lineage_joins_copies_by_content(instance, fp_env):
    """A run's output, published elsewhere with no producer of its own, read by another run:
    one lineage through a "same content" link. An empty file never joins."""
    root = Path(instance.storage.root)
    make = fp.Run(transform=fp.Transform(name="make", type="rule").save()).save()
    out = fp.Artifact(write(root / "work" / "result.csv", "a,b\n1,2\n"), run=make).save()
    flag = fp.Artifact(write(root / "work" / "done.flag", ""), run=make).save()
    published = fp.Artifact(write(root / "published" / "result.csv", "a,b\n1,2\n")).save()
    empty_copy = fp.Artifact(write(root / "published" / "other.flag", "")).save()
    read = fp.Run(transform=fp.Transform(name="analysis", type="script").save()).save()
    store = inst_mod.current().store
    store.apply(
        [
            ArtifactUsed(run=RunRef(uid=read.uid), artifact=ArtifactRef(uid=published.uid)),
            ArtifactUsed(run=RunRef(uid=read.uid), artifact=ArtifactRef(uid=empty_copy.uid)),
        ]
    )
    g = read.lineage()
    assert make.uid in g.uids("run")
    same = [(e.source, e.target) for e in g.edges if e.kind == "same_content"]
    assert same == [(f"a{out.id}", f"a{published.id}")]
    assert flag.uid not in g.uids("artifact")  # equal emptiness proves nothing
    assert read.transform in list(make.transform.descendants())
    down = out.lineage("downstream")
    assert read.uid in down.uids("run") and published.uid in down.uids("artifact")
    assert down.uids("run") == {read.uid}


def test_a_file_with_its_own_producer_is_not_reattributed(instance, fp_env):
    """Equal bytes written by two unrelated runs: each file's lineage names its own producer."""
    root = Path(instance.storage.root)
    r1 = fp.Run(transform=fp.Transform(name="one", type="rule").save()).save()
    r2 = fp.Run(transform=fp.Transform(name="two", type="rule").save()).save()
    fp.Artifact(write(root / "a" / "ref.fa", ">chr1\nACGT\n"), run=r1).save()
    b = fp.Artifact(write(root / "b" / "ref.fa", ">chr1\nACGT\n"), run=r2).save()
    assert b.lineage().uids("run") == {r2.uid}


def test_a_bare_hash_naming_several_places_is_refused(instance, fp_env):
    root = Path(instance.storage.root)
    a = fp.Artifact(write(root / "a.txt", "same")).save()
    fp.Artifact(write(root / "b.txt", "same")).save()
    run = fp.Run(transform=fp.Transform(name="reader", type="script").save()).save()
    with pytest.raises(ValidationError, match="several places"):
        inst_mod.current().store.apply(
            [ArtifactUsed(run=RunRef(uid=run.uid), artifact=ArtifactRef(hash=a.hash))]
        )
    assert run.inputs.count() == 0


def test_replaying_registrations_is_idempotent(instance, fp_env):
    root = Path(instance.storage.root)
    from flowprov.artifacts import in_place_event

    roots = list(instance.storages().values())
    evs = [
        in_place_event(str(write(root / f"f{i}.txt", f"{i % 3}")), roots=roots) for i in range(30)
    ]
    store = inst_mod.current().store
    first = store.apply(evs)
    again = store.apply(evs)
    assert not any(r.existed for r in first) and all(r.existed for r in again)
    assert count(instance, S.artifacts) == 30


def test_old_merged_records_survive_the_upgrade(fp_env, empty_db):
    """A 0005 database (one artifact per hash) upgrades: the record stays at its first place, and
    the other place can now be registered as its own artifact."""
    from flowprov.db import make_engine, migrate
    from sqlalchemy import text

    engine = make_engine(empty_db)
    migrate(engine, "0005")
    t = "2025-01-01 00:00:00"
    root = str(fp_env / "old")
    write(Path(root) / "logs" / "A.log", "ok\n")
    write(Path(root) / "logs" / "B.log", "ok\n")
    from flowprov.hashing import hash_path

    h = hash_path(str(Path(root) / "logs" / "A.log"), "blake3").hash
    with engine.begin() as c:
        c.execute(text(f"INSERT INTO users VALUES (1, 'u0000001', 'lab', NULL, '{t}', '{t}')"))
        c.execute(
            text(
                f"INSERT INTO storages VALUES (1, 's00000000001', '{root}', 'local', NULL, NULL,"
                f" true, 1, '{t}', '{t}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO artifacts (id, uid, stem, key, key_is_virtual, suffix, size, hash,"
                " hash_type, n_objects, is_latest, managed, storage_id, created_by_id, created_at,"
                f" updated_at) VALUES (1, 'aaaaaaaaaaaaaaaa0000', 'aaaaaaaaaaaaaaaa', 'logs/A.log',"
                f" false, '.log', 3, '{h}', 'blake3', 1, true, false, 1, 1, '{t}', '{t}')"
            )
        )
    engine.dispose()
    migrate(engine)  # `flowprov migrate`: opening an instance never upgrades it
    engine.dispose()
    inst, created = inst_mod.init(root, db=empty_db)
    assert not created
    old = fp.Artifact.get("aaaaaaaaaaaaaaaa0000")
    assert old.key == "logs/A.log" and old.file_name is None and old.removed is None
    b = fp.Artifact(Path(root) / "logs" / "B.log").save()
    assert not b.existed and b.key == "logs/B.log" and b.hash == old.hash


@pytest.fixture
def empty_db(fp_env, backend, request):
    if backend == "sqlite":
        return f"sqlite:///{fp_env / 'old.sqlite'}"
    return request.getfixturevalue("pg_database")


def test_registered_event_needs_a_valid_ref():
    with pytest.raises(ValueError, match="both storage_root and key"):
        ArtifactRef(storage_root="/x", hash="ab")
    ArtifactRegistered(stem="x" * 16, storage_root="/", key="k", hash="h", hash_type="blake3")


def _stale_uids():
    from flowprov.lineage.stale import stale

    return {s.uid: s for s in stale()}


def test_an_output_rewritten_unchanged_belongs_to_the_newer_run(instance, fp_env):
    """Input changes, the rule reruns, the output's bytes do not change: nothing is stale."""
    root = Path(instance.storage.root)
    t = fp.Transform(name="summarise", type="rule").save()
    inp = root / "in.txt"
    v1 = fp.Artifact(write(inp, "a\n")).save()
    r1 = fp.Run(transform=t).save()
    with r1:
        fp.Artifact.get(v1.uid).cache()
        out = fp.Artifact(write(root / "out.txt", "summary\n")).save()
    fp.Artifact(write(inp, "a\nb\n")).save()  # a new version of the input
    assert out.uid in _stale_uids()  # the output rests on an old input: right
    r2 = fp.Run(transform=t).save()
    with r2:
        fp.Artifact.get(key="in.txt", is_latest=True).cache()
        again = fp.Artifact(write(root / "out.txt", "summary\n")).save()
    assert again.existed and set(again.output_of) == {r1, r2}
    assert _stale_uids() == {}


def test_files_deleted_on_purpose_are_neither_missing_nor_stale(instance, fp_env, run_flowprov):
    from flowprov.events import ArtifactRemoved
    from flowprov.verify import verify

    root = Path(instance.storage.root)
    t = fp.Transform(name="align", type="rule").save()
    r = fp.Run(transform=t).save()
    tmp = fp.Artifact(write(root / "tmp" / "x.sam", "sam"), run=r).save()
    r2 = fp.Run(transform=fp.Transform(name="sort", type="rule").save()).save()
    with r2:
        fp.Artifact.get(tmp.uid).cache()
        final = fp.Artifact(write(root / "x.bam", "bam")).save()
    os.remove(root / "tmp" / "x.sam")
    assert {c.uid: c.status for c in verify()}[tmp.uid] == "missing"
    assert final.uid in _stale_uids()  # deleted with no word: the chain is broken
    inst_mod.current().store.apply(
        [ArtifactRemoved(artifact=ArtifactRef(uid=tmp.uid), reason="temp", run=RunRef(uid=r2.uid))]
    )
    assert fp.Artifact.get(tmp.uid).removed == "temp"
    assert {c.uid: c.status for c in verify()}[tmp.uid] == "removed"
    assert _stale_uids() == {}
    proc = run_flowprov("stale")
    assert proc.returncode == 0 and "nothing is stale" in proc.stdout
    proc = run_flowprov("verify")
    assert proc.returncode == 0 and "1 deleted on purpose" in proc.stdout
    # written again by a rerun: present again
    fp.Artifact(write(root / "tmp" / "x.sam", "sam"), run=r).save()
    assert fp.Artifact.get(tmp.uid).removed is None


def test_each_stale_reason_once(instance, fp_env):
    root = Path(instance.storage.root)
    old = fp.Transform(name="step", type="script", source_code="v1").save()
    made = []
    for name in ("a", "b"):
        with fp.Run(transform=old):
            made.append(fp.Artifact(write(root / f"{name}.txt", name)).save())
    with fp.Run(transform=fp.Transform(name="join", type="script").save()):
        for a in made:
            fp.Artifact.get(a.uid).cache()
        z = fp.Artifact(write(root / "z.txt", "ab")).save()
    fp.Transform(name="step", type="script", source_code="v2").save()
    reasons = _stale_uids()[z.uid].reasons
    assert [r.kind for r in reasons] == ["newer code version"]


def test_reading_a_file_that_changed_since_its_record_is_refused(instance, fp_env):
    """cache(), open() and load() never hand over other bytes as the recorded version."""
    from flowprov.errors import ContentChanged

    root = Path(instance.storage.root)
    p = write(root / "table.csv", "a,b\n1,2\n")
    v1 = fp.Artifact(p).save()
    write(p, "a,b\n1,3\n")  # same size, other bytes
    run = fp.Run(transform=fp.Transform(name="reader", type="script").save()).save()
    with run:
        for read in (v1.cache, v1.open, v1.load):
            with pytest.raises(ContentChanged, match=f"{v1.uid}.*other bytes"):
                read()
    assert run.inputs.count() == 0
    v2 = fp.Artifact(p).save()
    with run:
        assert v2.load()["b"].tolist() == [3]
    assert list(run.inputs) == [v2]
    copied = fp.Artifact(write(fp_env / "up.txt", "upload")).save()
    obj = copied.path
    os.chmod(obj, 0o644)
    write(obj, "tampered")
    with pytest.raises(ContentChanged):
        copied.cache()


def test_storage_add_declares_a_root_and_keeps_keys(instance, fp_env, run_flowprov):
    root = Path(instance.storage.root)
    a = fp.Artifact(write(root / "proj" / "x.csv", "x")).save()
    ext = fp_env / "external"
    ext.mkdir()
    out = run_flowprov("storage", "add", str(ext), "--description", "lab share").stdout
    assert "declared" in out and str(ext) in out
    inst_mod.current().storages(refresh=True)
    b = fp.Artifact(write(ext / "y.csv", "y")).save()
    assert b.storage.root == str(ext) and b.key == "y.csv" and not b.managed
    out = run_flowprov("storage", "add", str(root / "proj")).stdout
    assert "inside" in out and "keep their keys" in out
    inst_mod.current().storages(refresh=True)
    again = fp.Artifact(root / "proj" / "x.csv").save()
    assert again.uid == a.uid and again.key == "proj/x.csv"
    bad = run_flowprov("storage", "add", "/", check=False)
    assert bad.returncode != 0 and "host root" in bad.stderr + bad.stdout


def test_a_published_copy_is_downstream_of_its_producer_even_unread(instance, fp_env):
    root = Path(instance.storage.root)
    make = fp.Run(transform=fp.Transform(name="make", type="process").save()).save()
    out = fp.Artifact(write(root / "work" / "ab" / "out.bam", "bam bytes"), run=make).save()
    pub = fp.Artifact(write(root / "results" / "out.bam", "bam bytes")).save()
    g = make.lineage("downstream")
    assert pub.uid in g.uids("artifact")
    assert [(e.source, e.target) for e in g.edges if e.kind == "same_content"] == [
        (f"a{out.id}", f"a{pub.id}")
    ]


def test_event_times_are_kept_in_utc(instance, fp_env):
    """A time given in another zone is the same instant when read back, on every backend."""
    from datetime import datetime, timezone

    from flowprov.events import RunStarted, TransformSpec

    cest = timezone(timedelta(hours=2))
    at = datetime(2025, 6, 1, 14, 0, tzinfo=cest)
    inst_mod.current().store.apply(
        [
            RunStarted(
                uid="tzrun00000000000000a", transform=TransformSpec(name="tz", type="task"), at=at
            )
        ]
    )
    assert fp.Run.get("tzrun00000000000000a").started_at == at


def test_picture_labels_tell_places_and_versions_apart(instance, fp_env):
    root = Path(instance.storage.root)
    arts = [
        fp.Artifact(write(root / "A" / "C.fastq", "@a")).save(),
        fp.Artifact(write(root / "B" / "C.fastq", "@b")).save(),
        fp.Artifact(write(root / "x" / "y.txt", "y")).save(),
    ]
    v1 = fp.Artifact(write(root / "table.tsv", "1")).save()
    run1 = fp.Run(transform=fp.Transform(name="first", type="script").save()).save()
    with run1:
        for a in [*arts, v1]:
            fp.Artifact.get(a.uid).cache()
    v2 = fp.Artifact(write(root / "table.tsv", "2")).save()
    run2 = fp.Run(transform=fp.Transform(name="second", type="script").save()).save()
    with run2:
        v2.cache()
    g = run1.lineage("both")
    g2 = run2.lineage()
    labels = {n.uid: n.label for n in [*g.nodes.values(), *g2.nodes.values()]}
    assert labels[arts[0].uid] == "A/C.fastq" and labels[arts[1].uid] == "B/C.fastq"
    assert labels[arts[2].uid] == "y.txt"
    assert labels[v1.uid] == "table.tsv (v1, older)" and labels[v2.uid] == "table.tsv (v2)"
    mermaid = g.to_mermaid()
    assert "A/C.fastq" in mermaid and "B/C.fastq" in mermaid and "table.tsv (v1, older)" in mermaid


def test_a_file_recorded_by_absolute_location_lands_in_its_declared_root(instance, fp_env):
    """A writer that could not read the roots (database down, events journaled) records by
    absolute location; applying it names the file by its declared root: one file, one place."""
    from flowprov.artifacts import host_place, in_place_event

    root = Path(instance.storage.root)
    p = write(root / "proj" / "x.csv", "x")
    a = fp.Artifact(p).save()
    ev = in_place_event(str(p), roots=[])  # no roots known
    assert (ev.storage_root, ev.key) == host_place(str(p))
    res = inst_mod.current().store.apply([ev])
    assert res[0].existed and res[0].uid == a.uid
    run = fp.Run(transform=fp.Transform(name="r", type="script").save()).save()
    used = ArtifactUsed(
        run=RunRef(uid=run.uid),
        artifact=ArtifactRef(storage_root=ev.storage_root, key=ev.key, hash=ev.hash),
    )
    inst_mod.current().store.apply([used])
    assert list(run.inputs) == [a]
    assert [s.root for s in fp.Storage.all()] == [instance.storage.root]


def test_reading_flowprovs_own_copy_is_reading_that_artifact(instance, fp_env):
    """An engine handed the path cache() gives reads the copied-in artifact, not a new record of
    a path inside flowprov's folder."""
    from flowprov.artifacts import input_events

    up = fp.Artifact(write(fp_env / "upload" / "screen.csv", "x,y\n")).save()
    run = fp.Run(transform=fp.Transform(name="task", type="task").save()).save()
    evs = input_events(
        str(up.cache(is_run_input=False)),
        run=RunRef(uid=run.uid),
        roots=list(instance.storages().values()),
    )
    inst_mod.current().store.apply(evs)
    assert list(run.inputs) == [up] and count(instance, S.artifacts) == 1


def _key_by_relpath(root: str, path: str) -> str | None:
    """What StorageRoot.key_of answered before its shortcut: relpath, then refuse what leaves."""
    rel = os.path.relpath(path, root)
    if rel == "." or rel == ".." or rel.startswith(".." + os.sep):
        return None
    return rel.replace(os.sep, "/")


def test_a_key_is_the_path_below_the_root_however_the_path_is_written(tmp_path):
    """key_of's shortcut (the path below the root, as written) answers what relpath answers: a
    path with `..`, `.` or a doubled separator is normalised, a sibling folder is not inside."""
    from flowprov.storage import StorageRoot

    root = str(tmp_path / "root")
    r = StorageRoot(root)
    paths = [
        f"{root}/a.txt",
        f"{root}/sub/dir/b.tsv.gz",
        f"{root}/sub/../c.txt",
        f"{root}/./d.txt",
        f"{root}//e.txt",
        f"{root}/f/",
        f"{root}/..",
        f"{root}/../root/g.txt",
        f"{root}/../rootx/h.txt",
        f"{root}x/i.txt",
        root,
        f"{root}/",
        f"{root}/.hidden",
        f"{root}/...",
        # outside it, written plainly (answered without relpath) or not
        str(tmp_path / "work" / "j.txt"),
        str(tmp_path / "roo"),
        str(tmp_path),
        "/",
        "/j.txt",
        f"{tmp_path}/work/../root/k.txt",
        f"{tmp_path}//root/l.txt",
        f"{tmp_path}/./root/m.txt",
        f"{tmp_path}/work/./n.txt",
        f"/{root}/o.txt",
    ]
    for p in paths:
        assert r.key_of(p) == _key_by_relpath(root, p), p


def test_a_suffix_is_what_pathlib_says(tmp_path):
    """suffix_of reads the name itself (no Path per file): the same answers as PurePath's suffix
    and suffixes, with two for compressed files."""
    from flowprov.artifacts import suffix_of

    def by_pathlib(path: str) -> str:
        p = Path(path)
        if p.suffix in {".gz", ".bz2", ".xz", ".zst", ".zip"} and len(p.suffixes) > 1:
            return "".join(p.suffixes[-2:])
        return p.suffix

    names = ["a.tsv.gz", "x.parquet", "noext", ".bashrc", "..a", "a.", "a..gz", "a.b.c.gz"]
    names += [".a.gz", "..gz", "a/b.tar.gz/", "s3://b/k/x.fastq.gz", "gs://b/x", "", "a.tar.zip"]
    names += ["weird..tar.gz", "x.GZ", "a.b.", "/tmp/x.tsv.bz2", "a b.c d.gz", "x.tar.zst"]
    for name in names:
        assert suffix_of(name) == by_pathlib(name), name
    (tmp_path / "folder.d").mkdir()
    assert suffix_of(str(tmp_path / "folder.d")) == ""


def test_a_batch_through_a_symlinked_folder_is_refused_file_by_file(instance, fp_env, tmp_path):
    """The batch's resolved folders (_refuse_escape): a file whose own name is a link leading out
    of the root is refused even when its folder was resolved for an earlier file of the batch."""
    root = Path(instance.storage.root)
    outside = tmp_path / "outside.txt"
    outside.write_text("elsewhere\n")
    (root / "batch").mkdir()
    write(root / "batch" / "ok.txt", "inside\n")
    (root / "batch" / "link.txt").symlink_to(outside)
    with pytest.raises(ValidationError, match="symlink leading outside"):
        fp.save([fp.Artifact(str(root / "batch" / n)) for n in ("ok.txt", "link.txt")])
    assert fp.Artifact.filter(key="batch/ok.txt").count() == 0  # all or nothing


def test_one_stat_per_file_tells_what_register_needs(instance, fp_env, tmp_path):
    """register() stats each file once (lstat, and stat only for a link): a missing file and a
    dangling link are the same 'no such file or folder' error as before; a link inside the root
    is hashed as the file it leads to; a folder's suffix is '' whatever its name."""
    from flowprov.errors import FileMissingError

    root = Path(instance.storage.root)
    (root / "dangling.txt").symlink_to(root / "gone.txt")
    for name in ("dangling.txt", "never-there.txt"):
        with pytest.raises(FileMissingError, match="cannot register .*no such file or folder"):
            fp.save([fp.Artifact(str(root / name))])
    target = write(root / "data" / "t.tsv.gz", "inside\n")
    (root / "alias.tsv.gz").symlink_to(target)
    folder = root / "sample.d"
    write(folder / "a.txt", "a\n")
    linked, real, tree = fp.save(
        [fp.Artifact(str(p)) for p in (root / "alias.tsv.gz", target, folder)]
    )
    assert linked.hash == real.hash and linked.size == real.size == len("inside\n")
    assert (linked.key, linked.suffix, real.suffix) == ("alias.tsv.gz", ".tsv.gz", ".tsv.gz")
    assert tree.suffix == "" and tree.hash_type.endswith("-dir") and tree.n_objects == 1
