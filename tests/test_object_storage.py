"""S3 and GCS storage through fsspec, against moto's S3 server and a GCS emulator started by the
tests on loopback (with SQLite and with PostgreSQL as the database)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid

# gcsfs ≥ 2025.x routes every call through an "experimental" layer that asks Google's gRPC API for
# the bucket's layout — which an emulator does not serve (the call hangs). Set before gcsfs loads.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import blake3
import flowprov as fp
import pytest
from flowprov import instance as inst_mod
from flowprov.errors import FileMissingError, StorageError, ValidationError

from tests.conftest import service, write


@pytest.fixture(scope="session")
def gcs_server():
    from tests.services import start_gcs_emulator

    srv = service(start_gcs_emulator, "a GCS emulator (pip install gcp-storage-emulator)")
    yield srv
    srv.stop()


def point_fsspec_at(env: dict, monkeypatch) -> None:
    """What a user sets to use an S3-compatible or emulated store: environment variables (which
    fsspec reads as its configuration, and which subprocesses inherit)."""
    import fsspec

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    conf = {k: dict(v) for k, v in fsspec.config.conf.items()}
    fsspec.config.set_conf_env(conf)
    monkeypatch.setattr(fsspec.config, "conf", conf)
    fsspec.AbstractFileSystem.clear_instance_cache()


def use_moto(srv, monkeypatch) -> None:
    """Point fsspec (and subprocesses) at the test's moto S3 server, with its test keys."""
    point_fsspec_at(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "FSSPEC_S3_ENDPOINT_URL": srv.endpoint,
        },
        monkeypatch,
    )


@pytest.fixture(params=["s3", "gs"])
def bucket(request, monkeypatch, fp_env) -> str:
    """A new, empty bucket on the test's S3 or GCS server: its URL."""
    import fsspec

    if request.param == "s3":
        use_moto(request.getfixturevalue("s3_server"), monkeypatch)
    else:
        srv = request.getfixturevalue("gcs_server")
        point_fsspec_at(
            {
                "STORAGE_EMULATOR_HOST": srv.endpoint,
                "FSSPEC_GCS_TOKEN": "anon",
                "FSSPEC_GCS_PROJECT": "test",
            },
            monkeypatch,
        )
    url = f"{request.param}://fp-{uuid.uuid4().hex[:12]}"
    fs, path = fsspec.core.url_to_fs(url)
    fs.mkdir(path)
    return url


@pytest.fixture
def remote(bucket, fp_env, db_url):
    """An instance whose storage is <bucket>/flowprov (database: SQLite or PostgreSQL)."""
    inst, created = inst_mod.init(f"{bucket}/flowprov", db=db_url)
    assert created and inst.storage.type in ("s3", "gs")
    return inst


def random_bytes(n: int) -> bytes:
    """n random bytes that never end in a bare carriage return: gcp-storage-emulator parses a
    multipart upload with Python's `email` parser, which drops a final '\\r' of the content
    (one draw in 256 of os.urandom — a GCS emulator defect; real GCS keeps every byte)."""
    return os.urandom(n - 1) + b"\0"


def fs_of(url):
    import fsspec

    return fsspec.core.url_to_fs(url)


def test_files_are_uploaded_into_the_bucket(remote, fp_env, bucket):
    data = random_bytes(300_000)
    src = write(fp_env / "local" / "screen.parquet", data)
    a = fp.Artifact(src, description="Raw data of schmidt22 crispra GWS").save()
    assert a.managed and a.storage.root == f"{bucket}/flowprov"
    assert a.path == f"{bucket}/flowprov/.flowprov/objects/{a.hash}.parquet"
    fs, p = fs_of(a.path)
    assert fs.cat_file(p) == data and a.hash == blake3.blake3(data).hexdigest()
    again = fp.Artifact(write(fp_env / "copy.parquet", data)).save()
    assert again.existed and again.uid == a.uid


def test_objects_already_in_the_bucket_are_recorded_in_place(remote, bucket):
    data = b"gene\tscore\nIFNG\t3.2\n" * 1000
    fs, p = fs_of(f"{bucket}/raw/hits.tsv")
    fs.pipe_file(p, data)
    a = fp.Artifact(f"{bucket}/raw/hits.tsv", description="hits").save()
    assert not a.managed and a.key == "raw/hits.tsv" and a.storage.root == bucket
    assert a.storage.type == bucket.split("://")[0]
    assert a.hash == blake3.blake3(data).hexdigest() and a.size == len(data)
    # the store's own checksums beside ours
    assert a.checksums["md5"] == hashlib.md5(data).hexdigest()
    assert ("s3:etag" in a.checksums) or (
        "gcs:crc32c" in a.checksums and "gcs:md5Hash" in a.checksums
    )
    # inside the instance's own root: keyed relative to it
    fs.pipe_file(p.replace("/raw/", "/flowprov/incoming/"), b"incoming")
    b = fp.Artifact(f"{bucket}/flowprov/incoming/hits.tsv").save()
    assert b.key == "incoming/hits.tsv" and b.storage.root == f"{bucket}/flowprov"
    with pytest.raises(FileMissingError):
        fp.Artifact(f"{bucket}/raw/nothing-here.tsv").save()
    with pytest.raises(ValidationError, match="is a bucket"):
        fp.Artifact(bucket).save()


def test_cache_downloads_once_and_verify_sees_a_vanished_object(remote, bucket):
    from flowprov.verify import verify

    data = random_bytes(50_000)
    fs, p = fs_of(f"{bucket}/raw/reads.fastq.gz")
    fs.pipe_file(p, data)
    a = fp.Artifact(f"{bucket}/raw/reads.fastq.gz").save()
    local = a.cache()
    assert local.read_bytes() == data and local.suffix == ".gz"
    mtime = local.stat().st_mtime_ns
    time.sleep(0.01)
    assert a.cache() == local and local.stat().st_mtime_ns == mtime  # not downloaded again
    assert [c.status for c in verify()] == ["ok"]
    fs.rm_file(p)
    assert a.cache() == local  # the local copy is still good
    checks = verify()
    assert [(c.uid, c.status) for c in checks] == [(a.uid, "missing")]


def test_a_failed_upload_leaves_no_artifact(remote, fp_env, bucket):
    fs, p = fs_of(bucket)
    fs.rm(p, recursive=True)  # the bucket is gone
    n = fp.Artifact.filter().count()
    with pytest.raises(StorageError, match=r"(could not copy|cannot upload) .*x\.csv"):
        fp.Artifact(write(fp_env / "x.csv", "a,b\n1,2\n")).save()
    assert fp.Artifact.filter().count() == n


def test_unreachable_storage_is_a_clear_error_and_nothing_is_written(fp_env, monkeypatch):
    from flowprov import config as C

    from tests.services import free_port

    point_fsspec_at(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nobody listens
            "AWS_MAX_ATTEMPTS": "1",
        },
        monkeypatch,
    )
    t0 = time.perf_counter()
    with pytest.raises(StorageError, match="cannot reach storage s3://lab-data/flowprov"):
        inst_mod.init("s3://lab-data/flowprov")
    assert time.perf_counter() - t0 < 60
    assert not C.instance_file("flowprov").exists()


def test_a_missing_bucket_is_refused_at_init(bucket, fp_env):
    from flowprov import config as C

    missing = bucket + "-missing"
    with pytest.raises(StorageError, match="does not exist"):
        inst_mod.init(f"{missing}/flowprov", name="other")
    assert not C.instance_file("other").exists()


def test_an_object_changed_since_it_was_recorded_is_refused(remote, bucket):
    """What was read is what is recorded: a changed object is not returned as the old version."""
    from flowprov.errors import ContentChanged

    fs, p = fs_of(f"{bucket}/raw/changing.tsv")
    fs.pipe_file(p, b"version 1\n")
    a = fp.Artifact(f"{bucket}/raw/changing.tsv").save()
    fs.pipe_file(p, b"version 2, longer\n")
    run = fp.Run(transform=fp.Transform(name="reader", type="script").save()).save()
    with run:
        with pytest.raises(ContentChanged, match=a.uid):
            a.cache()
        with pytest.raises(ContentChanged, match=a.uid):
            a.open()
    assert run.inputs.count() == 0
    from flowprov._settings import settings

    assert not (settings.cache_dir / "objects" / f"{a.hash}.tsv").exists()
    b = fp.Artifact(f"{bucket}/raw/changing.tsv").save()  # record what is there now
    assert b.stem == a.stem and b.uid != a.uid
    with run:
        assert b.cache().read_bytes() == b"version 2, longer\n"
    assert list(run.inputs) == [b]
