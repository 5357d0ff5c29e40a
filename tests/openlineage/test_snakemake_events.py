"""OpenLineage events of real Snakemake workflows (`--logger flowprov`), sent by the Snakemake
process itself through the client's file or HTTP transport, checked against the schemas and
against what the store recorded."""

from __future__ import annotations

import re

import flowprov as fp
import pytest

from tests.openlineage.helpers import (
    by_run,
    check_against_store,
    check_lifecycles,
    facet,
    run_id,
    validate_all,
)
from tests.openlineage.schema import read_ndjson, validate_event
from tests.snakemake.conftest import Workflow, shim  # noqa: F401 - a fixture used here

COUNT = """
SAMPLES = ["A", "B", "C"]

rule all:
    input: "summary.txt"

rule count:
    input: "data/{s}.txt"
    output: "counts/{s}.txt"
    shell: "wc -c < {input} > {output}"

rule summarize:
    input: expand("counts/{s}.txt", s=SAMPLES)
    output: "summary.txt"
    shell: "cat {input} > {output}"
"""

FAILING = """
rule all:
    input: "b.txt"

rule a:
    output: "a.txt"
    shell: "echo a > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    shell: "echo partial > {output}; exit 1"
"""


@pytest.fixture
def counting(instance, fp_env) -> Workflow:
    """The COUNT workflow in a folder declared as storage, its three inputs written."""
    root = fp_env / "workflow"
    root.mkdir()
    fp.Storage(root, description="the workflow's folder").save()
    wf = Workflow(root)
    wf.write("Snakefile", COUNT)
    for s in "ABC":
        wf.write(f"data/{s}.txt", f"sample {s}\n" * (ord(s) - 60))
    return wf


def without_client_tags(event: dict) -> dict:
    """The event as flowprov made it: the client adds a tag of its own when it sends one."""
    import copy

    event = copy.deepcopy(event)
    for part in (event["run"], event["job"]):
        tags = (part.get("facets") or {}).get("tags")
        if tags:
            tags["tags"] = [t for t in tags["tags"] if t.get("source") != "OPENLINEAGE_CLIENT"]
    return event


def workflow_run():
    return fp.Run.filter(transform__type="pipeline").one()


def test_every_event_of_a_workflow_is_valid_and_says_what_the_store_holds(counting, ol_file):
    counting.run()
    events = ol_file.events()
    validate_all(events)
    runs = fp.Run.filter().all()
    wf_name = workflow_run().transform.name
    assert sorted(r.transform.name for r in runs) == sorted(
        [wf_name, "all", "count", "count", "count", "summarize"]
    )
    pairs = check_against_store(events, runs, "oltest", "snakemake")
    wf = workflow_run()
    # a rule's job is named after its workflow; its parent facet is the workflow's run
    summarize = fp.Run.filter(transform__name="summarize").one()
    start, final = pairs[run_id(summarize.uid)]
    assert final["job"]["name"] == f"{wf.transform.name}.summarize"
    assert facet(final, "run", "parent")["run"]["runId"] == run_id(wf.uid)
    # its inputs are the three counts, as files of this host, each version its content hash
    counts = {a.key: a for a in fp.Artifact.filter(key__startswith="counts/")}
    assert len(counts) == 3
    assert sorted(d["name"] for d in final["inputs"]) == sorted(
        str(a.path) for a in counts.values()
    )
    for d in final["inputs"]:
        assert d["namespace"].startswith("file://") and d["name"].startswith("/")
        (a,) = [a for a in counts.values() if str(a.path) == d["name"]]
        assert d["facets"]["version"]["datasetVersion"] == a.hash
    assert [d["name"] for d in final["outputs"]] == [str(counting.root / "summary.txt")]
    # the engine and its version, and the rule's code
    import snakemake

    engine = facet(final, "run", "processing_engine")
    assert engine is not None, "no processing_engine facet on a Snakemake rule run"
    assert (engine["name"], engine["version"]) == ("snakemake", snakemake.__version__)
    assert "cat {input} > {output}" in facet(final, "job", "sourceCode")["sourceCode"]
    # the workflow's START is the first event written, its COMPLETE the last
    assert events[0]["run"]["runId"] == run_id(wf.uid) and events[0]["eventType"] == "START"
    assert events[-1]["run"]["runId"] == run_id(wf.uid)
    assert events[-1]["eventType"] == "COMPLETE"


def test_a_rule_run_twice_is_one_job_with_two_runs(counting, ol_file):
    counting.run()
    counting.run("--forcerun", "count")
    events = ol_file.events()
    validate_all(events)
    pairs = check_lifecycles(events)
    wf_name = fp.Run.filter(transform__type="pipeline").first().transform.name
    count_runs = {rid: f for rid, (s, f) in pairs.items() if f["job"]["name"].endswith(".count")}
    assert {f["job"]["name"] for f in count_runs.values()} == {f"{wf_name}.count"}
    assert len(count_runs) == 6  # 3 samples × 2 runs of the workflow: 6 runIds, one job
    recorded = fp.Run.filter(transform__name="count").all()
    assert {run_id(r.uid) for r in recorded} == set(count_runs)
    assert len({r.transform.uid for r in recorded}) == 1  # the store agrees: one transform
    # two workflow runs: two runIds of the one workflow job
    wf_runs = fp.Run.filter(transform__type="pipeline").all()
    assert len(wf_runs) == 2 and {run_id(r.uid) for r in wf_runs} <= set(pairs)
    check_against_store(events, fp.Run.filter().all(), "oltest", "snakemake")


def test_a_failing_rule_is_a_fail_with_its_error(instance, fp_env, ol_file):
    root = fp_env / "failing"
    root.mkdir()
    wf = Workflow(root)
    wf.write("Snakefile", FAILING)
    assert wf.run(check=False).returncode != 0
    events = ol_file.events()
    validate_all(events)
    pairs = check_against_store(events, fp.Run.filter().all(), "oltest", "snakemake")
    b = fp.Run.filter(transform__name="b").one()
    assert b.status == "failed" and "exit status 1" in b.error
    _, final = pairs[run_id(b.uid)]
    assert final["eventType"] == "FAIL"
    error = facet(final, "run", "errorMessage")
    assert error is not None and "exit status 1" in error["message"]
    a = fp.Run.filter(transform__name="a").one()
    assert pairs[run_id(a.uid)][1]["eventType"] == "COMPLETE"
    assert pairs[run_id(workflow_run().uid)][1]["eventType"] == "FAIL"


def test_over_http_the_workflow_starts_first_and_completes_last(counting, ol_http):
    counting.run()
    wf = workflow_run()
    n_runs = fp.Run.filter().count()
    events = ol_http.wait_for(2 * n_runs)
    validate_all(events)
    check_against_store(events, fp.Run.filter().all(), "oltest", "snakemake")
    order = [(e["run"]["runId"], e["eventType"]) for e in events]
    wf_id = run_id(wf.uid)
    rules = [i for i, (rid, _) in enumerate(order) if rid != wf_id]
    assert order.index((wf_id, "START")) < min(rules), order
    assert order.index((wf_id, "COMPLETE")) > max(rules), order


def test_the_export_is_the_recorded_history_with_the_same_run_ids(counting, ol_file, run_flowprov):
    counting.run()
    live = by_run(ol_file.events())
    summary = fp.Artifact.filter(key="summary.txt").one()
    out = counting.root.parent / "backfill.ndjson"
    run_flowprov("export", summary.uid, "--format", "openlineage", "-o", str(out))
    exported = read_ndjson(out)
    validate_all(exported)
    pairs = check_lifecycles(exported)
    # time order, START + final per run
    times = [e["eventTime"] for e in exported]
    from tests.openlineage.helpers import when

    assert [when(e) for e in exported] == sorted(when(e) for e in exported), times
    # the summary's history: summarize, the three counts, and their workflow
    recorded = {run_id(r.uid): r for r in fp.Run.filter() if r.transform.name != "all"}
    assert set(pairs) >= {
        rid for rid, r in recorded.items() if r.transform.name in ("summarize", "count")
    }
    assert run_id(workflow_run().uid) in pairs
    # each run exported as it was sent live: same runId, job, type, times, datasets
    for rid, (start, final) in pairs.items():
        assert rid in live, f"run {rid} exported but never sent live"
        for got, sent in zip((start, final), live[rid], strict=True):
            assert {k: got[k] for k in ("eventType", "eventTime", "job", "run")} == {
                k: without_client_tags(sent)[k] for k in ("eventType", "eventTime", "job", "run")
            }
            assert got.get("inputs") == sent.get("inputs") or sent["eventType"] == "START"
            assert got.get("outputs", []) == sent.get("outputs", [])


def test_an_unreachable_endpoint_warns_once_spools_and_replays(
    counting, ol_http_down, run_flowprov, fp_env
):
    proc = counting.run()  # succeeds
    assert (counting.root / "summary.txt").exists()
    warnings = [line for line in proc.stderr.splitlines() if re.search("openlineage", line, re.I)]
    assert len(warnings) == 1, proc.stderr[-3000:]
    assert "flowprov replay" in warnings[0]
    spooled = sorted((fp_env / "cache" / "journal" / "openlineage").glob("*"))
    assert len(spooled) == 1, spooled
    assert ol_http_down.bodies == []
    # the receiver comes up: replay sends every run's events, once
    ol_http_down.start()
    out = run_flowprov("replay")
    n_runs = fp.Run.filter().count()
    events = ol_http_down.wait_for(2 * n_runs)
    validate_all(events)
    check_against_store(events, fp.Run.filter().all(), "oltest", "snakemake")
    assert not list((fp_env / "cache" / "journal" / "openlineage").glob("*")), out.stdout
    run_flowprov("replay")
    import time

    time.sleep(1)
    assert len(ol_http_down.bodies) == 2 * n_runs  # nothing sent twice


def test_with_nothing_configured_nothing_is_emitted_nor_imported(counting, shim, tmp_path):  # noqa: F811
    report = tmp_path / "modules.txt"
    env = shim(
        f"""
        import atexit, sys

        def _report():
            names = sorted(m for m in sys.modules if m == "openlineage" or m.startswith("openlineage."))
            open({str(report)!r}, "w").write("\\n".join(names))

        atexit.register(_report)
        """
    )
    env["HOME"] = str(tmp_path / "home")  # no ~/.openlineage/openlineage.yml
    counting.run(env=env)
    assert fp.Run.filter(transform__name="count").count() == 3  # recorded all the same
    assert report.exists() and report.read_text() == ""
    assert not list(tmp_path.rglob("*.ndjson")) and not list(tmp_path.rglob("openlineage"))


def test_one_event_of_each_type_reads_back_into_the_clients_models(counting, ol_file):
    """The client's own models hold every field flowprov wrote (validate_event round-trips)."""
    counting.run()
    model = validate_event(ol_file.events()[-1])
    assert model.eventType.value == "COMPLETE" and model.job.facets["jobType"].integration
