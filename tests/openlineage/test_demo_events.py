"""Every OpenLineage event `flowprov demo` emits — app upload, notebooks, scripts, a Snakemake
workflow, a Prefect flow — through the client's file transport: valid, read back by the client's
models, START then one final event per run, one per recorded run. (~50 s: one test.)"""

from __future__ import annotations

import os
import subprocess

import flowprov as fp
import pytest

from tests.conftest import _reset_process_state
from tests.openlineage.helpers import check_against_store, check_lifecycles, validate_all
from tests.openlineage.schema import read_ndjson
from tests.test_demo import REPO, play


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory):
    """The demo played in a fresh clone (as tests/test_demo.py plays it) with a file transport
    configured in its environment only: (events, the env)."""
    if not (REPO / ".git").exists():
        pytest.skip("needs the git checkout of flowprov (the demo is played in a fresh clone)")
    tmp = tmp_path_factory.mktemp("ol-demo")
    clone = tmp / "flowprov"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    for name in ("FLOWPROV_INSTANCE", "FLOWPROV_USER", "JPY_SESSION_NAME", "PREFECT_HOME"):
        env.pop(name, None)
    events = tmp / "events.ndjson"
    env.update(
        FLOWPROV_CONFIG_DIR=str(tmp / "config"),
        FLOWPROV_CACHE_DIR=str(tmp / "cache"),
        XDG_DATA_HOME=str(tmp / "data-home"),
        OPENLINEAGE__TRANSPORT__TYPE="file",
        OPENLINEAGE__TRANSPORT__LOG_FILE_PATH=str(events),
        OPENLINEAGE__TRANSPORT__APPEND="true",
        OPENLINEAGE_NAMESPACE="demo-lab",
    )
    play(clone, env)
    return read_ndjson(events), env


def test_every_event_of_the_demo(demo_events, monkeypatch):
    events, env = demo_events
    validate_all(events)
    check_lifecycles(events)
    for name in ("FLOWPROV_CONFIG_DIR", "FLOWPROV_CACHE_DIR", "XDG_DATA_HOME"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("FLOWPROV_INSTANCE", "flowprov-demo")
    _reset_process_state()
    try:
        runs = fp.Run.filter().all()
        engines = {r.engine for r in runs}
        assert {"snakemake", "prefect"} <= engines
        # each run with its own engine (None: flowprov's API, scripts, notebooks)
        pairs = check_lifecycles(events)
        for engine in engines:
            subset = [r for r in runs if r.engine == engine]
            check_against_store(
                [e for e in events if e["run"]["runId"] in _ids(subset)], subset, "demo-lab", engine
            )
        assert len(pairs) == len(runs)
        integrations = {f["job"]["facets"]["jobType"]["integration"] for _, f in pairs.values()}
        assert {"SNAKEMAKE", "PREFECT", "FLOWPROV"} <= integrations
    finally:
        _reset_process_state()


def _ids(runs) -> set[str]:
    from tests.openlineage.helpers import run_id

    return {run_id(r.uid) for r in runs}
