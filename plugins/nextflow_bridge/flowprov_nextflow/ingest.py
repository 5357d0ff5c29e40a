"""Nextflow traces (and task work directories) → flowprov events, one transaction per ingest.

Identity — so that re-ingesting changes nothing, and no task or run is ever taken for another:

- The pipeline run is `--run-id` if given, else `trace:<digest of the trace's first row>`. Rows are
  appended in completion order, so a later, longer copy of the trace (plain or gzipped) has the
  same first row — and the row's text, unlike a converted date, is the same in every time zone.
  A run recorded before keeps its pipeline Transform and its time zone: ingesting it again
  without `--pipeline`, or on a machine in another zone, finds it.
- A task is its full hash (`19/beb69e…`, 128 bits) when its work directory is known (the `workdir`
  column, or its folder under `--workdir`) — the same key the lineage store gives it. Otherwise it
  is `<pipeline run>/task/<task_id>`: a short hash (`19/beb69e`, 32 bits) is shared by two tasks
  of a lab's store before long, and even within one large run.
- A CACHED row is the earlier task run it reuses: the one with its full hash, else the one of the
  same pipeline with its short hash, process and tag. If there is none, or several, the row is
  recorded as its own run (status `cached`) and the report says so — never a guess.

Status: a task's attempts share its name; a pipeline failed if the last attempt of some task
failed (a later row of that name submitted after the failure ended is its next attempt; an
`error_action` column, when present, says RETRY or IGNORE outright). Failed attempts stay failed
runs, with the exit status and error strategy as their error.

Software: each task links to the environment it ran in (software.py): the trace's `container`
column and, with the work folder, its `.command.run` (engine, image, conda/spack prefix, modules)
and the `versions.yml` nf-core modules write. A file that cannot be read is named in
`IngestReport.warnings` and adds nothing.

Task params keep the trace's figures in fixed units: `*_ms` durations, `*_bytes` memory and I/O,
`cpu_percent`/`mem_percent` (100 = one core / all memory), dates as the wall time written in the
trace; started_at/finished_at are those wall times read in the run's time zone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from flowprov.errors import ValidationError

from . import workdir as W
from .launch import LAUNCH, LINEAGE
from .mapping import Mapping
from .software import Environments
from .trace import (
    DATE_FIELDS,
    MEM_FIELDS,
    TIME_FIELDS,
    TraceError,
    first_row_text,
    read_trace,
    to_utc,
    zone,
    zone_name,
)

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
    skipped: list[str] = field(default_factory=list)  # bad rows left out (--skip-bad-rows)
    notes: list[str] = field(default_factory=list)  # what was recorded other than asked, and why
    warnings: list[str] = field(default_factory=list)  # files that could not be read, and so
    not_ingested: list[str] = field(default_factory=list)  # lineage records left out, and why

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
        out[_PARAM_NAMES.get(f, f)] = (
            v.isoformat(timespec="milliseconds") if f in DATE_FIELDS else v
        )
    if tag is not None:
        out["tag"] = tag
    return out


def _times(v: dict, tz: tzinfo) -> tuple[datetime | None, datetime | None]:
    """(start, end) in UTC: start or submit; complete, else start + realtime / submit + duration."""
    start = to_utc(v.get("start") or v.get("submit"), tz)
    end = to_utc(v.get("complete"), tz)
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


def _task_error(v: dict, status: str) -> str | None:
    if status not in ("failed", "aborted"):
        return None
    exit_ = v.get("exit")
    text = f"exit status {exit_}" if exit_ is not None else status
    action = v.get("error_action")
    return f"{text} (error strategy: {action})" if action else text


class _Attempts:
    """Which tasks' last attempt failed. Rows come in completion order and every attempt of a task
    has the task's name; a later row of that name submitted after the failure ended is its next
    attempt (another task that happens to share the name runs alongside, not after)."""

    def __init__(self):
        self.pending: dict[str, tuple[int, datetime | None, str]] = {}  # name → line, end, why

    def see(self, name: str, status: str, v: dict, line: int, submit, end) -> None:
        if status in ("failed", "aborted"):
            if (v.get("error_action") or "").upper() == "IGNORE":
                return  # the pipeline went on without it
            self.pending[name] = (line, end, _task_error(v, status) or status)
        elif status in ("completed", "cached"):
            earlier = self.pending.get(name)
            if earlier is not None and (
                earlier[1] is None or submit is None or submit >= earlier[1]
            ):
                del self.pending[name]

    def error(self) -> str | None:
        if not self.pending:
            return None
        items = sorted(self.pending.items(), key=lambda kv: kv[1][0])
        shown = "; ".join(f"{name}: {why} (line {line})" for name, (line, _, why) in items[:5])
        more = f"; and {len(items) - 5} more" if len(items) > 5 else ""
        return f"{len(items)} task(s) failed in their last attempt: {shown}{more}"


@dataclass
class _Pipeline:
    """The pipeline run a trace records: new, or found recorded before."""

    ref: str
    reference_type: str
    transform: object  # a TransformSpec (new run) or the recorded transform's uid
    key: str  # the pipeline transform's key: its processes are "<key>:<process>"
    name: str
    tz: tzinfo
    recorded_id: int | None = None
    tasks_by_id: dict[str, str] = field(default_factory=dict)  # task_id → reference (recorded)
    keeps_its_end: bool = False  # the recorded run's end is not the trace's to change


def _pipeline(trace: Path, pipeline, version, run_id, timezone) -> _Pipeline:
    import blake3
    import flowprov as fp
    from flowprov.events import TransformSpec

    first = first_row_text(trace)
    if run_id:
        ref, rtype = run_id, "nextflow run"
    elif first is not None:
        ref = "trace:" + blake3.blake3(first.strip().encode()).hexdigest()[:24]
        rtype = "nextflow trace (first row)"
    else:  # a header and no rows: nothing else to know it by
        ref, rtype = f"trace:{trace.resolve()}", "nextflow trace (path)"
    recorded = fp.Run.filter(engine=ENGINE, reference=ref).one_or_none()
    if recorded is None and not run_id:
        launch = _launch_of_trace(trace)
        if launch is not None:  # heard live by the receiver, or read from a lineage store
            recorded = fp.Run.filter(engine=ENGINE, reference=launch).one()
            ref = launch
    if recorded is None:
        name = pipeline or _default_name(trace)
        spec = TransformSpec(name=name, type="pipeline", key=f"nextflow:{name}", version=version)
        return _Pipeline(ref, rtype, spec, spec.key, name, zone(timezone))
    t = recorded.transform
    for given, kept, what in ((pipeline, t.name, "pipeline"), (version, t.version, "version")):
        if given is not None and given != kept:
            raise ValidationError(
                f"{trace}: this run ({ref}) is already recorded with {what} {kept!r}, not "
                f"{given!r}; leave --{what} out to add to it"
            )
    kept_zone = (recorded.params or {}).get("timezone")
    if timezone and kept_zone and timezone != kept_zone:
        raise ValidationError(
            f"{trace}: this run ({ref}) was recorded reading its dates in {kept_zone}, "
            f"not {timezone}; leave --timezone out to add to it"
        )
    tasks = {
        str(c.params["task_id"]): c.reference
        for c in recorded.children
        if c.params and c.params.get("task_id") is not None
    }
    return _Pipeline(
        ref,
        rtype,
        t.uid,
        t.key or f"nextflow:{t.name}",
        t.name,
        zone(timezone or kept_zone),
        recorded.id,
        tasks,
        # a launch recorded as ended by the source that knows (its weblog, its lineage store)
        keeps_its_end=recorded.reference_type in (LAUNCH, LINEAGE)
        and recorded.status not in ("started", "scheduled"),
    )


def _launch_of_trace(trace: Path, sample: int = 200) -> str | None:
    """The recorded launch a trace is of: the one its first tasks that ran (not CACHED rows:
    those reuse an earlier launch's tasks) are recorded under, when they name exactly one."""
    from flowprov.instance import current

    from .launch import launch_of_tasks

    hashes = []
    try:
        for n, row in enumerate(read_trace(trace, None, True, [])):
            if "workdir" not in row.values or n >= 10 * sample:
                break  # no workdir column (or no task that ran among many): nothing to join by
            full = W.full_hash(row.values.get("workdir"))
            if full and row.values.get("status") != "CACHED":
                hashes.append(full)
                if len(hashes) >= sample:
                    break
    except TraceError:
        return None  # the ingest itself reports what is wrong with the file
    if not hashes:
        return None
    with current().engine.connect() as conn:
        return launch_of_tasks(conn, hashes)[0]


class _Cached:
    """Finds the earlier task run a CACHED row reuses (queries once per process)."""

    def __init__(self, pipeline: _Pipeline):
        self.pipeline = pipeline
        self.by_process: dict[str, list[tuple[str, dict]]] = {}

    def find(self, process_key: str, full: str | None, v: dict, tag) -> tuple[str | None, str]:
        """(reference, '') of the reused run, or (None, why not)."""
        import flowprov as fp

        runs = self.by_process.get(process_key)
        if runs is None:
            runs = self.by_process[process_key] = [
                (r.reference, r.params or {})
                for r in fp.Run.filter(
                    engine=ENGINE, transform__key=process_key, status="completed"
                )
                if self.pipeline.recorded_id is None or r.parent_id != self.pipeline.recorded_id
            ]
        if full is not None and any(ref == full for ref, _ in runs):
            return full, ""
        short = v.get("hash")
        if short is None:
            return None, "the trace has no hash column"
        found = [
            ref
            for ref, p in runs
            if p.get("hash") == short and p.get("tag") == tag and _same_task(ref, short, full)
        ]
        if len(found) == 1:
            return found[0], ""
        if found:
            return None, f"several earlier runs share short hash {short}, process and tag"
        return None, f"no earlier run of this pipeline has short hash {short}, process and tag"


def _same_task(ref: str, short: str, full: str | None) -> bool:
    """An earlier run keyed by its full hash can only be this task if the hashes agree."""
    if W.full_hash(ref) is None:
        return True  # keyed by task_id: the short hash is all there is to compare
    return ref.startswith(short) and (full is None or ref == full)


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
    timezone: str | None = None,
) -> IngestReport:
    """Record a Nextflow trace (and, with `workdir`, each task's files and script).

    `timezone`: the zone of the machine that ran Nextflow, whose wall times the trace holds
    (default: the zone the run was recorded with before, else this machine's)."""
    from flowprov.artifacts import in_place_event, input_events
    from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec
    from flowprov.instance import current
    from flowprov.uids import RUN_UID, random_uid

    trace = Path(trace)
    work = Path(workdir).resolve() if workdir is not None else None
    if work is not None and not work.is_dir():
        raise ValidationError(f"--workdir {work}: no such folder")
    rules = Mapping.load(mapping)
    report = IngestReport()
    inst = current()
    pl = _pipeline(trace, pipeline, version, run_id, timezone)
    tz = pl.tz
    roots = list(inst.storages().values())  # the declared ones: no folder becomes a root
    wf_ref = RunRef(engine=ENGINE, reference=pl.ref)

    def process_spec(process: str, script: str | None, cache: dict) -> TransformSpec:
        spec = cache.get(process)
        if spec is None:
            rule = rules.lookup(process)
            spec = TransformSpec(
                name=(rule.name if rule and rule.name else process),
                type="process",
                key=f"{pl.key}:{process}",
                version=(rule.version if rule else None),
                reference=rule.reference if rule else None,
                reference_type=(rule.reference_type or "url") if rule and rule.reference else None,
                description=rule.description if rule else None,
                source_code=script,
                parent=pl.transform,
            )
            cache[process] = spec
        return spec

    def pipeline_started(anchor) -> RunStarted:
        return RunStarted(
            uid=random_uid(RUN_UID),
            transform=pl.transform,
            engine=ENGINE,
            reference=pl.ref,
            reference_type=pl.reference_type,
            at=anchor or datetime.now(UTC),
            params={"trace": str(trace.resolve()), "timezone": zone_name(tz)},
        )

    def events():
        specs: dict = {}
        report.tasks, report.skipped[:], report.notes[:] = 0, [], []
        envs = Environments(work)  # per task: the software it ran, built once per distinct facts
        started, last_end, attempts = False, None, _Attempts()
        cached, reused, own = _Cached(pl), 0, []
        short_refs: set[str] = set()
        for row in read_trace(trace, sep, skip_bad_rows, report.skipped):
            v = row.values
            start, end = _times(v, tz)
            if not started:
                started = True
                yield pipeline_started(start)
            where = f"{trace}:{row.line}"
            task = None
            if work is not None:
                try:
                    task = W.scan(W.locate(v.get("hash"), v.get("workdir"), work, where))
                except Exception:
                    if not skip_bad_rows:
                        raise
                    report.skipped.append(f"{where}: no work directory")
                    continue
            report.tasks += 1
            process, tag = row.process_and_tag()
            full = W.full_hash(v.get("workdir")) or (W.full_hash(task.path) if task else None)
            task_id = v.get("task_id")
            if task_id is not None and task_id in pl.tasks_by_id:
                ref, rtype = pl.tasks_by_id[task_id], None  # recorded before (re-ingest)
            elif full is not None:
                ref, rtype = full, "nextflow task hash"
            elif task_id is not None:
                ref, rtype = f"{pl.ref}/task/{task_id}", "nextflow task id"
            else:
                ref, rtype = f"{pl.ref}/hash/{v.get('hash')}", "nextflow task short hash"
                if ref in short_refs:
                    msg = (
                        f"{where}: short hash {v.get('hash')} is on two rows, and the trace has "
                        "no task_id or workdir column to tell them apart"
                    )
                    if not skip_bad_rows:
                        raise TraceError(msg)
                    report.skipped.append(msg)
                    continue
                short_refs.add(ref)
            status = _STATUS.get(v.get("status") or "", "started")
            spec = process_spec(process, task.script if task else None, specs)
            if status == "cached" and rtype is not None:
                found, why = cached.find(spec.key, full, v, tag)
                if found is not None:
                    ref, reused = found, reused + 1
                else:
                    own.append(f"{where} {v.get('name') or process}: {why}")
            if end is not None and (last_end is None or end > last_end):
                last_end = end
            name = v.get("name") or (f"{process} ({tag})" if tag else process)
            # without a start column, start is the submit time already read in the zone
            submit = to_utc(v.get("submit"), tz) if v.get("start") else start
            attempts.see(name, status, v, row.line, submit or start, end)
            # built from values the parser already checked: skip pydantic's re-validation (hot loop)
            yield RunStarted.model_construct(
                uid=random_uid(RUN_UID),
                transform=spec,
                parent=wf_ref,
                engine=ENGINE,
                reference=ref,
                reference_type=rtype or "nextflow task",
                name=v.get("name"),
                params=task_params(v, tag),
                status=status,
                environment=envs.for_trace_task(
                    process, v.get("container"), task.path if task else None
                ),
                at=start or datetime.now(UTC),
                finished_at=end,
                created_by=None,
                error=_task_error(v, status),
            )
            if task is not None and status in ("completed", "cached"):
                task_ref = RunRef(engine=ENGINE, reference=ref)
                for path in task.inputs:
                    yield from input_events(path, run=task_ref, roots=roots, at=start or end)
                for path in task.outputs:
                    yield in_place_event(path, roots=roots, run=task_ref, at=end or start)
        if not started:  # a trace with a header and no rows: the run, with no tasks
            yield pipeline_started(None)
        if reused:
            report.notes.append(f"{reused} CACHED row(s) reuse the task runs recorded before")
        for text in own:
            report.notes.append(f"CACHED row recorded as its own run: {text}")
        report.warnings[:] = envs.warnings()
        if pl.keeps_its_end:
            return
        yield RunFinished(
            run=wf_ref,
            status="failed" if attempts.pending else "completed",
            error=attempts.error(),
            at=last_end or datetime.now(UTC),
        )

    report.absorb(inst.store.apply_stream(events))
    report.pipeline_run = pl.ref
    return report


def ingest_lineage(*args, **kwargs) -> IngestReport:
    """See flowprov_nextflow.lineage.ingest_lineage."""
    from .lineage import ingest_lineage as ingest

    return ingest(*args, **kwargs)


__all__ = ["IngestReport", "TraceError", "ingest_lineage", "ingest_trace"]
