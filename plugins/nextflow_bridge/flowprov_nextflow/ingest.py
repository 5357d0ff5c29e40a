"""Nextflow files → flowprov events, applied in one transaction per ingest.

Identity (so re-ingesting changes nothing and a resumed run's CACHED rows link to the tasks
recorded before): a task is (engine "nextflow", its task hash, e.g. `a9/0da8f1`); the pipeline
run is `--run-id` if given, else the pipeline name plus the earliest submit time in the trace
(a later, longer trace of the same run has the same first task). From the lineage store, runs are
their `lid://` ids.

Task params keep the trace's figures in fixed units: `*_ms` durations, `*_bytes` memory and I/O,
`cpu_percent`/`mem_percent` (100 = one core / all memory), ISO-8601 UTC times.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flowprov.errors import ValidationError

from . import workdir as W
from .mapping import Mapping
from .trace import DATE_FIELDS, MEM_FIELDS, TIME_FIELDS, TraceError, read_trace

ENGINE = "nextflow"
_STATUS = {"COMPLETED": "completed", "FAILED": "failed", "ABORTED": "aborted", "CACHED": "cached"}
_NOT_PARAMS = {"name", "status", "process", "script", "workdir", "env"}


@dataclass
class IngestReport:
    pipeline_run: str | None = None
    tasks: int = 0  # rows (or TaskRun records) read
    new_runs: int = 0  # task and pipeline runs recorded now
    known_runs: int = 0  # ... found already recorded (re-ingest, CACHED rows of a resumed run)
    new_artifacts: int = 0
    skipped: list[str] = field(default_factory=list)

    def absorb(self, counts: dict) -> None:
        runs = counts.get("run_started", {})
        self.new_runs, self.known_runs = runs.get("new", 0), runs.get("existing", 0)
        self.new_artifacts = counts.get("artifact_registered", {}).get("new", 0)


def _param_name(f: str) -> str:
    if f in TIME_FIELDS:
        return f"{f}_ms"
    if f in MEM_FIELDS:
        return f"{f}_bytes"
    return {"%cpu": "cpu_percent", "%mem": "mem_percent"}.get(f, f)


_PARAM_NAMES = {f: _param_name(f) for f in TIME_FIELDS | MEM_FIELDS | {"%cpu", "%mem"}}


def task_params(values: dict, tag: str | None) -> dict:
    out = {}
    for f, v in values.items():
        if f in _NOT_PARAMS or v is None:
            continue
        if f in ("task_id", "exit") and v.lstrip("-").isdigit():
            v = int(v)  # numbers, though Nextflow types them as strings
        out[_PARAM_NAMES.get(f, f)] = v.isoformat() if f in DATE_FIELDS else v
    if tag is not None:
        out["tag"] = tag
    return out


def _times(v: dict) -> tuple[datetime | None, datetime | None]:
    from datetime import timedelta

    start = v.get("start") or v.get("submit")
    end = v.get("complete")
    if end is None and start is not None:
        ms = v.get("realtime") if v.get("start") else v.get("duration")
        end = start + timedelta(milliseconds=ms) if ms is not None else None
    return start, end


def _default_name(trace: Path) -> str:
    """Without --pipeline: the launch folder's name (<launch>/results/pipeline_info/trace.txt)."""
    p = trace.resolve()
    if p.parent.name == "pipeline_info" and len(p.parents) > 2:
        return p.parents[2].name
    return p.parent.name or "nextflow pipeline"


def ingest_trace(
    trace: str | os.PathLike,
    *,
    workdir: str | os.PathLike | None = None,
    pipeline: str | None = None,
    version: str | None = None,
    mapping: str | os.PathLike | None = None,
    run_id: str | None = None,
    sep: str | None = None,
    skip_bad_rows: bool = False,
) -> IngestReport:
    """Record a Nextflow trace (and, with `workdir`, each task's files and script)."""
    from flowprov.artifacts import in_place_event
    from flowprov.events import (
        ArtifactRef,
        ArtifactUsed,
        RunFinished,
        RunRef,
        RunStarted,
        StorageDeclared,
        TransformSpec,
    )
    from flowprov.instance import current
    from flowprov.storage import StorageRoot
    from flowprov.uids import RUN_UID, random_uid

    trace = Path(trace)
    work = Path(workdir).resolve() if workdir is not None else None
    if work is not None and not work.is_dir():
        raise ValidationError(f"--workdir {work}: no such folder")
    rules = Mapping.load(mapping)
    report = IngestReport()

    # One streaming pass inside one transaction: a bad row raises and rolls everything back.
    name = pipeline or _default_name(trace)
    wf_spec = TransformSpec(name=name, type="pipeline", key=f"nextflow:{name}", version=version)
    inst = current()
    roots = list(inst.storages().values()) + ([StorageRoot(str(work))] if work else [])
    state = {"ref": None}

    def process_spec(process: str, script: str | None, cache: dict) -> TransformSpec:
        spec = cache.get(process)
        if spec is None:
            rule = rules.lookup(process)
            spec = TransformSpec(
                name=(rule.name if rule and rule.name else process),
                type="process",
                key=f"nextflow:{name}:{process}",
                version=(rule.version if rule else None),
                reference=rule.reference if rule else None,
                reference_type=(rule.reference_type or "url") if rule and rule.reference else None,
                description=rule.description if rule else None,
                source_code=script,
                parent=wf_spec,
            )
            cache[process] = spec
        return spec

    def pipeline_run(first) -> tuple[RunRef, list]:
        # A trace grows by appending rows in completion order, so its first row identifies the
        # run: a later, longer trace of the same run maps to the same pipeline Run.
        v = first.values if first else {}
        anchor = v.get("submit") or v.get("start")
        ref = (
            run_id
            or f"trace:{name}:{anchor.isoformat() if anchor else v.get('hash') or trace.resolve()}"
        )
        state["ref"] = ref
        evs = (
            [StorageDeclared(root=str(work), description="Nextflow work directory")] if work else []
        )
        evs.append(
            RunStarted(
                uid=random_uid(RUN_UID),
                transform=wf_spec,
                engine=ENGINE,
                reference=ref,
                reference_type="nextflow run" if run_id else "nextflow trace",
                at=anchor or datetime.now().astimezone(),
                params={"trace": str(trace.resolve())},
            )
        )
        return RunRef(engine=ENGINE, reference=ref), evs  # (its uid differs if recorded before)

    def events():
        specs: dict = {}
        report.tasks, report.skipped[:] = 0, []
        wf_ref, last_end, failed = None, None, False
        for row in read_trace(trace, sep, skip_bad_rows, report.skipped):
            v = row.values
            if wf_ref is None:
                wf_ref, evs = pipeline_run(row)
                yield from evs
            report.tasks += 1
            task = None
            if work is not None:
                where = f"{trace}:{row.line}"
                try:
                    task = W.scan(W.locate(v.get("hash"), v.get("workdir"), work, where))
                except Exception:
                    if not skip_bad_rows:
                        raise
                    report.skipped.append(f"{where}: no work directory")
                    continue
            hash_ = v.get("hash") or (f"{task.path.parent.name}/{task.path.name}" if task else None)
            ref = hash_ or f"{state['ref']}#{v.get('task_id')}"
            start, end = _times(v)
            if end is not None and (last_end is None or end > last_end):
                last_end = end
            status = _STATUS.get(v.get("status") or "", "started")
            failed |= status == "failed"
            # built from values the parser already checked: skip pydantic's re-validation (hot loop)
            yield RunStarted.model_construct(
                uid=random_uid(RUN_UID),
                transform=process_spec(row.process, task.script if task else None, specs),
                parent=wf_ref,
                engine=ENGINE,
                reference=ref,
                reference_type="nextflow task hash",
                name=v.get("name"),
                params=task_params(v, row.tag),
                status=status,
                environment=None,
                at=start or datetime.now().astimezone(),
                finished_at=end,
                created_by=None,
                error=(f"exit status {v.get('exit')}" if status == "failed" else None),
            )
            if task is not None and status in ("completed", "cached"):
                task_ref = RunRef(engine=ENGINE, reference=ref)
                for path in task.inputs:
                    ev = in_place_event(path, roots=roots)
                    yield ev
                    yield ArtifactUsed(run=task_ref, artifact=ArtifactRef(hash=ev.hash))
                for path in task.outputs:
                    yield in_place_event(path, roots=roots, run=task_ref)
        if wf_ref is None:  # a trace with a header and no rows: the run, with no tasks
            wf_ref, evs = pipeline_run(None)
            yield from evs
        yield RunFinished(
            run=wf_ref,
            status="failed" if failed else "completed",
            at=last_end or datetime.now().astimezone(),
        )

    report.absorb(inst.store.apply_stream(events))
    report.pipeline_run = state["ref"]
    return report


# -- the data-lineage store ---------------------------------------------------------------
def read_lineage(store: Path) -> dict[str, dict]:
    """{lid key: record} of a `.lineage` folder (`<key>/.data.json`, key may contain '/')."""
    if not store.is_dir():
        raise ValidationError(f"--lineage {store}: no such folder")
    records = {}
    for data in sorted(store.rglob(".data.json")):
        key = data.parent.relative_to(store).as_posix()
        try:
            rec = json.loads(data.read_text())
        except (OSError, ValueError) as e:
            raise ValidationError(f"{data}: not a lineage record ({e})") from None
        if not isinstance(rec, dict) or "kind" not in rec or "spec" not in rec:
            raise ValidationError(f"{data}: not a lineage record (no kind/spec)")
        records[key] = rec
    if not records:
        raise ValidationError(f"--lineage {store}: no lineage records (.data.json) found")
    return records


def _lid(key: str) -> str:
    return f"lid://{key}"


def _checksum(spec: dict) -> dict | None:
    c = spec.get("checksum")
    return {"nextflow": c} if isinstance(c, dict) and c.get("value") else None


def ingest_lineage(
    store: str | os.PathLike,
    *,
    pipeline: str | None = None,
    version: str | None = None,
    mapping: str | os.PathLike | None = None,
) -> IngestReport:
    """Record WorkflowRun, TaskRun and FileOutput records of Nextflow's data-lineage store.
    Files are hashed by flowprov wherever they are reachable; Nextflow's checksum is kept beside."""
    from flowprov.artifacts import in_place_event
    from flowprov.events import (
        ArtifactRef,
        ArtifactRegistered,
        ArtifactUsed,
        RunRef,
        RunStarted,
        TransformSpec,
    )
    from flowprov.instance import current
    from flowprov.uids import ARTIFACT_STEM, RUN_UID, random_uid

    records = read_lineage(Path(store))
    rules = Mapping.load(mapping)
    by_kind: dict[str, list[tuple[str, dict]]] = {}
    for key, rec in records.items():
        by_kind.setdefault(rec["kind"], []).append((key, rec["spec"]))
    inst = current()
    roots = list(inst.storages().values())
    events, wf_specs, file_hash = [], {}, {}
    for key, spec in by_kind.get("WorkflowRun", []):
        wf = spec.get("workflow") or {}
        name = pipeline or wf.get("repository") or spec.get("name") or "nextflow pipeline"
        ver = version or (wf.get("commitId") or None)
        wf_specs[_lid(key)] = TransformSpec(
            name=name,
            type="pipeline",
            key=f"nextflow:{name}",
            version=ver,
            reference=wf.get("repository"),
            reference_type="repository" if wf.get("repository") else None,
        )
        params = spec.get("params")
        if isinstance(params, list):
            params = {p.get("name"): p.get("value") for p in params if isinstance(p, dict)}
        events.append(
            RunStarted(
                uid=random_uid(RUN_UID),
                transform=wf_specs[_lid(key)],
                engine=ENGINE,
                reference=_lid(key),
                reference_type="nextflow lid",
                name=spec.get("name"),
                params=params or None,
                status="completed",
            )
        )
    default_wf = next(
        iter(wf_specs.values()),
        TransformSpec(
            name=pipeline or "nextflow pipeline",
            type="pipeline",
            key=f"nextflow:{pipeline or 'nextflow pipeline'}",
        ),
    )
    tasks = by_kind.get("TaskRun", [])
    for key, spec in tasks:
        wf_lid = spec.get("workflowRun")
        parent_spec = wf_specs.get(wf_lid, default_wf)
        process = spec.get("name") or "process"
        rule = rules.lookup(process)
        code = spec.get("codeChecksum") or {}
        tspec = TransformSpec(
            name=rule.name if rule and rule.name else process,
            type="process",
            key=f"{parent_spec.key}:{process}",
            version=rule.version if rule else None,
            reference=rule.reference if rule else None,
            source_code=spec.get("script"),
            hash=code.get("value"),
            parent=parent_spec,
        )
        events.append(
            RunStarted(
                uid=random_uid(RUN_UID),
                transform=tspec,
                engine=ENGINE,
                reference=_lid(key),
                reference_type="nextflow lid",
                name=process,
                parent=RunRef(engine=ENGINE, reference=wf_lid) if wf_lid in wf_specs else None,
                params={
                    "input": spec.get("input"),
                    "container": spec.get("container"),
                    "codeChecksum": code or None,
                },
                status="completed",
            )
        )
    for key, spec in by_kind.get("FileOutput", []):
        path = spec.get("path")
        task_lid, wf_lid = spec.get("taskRun"), spec.get("workflowRun")
        if task_lid and task_lid[len("lid://") :] in records:
            run = RunRef(engine=ENGINE, reference=task_lid)
        elif wf_lid in wf_specs:  # a published workflow output: the pipeline run made it
            run = RunRef(engine=ENGINE, reference=wf_lid)
        else:
            run = None
        if path and os.path.exists(path):
            ev = in_place_event(path, roots=roots, run=run)
            ev = ev.model_copy(update={"checksums": _checksum(spec)})
        else:  # not reachable from here: Nextflow's checksum stands in, labelled as such
            c = spec.get("checksum") or {}
            if not c.get("value"):
                continue
            p = Path(path or key)
            ev = ArtifactRegistered(
                stem=random_uid(ARTIFACT_STEM),
                storage_root=str(p.parent),
                key=p.name,
                hash=c["value"],
                hash_type=f"nextflow-{c.get('mode', 'standard')}",
                size=spec.get("size"),
                suffix=p.suffix,
                run=run,
                checksums=_checksum(spec),
            )
        file_hash[_lid(key)] = ev.hash
        events.append(ev)
    for key, spec in tasks:
        for inp in spec.get("input") or []:
            values = inp.get("value") if isinstance(inp, dict) else None
            for v in values if isinstance(values, list) else [values]:
                h = file_hash.get(v) if isinstance(v, str) else None
                if h:
                    events.append(
                        ArtifactUsed(
                            run=RunRef(engine=ENGINE, reference=_lid(key)),
                            artifact=ArtifactRef(hash=h),
                        )
                    )
    from flowprov.store import count_by_kind

    report = IngestReport(tasks=len(tasks))
    report.absorb(count_by_kind(inst.store.apply(events), {}))
    report.pipeline_run = next(iter(wf_specs), None)
    return report


__all__ = ["IngestReport", "TraceError", "ingest_lineage", "ingest_trace"]
