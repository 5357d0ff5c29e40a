"""Fixtures of the web app's tests: the app over the test's instance (SQLite and PostgreSQL),
opened read-only as `flowprov serve` opens it, and a client speaking to it in-process."""

from __future__ import annotations

import pytest


@pytest.fixture
def app_client(instance):
    """make(token=None) -> a Starlette TestClient over the test's instance, read-only. Records
    the test writes must be written before `make` is called (the database is reopened read-only).
    """
    from starlette.testclient import TestClient

    clients = []

    def make(token: str | None = None, read_only: bool = True):
        from flowprov.web import create_app

        c = TestClient(create_app(token=token, read_only=read_only), raise_server_exceptions=True)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
