"""PostgreSQL first use: the password lives in libpq's password file (never in flowprov's config),
`save_pgpass` writes it there as libpq reads it, and a login that cannot reach the database
writes nothing."""

import itertools
import os
import stat

import pytest
from flowprov import config as C
from flowprov import instance as inst_mod
from flowprov.pgpass import (
    connection_keys,
    lookup,
    missing_password_hint,
    password_hint,
    pgpass_path,
    save_pgpass,
)
from sqlalchemy.engine import URL, make_url

from tests.conftest import write

_roles = itertools.count()


@pytest.fixture
def own_pgpass(tmp_path, monkeypatch):
    """A password file of the test's own (PGPASSFILE), not the session's; PGPASSWORD unset."""
    path = tmp_path / "home" / "pgpass"
    monkeypatch.setenv("PGPASSFILE", str(path))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(var, raising=False)
    return path


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_save_pgpass_writes_one_entry_0600_and_replaces_its_own_line(own_pgpass):
    assert pgpass_path() == own_pgpass
    url = "postgresql+psycopg://lab:s3cret@db.example.org:5433/screens"
    assert save_pgpass(url) == own_pgpass
    assert own_pgpass.read_text() == "db.example.org:5433:screens:lab:s3cret\n"
    assert _mode(own_pgpass) == 0o600

    # others' entries stay; the same host/port/db/user is replaced, and put before a wildcard
    # line that would otherwise answer first
    write(
        own_pgpass,
        "# lab databases\n*:*:*:lab:old-wildcard\ndb.example.org:5433:screens:lab:s3cret\n"
        "other:5432:x:y:z\n",
    )
    own_pgpass.chmod(0o644)  # libpq would ignore this file: the rewrite makes it 0600 again
    assert lookup(url) is None
    save_pgpass("postgresql://lab:n3w@db.example.org:5433/screens")
    assert own_pgpass.read_text() == (
        "# lab databases\ndb.example.org:5433:screens:lab:n3w\n*:*:*:lab:old-wildcard\n"
        "other:5432:x:y:z\n"
    )
    assert _mode(own_pgpass) == 0o600
    assert lookup(url) == "n3w"
    assert lookup("postgresql://lab@db.example.org:5433/other") == "old-wildcard"
    assert [p.name for p in own_pgpass.parent.iterdir()] == ["pgpass"]  # no temporary left


def test_a_symlinked_password_file_stays_a_link(own_pgpass, tmp_path):
    target = write(tmp_path / "dotfiles" / "pgpass", "")
    target.chmod(0o600)
    own_pgpass.parent.mkdir(parents=True, exist_ok=True)
    own_pgpass.symlink_to(target)
    save_pgpass("postgresql://u:p@h:1/d")
    assert own_pgpass.is_symlink() and target.read_text() == "h:1:d:u:p\n"


def test_what_the_url_leaves_out_is_what_libpq_would_use(own_pgpass, monkeypatch):
    import getpass

    assert connection_keys("postgresql://u:p@h/d") == ("h", "5432", "d", "u")
    # no host: a Unix socket, which libpq matches as `localhost`; no database: the user's name
    assert connection_keys("postgresql://u:p@") == ("localhost", "5432", "u", "u")
    assert connection_keys("postgresql://") == (
        "localhost",
        "5432",
        getpass.getuser(),
        getpass.getuser(),
    )
    monkeypatch.setenv("PGPORT", "6543")
    monkeypatch.setenv("PGHOST", "pg.lab")
    assert connection_keys("postgresql://u@/d") == ("pg.lab", "6543", "d", "u")
    assert connection_keys("postgresql://u@/d?host=/run/pg") == ("/run/pg", "6543", "d", "u")


def test_init_says_where_the_password_must_live(own_pgpass, monkeypatch):
    assert password_hint("postgresql://lab@h:5432/db") is None  # no password given
    assert password_hint("sqlite:////tmp/x.sqlite") is None
    url = "postgresql://lab:pw@h:5432/db"
    hint = password_hint(url)
    assert "\n" not in hint
    assert "not stored in flowprov's config" in hint and str(own_pgpass) in hint
    assert "--save-password" in hint and "PGPASSWORD" in hint
    save_pgpass(url)
    assert password_hint(url) == (
        f"the database password is not stored in flowprov's config: {own_pgpass} supplies it"
    )
    assert "--save-password" in password_hint("postgresql://lab:changed@h:5432/db")
    monkeypatch.setenv("PGPASSWORD", "changed")
    assert "PGPASSWORD supplies it" in password_hint("postgresql://lab:changed@h:5432/db")


def test_a_missing_password_error_says_where_it_is_read_from(own_pgpass):
    url = "postgresql://lab@h:5432/db"
    msg = 'connection failed: connection to server at "h", port 5432 failed: fe_sendauth: no password supplied'
    hint = missing_password_hint(msg, url)
    assert str(own_pgpass) in hint and "PGPASSWORD" in hint and "--save-password" in hint
    assert missing_password_hint(msg) == hint  # db_error knows the message, not always the URL
    assert missing_password_hint("FATAL: password authentication failed for user") is not None
    assert missing_password_hint("connection refused", url) is None
    assert missing_password_hint(msg, "sqlite:///x") is None


def test_line_breaks_cannot_go_into_the_password_file(own_pgpass):
    from flowprov.errors import ValidationError

    with pytest.raises(ValidationError, match="line break"):
        save_pgpass(URL.create("postgresql", "u", "a\nb", "h", 5432, "d"))
    assert not own_pgpass.exists()
    with pytest.raises(ValidationError, match="no password"):
        save_pgpass("postgresql://u@h/d")


@pytest.fixture
def role_with_awkward_password(postgres, pg_database):
    """A role whose password holds `:` and `\\` (escaped in the password file), and its URL."""
    from psycopg import sql

    name = f"pw_{os.getpid()}_{next(_roles)}"
    password = r"a:b\c::\\d:\:"
    postgres.admin(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password)
        )
    )
    db = make_url(pg_database).database
    yield URL.create("postgresql+psycopg", name, password, "127.0.0.1", postgres.port, db)
    postgres.admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _connect(url: URL):
    import psycopg

    with psycopg.connect(
        host=url.host, port=url.port, dbname=url.database, user=url.username, connect_timeout=10
    ) as c:
        return c.execute("SELECT current_user").fetchone()[0]


def test_escaped_password_round_trips_through_libpq(role_with_awkward_password, own_pgpass):
    url = role_with_awkward_password
    save_pgpass(url)
    assert _mode(own_pgpass) == 0o600
    assert lookup(url) == url.password
    assert _connect(url) == url.username  # libpq read the escaped password back

    # the same line unescaped is read differently: the escaping is what made it work
    import psycopg

    own_pgpass.write_text(f"127.0.0.1:{url.port}:{url.database}:{url.username}:{url.password}\n")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _connect(url)


def test_first_use_a_login_without_the_password_writes_nothing(
    fp_env, postgres, pg_database, tmp_path, run_flowprov, monkeypatch
):
    """The issue's path: `init` with the password in the URL works (the URL is at hand), but the
    config keeps no password, so the next command fails until the password file has it."""
    secret_url = make_url(postgres.url(make_url(pg_database).database, password=True))
    inst_mod.init(fp_env / "mydata", db=secret_url.render_as_string(hide_password=False))
    assert postgres.password not in C.instance_file("mydata").read_text()
    assert not C.user_file().exists()

    no_password = {"PGPASSFILE": str(tmp_path / "empty-pgpass")}
    monkeypatch.delenv("PGPASSWORD", raising=False)
    r = run_flowprov("login", "alice", env=no_password, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no password supplied" in r.stderr and "Traceback" not in r.stderr
    assert not C.user_file().exists()  # the failed login left no user behind

    before = write(C.user_file(), "handle: carol\nuid: CcCcCcCc\n").read_bytes()
    r = run_flowprov("login", "alice", env=no_password, check=False)
    assert r.returncode == 1 and C.user_file().read_bytes() == before

    # the password where libpq looks: the same login works, and records alice first
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "pgpass"))
    save_pgpass(secret_url)
    out = run_flowprov("login", "alice").stdout
    assert "logged in as alice" in out and "recorded in instance 'mydata'" in out
    import flowprov as fp

    assert C.load_user_config().uid == fp.User.filter(handle="alice").one().uid
