"""Upgrades are explicit: an instance made at every earlier schema revision is opened by today's
flowprov without being migrated — it reads, refuses writes with the way out, and says a
migration is available — until `flowprov migrate`, run by a member who owns the database,
upgrades it with every record intact. A client older than its database keeps working when the
database's compatibility floor allows it, and otherwise names the release to install.

Old instances are built the way an older flowprov left them: Alembic brings an empty database to
the revision, and rows are written in that revision's shape (its tables reflected)."""

from __future__ import annotations

import datetime as dt

import flowprov as fp
import pytest
from flowprov import config as C
from flowprov.db import make_engine, migrate
from flowprov.errors import InstanceError, SchemaOutdated
from flowprov.hashing import hash_path
from flowprov.instance import config_db_url, reset_cache
from flowprov.migrations import COMPATIBILITY, SCHEMA_HEAD
from sqlalchemy import MetaData, text

OLDER = sorted(r for r in COMPATIBILITY if r < SCHEMA_HEAD)
NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


def _url(fp_env, db_url) -> str:
    return db_url or f"sqlite:///{fp_env / 'old' / 'old.sqlite'}"


def _revision(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _old_instance(fp_env, db_url, rev: str) -> dict:
    """An instance left at schema `rev`: a script run that read in.txt and wrote out.txt."""
    root = fp_env / "olddata"
    root.mkdir()
    (root / "in.txt").write_text("input bytes\n")
    (root / "out.txt").write_text("output bytes\n")
    (fp_env / "old").mkdir(exist_ok=True)
    url = _url(fp_env, db_url)
    engine = make_engine(url)
    migrate(engine, rev)
    md = MetaData()
    md.reflect(engine)
    digests = {n: hash_path(str(root / n), "sha256") for n in ("in.txt", "out.txt")}
    stamp = {"created_at": NOW, "updated_at": NOW}
    rows = {
        "users": [{"id": 1, "uid": "olduser1", "handle": "olduser", "name": "Old User", **stamp}],
        "storages": [
            {
                "id": 1,
                "uid": "oldstorage01",
                "root": str(root),
                "type": "local",
                "is_default": True,
                "created_by_id": 1,
                **stamp,
            }
        ],
        "transforms": [
            {
                "id": 1,
                "uid": "oldtransfor10000",
                "stem": "oldtransfor1",
                "family": "key:analysis.py",
                "version_tag": "1",
                "name": "analysis.py",
                "key": "analysis.py",
                "type": "script",
                "is_latest": True,
                "source_code": "print('old')\n",
                "created_by_id": 1,
                **stamp,
            }
        ],
        "runs": [
            {
                "id": 1,
                "uid": "oldrun00000000000001",
                "transform_id": 1,
                "started_at": NOW,
                "finished_at": NOW,
                "status": "completed",
                "created_by_id": 1,
                # what flowprov < 0.3 kept: the imported distributions only, and the exit
                "environment": {
                    "python": "3.10.4",
                    "platform": "Linux-5.15.0-x86_64-with-glibc2.35",
                    "packages": {"numpy": "1.26.4", "pandas": "2.1.0"},
                    "exit": {"code": 0},
                },
                **stamp,
            }
        ],
        "artifacts": [
            {
                "id": i,
                "uid": f"oldartifact{i:05d}0000",
                "stem": f"oldartifact{i:05d}",
                "key": name,
                "key_is_virtual": False,
                "suffix": ".txt",
                "size": digests[name].size,
                "hash": digests[name].hash,
                "hash_type": digests[name].hash_type,
                "n_objects": 1,
                "is_latest": True,
                "managed": False,
                "storage_id": 1,
                "run_id": run,
                "created_by_id": 1,
                **stamp,
            }
            for i, name, run in ((1, "in.txt", None), (2, "out.txt", 1))
        ],
        "run_inputs": [{"run_id": 1, "artifact_id": 1, "created_at": NOW}],
        "run_outputs": [{"run_id": 1, "artifact_id": 2, "created_at": NOW}],
    }
    with engine.begin() as conn:
        for name, values in rows.items():
            if name not in md.tables:  # run_outputs came with 0005
                continue
            table = md.tables[name]
            conn.execute(
                table.insert(), [{k: v for k, v in r.items() if k in table.c} for r in values]
            )
    engine.dispose()
    C.save_instance_config(
        C.InstanceConfig(name="old", uid="olduid00001a", db=config_db_url(url), storage=str(root))
    )
    reset_cache()
    return {"root": root, "url": url}


@pytest.mark.parametrize("rev", OLDER)
def test_an_older_instance_is_read_as_it_is_and_written_only_after_migrate(
    rev, fp_env, db_url, run_flowprov, request
):
    old = _old_instance(fp_env, db_url, rev)

    # opening it, from the library and from the CLI, changes nothing and announces the migration
    out = fp.Artifact.get(key="out.txt")
    assert out.run.transform.name == "analysis.py"
    assert [a.key for a in out.run.inputs] == ["in.txt"]
    assert [r.uid for r in fp.Artifact.get(key="in.txt").input_of] == ["oldrun00000000000001"]
    up = out.lineage(direction="upstream")
    assert {a.record["key"] for a in up.artifacts} == {"in.txt", "out.txt"}
    info = run_flowprov("info").stdout
    assert f"schema {rev}, older than this flowprov's {SCHEMA_HEAD}" in info
    assert "migration is available" in info
    ls = run_flowprov("ls", "artifacts").stdout
    assert "out.txt" in ls and "in.txt" in ls
    assert _revision(old["url"]) == rev

    # a write is refused before anything is written, naming the way out
    (old["root"] / "new.txt").write_text("new\n")
    with pytest.raises(SchemaOutdated, match="flowprov migrate"):
        fp.Artifact(str(old["root"] / "new.txt"), description="new").save()
    assert fp.Artifact.filter(key="new.txt").count() == 0
    assert _revision(old["url"]) == rev

    if db_url:  # a read-only member on today's flowprov: reads the same, may not migrate
        _reader_reads_but_may_not_migrate(
            request.getfixturevalue("postgres"), db_url, old, run_flowprov, rev
        )

    # --dry-run shows the steps and changes nothing
    dry = run_flowprov("migrate", "--dry-run").stdout
    assert f"schema {rev} → {SCHEMA_HEAD}" in dry and "nothing was changed" in dry
    assert SCHEMA_HEAD in dry.split("→", 1)[1]
    assert _revision(old["url"]) == rev

    # migrate: every record intact, and now it takes writes
    run_flowprov("migrate")
    assert _revision(old["url"]) == SCHEMA_HEAD
    reset_cache()
    out = fp.Artifact.get(key="out.txt")
    assert out.run.transform.name == "analysis.py"
    assert [a.key for a in out.run.inputs] == ["in.txt"]
    fp.Artifact(str(old["root"] / "new.txt"), description="new").save()
    assert fp.Artifact.filter(key="new.txt").count() == 1
    if rev < "0008":  # the old environment JSON: an environment record, the partial list it was
        env = out.run.environment
        assert (env.interpreter, env.os) == ("Python 3.10.4", "Linux-5.15.0-x86_64-with-glibc2.35")
        assert not env.complete and "imported" in env.details["recorded_as"]
        assert {(p.name, p.version, p.source) for p in env.packages} == {
            ("numpy", "1.26.4", "pip"),
            ("pandas", "2.1.0", "pip"),
        }
        assert out.run.runtime == {"exit": {"code": 0}}
        assert fp.Run.filter(environment__packages__name="numpy").count() == 1
    assert "nothing to do" in run_flowprov("migrate").stdout
    verify = run_flowprov("verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _reader_reads_but_may_not_migrate(postgres, db_url, old, run_flowprov, rev) -> None:
    from tests.test_rights import _role

    role = _role(postgres, db_url.rsplit("/", 1)[1], "reader")
    env = {"PGPASSWORD": postgres.password, "FLOWPROV_INSTANCE": "reader"}
    url = db_url.replace("//flowprov@", f"//{role}@")
    r = run_flowprov(
        "init", "--db", url, "--storage", str(old["root"]), "--name", "reader", env=env
    )
    assert "flowprov migrate" in r.stdout
    ls = run_flowprov("ls", "artifacts", env=env).stdout
    assert "out.txt" in ls and "in.txt" in ls
    show = run_flowprov("show", "oldrun00000000000001", env=env).stdout
    assert "in.txt" in show and "out.txt" in show
    r = run_flowprov("migrate", env=env, check=False)
    assert r.returncode == 1 and "not allowed to migrate the schema" in r.stderr
    assert _revision(old["url"]) == rev
    C.save_instance_config(C.load_instance_config(C.instance_file("old")))  # the owner's again
    reset_cache()


def test_init_connects_to_an_older_instance_without_migrating_it(fp_env, db_url, run_flowprov):
    old = _old_instance(fp_env, db_url, "0005")
    r = run_flowprov("init", "--storage", str(old["root"]), "--name", "again", "--db", old["url"])
    assert "connected to existing" in r.stdout
    assert "flowprov migrate" in r.stdout
    assert _revision(old["url"]) == "0005"


def _set_revision(url: str, rev: str, meta: dict[str, str]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": rev})
        for k, v in meta.items():
            conn.execute(
                text("UPDATE instance_meta SET value = :v WHERE key = :k"), {"k": k, "v": v}
            )
    engine.dispose()
    reset_cache()


def test_a_newer_compatible_schema_is_used_and_an_incompatible_one_names_the_release(
    instance, run_flowprov, fp_env
):
    """As if a later flowprov had migrated the database: its floor decides."""
    from flowprov.db import read_meta

    with instance.engine.connect() as conn:
        meta = read_meta(conn)
    assert meta["schema_floor"] == "0008" and meta["min_flowprov"] == "0.3.0"
    assert meta["uid"] == instance.config.uid
    url = instance.config.db
    f = fp_env / "x.txt"
    f.write_text("x\n")

    _set_revision(url, "0042", {"schema_floor": "0006"})
    assert "newer than this flowprov's" in run_flowprov("info").stdout
    fp.Artifact(str(f), key="x.txt").save()  # compatible: reads and writes
    assert fp.Artifact.filter(key="x.txt").count() == 1

    _set_revision(url, "0042", {"schema_floor": "0040", "min_flowprov": "0.9.0"})
    with pytest.raises(InstanceError, match=r"install flowprov>=0\.9\.0"):
        fp.Artifact.filter(key="x.txt").count()
    r = run_flowprov("info", check=False)
    assert r.returncode == 1 and "flowprov>=0.9.0" in r.stderr
    assert _revision(url) == "0042"
