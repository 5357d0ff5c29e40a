"""Shared fixtures: every test gets its own config folder, cache folder and instance.

`instance` is the one place a test's database is chosen, so that a later backend (PostgreSQL)
parametrises the whole suite from here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# screenshots and pictures tests keep for people to look at (not committed)
TEST_ARTIFACTS = Path(
    os.environ.get("FLOWPROV_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


def _reset_process_state() -> None:
    from flowprov import context, instance

    instance.reset_cache()
    context._tracked = None
    from flowprov._settings import settings

    settings.track_run_inputs = True
    settings._hash_cache = None


@pytest.fixture
def fp_env(tmp_path, monkeypatch) -> Path:
    """An isolated flowprov environment (config + cache under tmp_path), no instance yet."""
    monkeypatch.setenv("FLOWPROV_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("FLOWPROV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))  # remote storage's SQLite
    monkeypatch.delenv("FLOWPROV_INSTANCE", raising=False)
    monkeypatch.delenv("FLOWPROV_USER", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    _reset_process_state()
    yield tmp_path
    _reset_process_state()


def service(start, what: str):
    """Start a test service; skip when it cannot be found — but under CI=true, fail."""
    from tests.services import ServiceMissing

    try:
        return start()
    except ServiceMissing as e:
        if IN_CI:
            pytest.fail(f"{what} is required under CI: {e}")
        pytest.skip(f"{what} not available: {e}")


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL 15 cluster for the session (each test gets its own database).
    Passwords reach clients through a .pgpass file (PGPASSFILE), never through URLs."""
    from tests.services import start_postgres

    pg = service(start_postgres, "PostgreSQL")
    old = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(pg.pgpass)  # subprocesses (CLI, Snakemake) inherit it
    yield pg
    if old is None:
        os.environ.pop("PGPASSFILE", None)
    else:
        os.environ["PGPASSFILE"] = old
    pg.stop()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server, for the session (each test makes its own bucket)."""
    from tests.services import start_moto

    srv = service(start_moto, "moto's S3 server (pip install 'moto[server]')")
    yield srv
    srv.stop()


@pytest.fixture
def pg_database(postgres):
    """A fresh database in the session's cluster, dropped afterwards: its URL (no password)."""
    name = postgres.new_database()
    yield postgres.url(name)
    from flowprov import instance as inst_mod

    inst_mod.reset_cache()  # close pooled connections before the drop
    postgres.drop_database(name)


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend, request) -> str | None:
    """The database URL of the test's instance: None (SQLite inside the storage root) or a fresh
    PostgreSQL database. Every test that uses `instance` runs on both."""
    if backend == "sqlite":
        return None
    return request.getfixturevalue("pg_database")


@pytest.fixture
def instance(fp_env, db_url):
    """A fresh instance (SQLite or PostgreSQL, + a storage folder) made current."""
    from flowprov import instance as inst_mod

    inst, created = inst_mod.init(fp_env / "mydata", db=db_url)
    assert created
    return inst


@pytest.fixture
def second_instance(instance, fp_env, backend, request, monkeypatch):
    """A second instance named `b` (its own database and storage folder: yielded) beside the
    test's; FLOWPROV_INSTANCE names the test's instance."""
    from flowprov import instance as inst_mod

    pg, b_name, b_db = None, None, None
    if backend == "postgresql":
        pg = request.getfixturevalue("postgres")
        b_name = pg.new_database()
        b_db = pg.url(b_name)
    inst_mod.init(fp_env / "b-data", db=b_db, name="b")
    monkeypatch.setenv("FLOWPROV_INSTANCE", instance.name)
    yield fp_env / "b-data"
    if pg is not None:
        inst_mod.reset_cache()
        pg.drop_database(b_name)


@pytest.fixture
def sqlite_instance(fp_env):
    """The default local instance, for tests of what is SQLite's own (its file, its locking)."""
    from flowprov import instance as inst_mod

    inst, created = inst_mod.init(fp_env / "mydata")
    assert created
    return inst


@pytest.fixture
def run_flowprov(fp_env):
    """Run the `flowprov` CLI as a real subprocess in the test's environment."""
    import subprocess

    def run(*args, check=True, env=None, cwd=None):
        e = dict(os.environ)
        e.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "flowprov.cli", *args],
            capture_output=True,
            text=True,
            env=e,
            cwd=cwd or fp_env,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"flowprov {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


def wait_until(cond, timeout: float = 120, what: str = "") -> None:
    """Poll cond() every 50 ms until it is true; an AssertionError naming `what` after timeout."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


@pytest.fixture
def browser():
    """Debian's headless Chromium driven by Selenium through Debian's chromedriver, with no
    network: any request fails, so a page must need none. Skips without them, fails under CI."""
    import shutil
    import tempfile

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [
        name
        for name, ok in (
            ("chromium", chromium),
            ("chromedriver", chromedriver),
            ("selenium", webdriver),
            ("dot", shutil.which("dot")),
        )
        if not ok
    ]
    if missing:
        message = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver graphviz)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="flowprov-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",
        # no name resolves; loopback stays reachable (the pages `flowprov serve` serves there)
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=chromedriver))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
