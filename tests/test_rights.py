"""Rights before actions, on a real PostgreSQL with the README's roles: the owner (`flowprov`,
who ran `init`), a writer (records, no schema) and a reader (SELECT only). Destructive and
schema-changing commands check first and refuse in one line; nothing is touched."""

from __future__ import annotations

import itertools
import os

import flowprov as fp
import pytest
from flowprov.db import make_engine, migrate
from flowprov.migrations import SCHEMA_HEAD
from sqlalchemy import text

_n = itertools.count()


def _role(postgres, db: str, kind: str) -> str:
    """A login role on `db` with the README's grants for `kind` ("writer" or "reader")."""
    name = f"{kind}_{os.getpid()}_{next(_n)}"
    postgres.admin(f"CREATE ROLE {name} LOGIN PASSWORD '{postgres.password}'")
    postgres.admin(f'GRANT CONNECT ON DATABASE "{db}" TO {name}')
    what = "SELECT, INSERT, UPDATE, DELETE" if kind == "writer" else "SELECT"
    postgres.admin(
        f"GRANT USAGE ON SCHEMA public TO {name}; "
        f"GRANT {what} ON ALL TABLES IN SCHEMA public TO {name}; "
        + (f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {name};" if kind == "writer" else ""),
        db=db,
    )
    return name


def _snapshot(url: str) -> dict:
    engine = make_engine(url)
    with engine.connect() as conn:
        tables = sorted(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
        rows = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() for t in tables}
    engine.dispose()
    return rows


@pytest.fixture
def team(fp_env, postgres, pg_database):
    """The owner's instance with a file flowprov copied in, and two members' configs."""
    from flowprov import instance as inst_mod

    inst, _ = inst_mod.init(fp_env / "labdata", db=pg_database)
    src = fp_env / "elsewhere" / "sample.csv"
    src.parent.mkdir()
    src.write_text("a,b\n1,2\n")
    art = fp.Artifact(str(src), key=None, description="copied in").save()
    obj = fp_env / "labdata" / ".flowprov" / "objects" / f"{art.hash}.csv"
    assert obj.is_file()
    db = pg_database.rsplit("/", 1)[1]
    return {
        "url": pg_database,
        "db": db,
        "object": obj,
        "writer": _role(postgres, db, "writer"),
        "reader": _role(postgres, db, "reader"),
        "env": {"PGPASSWORD": postgres.password},
    }


def _connect_as(run_flowprov, postgres, team, role: str) -> dict:
    url = team["url"].replace("//flowprov@", f"//{role}@")
    env = {**team["env"], "FLOWPROV_INSTANCE": f"lab-{role}"}
    run_flowprov(
        "init",
        "--db",
        url,
        "--storage",
        str(team["object"].parents[2]),
        "--name",
        f"lab-{role}",
        env=team["env"],
    )
    return env


@pytest.mark.parametrize("member", ["reader", "writer"])
def test_delete_force_by_a_member_who_does_not_own_the_database_touches_nothing(
    member, team, run_flowprov, postgres
):
    env = _connect_as(run_flowprov, postgres, team, team[member])
    before = _snapshot(team["url"])
    r = run_flowprov("delete", "--force", env=env, check=False)
    assert r.returncode == 1
    assert "not allowed to delete the instance" in r.stderr and "Nothing was changed" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 3
    assert team["object"].is_file()  # the team's copied file is still there
    assert _snapshot(team["url"]) == before
    assert "lab-" in run_flowprov("info", env=env).stdout  # and the member's config stays


def test_a_reader_may_log_in_without_recording_anything(team, run_flowprov, postgres):
    """A reader cannot record a user, but who they are still matters: the login is kept in
    user.yaml (with the uid the instance already has for that handle) and says so."""
    env = _connect_as(run_flowprov, postgres, team, team["reader"])
    before = _snapshot(team["url"])
    r = run_flowprov("login", "auditor", "--name", "An Auditor", env=env)
    assert "logged in as auditor" in r.stdout and "not recorded in instance" in r.stdout
    assert "may only read" in r.stdout
    assert _snapshot(team["url"]) == before
    info = run_flowprov("info", env=env).stdout
    assert "user:      auditor (An Auditor)" in info


def test_the_owner_may_delete(team, run_flowprov):
    r = run_flowprov("delete", "--force")
    assert "1 managed files removed" in r.stdout
    assert not team["object"].exists()
    assert _snapshot(team["url"]) == {}


def test_a_reader_gets_a_config_for_an_older_schema_and_cannot_migrate_it(
    fp_env, postgres, pg_database, run_flowprov
):
    """Issue 13: a reader on a newer flowprov against an older schema — `init` crashed with
    `permission denied for schema public` and wrote no config."""
    engine = make_engine(pg_database)
    migrate(engine, "0006")
    engine.dispose()
    db = pg_database.rsplit("/", 1)[1]
    reader = _role(postgres, db, "reader")
    writer = _role(postgres, db, "writer")
    env = {"PGPASSWORD": postgres.password}
    for role in (reader, writer):
        url = pg_database.replace("//flowprov@", f"//{role}@")
        r = run_flowprov(
            "init", "--db", url, "--storage", str(fp_env / "d"), "--name", role, env=env
        )
        assert "flowprov migrate" in r.stdout
        assert (fp_env / "config" / "instances" / f"{role}.yaml").is_file()
        env_role = {**env, "FLOWPROV_INSTANCE": role}
        assert "older than this flowprov" in run_flowprov("info", env=env_role).stdout
        r = run_flowprov("migrate", env=env_role, check=False)
        assert r.returncode == 1 and "not allowed to migrate the schema" in r.stderr
    engine = make_engine(pg_database)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"
    engine.dispose()
    # the owner may
    r = run_flowprov("init", "--db", pg_database, "--storage", str(fp_env / "d"), "--name", "own")
    run_flowprov("migrate", env={"FLOWPROV_INSTANCE": "own"})
    info = run_flowprov("info", env={"FLOWPROV_INSTANCE": "own"}).stdout
    assert f"schema {SCHEMA_HEAD}" in info
