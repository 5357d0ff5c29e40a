"""Software environments: the running interpreter's complete software, conda prefixes read from
their own records, one record per distinct environment however many runs use it."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import flowprov as fp
from flowprov import environments as E
from flowprov.events import (
    EnvironmentSpec,
    Package,
    RunFinished,
    RunRef,
    RunStarted,
    TransformSpec,
)

CONDA_META = Path(__file__).parent / "fixtures" / "conda-meta"


def _names(packages) -> set[str]:
    return {p.name.lower().replace("_", "-") for p in packages}


def test_the_interpreters_environment_is_every_installed_distribution():
    from importlib.metadata import packages_distributions

    env = E.python_environment()
    installed = {d.metadata["Name"].lower().replace("_", "-") for d in distributions()}
    assert _names(env.packages) == installed
    # every installed distribution, imported or not: some this process never imported are there
    imported = {
        dist.lower().replace("_", "-")
        for mod, dists in packages_distributions().items()
        if mod in sys.modules
        for dist in dists
    }
    assert installed - imported and (installed - imported) <= _names(env.packages)
    assert env.complete and env.deployed and env.interpreter.startswith("CPython 3.")
    assert env.os and "x86_64" in env.os or "aarch64" in env.os
    # the same object while nothing is installed: no re-reading per run
    assert E.python_environment() is env
    # an editable install says where its code is (its version number alone does not)
    me = next(p for p in env.packages if p.name == "flowprov")
    assert me.channel and me.channel.startswith("editable file://")


def test_installing_a_package_is_seen_by_the_next_run(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = E.python_environment()
    assert "fp-demo-tool" not in _names(before.packages)
    info = site / "fp_demo_tool-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fp-demo-tool\nVersion: 1.0\n")
    after = E.python_environment()
    assert ("fp-demo-tool", "1.0") in {(p.name, p.version) for p in after.packages}
    assert after.digest() != before.digest()
    # an upgrade: the old metadata folder goes, a new one comes
    shutil.rmtree(info)
    info2 = site / "fp_demo_tool-2.0.dist-info"
    info2.mkdir()
    (info2 / "METADATA").write_text("Metadata-Version: 2.1\nName: fp-demo-tool\nVersion: 2.0\n")
    upgraded = E.python_environment()
    assert ("fp-demo-tool", "2.0") in {(p.name, p.version) for p in upgraded.packages}
    assert "1.0" not in {p.version for p in upgraded.packages if p.name == "fp-demo-tool"}


def test_the_disk_cache_serves_the_next_process_and_a_damaged_one_is_read_again(fp_env):
    code = (
        "import json, time; from flowprov.environments import python_environment as p;"
        "t = time.perf_counter(); e = p(); "
        "print(json.dumps([e.digest(), len(e.packages), time.perf_counter() - t]))"
    )

    def run():
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
        )
        return json.loads(out.stdout)

    first = run()
    cached = list((fp_env / "cache" / "environments").glob("python-*.json"))
    assert len(cached) == 1
    second = run()
    assert second[:2] == first[:2]
    cached[0].write_text("{not json")
    third = run()
    assert third[:2] == first[:2]
    assert first[0] == E.python_environment().digest()  # the same in this process


def test_a_conda_prefix_is_read_from_its_conda_meta_records(tmp_path, caplog):
    prefix = tmp_path / "env"
    (prefix / "conda-meta").mkdir(parents=True)
    for f in CONDA_META.glob("*.json"):
        shutil.copy(f, prefix / "conda-meta" / f.name)
    (prefix / "conda-meta" / "history").write_text("==> 2024-05-01 <==\n")  # not a record
    (prefix / "conda-meta" / "broken-1.0-0.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="flowprov"):
        pkgs = E.conda_meta_packages(prefix)
    got = {(p.name, p.version, p.build, p.channel, p.source) for p in pkgs}
    assert got == {
        ("bzip2", "1.0.8", "h93a5062_5", "conda-forge", "conda"),
        ("libzlib", "1.2.13", "h53f4e23_5", "conda-forge", "conda"),
        ("pysocks", "1.7.1", "pyh0701188_6", "conda-forge", "conda"),
        ("python_abi", "3.11", "4_cp311", "conda-forge", "conda"),
        ("requests", "2.28.2", "pyhd8ed1ab_0", "conda-forge", "conda"),
        ("zstd", "1.5.6", "hb46c0d2_0", "conda-forge", "conda"),
    }
    assert "broken-1.0-0.json" in caplog.text
    assert E.conda_meta_packages(tmp_path / "no-env") is None


def test_an_interpreter_in_a_conda_environment_lists_conda_packages_once(tmp_path, monkeypatch):
    """A Python package conda installed shows both as a conda record and as a distribution
    (INSTALLER says conda): it is kept once, as conda's, with its build and channel."""
    prefix = tmp_path / "env"
    (prefix / "conda-meta").mkdir(parents=True)
    shutil.copy(CONDA_META / "requests-2.28.2-pyhd8ed1ab_0.json", prefix / "conda-meta")
    site = tmp_path / "site"
    info = site / "requests-2.28.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: requests\nVersion: 2.28.2\n")
    (info / "INSTALLER").write_text("conda\n")
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.syspath_prepend(str(site))
    env = E.python_environment()
    reqs = [p for p in env.packages if p.name == "requests"]
    assert [(p.source, p.build, p.channel) for p in reqs] == [
        ("conda", "pyhd8ed1ab_0", "conda-forge")
    ]
    assert env.details == {"conda": True}


def _spec(samtools: str) -> EnvironmentSpec:
    return EnvironmentSpec(
        os="linux-64",
        packages=(
            Package(name="samtools", version=samtools, build="h50ea8bc_0", source="conda"),
            Package(name="htslib", version="1.17", source="conda"),
        ),
        container_image="quay.io/biocontainers/samtools:1.17--h00cdaf9_0",
        deployed=True,
        complete=True,
    )


def test_ten_thousand_runs_in_one_environment_are_one_record(instance):
    rule = TransformSpec(name="sort", type="rule", source_code="samtools sort ...")
    spec = _spec("1.17")
    events = [
        RunStarted(
            uid=f"envrun{i:014d}",
            transform=rule,
            engine="snakemake",
            reference=f"wf/{i}",
            environment=spec if i == 0 else spec.digest(),
        )
        for i in range(10_000)
    ]
    instance.store.apply(events)
    other = _spec("1.18")  # a different version: a different record
    instance.store.apply(
        [RunStarted(uid="envrun-other-0000000", transform=rule, environment=other)]
    )
    assert fp.Environment.filter().count() == 2
    env = fp.Environment.get(hash=spec.digest())
    assert env.uid == spec.digest()[:16] and env.n_packages == 2 and env.complete
    assert env.runs.count() == 10_000
    assert {(p.name, p.version, p.source) for p in env.packages} == {
        ("samtools", "1.17", "conda"),
        ("htslib", "1.17", "conda"),
    }
    q = fp.Run.filter(environment__packages__name="samtools", environment__packages__version="1.17")
    assert q.count() == 10_000
    assert fp.Run.filter(environment__packages__version="1.18").count() == 1
    # two chained filters may match two different packages (htslib 1.17 of the other record)
    chained = fp.Run.filter(environment__packages__name="samtools")
    assert chained.filter(environment__packages__version="1.17").count() == 10_001
    # applying the same again changes nothing
    instance.store.apply(events[:10])
    assert fp.Environment.filter().count() == 2 and env.runs.count() == 10_000


def test_a_run_naming_an_unknown_environment_is_recorded_without_it(instance, caplog):
    t = TransformSpec(name="x", type="script")
    with caplog.at_level(logging.WARNING, logger="flowprov"):
        instance.store.apply(
            [RunStarted(uid="noenvrun000000000001", transform=t, environment="f" * 64)]
        )
    run = fp.Run.get("noenvrun000000000001")
    assert run.environment is None
    assert "is not known" in caplog.text


def test_an_environment_given_at_the_end_replaces_the_one_at_the_start(instance):
    t = TransformSpec(name="x", type="script")
    instance.store.apply(
        [RunStarted(uid="endenvrun00000000001", transform=t, environment=_spec("1.17"))]
    )
    instance.store.apply(
        [
            RunFinished(
                run=RunRef(uid="endenvrun00000000001"),
                environment=_spec("1.18"),
                runtime={"exit": {"code": 0}},
            )
        ]
    )
    run = fp.Run.get("endenvrun00000000001")
    assert run.environment.hash == _spec("1.18").digest()
    assert run.runtime == {"exit": {"code": 0}}


def test_events_spooled_by_an_older_flowprov_still_replay(instance, run_flowprov, fp_env):
    """A spool line of flowprov 0.2 ({"environment": {"python", "platform", "packages"}}): the
    run gets an environment marked as the partial list it was, its exit stays with the run."""
    line = {
        "events": [
            {
                "kind": "run_started",
                "uid": "oldspoolrun000000001",
                "transform": {"name": "qc.py", "type": "script"},
                "environment": {"python": "3.11.4", "platform": "Linux-6.1", "packages": {}},
            },
            {
                "kind": "run_finished",
                "run": {"uid": "oldspoolrun000000001"},
                "status": "completed",
                "environment": {
                    "python": "3.11.4",
                    "platform": "Linux-6.1",
                    "packages": {"pandas": "2.2.0"},
                    "exit": {"code": 0},
                },
            },
        ]
    }
    spool = fp_env / "old-spool.jsonl"
    spool.write_text(json.dumps(line) + "\n")
    run_flowprov("replay", str(spool))
    run = fp.Run.get("oldspoolrun000000001")
    assert run.status == "completed" and run.runtime == {"exit": {"code": 0}}
    env = run.environment
    assert env.interpreter == "Python 3.11.4" and not env.complete
    assert [(p.name, p.version) for p in env.packages] == [("pandas", "2.2.0")]


def test_a_tracked_script_records_its_interpreters_software(instance, fp_env):
    script = fp_env / "analysis.py"
    script.write_text("import flowprov as fp\nfp.track()\nprint('ok')\n")
    subprocess.run([sys.executable, str(script)], check=True, timeout=120, cwd=fp_env)
    run = fp.Run.filter(transform__type="script").one()
    env = run.environment
    assert env is not None and env.complete
    assert env.hash == E.python_environment().digest()  # the same interpreter, the same record
    assert "snakemake" in _names(env.packages)  # installed, never imported by the script


def test_a_run_seen_again_gets_the_environment_it_lacked_and_keeps_the_one_it_had(instance):
    """A trace ingested first without work folders, then with them: the second ingest says what
    the task ran in. A run that already has an environment keeps it."""
    rule = TransformSpec(name="sort", type="process")
    bare = [
        RunStarted(uid=f"seenagain{i:011d}", transform=rule, engine="nextflow", reference=f"h{i}")
        for i in range(60)  # enough for the bulk path too
    ]
    instance.store.apply(bare)
    instance.store.apply(bare[:1])
    assert fp.Run.filter(environment__isnull=False).count() == 0
    again = [
        e.model_copy(update={"uid": f"other{i:015d}", "environment": _spec("1.17")})
        for i, e in enumerate(bare)
    ]
    instance.store.apply(again)  # by (engine, reference), in bulk
    instance.store.apply([bare[0].model_copy(update={"environment": _spec("1.18")})])  # by uid
    runs = fp.Run.filter(engine="nextflow")
    assert runs.count() == 60
    assert {r.environment.hash for r in runs} == {_spec("1.17").digest()}


def test_a_workflow_folder_on_sys_path_changing_does_not_reread_the_software(tmp_path, monkeypatch):
    """Snakemake puts the workflow's folder first on sys.path, and every run writes into it: the
    software is not read again for that (nor does its disk cache miss)."""
    wf = tmp_path / "workflow"
    wf.mkdir()
    monkeypatch.syspath_prepend(str(wf))
    env = E.python_environment()
    key = E._fingerprint()
    (wf / "results.txt").write_text("a run wrote here\n")
    (wf / ".snakemake").mkdir()
    assert E._fingerprint() == key and E.python_environment() is env


def test_a_changed_copy_of_an_environment_has_its_own_digest():
    a = _spec("1.17")
    assert a.digest() == _spec("1.17").digest()  # computed, and cached on `a`
    b = a.model_copy(update={"container_image": "quay.io/biocontainers/samtools:1.18--h1"})
    assert b.digest() != a.digest()
    assert (
        b.digest()
        == EnvironmentSpec(**{**a.model_dump(), "container_image": b.container_image}).digest()
    )
    assert a.model_copy().digest() == a.digest()
