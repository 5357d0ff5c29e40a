"""Listings (`flowprov ls`, `view`, `fp.view()`), `show` and `search` of the CLI, and the
settings the seed reads (`fp.settings.storage`, `fp.settings.instance`). Issue 12, point 11."""

from pathlib import Path

import flowprov as fp
import pytest
from flowprov.errors import NoInstanceError

from tests.conftest import write


@pytest.fixture
def cli_story(run_flowprov, fp_env, db_url):
    """An instance made through the CLI (SQLite or PostgreSQL) holding a pipeline run with a
    child run, a file in place, a file copied in without a key, and an unfinished run."""
    from flowprov.events import TransformSaved, TransformSpec
    from flowprov.instance import current

    db = ["--db", db_url] if db_url else []
    run_flowprov("init", "--storage", str(fp_env / "mydata"), *db)
    run_flowprov("login", "testuser1", "--name", "Test User1")
    root = (fp_env / "mydata").resolve()
    pipeline = fp.Transform(name="Cell Ranger", type="pipeline", version="7.2.0").save()
    spec = TransformSpec(name="count", type="rule", parent=pipeline.uid)
    rule = fp.Transform.get(current().store.apply([TransformSaved(transform=spec)])[0].uid)
    with fp.Run(transform=pipeline) as outer:
        with fp.Run(transform=rule, parent=outer) as job:
            counts = fp.Artifact(
                write(root / "counts" / "A.tsv", "gene\tn\n"), description="[b]A[/b] :dna:"
            ).save()
            screen = fp.Artifact(write(fp_env / "incoming" / "screen.csv", "a,b\n")).save()
    hung = fp.Run(transform=rule).save()  # started, never finished (a SIGKILLed job)
    return dict(
        root=root,
        pipeline=pipeline,
        rule=rule,
        outer=outer,
        job=job,
        counts=counts,
        screen=screen,
        hung=hung,
    )


def _row(out: str, uid: str, first: bool = True) -> str:
    """The table line of the record with this uid (in the first column, unless first=False)."""
    lines = [
        line
        for line in out.splitlines()
        if line.startswith(f"│{uid} ") or (not first and f" {uid} " in line)
    ]
    assert len(lines) == 1, f"{uid} on {len(lines)} lines of:\n{out}"
    return lines[0]


def _header(out: str) -> str:
    return next(line for line in out.splitlines() if "uid" in line)


def test_ls_runs_shows_names_uids_and_handles(run_flowprov, cli_story):
    """`ls runs` showed numeric transform_id, parent_id and created_by_id."""
    s = cli_story
    out = run_flowprov("ls", "runs").stdout
    for hidden in ("transform_id", "parent_id", "created_by_id", " id "):
        assert hidden not in _header(out)
    job = _row(out, s["job"].uid)
    assert f"count ({s['rule'].uid})" in job and s["outer"].uid in job and "testuser1" in job
    assert f"Cell Ranger ({s['pipeline'].uid})" in _row(out, s["outer"].uid)
    with_ids = run_flowprov("ls", "runs", "--ids").stdout
    for shown in ("transform_id", "parent_id", "created_by_id"):
        assert shown in _header(with_ids)
    # the filtered (full) path renders the same table as the plain listing
    assert run_flowprov("ls", "runs", "--filter", "id__gt=0").stdout == out


def test_ls_every_table_shows_names(run_flowprov, cli_story):
    s = cli_story
    arts = run_flowprov("ls", "artifacts").stdout
    assert "run_id" not in _header(arts) and "storage_id" not in _header(arts)
    counts = _row(arts, s["counts"].uid)
    assert "counts/A.tsv" in counts and str(s["root"]) in counts and s["job"].uid in counts
    assert f"count ({s['rule'].uid})" in counts and "testuser1" in counts
    assert "[b]A[/b] :dna:" in counts  # shown as written: no markup, no emoji
    assert "screen.csv" in _row(arts, s["screen"].uid)  # no key: its original file name
    assert run_flowprov("ls", "artifacts", "--filter", "id__gt=0").stdout == arts

    transforms = run_flowprov("ls", "transforms").stdout
    rule = _row(transforms, s["rule"].uid)
    assert f"Cell Ranger ({s['pipeline'].uid})" in rule and "testuser1" in rule
    assert "parent_id" not in _header(transforms)
    storages = run_flowprov("ls", "storages").stdout
    storage = fp.Storage.filter(root=str(s["root"])).one()
    assert storage.created_by.handle in _row(storages, storage.uid)  # who ran `init`
    assert "created_by_id" not in _header(storages)
    assert "testuser1" in run_flowprov("ls", "users").stdout
    view = run_flowprov("view").stdout
    assert f"count ({s['rule'].uid})" in view and "transform_id" not in view


def test_ls_runs_status(run_flowprov, cli_story):
    s = cli_story
    out = run_flowprov("ls", "runs", "--status", "started").stdout
    assert s["hung"].uid in out and s["job"].uid not in out and "runs (1)" in out
    done = run_flowprov("ls", "runs", "--status", "completed", "--filter", "parent__isnull=true")
    assert s["outer"].uid in done.stdout and s["job"].uid not in done.stdout
    bad = run_flowprov("ls", "runs", "--status", "finished", check=False)
    assert bad.returncode == 2 and "'finished'" in bad.stderr and "completed" in bad.stderr
    other = run_flowprov("ls", "artifacts", "--status", "started", check=False)
    assert other.returncode == 2 and "--status" in other.stderr and "runs" in other.stderr


def test_copied_file_is_found_and_shown_by_its_name(run_flowprov, cli_story):
    """`search "screen"` could not find screen.csv, copied in without a key."""
    screen = cli_story["screen"]
    found = run_flowprov("search", "screen").stdout
    hit = _row(found, screen.uid, first=False)
    assert "Artifact" in hit and "screen.csv" in hit
    shown = run_flowprov("show", screen.uid).stdout
    assert "file_name" in shown and "screen.csv" in shown
    listed = run_flowprov("ls", "artifacts", "--filter", "file_name__contains=screen").stdout
    assert screen.uid in listed and "artifacts (1)" in listed


def test_fp_view_shows_names(cli_story):
    s = cli_story
    frames = fp.view()
    runs = frames["Run"]
    assert "transform_id" not in runs.columns and "created_by_id" not in runs.columns
    job = runs[runs["uid"] == s["job"].uid].iloc[0]
    assert job["transform"] == f"count ({s['rule'].uid})" and job["parent"] == s["outer"].uid
    assert job["created_by"] == "testuser1"
    assert "transform_id" in fp.view(ids=True)["Run"].columns


def test_settings_storage_and_instance(instance, fp_env, db_url):
    """`fp.settings.storage.root`, the seed's way of finding where to write, did not exist."""
    root = fp.settings.storage.root
    assert isinstance(root, Path) and root == (fp_env / "mydata").resolve()
    assert fp.settings.storage.type == "local" and fp.settings.storage.root_as_str == str(root)
    assert fp.settings.storage.uid == fp.Storage.filter(root=str(root)).one().uid
    # the seed's upload writes its file there and registers it in place
    a = fp.Artifact(write(root / "crispra" / "screen.parquet", b"x"), description="raw").save()
    assert a.key == "crispra/screen.parquet" and not a.managed

    inst = fp.settings.instance
    assert inst.name == "mydata" and inst.uid == instance.config.uid
    assert inst.slug == f"{fp.User.current().handle}/mydata"
    assert inst.dialect == ("postgresql" if db_url else "sqlite")
    assert inst.db == instance.db_display and ":***@" not in inst.db
    assert inst.storage.root == root
    assert "mydata" in repr(inst) and str(root) in repr(fp.settings.storage)


def test_settings_without_an_instance(fp_env):
    with pytest.raises(NoInstanceError):
        _ = fp.settings.storage.root
    with pytest.raises(NoInstanceError):
        _ = fp.settings.instance.name
    assert "track_run_inputs" in repr(fp.settings)  # needs no instance
