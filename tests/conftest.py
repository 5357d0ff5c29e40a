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
    monkeypatch.delenv("FLOWPROV_INSTANCE", raising=False)
    monkeypatch.delenv("FLOWPROV_USER", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    _reset_process_state()
    yield tmp_path
    _reset_process_state()


@pytest.fixture
def instance(fp_env):
    """A fresh local instance (SQLite + storage folder) made current."""
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


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path
