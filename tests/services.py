"""Throwaway services for the tests, started on loopback and stopped afterwards: a PostgreSQL 15
cluster, moto's S3 server, and a GCS emulator. Each `start_*` returns a handle with `stop()`, or
raises ServiceMissing saying what is not installed (the fixtures skip on it — or fail under CI)."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("FLOWPROV_PG_BIN", "/usr/lib/postgresql/15/bin"))


class ServiceMissing(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} (see its log)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


# -- PostgreSQL --------------------------------------------------------------------------------


@dataclass
class Postgres:
    base: Path
    port: int
    password: str  # of the `flowprov` role (and the superuser `postgres`)
    as_user: list[str]
    pgpass: Path
    _n: int = 0
    dbs: list[str] = field(default_factory=list)

    def url(self, db: str, user: str = "flowprov", password: bool = False) -> str:
        cred = f"{user}:{self.password}" if password else user
        return f"postgresql://{cred}@127.0.0.1:{self.port}/{db}"

    def admin(self, sql: str, db: str = "postgres", params=None) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.password,
            dbname=db,
            autocommit=True,
        ) as c:
            c.execute(sql, params)

    def new_database(self) -> str:
        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        self.admin(f'CREATE DATABASE "{name}" OWNER flowprov')
        self.dbs.append(name)
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start on a free loopback port, password (scram) authentication; as the
    `postgres` user when we are root (PostgreSQL refuses to run as root)."""
    if not (PG_BIN / "initdb").exists():
        raise ServiceMissing(
            f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql-15)"
        )
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="flowprov-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceMissing(
                "running as root and there is no `postgres` user to run PostgreSQL"
            ) from None
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_urlsafe(16)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    run = lambda *a: subprocess.run([*as_user, *a], capture_output=True, text=True)  # noqa: E731
    r = run(
        str(PG_BIN / "initdb"),
        "-D",
        str(base / "data"),
        "-U",
        "postgres",
        f"--pwfile={pwfile}",
        "--auth-local=scram-sha-256",
        "--auth-host=scram-sha-256",
        "-E",
        "UTF8",
        "--no-sync",
    )
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{r.stdout}\n{r.stderr}")
    port = free_port()
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    r = run(
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(base / "data"),
        "-l",
        str(base / "log"),
        "-o",
        opts,
        "-w",
        "-t",
        "60",
        "start",
    )
    if r.returncode != 0:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start:\n{r.stdout}\n{r.stderr}\n{log[-3000:]}")
    pgpass = base / "pgpass"
    pgpass.write_text(f"127.0.0.1:{port}:*:flowprov:{password}\n")
    pgpass.chmod(0o600)
    pg = Postgres(base, port, password, as_user, pgpass)
    from psycopg import sql

    pg.admin(
        sql.SQL("CREATE ROLE flowprov LOGIN CREATEDB PASSWORD {}").format(sql.Literal(password))
    )
    return pg


# -- S3 (moto) and GCS (emulator) --------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    workdir: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _serve(name: str, module_check: str, cmd: list[str], env: dict | None = None) -> Server:
    try:
        __import__(module_check)
    except ImportError:
        raise ServiceMissing(
            f"{name} needs the Python package {module_check!r} (pip install -e '.[test]')"
        ) from None
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix=f"flowprov-{name}-"))
    e = dict(os.environ)
    e.update(env or {})
    # the server's log goes to a file: a pipe nobody reads would fill up and stall the server
    with open(workdir / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [c.replace("{port}", str(port)) for c in cmd],
            cwd=workdir,
            env=e,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, port, proc, workdir)
    try:
        wait_for_port(port, proc, name)
    except BaseException:
        server.stop()
        raise
    return server


def start_moto() -> Server:
    return _serve(
        "moto",
        "moto.server",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
    )


def start_gcs_emulator() -> Server:
    return _serve(
        "gcs-emulator",
        "gcp_storage_emulator",
        [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--in-memory",
        ],
    )


def start_moto_with_auth() -> tuple[Server, dict[str, str]]:
    """A moto S3 server of its own that checks keys and IAM policies as AWS does. It starts open,
    an administrator user (every action allowed) is made, then authentication is switched on
    through moto's /moto-api/reset-auth (what INITIAL_NO_AUTH_ACTION_COUNT=0 does from the
    start). Returns the server and the administrator's credentials (boto3 client kwargs)."""
    srv = start_moto()
    try:
        import requests

        admin = {
            "endpoint_url": srv.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        key = moto_user(admin, "flowprov-admin", ["*"])
        admin.update(aws_access_key_id=key[0], aws_secret_access_key=key[1])
        r = requests.post(f"{srv.endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
        r.raise_for_status()
    except BaseException:
        srv.stop()
        raise
    return srv, admin


def moto_user(admin: dict[str, str], name: str, actions: list[str]) -> tuple[str, str]:
    """An IAM user allowed `actions` (e.g. ["s3:ListBucket"]; [] for none) on every resource:
    its (access key id, secret access key)."""
    import json

    import boto3

    iam = boto3.client("iam", **admin)
    iam.create_user(UserName=name)
    if actions:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName=name, PolicyName="flowprov-test", PolicyDocument=json.dumps(policy)
        )
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]
