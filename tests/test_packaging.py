"""The one distribution carries the core, the Snakemake plugin and the demo's files."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contents(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=600,
    )
    wheel = next(tmp_path.glob("flowprov-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert (
        "flowprov/__init__.py" in names
        and "flowprov/migrations/versions/0001_initial_schema.py" in names
    )
    # a top-level module named snakemake_logger_plugin_*: how Snakemake finds logger plugins
    assert "snakemake_logger_plugin_flowprov/__init__.py" in names
    assert "flowprov/_examples/project_flow/hit-identification.ipynb" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "flowprov = flowprov.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
