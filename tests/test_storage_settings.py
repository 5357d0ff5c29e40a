"""Storage settings are part of the instance: options kept with a root (never secrets), the
environment overriding them out loud, and a check that says within seconds which of "unknown
key", "no permission", "no such bucket", "endpoint does not speak S3" it is — against moto's S3
server with IAM authentication on, a GCS emulator (no authentication: only a missing bucket and a
wrong endpoint can be shown there), plain web servers and sockets on loopback."""

from __future__ import annotations

import http.server
import logging
import os
import socket
import threading
import time
import uuid
from types import SimpleNamespace

# see test_object_storage.py: the emulator does not serve gcsfs's experimental gRPC layer
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import flowprov as fp
import pytest
from flowprov.errors import StorageError, ValidationError
from flowprov.storage import StorageCheckError, StorageRoot, validate_options

from tests.conftest import service, write

# -- services -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iam_s3():
    """moto's S3 server checking keys and IAM policies; bucket `lab`; keys of a writer (s3:*), a
    reader (list and get only) and a user with no permission at all."""
    from tests.services import moto_user, start_moto_with_auth

    srv, admin = service(start_moto_with_auth, "moto's S3 server (pip install 'moto[server]')")
    import boto3

    boto3.client("s3", **admin).create_bucket(Bucket="lab")
    keys = {
        "writer": moto_user(admin, "writer", ["s3:*"]),
        "reader": moto_user(admin, "reader", ["s3:ListBucket", "s3:GetObject"]),
        "nobody": moto_user(admin, "nobody", []),
    }
    yield SimpleNamespace(endpoint=srv.endpoint, admin=admin, keys=keys)
    srv.stop()


@pytest.fixture(scope="module")
def open_s3():
    """A second moto S3 server, without authentication, with a bucket `lab` of its own."""
    from tests.services import start_moto

    srv = service(start_moto, "moto's S3 server (pip install 'moto[server]')")
    import boto3

    creds = {
        "endpoint_url": srv.endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    boto3.client("s3", **creds).create_bucket(Bucket="lab")
    yield SimpleNamespace(endpoint=srv.endpoint, creds=creds)
    srv.stop()


@pytest.fixture(scope="module")
def gcs():
    from tests.services import start_gcs_emulator

    srv = service(start_gcs_emulator, "a GCS emulator (pip install gcp-storage-emulator)")
    yield srv
    srv.stop()


class _Page(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        body = b"<html><body>It works!</body></html>"
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def not_s3():
    """Endpoints that are not object stores: web pages answering 200 and 404, a service that
    speaks another protocol, a socket that accepts and never answers, a port nobody listens on."""
    from tests.services import free_port

    servers, socks = [], []

    def page(status):
        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
        s.status = status
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
        return f"http://127.0.0.1:{s.server_address[1]}"

    def tcp(greeting):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(64)
        socks.append(ls)

        def serve():
            while True:
                try:
                    c, _ = ls.accept()
                except OSError:
                    return
                socks.append(c)
                if greeting:
                    c.sendall(greeting)

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{ls.getsockname()[1]}"

    yield {
        "page-200": page(200),
        "page-404": page(404),
        "ssh": tcp(b"SSH-2.0-OpenSSH_9.2\r\n"),
        "silent": tcp(None),
        "closed": f"http://127.0.0.1:{free_port()}",
    }
    for s in servers:
        s.shutdown()
    for s in socks:
        s.close()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No storage settings from the machine running the tests: no AWS/GCS/fsspec variables, no
    ~/.aws files, an empty fsspec configuration, no cached filesystems, no earlier warnings."""
    import fsspec
    from flowprov import storage_settings

    for var in list(os.environ):
        if var.startswith(("FSSPEC_", "AWS_", "GOOGLE_", "GCSFS_DEFAULT")) or var in (
            "STORAGE_EMULATOR_HOST",
        ):
            if var != "AWS_CA_BUNDLE":
                monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookups
    monkeypatch.setattr(fsspec.config, "conf", {})
    monkeypatch.setattr(storage_settings, "_warned", set())
    _forget_filesystems()
    yield monkeypatch
    _forget_filesystems()


def _forget_filesystems() -> None:
    """fsspec caches a filesystem per class and options: one made with another key would be
    reused (each class has its own cache)."""
    import fsspec

    for proto in ("s3", "gs"):
        try:
            fsspec.get_filesystem_class(proto).clear_instance_cache()
        except ImportError:
            pass


def use_key(monkeypatch, key: tuple[str, str]) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key[1])


def s3_root(endpoint: str, bucket: str = "lab", prefix: str = "proj") -> StorageRoot:
    opts = validate_options("s3", {"endpoint_url": endpoint, "region_name": "us-east-1"})
    return StorageRoot(f"s3://{bucket}/{prefix}", opts)


def timed_check(root: StorageRoot) -> tuple[StorageCheckError, float]:
    t0 = time.monotonic()
    with pytest.raises(StorageCheckError) as e:
        root.check()
    return e.value, time.monotonic() - t0


# -- the check: what the store says -------------------------------------------------------------


@pytest.mark.parametrize(
    "who, bucket, kind, says",
    [
        (
            "stranger",
            "lab",
            "unknown key",
            "does not know access key AKIA…0000 (InvalidAccessKeyId)",
        ),
        ("bad-secret", "lab", "unknown key", "the secret does not match access key"),
        ("nobody", "lab", "no permission", "may not list bucket 'lab' (AccessDenied"),
        ("writer", "nope", "no such bucket", "bucket 'nope' does not exist at this endpoint"),
    ],
)
def test_the_check_says_which_credential_problem_it_is(clean_env, iam_s3, who, bucket, kind, says):
    keys = {
        **iam_s3.keys,
        "stranger": ("AKIAIOSFODNN70000000", "not-a-secret-this-store-knows"),
        "bad-secret": (iam_s3.keys["writer"][0], "wrong"),
    }
    use_key(clean_env, keys[who])
    root = s3_root(iam_s3.endpoint, bucket)
    err, took = timed_check(root)
    msg = str(err)
    assert err.kind == kind and says in msg, msg
    assert msg.startswith(f"cannot use storage s3://{bucket}/proj at {iam_s3.endpoint}: {kind} — ")
    assert "\n" not in msg and took < 10
    todo = {
        "unknown key": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials",
        "no permission": "grant that key s3:ListBucket, s3:GetObject and s3:PutObject",
        "no such bucket": "create it, or fix the root's URL or endpoint_url (from the instance)",
    }[kind]
    assert todo in msg
    if kind != "no such bucket":
        assert "(this one comes from the environment)" in msg
    # the secret never shows, whichever it was
    assert keys[who][1] not in msg


def test_a_key_with_the_rights_passes_the_check(clean_env, iam_s3):
    use_key(clean_env, iam_s3.keys["writer"])
    t0 = time.monotonic()
    s3_root(iam_s3.endpoint).check()
    assert time.monotonic() - t0 < 10


def test_everyday_calls_say_what_the_store_said(clean_env, iam_s3, tmp_path):
    """A reader's key passes the check (it may list) and its upload names the reason; the HEAD
    requests of `exists` get a bare 403, and the message says it carries no reason."""
    use_key(clean_env, iam_s3.keys["reader"])
    root = s3_root(iam_s3.endpoint)
    root.check()
    src = write(tmp_path / "x.csv", "a,b\n1,2\n")
    with pytest.raises(
        StorageError, match=r"cannot upload .*x\.csv .*: no permission \(AccessDenied"
    ):
        root.put(str(src), "x.csv")
    use_key(clean_env, iam_s3.keys["nobody"])
    type(root.fs).clear_instance_cache()  # as in a new process: the key is read anew
    root = s3_root(iam_s3.endpoint)
    with pytest.raises(
        StorageError, match=r"Forbidden \(HTTP 403 to a request that carries no reason"
    ):
        root.exists("x.csv")


# -- the check: endpoints that are not S3 -------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint, kind, says",
    [
        (
            "page-200",
            "endpoint does not speak S3",
            "answered with HTTP 200 (text/html), not an S3 listing",
        ),
        (
            "page-404",
            "endpoint does not speak S3",
            "answered with HTTP 404 (text/html) and no S3 error",
        ),
        ("ssh", "endpoint does not speak S3", "what answered there is not an HTTP server"),
        ("closed", "cannot connect", "Connect call failed"),
        ("silent", "no answer", "nothing came back within 6 s"),
    ],
)
def test_a_wrong_endpoint_fails_the_check_within_seconds(clean_env, not_s3, endpoint, kind, says):
    use_key(clean_env, ("AKIAIOSFODNN7EXAMPLE", "whatever"))
    url = not_s3[endpoint]
    err, took = timed_check(s3_root(url))
    msg = str(err)
    assert err.kind == kind and says in msg, msg
    assert msg.startswith(f"cannot reach storage s3://lab/proj at {url}: {kind} — ")
    assert "endpoint_url (from the instance)" in msg and "\n" not in msg
    assert took < 10, f"{endpoint}: {took:.1f} s"


def test_init_with_an_endpoint_that_never_answers_fails_within_10_s(
    clean_env, not_s3, run_flowprov
):
    """The whole command — start-up, imports, check — on the worst endpoint: one that accepts the
    connection and says nothing (an S3 client left alone waits 411 s on it)."""
    url = not_s3["silent"]
    env = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "whatever"}
    t0 = time.monotonic()
    p = run_flowprov(
        "init",
        "--storage",
        "s3://lab/proj",
        "--endpoint-url",
        url,
        "--name",
        "t",
        check=False,
        env=env,
    )
    took = time.monotonic() - t0
    assert (
        p.returncode != 0 and f"cannot reach storage s3://lab/proj at {url}: no answer" in p.stderr
    )
    assert took < 10, f"{took:.1f} s"


# -- options: where they come from --------------------------------------------------------------


def test_stored_options_are_used_with_no_environment_at_all(clean_env, open_s3, tmp_path):
    import boto3

    use_key(clean_env, ("testing", "testing"))
    root = s3_root(open_s3.endpoint)
    assert root.effective_options() == {
        "client_kwargs.region_name": ("us-east-1", "instance"),
        "endpoint_url": (open_s3.endpoint, "instance"),
    }
    root.check()
    root.put(str(write(tmp_path / "a.txt", "hello")), "a.txt")
    got = boto3.client("s3", **open_s3.creds).get_object(Bucket="lab", Key="proj/a.txt")
    assert got["Body"].read() == b"hello"


def test_the_environment_overrides_the_stored_endpoint_out_loud(
    clean_env, open_s3, iam_s3, caplog, tmp_path
):
    """The instance says server A; FSSPEC_S3_ENDPOINT_URL says B: B is used, `effective_options`
    says so, and one warning names both — however often the root is opened."""
    import boto3

    use_key(clean_env, ("testing", "testing"))
    clean_env.setenv("FSSPEC_S3_ENDPOINT_URL", open_s3.endpoint)
    caplog.set_level(logging.WARNING, logger="flowprov")
    for _ in range(3):
        root = s3_root(iam_s3.endpoint)  # stored: the IAM server
        eff = root.effective_options()
    assert eff["endpoint_url"] == (open_s3.endpoint, "environment FSSPEC_S3_ENDPOINT_URL")
    root.put(str(write(tmp_path / "b.txt", "on B")), "b.txt")
    on_b = boto3.client("s3", **open_s3.creds).get_object(Bucket="lab", Key="proj/b.txt")
    assert on_b["Body"].read() == b"on B"
    warnings = [r.getMessage() for r in caplog.records if r.name == "flowprov"]
    assert warnings == [
        f"storage s3://lab/proj: endpoint_url = {open_s3.endpoint} from the environment "
        f"FSSPEC_S3_ENDPOINT_URL overrides the instance's {iam_s3.endpoint}"
    ]


@pytest.mark.parametrize(
    "env, name, value",
    [
        ({"AWS_ENDPOINT_URL": "http://a:1"}, "endpoint_url", "http://a:1"),
        (
            {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://b:2"},
            "endpoint_url",
            "http://b:2",
        ),
        (
            {"AWS_ENDPOINT_URL_S3": "http://b:2", "FSSPEC_S3_ENDPOINT_URL": "http://c:3"},
            "endpoint_url",
            "http://c:3",
        ),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "client_kwargs.region_name", "eu-west-1"),
        (
            {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-north-1"},
            "client_kwargs.region_name",
            "eu-north-1",
        ),
        (
            {"FSSPEC_S3": '{"client_kwargs": {"region_name": "ap-south-1"}}'},
            "client_kwargs.region_name",
            "ap-south-1",
        ),
    ],
)
def test_the_usual_variables_override_with_their_name(clean_env, caplog, env, name, value):
    for k, v in env.items():
        clean_env.setenv(k, v)
    caplog.set_level(logging.WARNING, logger="flowprov")
    root = StorageRoot(
        "s3://lab/proj",
        validate_options("s3", {"endpoint_url": "http://stored:9000", "region_name": "us-east-1"}),
    )
    got, source = root.effective_options()[name]
    winner = [k for k, v in env.items() if v == value or value in v][-1]
    assert (got, source) == (value, f"environment {winner}")
    [warning] = [r.getMessage() for r in caplog.records]
    assert f"{name} = {value} from the environment {winner} overrides the instance's" in warning
    # the filesystem is built with what effective_options shows
    kwargs = root.build_fs().storage_options
    assert kwargs.get("endpoint_url" if name == "endpoint_url" else "client_kwargs", {}) in (
        value,
        {"region_name": value},
    )


def test_the_same_value_in_the_environment_is_no_override(clean_env, caplog):
    clean_env.setenv("FSSPEC_S3_ENDPOINT_URL", "http://stored:9000")
    clean_env.setenv("FSSPEC_S3_KEY", "AKIAIOSFODNN7EXAMPLE")  # a credential: used, never shown
    caplog.set_level(logging.WARNING, logger="flowprov")
    root = StorageRoot("s3://lab/proj", {"endpoint_url": "http://stored:9000"})
    eff = root.effective_options()
    assert eff["key"] == ("***", "environment FSSPEC_S3_KEY")
    assert eff["endpoint_url"] == ("http://stored:9000", "environment FSSPEC_S3_ENDPOINT_URL")
    assert caplog.records == []
    assert root.build_fs().key == "AKIAIOSFODNN7EXAMPLE"


def test_everyday_s3_calls_have_a_bounded_retry_budget(clean_env):
    """botocore's standard mode with 3 attempts and s3fs's 2 tries, unless AWS says otherwise."""
    fs = StorageRoot("s3://lab/proj", {"endpoint_url": "http://stored:9000"}).build_fs()
    assert fs.config_kwargs["retries"] == {"max_attempts": 3, "mode": "standard"}
    assert fs.retries == 2
    clean_env.setenv("AWS_MAX_ATTEMPTS", "7")  # the user's own setting is kept: botocore reads it
    fs = StorageRoot("s3://lab/other", {"endpoint_url": "http://stored:9000"}).build_fs()
    assert "retries" not in fs.config_kwargs
    stored = validate_options("s3", {"config_kwargs.retries.max_attempts": "5"})
    assert StorageRoot("s3://lab/x", stored).build_fs().config_kwargs["retries"] == {
        "max_attempts": 5
    }


# -- options: what may be stored ----------------------------------------------------------------


@pytest.mark.parametrize(
    "type_, options, where",
    [
        ("s3", {"key": "AKIAIOSFODNN7EXAMPLE"}, "AWS_ACCESS_KEY_ID"),
        ("s3", {"secret": "wJalrXUtnFEMI"}, "~/.aws/credentials"),
        ("s3", {"token": "FwoGZXIvYXdzE"}, "AWS_PROFILE"),
        ("s3", {"username": "AKIAIOSFODNN7EXAMPLE", "password": "x"}, "AWS_ACCESS_KEY_ID"),
        ("s3", {"client_kwargs": {"aws_secret_access_key": "x"}}, "~/.aws/credentials"),
        ("s3", {"client_kwargs.aws_session_token": "x"}, "~/.aws/credentials"),
        ("s3", {"s3_additional_kwargs": {"SSECustomerKey": "x"}}, "~/.aws/credentials"),
        ("s3", {"endpoint_url": "https://AKIA:secret@minio.example.org"}, "~/.aws/credentials"),
        ("gs", {"token": "/home/me/service-account.json"}, "GOOGLE_APPLICATION_CREDENTIALS"),
        (
            "gs",
            {"token": {"type": "service_account", "private_key": "x"}},
            "GOOGLE_APPLICATION_CREDENTIALS",
        ),
        ("gs", {"credentials": "x"}, "GOOGLE_APPLICATION_CREDENTIALS"),
    ],
)
def test_secrets_are_refused_with_where_they_go(type_, options, where):
    with pytest.raises(ValidationError, match="credential") as e:
        validate_options(type_, options)
    msg = str(e.value)
    assert where in msg and "every member can read them" in msg or "in a URL" in msg
    assert "\n" not in msg


def test_options_are_checked_and_kept_in_one_form():
    got = validate_options(
        "s3",
        {
            "endpoint_url": "http://127.0.0.1:9000/",
            "region_name": "eu-west-1",
            "anon": "false",
            "requester_pays": "true",
            "config_kwargs.read_timeout": "30",
            "s3_additional_kwargs": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/lab"},
        },
    )
    assert got == {
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "eu-west-1"},
        "anon": False,
        "requester_pays": True,
        "config_kwargs": {"read_timeout": 30.0},
        "s3_additional_kwargs": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/lab"},
    }
    assert validate_options("s3", got) == got  # stored form in, stored form out
    gs = {"endpoint_url": "http://localhost:4443", "project": "lab", "token": "anon"}
    assert validate_options("gs", gs) == gs
    assert validate_options("s3", None) == {} and validate_options("s3", {}) == {}
    for type_, bad, says in [
        ("s3", {"endpoint": "http://x"}, "unknown s3 storage option 'endpoint'; known: anon, "),
        ("s3", {"endpoint_url": "minio:9000"}, "is not an http:// or https:// URL"),
        ("s3", {"anon": "maybe"}, "'anon' must be bool"),
        ("s3", {"region": "a", "client_kwargs.region_name": "b"}, "is given twice"),
        ("s3", {"loop": "x"}, "not a setting flowprov can keep"),
        ("gs", {"region": "europe-west3"}, "GCS takes no region"),
        ("local", {"endpoint_url": "http://x"}, "a local storage root takes no options"),
    ]:
        with pytest.raises(ValidationError, match=says.replace("(", r"\(").replace(")", r"\)")):
            validate_options(type_, bad)


def test_options_round_trip_through_the_instance(clean_env, open_s3, fp_env, db_url, run_flowprov):
    """Stored at init, read back by a new process: the endpoint with its source in `info`."""
    from flowprov import instance as inst_mod

    use_key(clean_env, ("testing", "testing"))
    bucket = f"fp-{uuid.uuid4().hex[:10]}"
    import boto3

    boto3.client("s3", **open_s3.creds).create_bucket(Bucket=bucket)
    options = {"endpoint_url": open_s3.endpoint, "region_name": "us-east-1"}
    inst, created = inst_mod.init(f"s3://{bucket}/flowprov", db=db_url, options=options)
    assert created
    inst_mod.reset_cache()
    again = inst_mod.current()
    assert again.storage.options == {
        "endpoint_url": open_s3.endpoint,
        "client_kwargs": {"region_name": "us-east-1"},
    }
    p = run_flowprov("info")
    assert f"endpoint_url = {open_s3.endpoint}  (instance)" in " ".join(p.stdout.split("\n"))


def test_an_instance_made_with_only_the_variable_remembers_its_server(
    clean_env, open_s3, fp_env, db_url, run_flowprov
):
    """Issue 13: the endpoint came only from FSSPEC_S3_ENDPOINT_URL and the instance silently used
    another server when the variable changed. `init` keeps what the environment named; without
    the variable the instance still reaches its server; a different value is shown as an
    override in `info` (with the warning), never taken silently."""
    from flowprov import instance as inst_mod

    use_key(clean_env, ("testing", "testing"))
    bucket = f"fp-{uuid.uuid4().hex[:10]}"
    import boto3

    s3 = boto3.client("s3", **open_s3.creds)
    s3.create_bucket(Bucket=bucket)
    clean_env.setenv("FSSPEC_S3_ENDPOINT_URL", open_s3.endpoint)
    args = ["init", "--storage", f"s3://{bucket}/flowprov", "--name", "lab"]
    run_flowprov(*args, *(["--db", db_url] if db_url else []))
    clean_env.delenv("FSSPEC_S3_ENDPOINT_URL")
    _forget_filesystems()
    inst_mod.reset_cache()
    assert inst_mod.current().storage.options == {"endpoint_url": open_s3.endpoint}
    src = write(fp_env / "elsewhere" / "sample.csv", "a,b\n")
    art = fp.Artifact(str(src), key=None).save()  # copied into the instance's own server
    assert s3.head_object(Bucket=bucket, Key=f"flowprov/.flowprov/objects/{art.hash}.csv")
    info = " ".join(run_flowprov("info").stdout.split("\n"))
    assert f"endpoint_url = {open_s3.endpoint}  (instance)" in info

    elsewhere = "http://127.0.0.1:9"
    r = run_flowprov("info", env={"FSSPEC_S3_ENDPOINT_URL": elsewhere})
    shown = " ".join(r.stdout.split("\n"))
    assert f"endpoint_url = {elsewhere}  (environment FSSPEC_S3_ENDPOINT_URL)" in shown


# -- GCS ----------------------------------------------------------------------------------------


def gcs_root(endpoint: str, bucket: str) -> StorageRoot:
    opts = validate_options("gs", {"endpoint_url": endpoint, "project": "test", "token": "anon"})
    return StorageRoot(f"gs://{bucket}/proj", opts)


def test_gcs_check_says_no_such_bucket_and_wrong_endpoint(clean_env, gcs, not_s3):
    """The emulator has no authentication: unknown keys and missing permissions cannot be shown
    with it (the check reads GCS's 401/403 answers; see storage_check)."""
    import gcsfs

    bucket = f"fp-{uuid.uuid4().hex[:10]}"
    gcsfs.GCSFileSystem(endpoint_url=gcs.endpoint, token="anon", project="test").mkdir(bucket)
    gcs_root(gcs.endpoint, bucket).check()
    err, took = timed_check(gcs_root(gcs.endpoint, bucket + "-missing"))
    assert err.kind == "no such bucket" and took < 10
    assert str(err).startswith(f"cannot use storage gs://{bucket}-missing/proj at {gcs.endpoint}")
    for name, kind in [
        ("page-200", "endpoint does not speak GCS"),
        ("page-404", "endpoint does not speak GCS"),
        ("closed", "cannot connect"),
        ("silent", "no answer"),
    ]:
        err, took = timed_check(gcs_root(not_s3[name], bucket))
        assert err.kind == kind, str(err)
        assert "endpoint_url (from the instance)" in str(err) and took < 10, (name, took)


def test_storage_emulator_host_overrides_the_stored_gcs_endpoint(clean_env, caplog):
    clean_env.setenv("STORAGE_EMULATOR_HOST", "localhost:4443")
    caplog.set_level(logging.WARNING, logger="flowprov")
    root = gcs_root("https://storage.example.org", "lab")
    assert root.effective_options()["endpoint_url"] == (
        "http://localhost:4443",
        "environment STORAGE_EMULATOR_HOST",
    )
    assert root.effective_options()["token"] == ("anon", "instance")  # a mode, not a secret
    assert len(caplog.records) == 1
