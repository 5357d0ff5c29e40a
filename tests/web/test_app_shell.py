"""What every page shares: read-only database, errors as pages or JSON, security headers."""

from __future__ import annotations

import html

import flowprov as fp
import pytest


def test_unknown_path_is_a_404_page_and_json(app_client):
    c = app_client()
    r = c.get("/no/such/page")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert "no such page" in r.text
    r = c.get("/no/such/page", headers={"accept": "application/json"})
    assert r.status_code == 404 and r.json() == {"error": "no such page", "status": 404}


def test_bad_format_is_a_400_with_the_reason(app_client):
    r = app_client().get("/?format=xml")
    assert r.status_code == 400 and "format must be 'json' or 'html'" in html.unescape(r.text)


def test_only_get(app_client):
    c = app_client()
    for method in ("post", "put", "delete", "patch"):
        r = c.request(method.upper(), "/")
        assert r.status_code == 405, method


def test_every_answer_carries_the_security_headers(app_client):
    r = app_client().get("/")
    assert r.status_code == 200
    assert "script-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


def test_the_database_refuses_writes_while_served(instance, app_client, tmp_path):
    from flowprov.db import write_transaction
    from flowprov.errors import FlowprovError
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    p = tmp_path / "a.csv"
    p.write_text("a\n1\n")
    fp.Artifact(p, key="a.csv").save()
    app_client()
    engine = fp.instance.current().engine
    with pytest.raises((DBAPIError, FlowprovError), match="(?i)read.?only"):
        with write_transaction(engine) as conn:
            conn.execute(text("DELETE FROM artifacts"))
    assert fp.Artifact.filter().count() == 1


def test_token_gate(app_client):
    c = app_client(token="s3cret-token")
    assert c.get("/").status_code == 401
    assert c.get("/", headers={"authorization": "Bearer wrong-token"}).status_code == 401
    assert c.get("/", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
    assert c.get("/static/style.css").status_code == 200  # the login page needs its style
    r = c.post("/login", data={"token": "nope", "next": "/"}, follow_redirects=False)
    assert r.status_code == 401 and "the token is wrong" in r.text
    r = c.post(
        "/login", data={"token": "s3cret-token", "next": "//evil.example/x"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "s3cret-token" not in r.headers["set-cookie"]
    assert c.get("/").status_code == 200  # the cookie
