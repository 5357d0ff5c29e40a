import os
import sqlite3
from pathlib import Path

import flowprov as fp
import pytest
import yaml
from flowprov import config as C
from flowprov import instance as inst_mod
from flowprov.errors import DatabaseUnavailable, InstanceError, InstanceNotEmpty, NoInstanceError

from tests.conftest import write


def test_init_is_offline_sqlite_plus_storage_folder(sqlite_instance, fp_env):
    instance = sqlite_instance
    root = Path(instance.storage.root)
    assert root == (fp_env / "mydata").resolve()
    assert (root / ".flowprov" / "flowprov.sqlite").is_file()
    assert instance.config.db.startswith("sqlite:///")
    cfg = yaml.safe_load(C.instance_file("mydata").read_text())
    assert cfg["storage"] == str(root) and cfg["name"] == "mydata"
    assert (fp_env / "config" / "current_instance").read_text().strip() == "mydata"
    assert fp.Storage.filter(is_default=True).one().root == str(root)
    with sqlite3.connect(root / ".flowprov" / "flowprov.sqlite") as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_init_twice_reconnects(instance, fp_env, db_url):
    again, created = inst_mod.init(fp_env / "mydata", db=db_url)
    assert not created and again.config.uid == instance.config.uid
    assert fp.Storage.filter().count() == 1


def test_no_instance_is_a_clear_error_and_cwd_is_never_searched(fp_env, monkeypatch):
    inst_mod.init(fp_env / "elsewhere")
    (fp_env / "config" / "current_instance").unlink()
    monkeypatch.chdir(fp_env / "elsewhere")  # standing inside an instance's folder does not count
    with pytest.raises(NoInstanceError, match="flowprov init"):
        fp.Artifact.filter().count()


def test_env_var_selects_the_instance(fp_env, monkeypatch):
    a, _ = inst_mod.init(fp_env / "lab-a")
    write(fp_env / "x.txt", "x")
    fp.Artifact(fp_env / "x.txt").save()
    b, _ = inst_mod.init(fp_env / "lab-b")  # now current
    assert fp.Artifact.filter().count() == 0
    monkeypatch.setenv("FLOWPROV_INSTANCE", "lab-a")
    assert fp.Artifact.filter().count() == 1
    monkeypatch.setenv("FLOWPROV_INSTANCE", str(C.instance_file("lab-b")))  # a yaml path works too
    assert fp.Artifact.filter().count() == 0
    monkeypatch.setenv("FLOWPROV_INSTANCE", "lab-z")
    with pytest.raises(NoInstanceError, match="lab-z"):
        fp.Artifact.filter().count()


def test_the_current_instance_is_found_again_only_when_its_files_or_variables_change(
    fp_env, monkeypatch
):
    """current() is asked on every write: it reads the config files again only when one of them
    (or a variable naming them) changed — and then always."""
    a, _ = inst_mod.init(fp_env / "lab-a")
    b, _ = inst_mod.init(fp_env / "lab-b")
    reads = []
    real = C.locate_instance_config
    monkeypatch.setattr(
        C, "locate_instance_config", lambda name=None: reads.append(1) or real(name)
    )
    assert inst_mod.current().name == "lab-b"
    assert len(reads) == 1
    for _ in range(3):
        assert inst_mod.current().name == "lab-b"
    assert len(reads) == 1  # unchanged files: not read again

    pointer = C.current_instance_file()
    with open(pointer, "w") as f:  # edited in place (same inode), as an editor or a shell would
        f.write("lab-a\n")
    os.utime(pointer, ns=(1, 1))  # even with a time that went backwards
    assert inst_mod.current().name == "lab-a"
    assert len(reads) == 2

    monkeypatch.setenv("FLOWPROV_INSTANCE", "lab-b")
    assert inst_mod.current().name == "lab-b"
    monkeypatch.delenv("FLOWPROV_INSTANCE")
    assert inst_mod.current().name == "lab-a"

    yaml_a = C.instance_file("lab-a")
    cfg = yaml.safe_load(yaml_a.read_text())
    yaml_a.write_text(yaml.safe_dump({**cfg, "storage": str(fp_env / "lab-b")}))  # rewritten
    assert inst_mod.current().storage.root == str(fp_env / "lab-b")

    yaml_a.unlink()
    with pytest.raises(C.CurrentInstanceMissing, match="lab-a"):
        inst_mod.current()
    pointer.unlink()
    with pytest.raises(NoInstanceError, match="flowprov init"):
        inst_mod.current()
    monkeypatch.setenv("FLOWPROV_CONFIG_DIR", str(fp_env / "other-config"))
    with pytest.raises(NoInstanceError):
        inst_mod.current()


def test_corrupt_database_file(sqlite_instance):
    instance = sqlite_instance
    db = Path(instance.storage.root) / ".flowprov" / "flowprov.sqlite"
    inst_mod.reset_cache()
    for ext in ("-wal", "-shm"):
        Path(str(db) + ext).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InstanceError, match="not a readable flowprov database"):
        fp.Artifact.filter().count()


def test_foreign_database(fp_env, monkeypatch):
    db = fp_env / "other.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(InstanceError, match="not a flowprov one.*patients"):
        inst_mod.init(fp_env / "store", db=f"sqlite:///{db}")
    assert not C.instance_file("store").exists()


def test_unreachable_database_leaves_nothing_behind(fp_env):
    with pytest.raises(
        DatabaseUnavailable,
        match=r"cannot reach database postgresql\+psycopg://lab:\*\*\*@127\.0\.0\.1:9/",
    ):
        inst_mod.init(fp_env / "team", db="postgresql://lab:secret@127.0.0.1:9/provenance")
    assert not (fp_env / "team").exists() and not C.instance_file("team").exists()


def test_password_is_never_written_to_the_config():
    kept = inst_mod.config_db_url("postgresql+psycopg://lab:hunter2@db.internal:5433/provenance")
    assert kept == "postgresql+psycopg://lab@db.internal:5433/provenance"


def test_bad_database_urls(fp_env):
    from flowprov.errors import ValidationError

    with pytest.raises(ValidationError, match="not a database URL"):
        inst_mod.init(fp_env / "a", db="not a url")
    with pytest.raises(ValidationError, match="invalid database URL"):
        inst_mod.init(fp_env / "b", db="sqlite://user:pw@host/x.sqlite")
    with pytest.raises(ValidationError, match="no driver"):
        inst_mod.init(fp_env / "c", db="oracle+nosuchdriver://u@h/db")


@pytest.fixture
def empty_db(backend, fp_env, request) -> str:
    """An empty database's URL: an SQLite file, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{fp_env / 'old.sqlite'}"
    return request.getfixturevalue("pg_database")


def test_older_schema_is_opened_as_it_is_and_upgraded_by_migrate(fp_env, empty_db):
    """Opening never migrates (a shared database would lock out colleagues on the previous
    release); `migrate` does. tests/test_schema_upgrades.py covers every revision."""
    from flowprov.db import make_engine, migrate, schema_revision
    from flowprov.migrations import SCHEMA_HEAD
    from sqlalchemy import inspect

    engine = make_engine(empty_db)
    migrate(engine, "0001")  # what flowprov 0.1's first release created
    with engine.connect() as c:
        assert schema_revision(c) == "0001"
        assert "ix_runs_started_at" not in {i["name"] for i in inspect(c).get_indexes("runs")}
    engine.dispose()
    inst, created = inst_mod.init(fp_env / "old", db=empty_db)
    assert not created and inst.schema.relation == "older"
    with inst.engine.connect() as c:
        assert schema_revision(c) == "0001"
    inst_mod.reset_cache()
    engine = make_engine(empty_db)
    migrate(engine)
    with engine.connect() as c:
        assert schema_revision(c) == SCHEMA_HEAD
        assert "ix_runs_started_at" in {i["name"] for i in inspect(c).get_indexes("runs")}
    engine.dispose()


def test_newer_schema_is_refused(instance):
    from sqlalchemy import text

    with instance.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num='9999'"))
        c.execute(text("UPDATE instance_meta SET value='9999' WHERE key='schema_floor'"))
    inst_mod.reset_cache()
    with pytest.raises(InstanceError, match="newer than this flowprov knows"):
        fp.Artifact.filter().count()


def test_migrations_match_the_schema(instance):
    """Every schema change ships with a migration: the migrated database equals the metadata."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flowprov.db import _alembic_config
    from flowprov.migrations import SCHEMA_HEAD, include_name
    from flowprov.schema import metadata

    with instance.engine.connect() as c:
        context = MigrationContext.configure(c, opts={"include_name": include_name})
        assert compare_metadata(context, metadata) == []
    assert ScriptDirectory.from_config(_alembic_config(None)).get_current_head() == SCHEMA_HEAD


def test_delete_refuses_then_force_removes_only_flowprov_files(instance, fp_env):
    root = Path(instance.storage.root)
    mine = write(root / "lab-notes.txt", "not registered, not flowprov's")
    in_place = write(root / "raw" / "R1.fastq.gz", "@r1")
    fp.Artifact(in_place).save()
    copied = fp.Artifact(write(fp_env / "screen.parquet", "screen")).save().path
    assert copied.exists()
    with pytest.raises(InstanceNotEmpty, match="1 managed files"):
        inst_mod.delete(inst_mod.current())
    assert copied.exists()
    done = inst_mod.delete(inst_mod.current(), force=True)
    assert done["files_removed"] == 1
    assert not copied.exists() and not (root / ".flowprov").exists()
    assert mine.read_text() == "not registered, not flowprov's" and in_place.exists()
    assert not C.instance_file("mydata").exists()
    with pytest.raises(NoInstanceError):
        inst_mod.current()


def test_delete_of_an_empty_instance_needs_no_force(instance, fp_env):
    inst_mod.delete(inst_mod.current())
    assert not (fp_env / "mydata").exists()


def test_user_identity(instance, fp_env, monkeypatch):
    assert fp.User.current().handle == os.environ.get("USER", fp.User.current().handle)
    C.save_user_config(C.UserConfig(handle="testuser1", name="Test User1", uid="DzTjkKse"))
    u = fp.User.current()
    assert (u.handle, u.name, u.uid) == ("testuser1", "Test User1", "DzTjkKse")
    monkeypatch.setenv("FLOWPROV_USER", "testuser2")
    t = fp.Transform(name="by user 2", type="script").save()
    assert t.created_by.handle == "testuser2"


def test_run_outputs_are_backfilled_when_upgrading(fp_env, empty_db):
    from flowprov.db import make_engine, migrate
    from sqlalchemy import text

    engine = make_engine(empty_db)
    migrate(engine, "0004")
    now = "2025-01-01 00:00:00"
    with engine.begin() as c:
        c.execute(text(f"INSERT INTO users VALUES (1, 'u0000001', 'lab', NULL, '{now}', '{now}')"))
        c.execute(
            text(
                f"INSERT INTO storages VALUES (1, 's00000000001', '/data', 'local', NULL, NULL, true, 1, '{now}', '{now}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO transforms (id, uid, stem, family, version_tag, name, type, is_latest, created_at, updated_at) "
                f"VALUES (1, 't00000000001000', 't00000000001', 'x', '|', 'x', 'script', true, '{now}', '{now}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO runs (id, uid, transform_id, started_at, status, created_at, updated_at) "
                f"VALUES (7, 'r0000000000000000007', 1, '{now}', 'completed', '{now}', '{now}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO artifacts (id, uid, stem, key_is_virtual, suffix, hash, hash_type, n_objects, is_latest, "
                f"managed, storage_id, run_id, created_at, updated_at) VALUES (3, 'a000000000000000000', 'a000000000000000', "
                f"false, '.txt', 'h', 'blake3', 1, true, false, 1, 7, '{now}', '{now}')"
            )
        )
    # read before migrating: the same answer, from the compatibility view
    inst, _ = inst_mod.init("/data", db=empty_db)
    with inst.engine.connect() as c:
        assert c.execute(text("SELECT run_id, artifact_id FROM run_outputs")).all() == [(7, 3)]
    inst_mod.reset_cache()
    migrate(engine)  # a fresh connection: the table itself, filled by the migration
    with engine.connect() as c:
        assert c.execute(text("SELECT run_id, artifact_id FROM run_outputs")).all() == [(7, 3)]
    engine.dispose()
