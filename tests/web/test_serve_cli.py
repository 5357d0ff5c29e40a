"""`flowprov serve` started as users start it: loopback by default, a token or an explicit
--no-auth for any other address, the token checked, the database never written."""

from __future__ import annotations

import json
import subprocess

import flowprov as fp
import pytest

from tests.conftest import write
from tests.services import free_port
from tests.web.serving import FLOWPROV, get, serving


@pytest.fixture
def one_artifact(instance, fp_env):
    a = fp.Artifact(write(fp_env / "mydata" / "hits.tsv", "gene\tscore\n"), key="hits.tsv").save()
    return a


def test_a_public_address_without_a_token_is_refused(one_artifact, fp_env):
    port = free_port()
    proc = subprocess.run(
        [str(FLOWPROV), "serve", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=fp_env,
    )
    assert proc.returncode == 1
    assert "refusing to serve 0.0.0.0 without a token" in proc.stderr
    assert "--no-auth" in proc.stderr
    # a short token is refused too, before anything listens
    proc = subprocess.run(
        [str(FLOWPROV), "serve", "--host", "0.0.0.0", "--port", str(port), "--token", "abc"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=fp_env,
    )
    assert proc.returncode == 1 and "at least 8 characters" in proc.stderr


def test_a_token_guards_every_page(one_artifact, fp_env):
    token = "lab-token-0123456789"
    env = {"FLOWPROV_SERVE_TOKEN": token}  # kept out of the process list
    with serving("--host", "0.0.0.0", env=env, cwd=fp_env) as url:
        page = f"{url}/artifact/{one_artifact.uid}"
        assert get(page)[0] == 401
        status, headers, body = get(page, {"Authorization": "Bearer not-the-token"})
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert "the token is wrong" in body
        status, _, body = get(page + "?format=json", {"Authorization": f"Bearer {token}"})
        assert status == 200 and json.loads(body)["uid"] == one_artifact.uid


def test_loopback_needs_no_token_and_nothing_is_written(one_artifact, fp_env):
    before = fp.Artifact.filter().count()
    with serving(cwd=fp_env) as url:
        status, _, body = get(f"{url}/?format=json")
        assert status == 200
        assert get(f"{url}/", method="POST")[0] == 405
        assert get(f"{url}/artifact/{one_artifact.uid}", method="DELETE")[0] == 405
    assert fp.Artifact.filter().count() == before


def test_no_auth_must_be_said_to_serve_a_public_address_openly(one_artifact, fp_env):
    with serving("--host", "0.0.0.0", "--no-auth", cwd=fp_env) as url:
        assert get(f"{url}/artifact/{one_artifact.uid}")[0] == 200


def test_no_instance_is_a_clear_error(fp_env):
    proc = subprocess.run(
        [str(FLOWPROV), "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=fp_env,
    )
    assert proc.returncode == 1 and "flowprov error" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_team_serves_through_the_documented_read_only_role(
    fp_env, postgres, pg_database, run_flowprov
):
    """PostgreSQL: `flowprov serve` connected as the README's `reader` role (SELECT only)."""
    from flowprov import instance as inst_mod

    from tests.test_rights import _role

    inst_mod.init(fp_env / "labdata", db=pg_database)
    a = fp.Artifact(write(fp_env / "labdata" / "hits.tsv", "g\ts\n"), key="hits.tsv").save()
    reader = _role(postgres, pg_database.rsplit("/", 1)[1], "reader")
    env = {"PGPASSWORD": postgres.password, "FLOWPROV_INSTANCE": "lab-reader"}
    run_flowprov(
        "init",
        "--db",
        pg_database.replace("//flowprov@", f"//{reader}@"),
        "--storage",
        str(fp_env / "labdata"),
        "--name",
        "lab-reader",
        env=env,
    )
    with serving(env=env, cwd=fp_env) as url:
        status, _, body = get(f"{url}/artifact/{a.uid}?format=json")
        assert status == 200 and json.loads(body)["key"] == "hits.tsv"
