"""Security: hostile strings go through bound parameters only, keys and symlinks cannot leave the
storage root, `delete --force` touches only flowprov's own files, credentials never leak, and a
read-only PostgreSQL role can query but not write."""

from __future__ import annotations

import os

import flowprov as fp
import pytest
from flowprov import instance as inst_mod
from flowprov import schema as S
from flowprov.errors import FlowprovError, PermissionDenied, ValidationError
from sqlalchemy import func, select

from tests.conftest import write

HOSTILE = [
    "'; DROP TABLE artifacts; --",
    '" OR 1=1 --',
    "x' OR '1'='1",
    "%",
    "_",
    "\\",
    "a%b_c",
    "../../etc/passwd",
    "$(rm -rf /)",
    "🧬 ünïcødé ∑",
    "a\x00b",
    "x" * 5000,
]


def table_counts(inst) -> dict:
    with inst.engine.connect() as c:
        return {
            name: c.execute(select(func.count()).select_from(t)).scalar()
            for name, t in S.TABLES.items()
        }


@pytest.fixture
def populated(instance, fp_env):
    root = fp_env / "mydata"
    t = fp.Transform(name="GWS CRISPRa analysis", type="notebook").save()
    with fp.Run(transform=t):
        plain = fp.Artifact(write(root / "hits.parquet", "hits"), description="hits").save()
        pct = fp.Artifact(write(root / "100%_done.txt", "pct"), description="100% done").save()
        under = fp.Artifact(write(root / "a_b.txt", "under"), description="a_b").save()
    return plain, pct, under


def test_hostile_strings_through_filter_and_search(populated, instance):
    plain, pct, under = populated
    before = table_counts(instance)
    for s in HOSTILE:
        for lookup in (
            "key",
            "key__contains",
            "description__icontains",
            "key__startswith",
            "created_by__handle",
            "run__transform__name__iexact",
        ):
            try:
                found = set(fp.Artifact.filter(**{lookup: s}))
            except ValidationError as e:  # e.g. PostgreSQL cannot hold NUL in text: said clearly
                assert "\x00" in s and "cannot take this value" in str(e)
                continue
            assert found == set() or (s in ("%", "_") and lookup != "key")
        fp.Transform.search(s)
        fp.Artifact.search(s)
    # LIKE's wildcards are matched literally
    assert set(fp.Artifact.filter(key__contains="%")) == {pct}
    assert set(fp.Artifact.filter(key__contains="_")) == {pct, under}
    assert set(fp.Artifact.filter(description__contains="a_b")) == {under}
    assert table_counts(instance) == before


def test_hostile_strings_through_every_cli_argument(populated, instance, fp_env):
    """Every command, every argument; in-process (click's runner) to keep it quick — a crash
    would surface as an exception other than SystemExit."""
    from click.testing import CliRunner
    from flowprov.cli import cli

    before = table_counts(instance)
    uid = populated[0].uid
    runner = CliRunner()
    for s in HOSTILE:
        if "\x00" in s:  # no OS lets a NUL through a command line
            continue
        calls = [
            ("ls", "artifacts", "--filter", f"key={s}"),
            ("ls", "transforms", "--filter", f"name__contains={s}"),
            ("ls", "runs", "--filter", f"created_by={s}"),
            ("show", s),
            ("search", s),
            ("lineage", s, "--format", "mermaid"),
            ("lineage", uid, "--format", "mermaid", "--highlight-run", s),
            ("impact", s),
            ("impact", "--package", s),
            ("envs", s),
            ("envs", "--package", s),
            ("diff", s, uid),
            ("parents", s),
            ("verify", s),
            ("export", s, "--format", "prov-json", "-o", str(fp_env / "x.json")),
            ("replay", s),
            ("nextflow", "ingest", s),
            ("login", s),
            ("init", "--storage", str(fp_env / "mydata"), "--name", s),
            ("init", "--storage", str(fp_env / "mydata"), "--db", s),
        ]
        for args in calls:
            r = runner.invoke(cli, list(args))
            assert r.exception is None or isinstance(r.exception, SystemExit), (
                args,
                r.output[-2000:],
                r.exc_info,
            )
            assert r.exit_code in (0, 1, 2), (args, r.exit_code, r.output[-2000:])
            inst_mod.reset_cache()
    after = table_counts(instance)
    # `login _` then `init --name _` may add the (valid) user "_"; nothing else may change
    assert {k: v for k, v in after.items() if k != "users"} == {
        k: v for k, v in before.items() if k != "users"
    }
    import re

    assert all(re.fullmatch(r"[\w.@+-]+", u.handle) for u in fp.User.filter())


def test_keys_and_symlinks_cannot_leave_the_storage_root(instance, fp_env):
    root = fp_env / "mydata"
    secret = write(fp_env / "outside" / "secret.txt", "not in the storage")
    link = root / "innocent.txt"
    os.symlink(secret, link)
    with pytest.raises(ValidationError, match="symlink leading outside storage"):
        fp.Artifact(link).save()
    inside = write(root / "real.txt", "inside")
    os.symlink(inside, root / "alias.txt")
    a = fp.Artifact(root / "alias.txt").save()  # a link that stays inside is fine
    assert a.key == "alias.txt"
    for key in ("../escape.txt", "/etc/passwd", "a/../../b", ".flowprov/objects/x"):
        with pytest.raises(ValidationError):
            fp.Artifact(write(fp_env / "k.txt", key), key=key).save()
    assert fp.Artifact.filter().count() == 1


def test_delete_force_touches_only_flowprovs_own_files(instance, fp_env, run_flowprov):
    root = fp_env / "mydata"
    other = fp_env / "other-root"
    fp.Storage(root=str(other)).save()
    users_file = write(root / "mine.txt", "the user's own file, recorded in place")
    other_file = write(other / "theirs.txt", "in another registered root")
    outside = write(fp_env / "elsewhere.csv", "copied in by flowprov")
    with fp.Run(transform=fp.Transform(name="t", type="script").save()):
        fp.Artifact(users_file).save()
        fp.Artifact(other_file).save()
        copied = fp.Artifact(outside).save()
    assert copied.managed
    copied_path = copied.path
    out = run_flowprov("delete", "--force").stdout
    assert "1 managed files" in out
    assert users_file.read_text().startswith("the user's") and other_file.exists()
    assert outside.exists() and not copied_path.exists()


def test_credentials_never_leak(postgres, pg_database, fp_env, caplog, run_flowprov):
    from flowprov import config as C

    with_password = pg_database.replace("flowprov@", f"flowprov:{postgres.password}@")
    inst, _ = inst_mod.init(fp_env / "team", db=with_password)
    text = C.instance_file("team").read_text()
    assert postgres.password not in text and "flowprov@127.0.0.1" in text
    assert postgres.password not in inst.db_display
    info = run_flowprov("info")  # a new process: the password comes from PGPASSFILE
    assert postgres.password not in info.stdout + info.stderr
    wrong = pg_database.replace("flowprov@", "flowprov:wrong-secret-123@")
    with pytest.raises(FlowprovError) as e:
        inst_mod.init(fp_env / "team2", db=wrong)
    assert "wrong-secret-123" not in str(e.value) and "***" in str(e.value)
    assert postgres.password not in caplog.text and "wrong-secret-123" not in caplog.text


def test_read_only_role_can_query_but_not_write(postgres, pg_database, fp_env, monkeypatch):
    from psycopg import sql

    inst, _ = inst_mod.init(fp_env / "lab", db=pg_database)
    with fp.Run(transform=fp.Transform(name="t", type="script").save()):
        a = fp.Artifact(write(fp_env / "lab" / "x.txt", "x")).save()
    dbname = pg_database.rsplit("/", 1)[1]
    # the roles README.md documents for a read-only member
    postgres.admin(
        sql.SQL("CREATE ROLE reader LOGIN PASSWORD {}").format(sql.Literal(postgres.password))
        if not _role_exists(postgres, "reader")
        else sql.SQL("SELECT 1")
    )
    for stmt in (
        f'GRANT CONNECT ON DATABASE "{dbname}" TO reader',
        "GRANT USAGE ON SCHEMA public TO reader",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
    ):
        postgres.admin(stmt, db=dbname)
    postgres.pgpass.write_text(
        postgres.pgpass.read_text() + f"127.0.0.1:{postgres.port}:*:reader:{postgres.password}\n"
    )
    inst_mod.reset_cache()
    reader, created = inst_mod.init(
        fp_env / "lab", db=pg_database.replace("flowprov@", "reader@"), name="lab-read"
    )
    assert not created
    assert fp.Artifact.get(a.uid).key == "x.txt" and fp.Run.filter().count() == 1
    assert a.uid in {n.uid for n in fp.Artifact.get(a.uid).lineage().artifacts}
    with pytest.raises(PermissionDenied, match="permission denied"):
        fp.Transform(name="not allowed", type="script").save()
    with pytest.raises(PermissionDenied):
        fp.Artifact(write(fp_env / "lab" / "y.txt", "y")).save()


def _role_exists(postgres, name: str) -> bool:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1",
        port=postgres.port,
        user="postgres",
        password=postgres.password,
        dbname="postgres",
    ) as c:
        return (
            c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None
        )
