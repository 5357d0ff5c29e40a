"""Broken config files (user.yaml, an instance's yaml, current_instance) are named with their fix,
and `flowprov login --force` rewrites a broken user.yaml; a failing login writes nothing."""

import os

import flowprov as fp
import pytest
import yaml
from flowprov import config as C
from flowprov.config import ConfigFileError
from flowprov.errors import NoInstanceError, ValidationError

from tests.conftest import write

USER_FIX = "flowprov login HANDLE --force"

BROKEN_USER_FILES = {
    "garbage": b"handle: [alice\n\tuid: :::\n",
    "wrong types": b"handle: 12\nuid: [1, 2]\n",
    "empty": b"",
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
    "a list": b"- alice\n- bob\n",
    "unknown field": b"handle: alice\npassword: hunter2\n",
    "bad handle": b"handle: 'alice smith'\n",
    "bad uid": b"handle: alice\nuid: not-a-uid-at-all\n",
}
PROBLEMS = {
    "garbage": "not valid YAML",
    "wrong types": "field 'handle' must be a string, not a YAML int",
    "empty": "the file is empty",
    "binary": "not UTF-8 text (byte 0x89 at offset 0)",
    "a list": "expected a mapping of fields, got a YAML list",
    "unknown field": "unknown field(s): password",
    "bad handle": "invalid user handle 'alice smith'",
    "bad uid": "field 'uid' must be 8 letters and digits",
}


@pytest.mark.parametrize("kind", list(BROKEN_USER_FILES))
def test_a_broken_user_file_is_named_with_its_fix(fp_env, kind):
    path = write(C.user_file(), BROKEN_USER_FILES[kind])
    with pytest.raises(ConfigFileError) as e:
        C.current_user_config()
    msg = str(e.value)
    assert "\n" not in msg and e.value.path == path
    assert str(path) in msg and PROBLEMS[kind] in msg and USER_FIX in msg, msg
    # FLOWPROV_USER does not hide it: the logged-in name and uid would be lost without a word
    os.environ["FLOWPROV_USER"] = "alice"
    try:
        with pytest.raises(ConfigFileError, match="--force"):
            C.current_user_config()
    finally:
        del os.environ["FLOWPROV_USER"]
    assert C.load_user_config(strict=False) is None  # for a command about to rewrite it
    assert path.read_bytes() == BROKEN_USER_FILES[kind]  # reading never changes it


def test_every_command_names_a_broken_user_file_and_login_force_repairs_it(
    instance, run_flowprov, fp_env
):
    path = write(C.user_file(), BROKEN_USER_FILES["garbage"])
    failing = [
        ("info",),
        ("login", "alice"),
        ("storage", "add", str(fp_env / "elsewhere")),
        ("init", "--storage", str(fp_env / "mydata"), *_db(instance)),
    ]
    for args in failing:
        r = run_flowprov(*args, check=False)
        out = r.stdout + r.stderr
        assert str(path) in out and USER_FIX in out, (args, out)
        assert "Traceback" not in out, (args, out)
        if args[0] != "info":  # `info` may show the rest of the instance and name the file
            assert r.returncode == 1, (args, out)
        assert path.read_bytes() == BROKEN_USER_FILES["garbage"], args  # nothing rewrote it
    assert "alice" not in {u.handle for u in fp.User.filter()}  # nor recorded the user
    # listing needs no user: it works with the file broken
    assert "artifacts (0)" in run_flowprov("ls", "artifacts").stdout

    out = run_flowprov("login", "alice", "--name", "Alice A", "--force").stdout
    assert "logged in as alice (Alice A)" in out and f"replaced the unreadable {path}" in out
    saved = C.load_user_config()
    assert (saved.handle, saved.name) == ("alice", "Alice A")
    assert fp.User.filter(handle="alice").one().uid == saved.uid  # recorded with the same uid
    assert "user:      alice (Alice A)" in run_flowprov("info").stdout
    run_flowprov("storage", "add", str(fp_env / "elsewhere"))
    assert fp.Storage.filter(
        root=str((fp_env / "elsewhere").resolve())
    ).one().created_by.handle == ("alice")


def _db(instance) -> list[str]:
    db = instance.config.db
    return [] if db.startswith("sqlite") else ["--db", db]


def test_login_force_keeps_the_uid_of_the_same_handle_only(fp_env, run_flowprov):
    """A broken file that still shows `uid:` for the handle logged in again keeps that uid (the
    user's records elsewhere carry it); for another handle the uid is new."""
    path = write(C.user_file(), "handle: alice\nuid: AbCdEfGh\nname: Alice A\n\t- junk: [\n")
    out = run_flowprov("login", "alice", "--force").stdout
    assert "kept the uid AbCdEfGh it held for alice" in out
    assert "no instance is set up yet" in out  # recorded on first use
    assert C.load_user_config() == C.UserConfig(handle="alice", name="Alice A", uid="AbCdEfGh")

    write(path, "handle: alice\nuid: AbCdEfGh\n\t- junk: [\n")
    out = run_flowprov("login", "bob", "--force").stdout
    assert "it held no usable uid" in out
    bob = C.load_user_config()
    assert bob.handle == "bob" and bob.uid not in (None, "AbCdEfGh") and len(bob.uid) == 8


def test_login_records_the_user_before_writing_the_file(instance, run_flowprov):
    out = run_flowprov("login", "alice", "--name", "Alice A").stdout
    assert "recorded in instance 'mydata'" in out
    u = fp.User.filter(handle="alice").one()
    assert C.load_user_config() == C.UserConfig(handle="alice", name="Alice A", uid=u.uid)


def test_login_takes_the_uid_the_instance_already_has(instance, fp_env, run_flowprov):
    """Another machine's login recorded alice first: this login keeps the instance's uid, so one
    person is one user."""
    os.environ["FLOWPROV_USER"] = "alice"
    try:
        fp.Transform(name="made elsewhere", type="script").save()
    finally:
        del os.environ["FLOWPROV_USER"]
    recorded = fp.User.filter(handle="alice").one().uid
    write(C.user_file(), "handle: alice\nuid: ZZZZZZZZ\n")  # this machine's older idea of alice
    run_flowprov("login", "alice")
    assert C.load_user_config().uid == recorded


def test_a_failing_login_writes_nothing(instance, run_flowprov, fp_env):
    before = write(C.user_file(), "handle: carol\nuid: CcCcCcCc\n").read_bytes()
    r = run_flowprov("login", "not a handle", check=False)
    assert r.returncode == 1 and "invalid user handle" in r.stderr
    # an instance whose database is gone: the user cannot be recorded, so the file stays
    broken = C.InstanceConfig(
        name="gone", uid="x" * 12, db=f"sqlite:///{fp_env / 'nowhere' / 'db.sqlite'}", storage="/x"
    )
    C.save_instance_config(broken)
    r = run_flowprov("login", "dave", check=False)
    assert r.returncode == 1 and "flowprov error" in r.stderr, r.stderr
    assert C.user_file().read_bytes() == before


def test_a_broken_instance_file_is_named_with_its_repair(instance, run_flowprov):
    path = C.instance_file("mydata")
    good = yaml.safe_load(path.read_text())
    write(
        path,
        f"name: mydata\nuid: {good['uid']}\ndb: {good['db']}\nstorage: {good['storage']}\n]]\n",
    )
    r = run_flowprov("info", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    msg = " ".join(r.stderr.split())
    assert f"the flowprov instance file {path} cannot be read: not valid YAML" in msg, msg
    # the repair command carries what could still be read: the storage and the database
    repair = f"flowprov init --storage {good['storage']} --db {good['db']} --name mydata --force"
    assert repair in msg, msg

    write(path, b"\x00\x01\x02")
    with pytest.raises(ConfigFileError) as e:
        C.load_instance_config(path)
    assert "--storage DIR" in str(e.value) and "add --db URL" in str(e.value)
    assert "--name mydata --force" in str(e.value)


def test_a_broken_instance_file_named_by_path_is_not_offered_init(fp_env, monkeypatch):
    path = write(fp_env / "shared" / "lab.yaml", "name: lab\nuid: 12\n")
    monkeypatch.setenv("FLOWPROV_INSTANCE", str(path))
    with pytest.raises(ConfigFileError) as e:
        fp.Artifact.filter().count()
    assert str(path) in str(e.value) and "field 'uid' must be a string" in str(e.value)
    assert "FLOWPROV_INSTANCE" in str(e.value) and "init" not in str(e.value)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"vanished\n", "the current instance 'vanished'"),
        (b"", "'' is not an instance name"),
        (b"../../etc/passwd\n", "is not an instance name"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
    ],
)
def test_a_broken_current_instance_pointer_is_named(fp_env, content, problem):
    pointer = write(C.current_instance_file(), content)
    with pytest.raises(ConfigFileError) as e:
        fp.Artifact.filter().count()
    assert isinstance(e.value, NoInstanceError)  # callers asking "is there one?" still see no
    msg = str(e.value)
    assert str(pointer) in msg and problem in msg and "flowprov init --storage DIR" in msg, msg
    assert "\n" not in msg


def test_where_the_current_user_comes_from(fp_env, monkeypatch):
    os_user = C.current_user_config()
    assert os_user.source == C.FROM_OS and os_user.is_os_account
    note = os_user.source_note()
    assert f"recorded as user {os_user.handle!r} (your OS account" in note
    assert "flowprov login HANDLE" in note

    C.save_user_config(C.UserConfig(handle="alice", name="Alice A", uid="AbCdEfGh"))
    logged_in = C.current_user_config()
    assert logged_in.source == C.FROM_LOGIN and logged_in.source_note() is None
    assert "source" not in C.user_file().read_text()  # never written to the file

    monkeypatch.setenv("FLOWPROV_USER", "alice")
    by_env = C.current_user_config()
    assert by_env.source == C.FROM_ENV and by_env.uid == "AbCdEfGh"  # the login's name and uid
    monkeypatch.setenv("FLOWPROV_USER", "bob")
    assert C.current_user_config() == C.UserConfig(handle="bob")
    monkeypatch.setenv("FLOWPROV_USER", "bob; rm -rf /")
    with pytest.raises(ValidationError, match="FLOWPROV_USER: invalid user handle"):
        C.current_user_config()


def test_a_user_file_that_claims_a_source_is_refused(fp_env):
    write(C.user_file(), "handle: alice\nsource: os account\n")
    with pytest.raises(ConfigFileError, match=r"unknown field\(s\): source"):
        C.load_user_config()


def test_config_files_are_replaced_whole(fp_env):
    """A write goes to a temporary file renamed over the old one: no `.tmp` is left, and a file
    that was broken is rewritten without being read."""
    write(C.user_file(), b"\x00broken")
    C.save_user_config(C.UserConfig(handle="alice", uid="AbCdEfGh"))
    assert C.load_user_config().handle == "alice"
    assert sorted(p.name for p in C.user_file().parent.iterdir()) == ["user.yaml"]
