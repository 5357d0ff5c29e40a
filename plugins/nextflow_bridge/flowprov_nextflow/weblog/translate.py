"""Weblog envelopes → flowprov events: the one place that knows what a weblog event means.

- `started` → the pipeline run of the launch (launch.py: `<runId>/<runName>`, or the run a
  lineage store recorded for it): its Transform from `manifest.name` (else the project or script
  name), versioned by `manifest.version`, else `revision`, else `commitId`; its params; how it was
  launched (command line, profile, container engine, Nextflow version, launch and work folders)
  in `runtime`, with `runtime["source"] = "weblog"`; Nextflow itself as its software.
- `process_submitted` → the task run, `scheduled`; `process_started` → `started`;
  `process_completed` → finished with its status, exit code, attempt and resources (params as
  `ingest` writes them), its software, and — when its work folder is readable here — its inputs
  and outputs, exactly as `ingest --workdir` records them.
- `error` → the failing task (when the event names it) ends failed, with its exit status and error
  strategy; `completed` → the launch ends: completed when `success`, else failed with Nextflow's
  `errorMessage`; `stats` and `exitStatus` join its params.
- Every event is a sign of life of its launch (RunAlive, once per launch per batch), which
  `flowprov status` reads to tell a live launch from a lost one.

A task is its full hash (the last two parts of `workdir`) — the key `ingest` and the lineage store
give it, so all three sources make one run. A task whose `workdir` is not in Nextflow's layout is
`<launch>/task/<task_id>`, as in `ingest`.

Joining a trace recorded earlier: when a task heard here is recorded under a pipeline run that
was made from a trace file (which knows no launch), that run is this launch — a task runs in one
launch only — and is merged into it (RunMerged). Nothing else is ever merged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flowprov.events import (
    RunAlive,
    RunFinished,
    RunMerged,
    RunRef,
    RunStarted,
    TransformSpec,
    check_handle,
    jsonable,
)

from .. import workdir as W
from ..ingest import _STATUS, ENGINE, _task_error, task_params
from ..launch import (
    LAUNCH,
    TRACE_TYPES,
    find_launch,
    launch_reference,
    parents_of_tasks,
    recorded_pipeline,
)
from ..software import Environments, Wrapper
from ..trace import (
    DATE_FIELDS,
    MEM_FIELDS,
    NUM_FIELDS,
    PERC_FIELDS,
    STR_FIELDS,
    TIME_FIELDS,
    split_name,
)
from .envelope import TASK_EVENTS, WeblogEvent

logger = logging.getLogger("flowprov.nextflow.weblog")

UNKNOWN_PIPELINE = "nextflow pipeline"  # a launch whose `started` was not heard (lineage's name)


def raw_values(trace: dict, bad: list[str]) -> dict:
    """A raw TraceRecord as `read_trace` gives a row: strings for the text fields (task_id and exit
    too), UTC datetimes for dates (epoch ms), ints for ms, bytes and counts, floats for %. A value
    of the wrong type is left out and named in `bad`."""
    out = {}
    for f, v in trace.items():
        if v is None:
            continue
        try:
            if f in STR_FIELDS:
                if f == "module":  # a list of module names in the raw record
                    out[f] = jsonable(v)
                elif isinstance(v, str | int | float) and not isinstance(v, bool):
                    out[f] = str(v)  # task_id, exit and native_id come as numbers
                else:
                    raise ValueError
            elif f in DATE_FIELDS:
                if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                    raise ValueError
                out[f] = datetime.fromtimestamp(v / 1000, UTC)
            elif f in TIME_FIELDS | MEM_FIELDS | NUM_FIELDS:
                if isinstance(v, bool):
                    raise ValueError
                out[f] = int(v)
            elif f in PERC_FIELDS:
                out[f] = float(v)
        except (TypeError, ValueError, OverflowError, OSError):
            bad.append(f"{f}={v!r}")
    return out


def _when(text, fallback: datetime) -> datetime:
    """An ISO time of the metadata (`2024-05-01T10:00:00Z`, or epoch ms), else `fallback`."""
    if isinstance(text, int | float) and not isinstance(text, bool) and text > 0:
        return datetime.fromtimestamp(text / 1000, UTC)
    if isinstance(text, str) and text:
        try:
            t = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return t if t.tzinfo else t.replace(tzinfo=UTC)
        except ValueError:
            pass
    return fallback


@dataclass
class _Task:
    """What one batch says of one task: its values merged in event order, and how far it got."""

    ref: str
    rtype: str
    launch: _Launch
    process: str
    recorded: bool  # in the store before this batch
    at: datetime  # the first event's time
    values: dict = field(default_factory=dict)
    began: bool = False
    ended: str | None = None  # its final status, once completed (or named by `error`)
    end_at: datetime | None = None
    dir: Path | None | bool = False  # its work folder here (False: not looked at yet)


@dataclass
class _Launch:
    ref: str
    transform: TransformSpec | str  # a spec (new) or the recorded pipeline transform's uid
    key: str  # its processes are "<key>:<process>"
    user: str | None
    specs: dict[str, TransformSpec] = field(default_factory=dict)
    merged: set[str] = field(default_factory=set)


class Translator:
    """Envelopes → events, launch by launch. All state is a cache of what the store holds (plus
    the batch in hand): after a failed apply, `reset()` and translate the same envelopes again.

    `translate(envelopes)` takes WeblogEvents in journal order and returns the flowprov events to
    apply in one transaction. It never raises on a well-formed envelope; what it cannot use is
    counted in `ignored` ({reason: n}) and logged once per reason. `instance`: a name or config
    path, as `flowprov.instance.current` takes it (None: the current instance)."""

    def __init__(self, instance=None, *, read_workdirs: bool = True):
        self.instance = instance
        self.read_workdirs = read_workdirs
        self.ignored: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        self._launches: dict[tuple[str, str], _Launch] = {}
        self._envs = Environments(None)
        self._inst = None

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def inst(self):
        if self._inst is None:
            from flowprov.instance import current

            self._inst = current(self.instance)
        return self._inst

    def _ignore(self, why: str) -> None:
        n = self.ignored.get(why, 0)
        self.ignored[why] = n + 1
        if n == 0:
            logger.warning("flowprov nextflow listen: %s", why)

    def _user(self, name) -> str | None:
        """The launch's user: Nextflow's `userName`, unless this receiver acts as someone named
        (FLOWPROV_USER, or `flowprov login`): then the store's current user (None)."""
        from flowprov import config as C

        try:
            if C.current_user_config().source in (C.FROM_ENV, C.FROM_LOGIN):
                return None
        except Exception:  # noqa: BLE001 - a broken user.yaml: the store reports it on write
            return None
        if isinstance(name, str) and name:
            try:
                return check_handle(name)
            except ValueError:
                self._ignore(f"userName {name[:60]!r} is not a valid handle: the receiver's user")
        return None

    # -- the batch -------------------------------------------------------------------------------
    def translate(self, envelopes: list[WeblogEvent]) -> list:
        """The batch's events, in an order the store applies fastest and that keeps every
        dependency: launches started, runs merged, tasks (one RunStarted each — a task submitted,
        started and completed within the batch is one new row, already ended), tasks that began,
        tasks that ended, their files, launches ended, launches' signs of life."""
        heads: list = []  # launches' RunStarted and RunMerged
        tasks: dict[str, _Task] = {}  # task reference → what the batch says of it, first seen first
        tails: list = []  # launches' RunFinished
        alive: dict[str, datetime] = {}  # launch ref → its newest event's time
        with self.inst.engine.connect() as conn:
            full = {
                w
                for e in envelopes
                if (e.event in TASK_EVENTS or e.event == "error")
                and isinstance(w := (e.trace or {}).get("workdir"), str)
            }
            parents = parents_of_tasks(conn, [h for w in full if (h := W.full_hash(w))])
            for ev in envelopes:
                if not ev.known:
                    self._ignore(f"unknown event kind {ev.event[:40]!r}")
                    continue
                at = _when(ev.utcTime, datetime.now(UTC))
                launch = self._launch(conn, ev, at, heads)
                if ev.event in TASK_EVENTS or (ev.event == "error" and ev.trace):
                    self._task(ev, launch, at, parents, heads, tasks)
                elif ev.event == "completed":
                    tails.append(self._completed(ev, launch, at))
                if ev.event != "completed":
                    alive[launch.ref] = max(at, alive.get(launch.ref, at))
        out = heads
        for kind in ("start", "began", "end", "files"):
            for t in tasks.values():
                out.extend(self._emit(t, kind))
        out.extend(tails)
        out.extend(RunAlive(run=RunRef(engine=ENGINE, reference=r), at=t) for r, t in alive.items())
        return out

    def _launch(self, conn, ev: WeblogEvent, at: datetime, out: list) -> _Launch:
        known = self._launches.get(ev.launch)
        if known is not None:
            return known
        ref = find_launch(conn, ev.runId, ev.runName)
        if ref is not None:  # recorded before: by this receiver, or from a lineage store
            launch = self._recorded(conn, ref)
        else:
            launch = self._new_launch(ev, at, out)
        self._launches[ev.launch] = launch
        return launch

    def _recorded(self, conn, ref: str) -> _Launch:
        run = recorded_pipeline(conn, ref)
        return _Launch(ref, run.transform_uid, run.transform_key, run.user)

    def _new_launch(self, ev: WeblogEvent, at: datetime, out: list) -> _Launch:
        from flowprov.uids import RUN_UID, random_uid

        meta = ev.metadata if ev.event == "started" and isinstance(ev.metadata, dict) else {}
        wf = meta.get("workflow") if isinstance(meta.get("workflow"), dict) else {}
        manifest = wf.get("manifest") if isinstance(wf.get("manifest"), dict) else {}
        nxf = wf.get("nextflow") if isinstance(wf.get("nextflow"), dict) else {}
        if not meta:
            self._ignore(
                "events of a launch whose `started` was not heard (the receiver started late?): "
                f"its pipeline is recorded as {UNKNOWN_PIPELINE!r}"
            )
        name = str(
            manifest.get("name")
            or wf.get("projectName")
            or wf.get("scriptName")
            or UNKNOWN_PIPELINE
        )
        version = manifest.get("version") or wf.get("revision") or wf.get("commitId")
        repo = wf.get("repository")
        spec = TransformSpec(
            name=name,
            type="pipeline",
            key=f"nextflow:{name}",
            version=str(version) if version else None,
            description=manifest.get("description") or None,
            reference=str(repo) if repo else None,
            reference_type="repository" if repo else None,
        )
        params = meta.get("parameters", meta.get("params"))
        runtime = {
            "source": "weblog",
            "command_line": wf.get("commandLine"),
            "profile": wf.get("profile"),
            "container_engine": wf.get("containerEngine"),
            "container": wf.get("container"),
            "nextflow_version": nxf.get("version"),
            "launch_dir": wf.get("launchDir"),
            "work_dir": wf.get("workDir"),
            "project_dir": wf.get("projectDir"),
            "revision": wf.get("revision"),
            "commit_id": wf.get("commitId"),
            "resume": wf.get("resume"),
            "user_name": wf.get("userName"),
        }
        launch = _Launch(
            launch_reference(ev.runId, ev.runName), spec, spec.key, self._user(wf.get("userName"))
        )
        version_ = str(nxf["version"]) if nxf.get("version") else None
        out.append(
            RunStarted(
                uid=random_uid(RUN_UID),
                transform=spec,
                engine=ENGINE,
                reference=launch.ref,
                reference_type=LAUNCH,
                name=ev.runName,
                params=jsonable(
                    {"sessionId": ev.runId, **(params if isinstance(params, dict) else {})}
                ),
                runtime=jsonable({k: v for k, v in runtime.items() if v is not None}),
                environment=self._envs.spec(Wrapper(), engine_version=version_, ran=True),
                at=_when(wf.get("start"), at),
                created_by=launch.user,
            )
        )
        return launch

    def _process_spec(self, launch: _Launch, process: str, task_dir: Path | None) -> TransformSpec:
        spec = launch.specs.get(process)
        if spec is None:
            script = None
            if task_dir is not None:
                try:
                    script = (task_dir / ".command.sh").read_text(errors="replace")
                except OSError:
                    script = None
            spec = launch.specs[process] = TransformSpec(
                name=process,
                type="process",
                key=f"{launch.key}:{process}",
                source_code=script,
                parent=launch.transform,
            )
        return spec

    def _task(
        self, ev: WeblogEvent, launch: _Launch, at: datetime, parents, heads: list, tasks: dict
    ) -> None:
        bad: list[str] = []
        v = raw_values(ev.trace or {}, bad)
        if bad:
            self._ignore(f"trace values of the wrong type left out: {', '.join(bad[:3])}")
        name = v.get("name")
        process = v.get("process") or split_name(name or "")[0]
        full = W.full_hash(v.get("workdir"))
        if full is not None:
            ref, rtype = full, "nextflow task hash"
        elif v.get("task_id") is not None:
            ref, rtype = f"{launch.ref}/task/{v['task_id']}", "nextflow task id"
        else:
            self._ignore(f"{ev.event} without workdir or task_id: no task to record it on")
            return
        if not process:
            self._ignore(f"{ev.event} without process or name: not recorded")
            return
        known = parents.get(full) if full else None
        if known is not None and known[0] != launch.ref:
            if known[1] in TRACE_TYPES and known[0] not in launch.merged:
                # the trace's pipeline run is this launch: one record of it, the launch's
                launch.merged.add(known[0])
                heads.append(
                    RunMerged(
                        run=RunRef(engine=ENGINE, reference=launch.ref),
                        duplicate=RunRef(engine=ENGINE, reference=known[0]),
                        at=at,
                    )
                )
            elif known[1] not in TRACE_TYPES:
                self._ignore(
                    f"task {full} is recorded under another launch ({known[0]}): left there"
                )
        t = tasks.get(ref)
        if t is None:
            t = tasks[ref] = _Task(ref, rtype, launch, process, recorded=ref in parents, at=at)
        t.values.update(v)
        if ev.event == "process_started":
            t.began = True
        elif ev.event != "process_submitted":
            t.began = True
            status = _STATUS.get(v.get("status") or "")
            if status is None or status == "cached":
                if ev.event == "error":  # the flow failed while this task was still going
                    return
                self._ignore(
                    f"process_completed with status {(v.get('status') or '')[:20]!r}: "
                    "recorded as unknown"
                )
                status = "unknown"
            t.ended, t.end_at = status, v.get("complete") or at

    def _emit(self, t: _Task, kind: str) -> list:
        """One part of a task's events (translate() emits all tasks' starts, then all begins...)."""
        v, ref = t.values, RunRef(engine=ENGINE, reference=t.ref)
        start = v.get("start")
        if kind == "start":
            if t.recorded and t.ended is None:
                return []  # going already: its start is recorded
            from flowprov.uids import RUN_UID, random_uid

            task_dir = self._task_dir(t)
            env = (
                self._envs.for_trace_task(t.process, v.get("container"), task_dir)
                if t.ended
                else None
            )
            if t.recorded and env is None:
                return []  # recorded, and nothing new to say at its start: its end says the rest
            status = t.ended or ("started" if t.began else "scheduled")
            return [
                RunStarted.model_construct(
                    uid=random_uid(RUN_UID),
                    transform=self._process_spec(t.launch, t.process, task_dir),
                    parent=RunRef(engine=ENGINE, reference=t.launch.ref),
                    engine=ENGINE,
                    reference=t.ref,
                    reference_type=t.rtype,
                    name=v.get("name"),
                    params=self._params(t),
                    status=status,
                    environment=env,
                    runtime=None,
                    at=(start if t.began else None) or v.get("submit") or t.at,
                    finished_at=t.end_at if t.ended else None,
                    created_by=t.launch.user,
                    error=_task_error(v, t.ended) if t.ended else None,
                )
            ]
        if not t.recorded:
            return self._files(t, ref) if kind == "files" else []  # its one RunStarted says all
        if kind == "began":
            return [RunAlive(run=ref, began=True, at=start)] if t.began and start else []
        if kind == "end":
            if t.ended is None:
                return []
            return [
                RunFinished(
                    run=ref,
                    status=t.ended,
                    error=_task_error(v, t.ended),
                    params=self._params(t),
                    at=t.end_at,
                    created_by=t.launch.user,
                )
            ]
        return self._files(t, ref)

    def _params(self, t: _Task) -> dict:
        v = t.values
        return task_params(v, v.get("tag") or split_name(v.get("name") or "")[1])

    def _task_dir(self, t: _Task) -> Path | None:
        if t.dir is False:
            t.dir = None
            if self.read_workdirs and t.values.get("workdir"):
                p = Path(t.values["workdir"])
                t.dir = p if p.is_dir() else None
        return t.dir

    def _files(self, t: _Task, ref: RunRef) -> list:
        """A completed task's inputs and outputs, when its work folder is readable here."""
        from flowprov.artifacts import in_place_event, input_events

        task_dir = self._task_dir(t)
        if task_dir is None or t.ended != "completed":
            return []
        start = t.values.get("start")
        try:
            task = W.scan(task_dir)
            roots = list(self.inst.storages().values())
            files = []
            for path in task.inputs:
                files += input_events(path, run=ref, roots=roots, at=start or t.end_at)
            for path in task.outputs:
                files.append(in_place_event(path, roots=roots, run=ref, at=t.end_at))
        except OSError as e:  # unreadable now: the run stands; its files wait for `ingest`
            self._ignore(f"work folder {task_dir} not readable ({e.strerror}): files left out")
            return []
        return files

    def _completed(self, ev: WeblogEvent, launch: _Launch, at: datetime) -> RunFinished:
        wf = (ev.metadata or {}).get("workflow")
        wf = wf if isinstance(wf, dict) else {}
        success = wf.get("success")
        if success is True:
            status, error = "completed", None
        elif success is False:
            status = "failed"
            error = wf.get("errorMessage") or wf.get("errorReport") or "Nextflow reports failure"
            error = str(error)
        else:
            status, error = "unknown", None
            self._ignore("`completed` without `success`: the launch's end recorded as unknown")
        extra = {k: wf.get(k) for k in ("exitStatus", "stats", "duration") if wf.get(k) is not None}
        return RunFinished(
            run=RunRef(engine=ENGINE, reference=launch.ref),
            status=status,
            error=error,
            params=jsonable(extra) or None,
            at=_when(wf.get("complete"), at),
            created_by=launch.user,
        )
