"""An instance no member can lose track of: a missing database is reported as missing (and not
created by the report), a storage folder moved with its database is found again by `init`,
every member sees the same instance uid, and `init` says where a PostgreSQL password lives and
when it recorded an operating-system account as a user."""

from __future__ import annotations

import os
import shutil
import stat

import flowprov as fp
import pytest


def _init(run_flowprov, *args, env=None):
    return run_flowprov("init", *args, env=env)


def test_a_missing_database_file_is_reported_with_its_path_and_not_created(fp_env, run_flowprov):
    root = fp_env / "labA"
    _init(run_flowprov, "--storage", str(root))
    src = fp_env / "outside.csv"
    src.write_text("x,y\n")
    fp.Artifact(str(src), key=None).save()  # a copy flowprov keeps in .flowprov/objects
    db = root / ".flowprov" / "flowprov.sqlite"
    for ext in ("", "-wal", "-shm"):
        p = db.with_name(db.name + ext)
        if p.exists():
            p.unlink()
    from flowprov.instance import reset_cache

    reset_cache()
    for cmd in (("info",), ("ls", "artifacts"), ("verify",)):
        r = run_flowprov(*cmd, check=False)
        assert r.returncode == 1, cmd
        assert f"the database file {db} is missing" in r.stderr, (cmd, r.stderr)
        assert "Traceback" not in r.stderr
        assert not db.exists(), f"`flowprov {' '.join(cmd)}` created {db}"
    # a new database there: init says what it leaves unreferenced, gc lists it
    r = _init(run_flowprov, "--storage", str(root))
    assert "created" in r.stdout and "holds 1 objects" in r.stdout and "flowprov gc" in r.stdout
    v = run_flowprov("verify")
    assert "flowprov gc" in v.stdout + v.stderr


def test_a_storage_folder_moved_with_its_database_is_found_by_init(fp_env, run_flowprov):
    old, new = fp_env / "labA", fp_env / "labA_moved"
    (old / "raw").mkdir(parents=True)
    for i in range(5):
        (old / "raw" / f"s{i}.fastq").write_text(f"@r{i}\nACGT\n+\nIIII\n")
    _init(run_flowprov, "--storage", str(old), "--name", "A")
    uids = {
        f"raw/s{i}.fastq": fp.Artifact(str(old / "raw" / f"s{i}.fastq")).save().uid
        for i in range(5)
    }
    src = fp_env / "outside.txt"
    src.write_text("copied in\n")
    copied = fp.Artifact(str(src), key=None).save()
    from flowprov.instance import reset_cache

    reset_cache()
    shutil.move(old, new)

    r = run_flowprov("info", check=False)
    assert r.returncode == 1 and "is missing" in r.stderr and "--storage NEW_FOLDER" in r.stderr
    r = _init(run_flowprov, "--storage", str(new), "--name", "A")
    assert "connected to existing" in r.stdout and f"moved from {old}" in r.stdout
    info = run_flowprov("info").stdout
    assert str(new) in info and f"{old}\n" not in info
    storages = run_flowprov("ls", "storages").stdout
    assert f"{old} " not in storages and storages.count("labA_moved") == 1
    v = run_flowprov("verify")
    assert v.returncode == 0 and "6 checked: 6 fine, 0 modified, 0 missing" in v.stdout
    reset_cache()
    # a re-saved file is the same record at its new place; the copy is still found
    again = fp.Artifact(str(new / "raw" / "s0.fastq")).save()
    assert again.uid == uids["raw/s0.fastq"] and str(again.path) == str(new / "raw" / "s0.fastq")
    assert open(fp.Artifact.get(copied.uid).cache(), "rb").read() == b"copied in\n"


def test_init_refuses_a_different_root_for_an_existing_database(instance, fp_env, db_url):
    from flowprov import instance as inst_mod
    from flowprov.errors import ValidationError

    with pytest.raises(ValidationError, match="storage root is .*mydata.*storage add"):
        inst_mod.init(fp_env / "elsewhere", db=instance.config.db, name="other")
    assert not (fp_env / "config" / "instances" / "other.yaml").exists()


def test_every_member_sees_the_same_instance_uid(fp_env, pg_database, run_flowprov):
    uids = set()
    for member in ("alice", "bob"):
        env = {"FLOWPROV_CONFIG_DIR": str(fp_env / f"config-{member}"), "FLOWPROV_USER": member}
        _init(
            run_flowprov,
            "--db",
            pg_database,
            "--storage",
            str(fp_env / "lab"),
            "--name",
            member,
            env=env,
        )
        info = run_flowprov("info", env=env).stdout
        uids.add(info.split("(uid ", 1)[1].split(")", 1)[0])
    assert len(uids) == 1


def test_init_says_where_a_postgres_password_lives_and_can_save_it(
    fp_env, postgres, pg_database, run_flowprov
):
    with_pw = postgres.url(pg_database.rsplit("/", 1)[1], password=True)
    pgpass = fp_env / "my.pgpass"
    env = {"PGPASSFILE": str(pgpass)}
    r = _init(run_flowprov, "--db", with_pw, "--storage", str(fp_env / "lab"), env=env)
    assert postgres.password not in r.stdout
    assert "PGPASSWORD" in r.stdout and "--save-password" in r.stdout
    assert run_flowprov("info", env=env, check=False).returncode == 1  # not stored anywhere yet
    r = _init(
        run_flowprov, "--db", with_pw, "--storage", str(fp_env / "lab"), "--save-password", env=env
    )
    assert f"saved to {pgpass}" in r.stdout
    assert stat.S_IMODE(os.stat(pgpass).st_mode) == 0o600
    assert "records:" in run_flowprov("info", env=env).stdout  # the saved entry is what connects
    assert postgres.password not in (fp_env / "config" / "instances" / "lab.yaml").read_text()


def test_init_says_when_it_recorded_the_os_account(fp_env, run_flowprov):
    r = _init(run_flowprov, "--storage", str(fp_env / "lab"))
    assert "your OS account" in r.stdout and "flowprov login" in r.stdout
    run_flowprov("login", "alice")
    r = _init(run_flowprov, "--storage", str(fp_env / "lab2"))
    assert "OS account" not in r.stdout


def test_a_member_whose_config_names_a_moved_root_is_told_and_records_nothing(
    fp_env, pg_database, run_flowprov
):
    """Another member re-pointed the root: a stale config must not bring the old root back."""
    import subprocess
    import sys

    lab, moved = fp_env / "lab", fp_env / "lab2"
    envs = {
        m: {"FLOWPROV_CONFIG_DIR": str(fp_env / f"config-{m}"), "FLOWPROV_USER": m}
        for m in ("alice", "bob")
    }
    for env in envs.values():
        _init(run_flowprov, "--db", pg_database, "--storage", str(lab), "--name", "lab", env=env)
    (lab / "a.txt").write_text("a\n")
    save = "import sys, flowprov as fp; print(fp.Artifact(sys.argv[1], key=None).save().uid)"
    outside = fp_env / "outside.txt"
    outside.write_text("copied in\n")

    def py(member, *args):
        return subprocess.run(
            [sys.executable, "-c", save, *args],
            capture_output=True,
            text=True,
            env={**os.environ, **envs[member]},
        )

    assert py("alice", str(outside)).returncode == 0
    shutil.move(lab, moved)
    run_flowprov("storage", "move", str(lab), str(moved), env=envs["alice"])
    r = py("bob", str(outside))
    assert r.returncode != 0
    assert f"was moved to {moved}" in r.stderr and "flowprov init --storage" in r.stderr
    storages = run_flowprov("ls", "storages", env=envs["alice"]).stdout
    assert f"{lab} " not in storages  # the old root did not come back
    _init(
        run_flowprov, "--db", pg_database, "--storage", str(moved), "--name", "lab", env=envs["bob"]
    )
    assert py("bob", str(outside)).returncode == 0


def test_a_corrupt_instance_file_is_named_and_init_force_rewrites_it(fp_env, run_flowprov):
    lab = fp_env / "lab"
    _init(run_flowprov, "--storage", str(lab))
    uid = run_flowprov("info").stdout.split("(uid ", 1)[1].split(")", 1)[0]
    cfg = fp_env / "config" / "instances" / "lab.yaml"
    cfg.write_bytes(b"name: [unclosed\n\x00\xff")
    for cmd in (("info",), ("init", "--storage", str(lab))):
        r = run_flowprov(*cmd, check=False)
        assert r.returncode == 1 and str(cfg) in r.stderr and "--force" in r.stderr, cmd
        assert "Traceback" not in r.stderr
    r = _init(run_flowprov, "--storage", str(lab), "--force")
    assert "connected to existing" in r.stdout and f"(uid {uid})" in r.stdout
    assert f"(uid {uid})" in run_flowprov("info").stdout
