"""`flowprov storage move OLD NEW`: a root re-pointed after its data moved (SQLite, whose database
moves with the folder, and PostgreSQL), refused when NEW does not hold the files or the member
may only read — with nothing changed."""

from __future__ import annotations

import os
import shutil
import uuid

import flowprov as fp
import pytest
from flowprov import instance as inst_mod
from flowprov.errors import PermissionDenied, ValidationError
from flowprov.relocate import MoveRefused, move_root
from sqlalchemy import select

from tests.conftest import write


def _roots(inst) -> dict[str, str]:
    """uid → root of every storage row, read from the database."""
    from flowprov import schema as S
    from flowprov.db import read_connection

    with read_connection(inst.engine) as conn:
        return dict(conn.execute(select(S.storages.c.uid, S.storages.c.root)).all())


def _fill(inst, root):
    """Files in place (two folders deep, a folder artifact) and one copy flowprov keeps."""
    arts = [
        fp.Artifact(write(root / "raw" / "a.fastq", "ACGT\n" * 50)).save(),
        fp.Artifact(write(root / "raw" / "lane2" / "b.fastq", "TTGA\n" * 70)).save(),
        fp.Artifact(write(root / "results" / "hits.tsv", "gene\tscore\nIFNG\t3\n")).save(),
    ]
    write(root / "results" / "plots" / "p1.txt", "plot 1")
    write(root / "results" / "plots" / "p2.txt", "plot 2")
    arts.append(fp.Artifact(root / "results" / "plots").save())
    outside = write(root.parent / "elsewhere" / "upload.csv", "x,y\n1,2\n")
    arts.append(fp.Artifact(outside).save())
    assert arts[-1].managed and not arts[0].managed
    return arts


def test_a_moved_folder_is_repointed_and_verify_is_clean(instance, fp_env, run_flowprov):
    old = fp_env / "mydata"
    arts = _fill(instance, old)
    roots_before = _roots(instance)
    new = fp_env / "mydata_moved"
    os.rename(old, new)  # `mv labA labA_moved`: with SQLite, the database moved too
    inst_mod.reset_cache()

    out = run_flowprov("storage", "move", str(old), str(new)).stdout
    assert f"moved storage root {old} → {new}" in out
    assert "checked 5 of 5 recorded files at the new place: all there" in out
    assert f"default storage {old} → {new}" in out
    if instance.config.db.startswith("sqlite"):
        assert f"database sqlite:///{old}/.flowprov/flowprov.sqlite" in out

    info = run_flowprov("info").stdout
    assert f"storage:   {new}" in info
    verify = run_flowprov("verify")
    assert verify.returncode == 0 and "5 checked: 5 fine" in verify.stdout

    inst = inst_mod.current()
    after = _roots(inst)
    assert set(after) == set(roots_before)  # the same rows: no second root
    assert after[arts[0].storage.uid] == str(new)
    again = fp.Artifact(new / "raw" / "lane2" / "b.fastq").save()
    assert again.existed and again.uid == arts[1].uid and again.key == "raw/lane2/b.fastq"
    folder = fp.Artifact(new / "results" / "plots").save()
    assert folder.existed and folder.uid == arts[3].uid
    assert str(fp.Artifact.get(arts[4].uid).path).startswith(str(new / ".flowprov" / "objects"))
    from flowprov.relocate import moved_to

    assert moved_to(inst, old) == str(new) and moved_to(inst, new) is None
    # a second run knows it was done
    out = run_flowprov("storage", "move", str(old), str(new)).stdout
    assert "already moved" in out


def test_a_wrong_new_is_refused_and_nothing_changes(instance, fp_env, run_flowprov):
    from flowprov import config as C

    old = fp_env / "mydata"
    arts = _fill(instance, old)
    cfg_before = C.instance_file(instance.name).read_bytes()
    roots_before = _roots(instance)

    empty = fp_env / "empty"
    empty.mkdir()
    r = run_flowprov("storage", "move", str(old), str(empty), check=False)
    assert r.returncode == 1
    assert "refused to move" in r.stderr and "Nothing was changed" in r.stderr
    assert "5 of 5 sampled files are not there as recorded" in r.stderr
    assert r.stdout.count("missing") == 5 and "raw/a.fastq" in r.stdout  # the table of them

    # a copy where one file is missing and another has other bytes of the same size
    partial = fp_env / "partial"
    shutil.copytree(old, partial, ignore=shutil.ignore_patterns(".flowprov"))
    (partial / "raw" / "a.fastq").unlink()
    (partial / "results" / "hits.tsv").write_text("gene\tscore\nIFNA\t3\n")
    with pytest.raises(MoveRefused) as e:
        move_root(inst_mod.current(), old, partial, sample=100)
    bad = {c.key: c.detail for c in e.value.report.failures}
    assert bad["raw/a.fastq"] == "missing"
    assert bad["results/hits.tsv"].startswith("modified")  # same size: caught by its hash
    assert any(k.startswith(".flowprov/objects/") for k in bad)  # the copy flowprov keeps
    assert "were the hidden folders moved too?" in str(e.value)

    inst = inst_mod.current()
    assert _roots(inst) == roots_before
    assert C.instance_file(instance.name).read_bytes() == cfg_before
    assert fp.Artifact.get(arts[0].uid).storage.root == str(old)
    assert (old / "raw" / "a.fastq").exists() and (partial / "raw" / "lane2" / "b.fastq").exists()

    with pytest.raises(ValidationError, match="not a folder"):
        move_root(inst, old, fp_env / "nowhere")
    with pytest.raises(ValidationError, match="is not a declared storage root"):
        move_root(inst, fp_env / "nowhere", partial)

    # --force moves anyway, and says what was not there
    rep = move_root(inst, old, partial, sample=100, force=True)
    assert rep.forced and rep.failures
    assert _roots(inst_mod.current())[arts[0].storage.uid] == str(partial)


def test_roots_inside_move_along_and_host_root_records_stay(instance, fp_env):
    from flowprov.artifacts import in_place_event

    old = fp_env / "mydata"
    lab = fp_env / "labB"
    inner = lab / "seq"
    host_file = write(lab / "notes.txt", "recorded before labB was declared")
    instance.store.apply(
        [in_place_event(str(host_file), roots=list(instance.storages(refresh=True).values()))]
    )
    fp.Storage(inner).save()  # declared first: its files keep keys relative to it
    fp.Storage(lab).save()
    a = fp.Artifact(write(lab / "x.txt", "x")).save()
    b = fp.Artifact(write(inner / "run1.bam", b"\0" * 1000)).save()
    assert a.storage.root == str(lab) and b.storage.root == str(inner)

    moved = fp_env / "archive" / "labB"
    moved.parent.mkdir()
    os.rename(lab, moved)
    rep = move_root(inst_mod.current(), lab, moved)
    assert rep.moved == [(str(lab), str(moved)), (str(inner), str(moved / "seq"))]
    assert rep.artifacts == 2  # x.txt (labB) and run1.bam (seq): both sampled
    assert len(rep.checks) == 2 and not rep.failures
    assert rep.left_behind == {"/": 1}  # notes.txt, recorded by absolute path, stays
    assert rep.config_changes == {}  # neither the default root nor the database moved
    assert fp.Artifact(moved / "seq" / "run1.bam").save().uid == b.uid
    assert fp.Artifact(moved / "x.txt").save().uid == a.uid
    assert inst_mod.current().storage.root == str(old)

    # NEW inside a root declared before it: its files would be keyed by that root
    target = old / "labB"
    os.rename(moved, target)
    with pytest.raises(ValidationError, match="declared before"):
        move_root(inst_mod.current(), moved, target)
    with pytest.raises(ValidationError, match="already a declared storage root"):
        move_root(inst_mod.current(), moved, old)


def test_move_root_on_a_database_found_in_new(sqlite_instance, fp_env):
    """What `init --storage NEW` does with an SQLite instance found inside a moved folder: opens
    the database where it is now, re-points OLD, and writes the config itself."""
    from flowprov import config as C
    from flowprov.instance import Instance

    old, new = fp_env / "mydata", fp_env / "moved"
    a = fp.Artifact(write(old / "a.txt", "a")).save()
    os.rename(old, new)
    inst_mod.reset_cache()
    cfg = C.InstanceConfig(
        name="mydata",
        uid=sqlite_instance.config.uid,
        db=f"sqlite:///{new}/.flowprov/flowprov.sqlite",
        storage=str(old),
    )
    before = C.instance_file("mydata").read_bytes()
    rep = move_root(Instance(cfg, fp_env / "not-written.yaml"), old, new, save_config=False)
    assert rep.database is None and rep.config.storage == str(new)
    assert rep.config.db == cfg.db and rep.config_changes == {"storage": (str(old), str(new))}
    assert C.instance_file("mydata").read_bytes() == before  # the caller writes it
    assert not (fp_env / "not-written.yaml").exists()
    C.save_instance_config(rep.config)
    assert fp.Artifact(new / "a.txt").save().uid == a.uid


def _reader(postgres, pg_database: str, name: str) -> str:
    """A role that may only read the test's database (README's read-only member): its URL."""
    from psycopg import sql

    dbname = pg_database.rsplit("/", 1)[1]
    postgres.admin(
        sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {n}) THEN "
            "CREATE ROLE {r} LOGIN PASSWORD {p}; END IF; END $$"
        ).format(n=sql.Literal(name), r=sql.Identifier(name), p=sql.Literal(postgres.password))
    )
    for stmt in (
        f'GRANT CONNECT ON DATABASE "{dbname}" TO {name}',
        f"GRANT USAGE ON SCHEMA public TO {name}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}",
    ):
        postgres.admin(stmt, db=dbname)
    line = f"127.0.0.1:{postgres.port}:*:{name}:{postgres.password}\n"
    if line not in postgres.pgpass.read_text():
        postgres.pgpass.write_text(postgres.pgpass.read_text() + line)
    return pg_database.replace("flowprov@", f"{name}@")


def read_only_member(instance, fp_env, request):
    """Make the test's instance current for a member who may only read: on PostgreSQL a role
    with SELECT only; on SQLite a read-only database file and folder (skipped under root, whom
    file modes do not stop). Returns the instance as that member sees it."""
    if instance.config.db.startswith("sqlite"):
        if os.geteuid() == 0:
            pytest.skip(
                "running as root: file modes do not stop root from writing the SQLite file "
                "(PostgreSQL covers the read-only member)"
            )
        from flowprov.db import sqlite_path

        db = sqlite_path(instance.config.db)
        inst_mod.reset_cache()
        os.chmod(db, 0o444)
        os.chmod(os.path.dirname(db), 0o555)

        def undo():
            os.chmod(os.path.dirname(db), 0o755)
            os.chmod(db, 0o644)

        request.addfinalizer(undo)
        return inst_mod.current()
    postgres = request.getfixturevalue("postgres")
    url = _reader(postgres, instance.config.db, "fp_move_reader")
    inst_mod.reset_cache()
    reader, created = inst_mod.init(fp_env / "mydata", db=url, name="mydata-read")
    assert not created
    return reader


def test_a_member_who_may_only_read_is_refused_before_anything(
    instance, fp_env, run_flowprov, request
):
    from flowprov import config as C

    old = fp_env / "mydata"
    arts = _fill(instance, old)
    roots_before = _roots(instance)
    copy = fp_env / "copy"
    shutil.copytree(old, copy, ignore=shutil.ignore_patterns(".flowprov"))
    shutil.copytree(old / ".flowprov" / "objects", copy / ".flowprov" / "objects")
    reader = read_only_member(instance, fp_env, request)
    cfg_before = C.instance_file(reader.name).read_bytes()

    r = run_flowprov("storage", "move", str(old), str(copy), check=False)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert err.count("\n") == 0, err  # one line
    assert "not allowed to move storage root" in err and "Nothing was changed" in err
    with pytest.raises(PermissionDenied):
        move_root(reader, old, copy)
    assert C.instance_file(reader.name).read_bytes() == cfg_before
    inst_mod.reset_cache()
    assert _roots(inst_mod.current()) == roots_before
    assert fp.Artifact.get(arts[0].uid).storage.root == str(old)


# -- a bucket prefix ------------------------------------------------------------------------------


def test_a_bucket_prefix_is_repointed(sqlite_instance, s3_server, monkeypatch):
    import fsspec

    from tests.test_object_storage import use_moto

    use_moto(s3_server, monkeypatch)
    bucket = f"s3://fp-{uuid.uuid4().hex[:12]}"
    fs, _ = fsspec.core.url_to_fs(bucket)
    fs.mkdir(bucket[5:])
    for k, data in {"run1/a.txt": b"a" * 100, "run1/deep/b.txt": b"bb" * 300}.items():
        fs.pipe_file(f"{bucket[5:]}/data/{k}", data)
    fp.Storage(f"{bucket}/data").save()
    arts = [fp.Artifact(f"{bucket}/data/run1/a.txt").save()]
    arts.append(fp.Artifact(f"{bucket}/data/run1/deep/b.txt").save())
    assert arts[0].storage.root == f"{bucket}/data"

    with pytest.raises(MoveRefused):  # nothing there yet
        move_root(inst_mod.current(), f"{bucket}/data", f"{bucket}/archive/data")
    fs.copy(f"{bucket[5:]}/data", f"{bucket[5:]}/archive/data", recursive=True)
    fs.rm(f"{bucket[5:]}/data", recursive=True)
    rep = move_root(inst_mod.current(), f"{bucket}/data/", f"{bucket}/archive/data")
    assert len(rep.checks) == 2 and not rep.failures and rep.hashed == 2
    assert fp.Artifact.get(arts[1].uid).path == f"{bucket}/archive/data/run1/deep/b.txt"
    from flowprov.verify import verify

    assert [c.status for c in verify()] == ["ok", "ok"]
    assert fp.Artifact(f"{bucket}/archive/data/run1/a.txt").save().uid == arts[0].uid
