"""Real Snakemake workflows, made by the tests, run with `--logger flowprov`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import snakemake  # noqa: F401
except ImportError:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise  # CI installs flowprov[test], which includes Snakemake: its absence is a failure
    pytest.skip(
        "Snakemake is not installed (pip install 'flowprov[snakemake]')", allow_module_level=True
    )


def snakemake_exe() -> str:
    beside = Path(sys.executable).with_name("snakemake")
    return str(beside) if beside.exists() else shutil.which("snakemake")


class Workflow:
    def __init__(self, root: Path):
        self.root = root

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
        return p

    def command(self, *args: str, logger: bool = True) -> list[str]:
        cmd = [snakemake_exe(), "--cores", "1", *args]
        return cmd + ["--logger", "flowprov"] if logger else cmd

    def run(self, *args: str, check: bool = True, env: dict | None = None, logger: bool = True):
        proc = subprocess.run(
            self.command(*args, logger=logger),
            cwd=self.root,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
            )
        return proc


def host_key(path) -> str:
    """The key of a file outside every declared storage root: its absolute location, under the
    host root "/"."""
    return os.path.abspath(path).lstrip(os.sep)


@pytest.fixture
def workflow(instance, fp_env) -> Workflow:
    """An empty workflow folder that its user declared as a storage root (so its files are keyed
    by their path in it, "results/summary.txt"); the test's instance is current."""
    import flowprov as fp

    root = fp_env / "workflow"
    root.mkdir()
    fp.Storage(root, description="the workflow's folder").save()
    return Workflow(root)


@pytest.fixture
def undeclared_workflow(instance, fp_env):
    """Makes workflow folders no one declared as storage: their files are recorded by absolute
    location under the host root "/"."""

    def make(name: str) -> Workflow:
        root = fp_env / name
        root.mkdir()
        return Workflow(root)

    return make


@pytest.fixture
def shim(tmp_path):
    """Environment for a Snakemake subprocess that runs `code` at interpreter start (a
    sitecustomize module): to make the installed Snakemake look like another one."""

    def make(code: str) -> dict:
        folder = tmp_path / "shim"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(textwrap.dedent(code))
        path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
        return {"PYTHONPATH": path}

    return make
