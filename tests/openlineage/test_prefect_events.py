"""OpenLineage events of real Prefect 3 flows run with `@track()` in this process (Prefect's
temporary local server), through the client's file and HTTP transports."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect reads its settings when imported (as tests/prefect/conftest.py sets them)
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="flowprov-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
prefect = pytest.importorskip("prefect", reason="pip install 'flowprov[prefect]'")

import flowprov as fp  # noqa: E402
from flowprov.prefect import track  # noqa: E402
from prefect import flow, task  # noqa: E402

from tests.openlineage.helpers import (  # noqa: E402
    check_against_store,
    facet,
    flush,
    run_id,
    validate_all,
)


@task
def normalize(counts: Path) -> Path:
    out = Path("normalized.tsv")
    out.write_text(counts.read_text().upper())
    return out


@task
def score(path: Path, factor: int) -> Path:
    out = Path(f"score_{factor}.txt")
    out.write_text(f"{len(path.read_text()) * factor}\n")
    return out


@task
def explode(path: Path) -> Path:
    raise ValueError(f"cannot read {path.name}: bad header")


@track()
@flow(name="integrated-analysis", version="1.2")
def analysis(counts: Path) -> list[Path]:
    n = normalize(counts)
    return [f.result() for f in score.map(n, [1, 2])]


@track()
@flow(name="broken-analysis")
def broken(counts: Path) -> Path:
    n = normalize(counts)
    return explode(n)


@pytest.fixture
def workdir(instance, fp_env, monkeypatch) -> Path:
    d = fp_env / "analysis"
    d.mkdir()
    monkeypatch.chdir(d)
    Path("counts.tsv").write_text("gene\tn\nifng\t3\n")
    return d


def flow_run():
    return fp.Run.filter(transform__type="flow").one()


def test_a_flows_events_are_valid_and_say_what_the_store_holds(workdir, ol_file):
    analysis(Path("counts.tsv"))
    flush()
    events = ol_file.events()
    validate_all(events)
    runs = fp.Run.filter().all()
    assert sorted(r.transform.name for r in runs) == [
        "integrated-analysis",
        "normalize",
        "score",
        "score",
    ]
    pairs = check_against_store(events, runs, "oltest", "prefect")
    fr = flow_run()
    for r in fr.children:
        start, final = pairs[run_id(r.uid)]
        assert final["job"]["name"] == f"integrated-analysis.{r.transform.name}"
        assert facet(final, "run", "parent")["run"]["runId"] == run_id(fr.uid)
        engine = facet(final, "run", "processing_engine")
        assert engine is not None and (engine["name"], engine["version"]) == (
            "prefect",
            prefect.__version__,
        )
        assert facet(final, "job", "sourceCode")["language"] == "python"
    # the score runs: one job, two runs
    scores = [f for s, f in pairs.values() if f["job"]["name"].endswith(".score")]
    assert len(scores) == 2 and len({f["run"]["runId"] for f in scores}) == 2
    norm = fp.Run.filter(transform__name="normalize").one()
    (out,) = pairs[run_id(norm.uid)][1]["outputs"]
    assert out["name"] == str(workdir / "normalized.tsv")
    assert out["facets"]["version"]["datasetVersion"] == norm.outputs.one().hash


def test_a_task_that_raises_is_a_fail_with_its_error(workdir, ol_file):
    with pytest.raises(ValueError, match="bad header"):
        broken(Path("counts.tsv"))
    flush()
    events = ol_file.events()
    validate_all(events)
    pairs = check_against_store(events, fp.Run.filter().all(), "oltest", "prefect")
    bad = fp.Run.filter(transform__name="explode").one()
    assert bad.status == "failed"
    _, final = pairs[run_id(bad.uid)]
    assert final["eventType"] == "FAIL"
    error = facet(final, "run", "errorMessage")
    assert error is not None and "bad header" in error["message"]
    assert error["programmingLanguage"] == "python"
    assert pairs[run_id(flow_run().uid)][1]["eventType"] == "FAIL"
    ok = fp.Run.filter(transform__name="normalize").one()
    assert pairs[run_id(ok.uid)][1]["eventType"] == "COMPLETE"


def test_over_http_the_flow_starts_before_its_tasks_and_completes_after(workdir, ol_http):
    analysis(Path("counts.tsv"))
    flush()
    runs = fp.Run.filter().all()
    events = ol_http.wait_for(2 * len(runs))
    validate_all(events)
    check_against_store(events, runs, "oltest", "prefect")
    fr = run_id(flow_run().uid)
    order = [(e["run"]["runId"], e["eventType"]) for e in events]
    tasks = [i for i, (rid, _) in enumerate(order) if rid != fr]
    assert len(tasks) == 6
    assert order.index((fr, "START")) < min(tasks), order
    assert order.index((fr, "COMPLETE")) > max(tasks), order


def test_through_a_store_writer_the_events_are_the_same(workdir, ol_file, monkeypatch):
    """A flow whose events a store writer process applies (any flow of more than a hundred
    tasks): that process sends the OpenLineage events, and `flush()` waits for them too."""
    from flowprov import store_writer
    from flowprov_prefect import recorder

    monkeypatch.setattr(store_writer, "WRITER_AFTER", 0)
    monkeypatch.setenv("FLOWPROV_STORE_WRITER", "on")
    try:
        test_a_flows_events_are_valid_and_say_what_the_store_holds(workdir, ol_file)
        (writer,) = [s._writer for s in recorder._sinks.values() if s._writer is not None]
        assert writer.proc.poll() is None
    finally:
        recorder.close()


def test_a_flow_starts_the_sender_process_with_its_first_run(workdir, ol_file):
    """A flow run tells many runs: the process that sends the events starts when the flow run
    starts (its import overlaps the first tasks), not after SENDER_AFTER signals."""
    from flowprov.openlineage import emitter

    analysis(Path("counts.tsv"))
    flush()
    em = emitter._emitter
    assert em is not None and em.n_signals < emitter.SENDER_AFTER  # too few to start it late
    assert em.proc is not None and em.proc.poll() is None
    assert len(ol_file.events()) == 2 * 4  # everything went through it, START and final
