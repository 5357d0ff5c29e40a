"""Engine plugins add their commands through the `flowprov.commands` entry-point group: the core
imports no plugin (no circle between the core's CLI and a plugin's), and a fourth engine is one
new folder — shown here with one made in a temporary folder, found by `flowprov` unchanged."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGES = {"flowprov_nextflow", "snakemake_logger_plugin_flowprov", "flowprov_prefect"}
# `from flowprov.prefect import track` is the documented short name of the Prefect plugin's API:
# a user-facing alias, imported only when a user imports it — never by the core itself
ALIASES = {"prefect.py"}


def test_the_core_imports_no_plugin():
    offenders = []
    for path in sorted((ROOT / "core" / "flowprov").rglob("*.py")):
        if path.name in ALIASES and path.parent.name == "flowprov":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in PLUGIN_PACKAGES
            ]
    assert offenders == []


def test_a_fourth_engine_is_one_folder(tmp_path, fp_env):
    pkg = tmp_path / "flowprov_cwl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import click\n\n\n@click.group()\ndef cwl():\n    '''Record CWL runs.'''\n\n\n"
        "@cwl.command()\ndef hello():\n    click.echo('cwl plugin here')\n"
    )
    dist = tmp_path / "flowprov_cwl-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flowprov-cwl\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[flowprov.commands]\ncwl = flowprov_cwl:cwl\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "flowprov.cli"]
    out = subprocess.run([*cmd, "--help"], env=env, capture_output=True, text=True, check=True)
    assert "cwl" in out.stdout and "nextflow" in out.stdout
    out = subprocess.run([*cmd, "cwl", "hello"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "cwl plugin here"


def test_a_broken_plugin_does_not_take_the_cli_down(tmp_path, fp_env):
    dist = tmp_path / "flowprov_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flowprov-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[flowprov.commands]\nbroken = no_such_module:group\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "flowprov.cli", "--help"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and "nextflow" in out.stdout
    assert "'broken' commands (no_such_module:group) could not be loaded" in out.stderr
