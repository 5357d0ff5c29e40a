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

    def run(self, *args: str, check: bool = True, env: dict | None = None, logger: bool = True):
        cmd = [snakemake_exe(), "--cores", "1", *args]
        if logger:
            cmd += ["--logger", "flowprov"]
        e = dict(os.environ)
        e.update(env or {})
        proc = subprocess.run(
            cmd, cwd=self.root, env=e, capture_output=True, text=True, timeout=300
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
            )
        return proc


@pytest.fixture
def workflow(instance, fp_env) -> Workflow:
    """An empty workflow folder; the test's instance is current."""
    root = fp_env / "workflow"
    root.mkdir()
    return Workflow(root)
