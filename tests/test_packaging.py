"""The one distribution carries the core, the Snakemake plugin and the demo's files."""

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


# --- the extras resolve without pip walking back through releases (issue 13, point 9) ---------
# pip's resolver takes requirements with an upper bound first, then the rest with a version in
# alphabetical order, and an unversioned one last; two lines of the extras lean on that order.


def _extras() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        name: [Requirement(r) for r in reqs]
        for name, reqs in project["optional-dependencies"].items()
    }


def _needs(requirements, name: str) -> Requirement | None:
    """The requirement on `name` among `requirements` (strings or Requirements), if any."""
    for r in requirements or []:
        r = Requirement(r) if isinstance(r, str) else r
        if canonicalize_name(r.name) == name and (
            r.marker is None or r.marker.evaluate({"extra": ""})
        ):
            return r
    return None


def test_extras_ask_only_for_extras_their_packages_provide():
    """`s3fs[boto3]` or `aiobotocore[boto3]` — the old way to keep boto3 in step — now names an
    extra that is gone: pip only warns, and the pairing silently does not happen."""
    extras = _extras()
    checked = set()
    for extra, reqs in extras.items():
        for req in reqs:
            wanted = {canonicalize_name(e) for e in req.extras}
            if not wanted:
                continue
            if canonicalize_name(req.name) == "flowprov":
                have = {canonicalize_name(e) for e in extras}
            else:
                try:
                    meta = importlib.metadata.metadata(req.name)
                except importlib.metadata.PackageNotFoundError:
                    continue  # not in this environment (the test extra installs all that matter)
                have = {canonicalize_name(e) for e in meta.get_all("Provides-Extra") or []}
            missing = wanted - have
            assert not missing, f"extra {extra!r} asks for {req}: no extra {sorted(missing)} there"
            checked.add(canonicalize_name(req.name))
    assert {"moto", "psycopg", "flowprov"} <= checked


def test_s3_extra_names_aiobotocore_so_botocore_is_settled_first():
    # with moto (boto3, botocore unbounded) and s3fs (aiobotocore, which caps botocore) side by
    # side, pip took the newest botocore first and walked back every aiobotocore and s3fs
    ours = _needs(_extras()["s3"], "aiobotocore")
    assert ours, "the s3 extra does not name aiobotocore"
    assert str(ours.specifier), "unversioned, pip takes aiobotocore last, after botocore"
    assert _needs(importlib.metadata.requires("s3fs"), "aiobotocore"), (
        "s3fs no longer reaches botocore through aiobotocore: drop aiobotocore from the s3 extra"
    )
    provides = importlib.metadata.metadata("aiobotocore").get_all("Provides-Extra") or []
    assert "boto3" not in provides, "aiobotocore has a boto3 extra again: ask for that instead"
    # and in this environment botocore is the one aiobotocore asked for
    botocore = _needs(importlib.metadata.requires("aiobotocore"), "botocore")
    assert importlib.metadata.version("botocore") in botocore.specifier


def test_sqlalchemy_cap_in_test_and_all_still_has_its_reason():
    """The cap is Snakemake's (through sqlmodel); said in our extras only so pip knows it before
    Prefect's `sqlalchemy<3` settles on 2.1. Once Snakemake's sqlmodel takes 2.1, lift it."""
    for extra in ("test", "all"):
        cap = _needs(_extras()[extra], "sqlalchemy")
        assert cap and "2.1.0" not in cap.specifier, f"extra {extra!r} lost its SQLAlchemy cap"
    lift = "lift sqlalchemy<2.1 from the test and all extras"
    assert _needs(importlib.metadata.requires("snakemake"), "sqlmodel"), (
        f"Snakemake no longer needs sqlmodel: {lift}"
    )
    sqlalchemy = _needs(importlib.metadata.requires("sqlmodel"), "sqlalchemy")
    assert sqlalchemy and "2.1.0" not in sqlalchemy.specifier, (
        f"sqlmodel {importlib.metadata.version('sqlmodel')} takes SQLAlchemy 2.1: {lift}"
    )


# releases pip still steps back through, for reasons upstream: boto3 is released daily and
# aiobotocore follows its botocore later (about 1 s for 20 releases); Snakemake caps packaging
# below 26, which the newest snakemake-interface-common releases need
WALKS_EXPECTED = {"boto3", "snakemake-interface-common"}


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FLOWPROV_RESOLVE_CHECK") != "1",
    reason="asks the package index (set FLOWPROV_RESOLVE_CHECK=1 to run)",
)
@pytest.mark.parametrize("extras", ["test", "all", "s3"])
def test_extras_resolve_without_walking_back(extras, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        + ["--report", str(tmp_path / "report.json"), "-e", f"{ROOT}[{extras}]"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    said = out.stdout + out.stderr
    walked = set(re.findall(r"pip is looking at multiple versions of (\S+)", said))
    assert walked <= WALKS_EXPECTED, f"pip walked back through releases of {sorted(walked)}"
