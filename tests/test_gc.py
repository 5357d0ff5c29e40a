"""`flowprov gc`: objects in flowprov's storage that no record references — the copies a
SIGKILLed batch left — listed (dry run), removed with --delete once old enough, and nothing else
ever touched (SQLite and PostgreSQL; an S3 bucket through moto)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import blake3
import flowprov as fp
import pytest
from flowprov import gc
from flowprov import instance as inst_mod
from flowprov.errors import PermissionDenied, ValidationError

from tests.conftest import wait_until, write

BATCH = textwrap.dedent(
    """
    import os, sys
    import flowprov as fp

    src = sys.argv[1]
    names = sorted(os.listdir(src))
    fp.save([fp.Artifact(os.path.join(src, n)) for n in names[:5]])
    print("committed", flush=True)
    # one transaction: every file is copied in first, then recorded — killed while copying
    fp.save([fp.Artifact(os.path.join(src, n)) for n in names[5:]])
    print("finished", flush=True)
    """
)


def _objects(inst) -> set[str]:
    d = os.path.join(inst.storage.root, ".flowprov", "objects")
    return set(os.listdir(d)) if os.path.isdir(d) else set()


def killed_batch(inst, fp_env, n_files: int = 1500) -> tuple[set[str], set[str]]:
    """Run a batch that copies files in and SIGKILL it mid-way: (objects of the 5 committed
    records, objects the kill left)."""
    src = fp_env / "uploads"
    for i in range(n_files):
        write(src / f"f{i:05d}.txt", f"{i}\n".encode() + os.urandom(8 << 10))
    script = write(fp_env / "batch.py", BATCH)
    before = fp.Artifact.filter().count()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(src)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "committed"
        committed = _objects(inst)
        assert len(committed) == 5
        wait_until(lambda: len(_objects(inst)) >= 5 + 40, 60, "the batch to copy files in")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert fp.Artifact.filter().count() == before + 5  # the big batch never committed
    left = _objects(inst) - committed
    assert len(left) >= 40
    return committed, left


def test_gc_lists_and_removes_what_a_killed_batch_left(instance, fp_env, run_flowprov):
    root = fp_env / "mydata"
    kept_in_place = fp.Artifact(write(root / "results" / "table.csv", "a,b\n1,2\n")).save()
    committed, left = killed_batch(instance, fp_env)
    objects = root / ".flowprov" / "objects"
    some_hash = blake3.blake3(b"cut short").hexdigest()
    write(objects / f"{some_hash}.txt.part-0a1b2c3d", "cut sh")  # a copy cut short
    write(objects / "README", "not flowprov's")  # not named like an object: never removed
    left |= {f"{some_hash}.txt.part-0a1b2c3d"}
    # every other file under the root (the SQLite database changes on its own: only its presence)
    others = {
        p: p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.parent != objects and not p.name.startswith("flowprov.sqlite")
    }
    assert root / "results" / "table.csv" in others
    sqlite = instance.config.db.startswith("sqlite")
    assert (root / ".flowprov" / "flowprov.sqlite").is_file() == sqlite

    assert gc.count_orphans(inst_mod.current()) == len(left)
    assert f"{len(left)} objects in flowprov's storage" in gc.orphans_hint(inst_mod.current())
    dry = run_flowprov("gc").stdout
    assert f"{len(left)} objects no record references" in dry
    assert "none older than 1h" in dry and "kept: younger than 1h" in dry
    for name in list(left)[:10]:
        assert name in dry
    assert not any(name in dry for name in committed)
    assert "not flowprov's naming, left alone" in dry and "README" in dry
    assert _objects(instance) == committed | left | {"README"}  # a dry run removes nothing

    young = run_flowprov("gc", "--delete").stdout  # everything is younger than an hour
    assert "removed 0" in young and _objects(instance) == committed | left | {"README"}

    done = run_flowprov("gc", "--delete", "--min-age", "0").stdout
    assert f"removed {len(left)} " in done
    assert _objects(instance) == committed | {"README"}
    assert {p: p.read_bytes() for p in others} == others  # nothing outside objects/ touched
    assert (root / ".flowprov" / "flowprov.sqlite").is_file() == sqlite
    verify = run_flowprov("verify")
    assert verify.returncode == 0 and "6 checked: 6 fine" in verify.stdout
    assert fp.Artifact.get(kept_in_place.uid).path == root / "results" / "table.csv"
    assert gc.count_orphans(inst_mod.current()) == 0 and gc.orphans_hint(inst_mod.current()) is None


def test_an_orphan_holding_the_last_copy_of_recorded_bytes_is_kept(instance, fp_env):
    """A batch that found its content already recorded in place (and was killed before removing
    its copy) leaves an object: removed while the recorded file is there, kept when it is not."""
    root = fp_env / "mydata"
    objects = root / ".flowprov" / "objects"
    recs = []
    for name in ("kept.txt", "gone.txt"):
        data = f"content of {name}\n".encode()
        recs.append(fp.Artifact(write(root / name, data)).save())
        write(objects / f"{blake3.blake3(data).hexdigest()}.txt", data)
    (root / "gone.txt").unlink()

    rep = gc.collect(inst_mod.current(), delete=True, min_age=0)
    by_name = {o.name.split(".")[0]: o for o in rep.orphans}
    kept, gone = by_name[recs[0].hash], by_name[recs[1].hash]
    assert kept.removed and kept.recorded_as.startswith(recs[0].uid)
    assert not gone.removed and "the last copy of recorded bytes" in gone.keep
    assert os.listdir(objects) == [f"{recs[1].hash}.txt"]


def test_gc_delete_is_refused_to_a_member_who_may_only_read(
    instance, fp_env, run_flowprov, request
):
    from tests.test_storage_move import read_only_member

    stray = write(
        fp_env / "mydata" / ".flowprov" / "objects" / f"{'ab' * 32}.txt", "left by a dead batch"
    )
    reader = read_only_member(instance, fp_env, request)
    assert [o.name for o in gc.scan(reader).orphans] == [stray.name]  # listing needs no rights
    r = run_flowprov("gc", "--delete", "--min-age", "0", check=False)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
    assert "not allowed to delete unreferenced objects" in r.stderr
    with pytest.raises(PermissionDenied):
        gc.collect(reader, delete=True, min_age=0)
    assert stray.read_text() == "left by a dead batch"


def test_an_orphan_reused_by_a_new_record_is_touched_so_a_racing_gc_keeps_it(instance, fp_env):
    """A batch that finds its bytes already copied in (an old orphan) reuses the object. Until
    its record commits the object is unreferenced, so a `gc --delete` running then judges it by
    age alone (re-read just before removing): the batch touches it first, making it young."""
    import time

    src = write(fp_env / "elsewhere" / "again.csv", "same bytes\n")
    digest = blake3.blake3(b"same bytes\n").hexdigest()
    orphan = fp_env / "mydata" / ".flowprov" / "objects" / f"{digest}.csv"
    write(orphan, "same bytes\n")
    two_days = time.time() - 2 * 86400
    os.utime(orphan, (two_days, two_days))
    assert [o.path for o in gc.scan(instance, min_age=0).deletable] == [str(orphan)]
    art = fp.Artifact(str(src), key=None).save()
    assert art.hash == digest and art.existed is False
    assert time.time() - orphan.stat().st_mtime < 60  # young: gc's --min-age keeps it
    assert gc.scan(instance).orphans == []
    assert open(fp.Artifact.get(art.uid).cache(), "rb").read() == b"same bytes\n"


def test_gc_arguments(instance, run_flowprov):
    assert gc.parse_age("90s") == 90 and gc.parse_age("2d") == 172800 and gc.parse_age("0") == 0
    with pytest.raises(ValidationError, match="--min-age takes a duration"):
        gc.parse_age("soon")
    r = run_flowprov("gc", "--storage", "/no/such/root", check=False)
    assert r.returncode == 1 and "is not a declared storage root" in r.stderr
    r = run_flowprov("gc", "--min-age", "-1h", check=False)
    assert r.returncode == 1 and "--min-age takes a duration" in r.stderr


def test_gc_in_a_bucket(fp_env, s3_server, monkeypatch):
    import fsspec

    from tests.test_object_storage import use_moto

    use_moto(s3_server, monkeypatch)
    bucket = f"s3://fp-{uuid.uuid4().hex[:12]}"
    fs, _ = fsspec.core.url_to_fs(bucket)
    fs.mkdir(bucket[5:])
    inst, _ = inst_mod.init(f"{bucket}/flowprov")
    a = fp.Artifact(write(fp_env / "up.csv", "x,y\n1,2\n")).save()
    objects = f"{bucket[5:]}/flowprov/.flowprov/objects"
    stray = f"{objects}/{'cd' * 32}.csv"
    fs.pipe_file(stray, b"uploaded, never recorded")
    fs.pipe_file(f"{bucket[5:]}/flowprov/raw/other.csv", b"a user's file")

    rep = gc.scan(inst_mod.current())
    assert [o.name for o in rep.orphans] == [stray.rsplit("/", 1)[1]] and rep.referenced == 1
    assert rep.orphans[0].size == 24 and rep.orphans[0].age is not None
    assert rep.orphans[0].keep.startswith("younger than")
    rep = gc.collect(inst_mod.current(), delete=True, min_age=0)
    assert [o.name for o in rep.removed] == [stray.rsplit("/", 1)[1]]
    fs.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(objects)) == [f"{a.hash}.csv"]
    assert fs.cat_file(f"{bucket[5:]}/flowprov/raw/other.csv") == b"a user's file"
