"""Checks shared by the OpenLineage tests: what the contract says every run's events are, read
against the store's own records."""

from __future__ import annotations

import socket
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from tests.openlineage.schema import validate_event

FINAL = {"COMPLETE", "FAIL", "ABORT", "OTHER"}
# the store's run status → the final event's type (contract)
FINAL_OF_STATUS = {
    "completed": "COMPLETE",
    "cached": "COMPLETE",
    "failed": "FAIL",
    "crashed": "FAIL",
    "aborted": "ABORT",
    "cancelled": "ABORT",
    "unknown": "OTHER",
}


def run_id(uid: str) -> str:
    from flowprov.openlineage.mapping import run_id as mapped

    return str(mapped(uid))


def validate_all(events: list[dict]) -> None:
    assert events, "no OpenLineage events"
    for event in events:
        validate_event(event)


def by_run(events: list[dict]) -> dict[str, list[dict]]:
    """Each run's events, in the order they were written / arrived."""
    out: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        out[e["run"]["runId"]].append(e)
    return dict(out)


def when(event: dict) -> datetime:
    t = datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
    assert t.tzinfo is not None, f"eventTime without a time zone: {event['eventTime']}"
    return t


def utc(t: datetime) -> datetime:
    """A store time (naive = UTC, as flowprov keeps them) as an aware UTC datetime."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def check_lifecycles(events: list[dict]) -> dict[str, tuple[dict, dict]]:
    """Every run: one START first, then one final event, no earlier in time; → runId: (start, final)."""
    out = {}
    for rid, evs in by_run(events).items():
        types = [e["eventType"] for e in evs]
        assert len(evs) == 2 and types[0] == "START" and types[1] in FINAL, (
            f"run {rid} ({evs[0]['job']['name']}): events {types}, expected START then one final"
        )
        assert when(evs[0]) <= when(evs[1]), f"run {rid}: final event before its START"
        out[rid] = (evs[0], evs[1])
    return out


def job_name(transform) -> str:
    """The contract's job name: the transform's, after its parent's and a dot."""
    return f"{transform.parent.name}.{transform.name}" if transform.parent else transform.name


def host_namespace() -> str:
    return f"file://{socket.gethostname()}"


def facet(event: dict, where: str, name: str) -> dict | None:
    return ((event["run"] if where == "run" else event["job"]).get("facets") or {}).get(name)


def tags(event: dict, where: str) -> dict[str, str]:
    """flowprov's tags (the client adds its own, openlineage_client_version)."""
    f = facet(event, where, "tags") or {}
    return {t["key"]: t["value"] for t in f.get("tags", []) if t["key"].startswith("flowprov.")}


def datasets(event: dict, side: str) -> set[tuple[str, str, str | None]]:
    return {
        (
            d["namespace"],
            d["name"],
            ((d.get("facets") or {}).get("version") or {}).get("datasetVersion"),
        )
        for d in event.get(side) or []
    }


def artifact_datasets(artifacts) -> set[tuple[str, str, str | None]]:
    """What the contract says a run's recorded files are as datasets: local files only here."""
    return {(host_namespace(), str(a.path), a.hash) for a in artifacts}


def check_against_store(events: list[dict], runs, namespace: str, engine: str | None) -> dict:
    """Every recorded run has exactly START + final with the contract's mapping; no other run
    has events. → runId: (start, final)."""
    pairs = check_lifecycles(events)
    expected = {run_id(r.uid): r for r in runs}
    assert set(pairs) == set(expected), (
        f"runs with events but not recorded: {sorted(set(pairs) - set(expected))}; "
        f"recorded runs without events: "
        f"{sorted(expected[k].uid for k in set(expected) - set(pairs))}"
    )
    for rid, run in expected.items():
        start, final = pairs[rid]
        what = f"run {run.uid} ({run.transform.name}, {run.status})"
        assert uuid.UUID(rid).version == 5, f"{what}: runId {rid} is not a uuid5"
        for e in (start, final):
            assert e["job"]["namespace"] == namespace, f"{what}: job namespace"
            assert e["job"]["name"] == job_name(run.transform), f"{what}: job name"
        assert final["eventType"] == FINAL_OF_STATUS[run.status], f"{what}: final event type"
        assert when(start) == utc(run.started_at), f"{what}: START eventTime vs started_at"
        assert when(final) == utc(run.finished_at), f"{what}: final eventTime vs finished_at"
        jt = facet(final, "job", "jobType")
        assert jt is not None, f"{what}: no jobType facet"
        assert (jt["processingType"], jt["integration"], jt.get("jobType")) == (
            "BATCH",
            (engine or "flowprov").upper(),
            run.transform.type.upper(),
        ), f"{what}: jobType facet {jt}"
        run_tags = tags(final, "run")
        assert run_tags == {"flowprov.run": run.uid, "flowprov.status": run.status}, (
            f"{what}: run tags {run_tags}"
        )
        assert tags(final, "job").get("flowprov.transform") == run.transform.uid, what
        parent = facet(final, "run", "parent")
        if run.parent is None:
            assert parent is None, f"{what}: a parent facet on a top-level run"
        else:
            assert parent is not None, f"{what}: no parent facet"
            assert parent["run"]["runId"] == run_id(run.parent.uid), f"{what}: parent runId"
            assert (parent["job"]["namespace"], parent["job"]["name"]) == (
                namespace,
                job_name(run.parent.transform),
            ), f"{what}: parent job {parent['job']}"
            root = run.parent.parent
            if root is None:
                assert "root" not in parent, f"{what}: root in the parent facet of a depth-1 run"
            else:
                while root.parent is not None:
                    root = root.parent
                assert parent["root"]["run"]["runId"] == run_id(root.uid), f"{what}: root"
        error = facet(final, "run", "errorMessage")
        if final["eventType"] == "FAIL" and run.error:
            assert error is not None and error["message"].strip(), f"{what}: no errorMessage"
        elif final["eventType"] != "FAIL":
            assert error is None, f"{what}: errorMessage on a {final['eventType']}"
        if run.transform.source_code:
            sc = facet(final, "job", "sourceCode")
            assert sc is not None and sc["sourceCode"] == run.transform.source_code, (
                f"{what}: sourceCode facet"
            )
        assert datasets(final, "outputs") == artifact_datasets(run.outputs), f"{what}: outputs"
        assert datasets(final, "inputs") == artifact_datasets(run.inputs), f"{what}: inputs"
        assert datasets(start, "inputs") <= artifact_datasets(run.inputs), f"{what}: START inputs"
        assert not start.get("outputs"), f"{what}: outputs on START"
    return pairs


def flush(timeout: float = 60) -> None:
    """Wait for this process's OpenLineage events (the contract's `flowprov.openlineage.flush`)."""
    from flowprov import openlineage as ol

    done = ol.flush(timeout) if hasattr(ol, "flush") else ol.emitter.flush(timeout)
    assert done is not False, f"OpenLineage events still queued after {timeout} s"
