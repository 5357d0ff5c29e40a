"""Prefect flow and task runs → flowprov events.

- A flow decorated with `@track()` → a Transform of type flow (name, `flow.version` — Prefect
  derives it from the source file when not given — and the function's source) and one Run per flow
  run: parameters, Prefect's flow-run id as reference, its name, start/end, final status
  (completed, failed, crashed, cancelled). Subflows called inside it become child runs.
- Every task run inside → a Run of a Transform of type task (versioned by the task function's
  source; its parent the flow Transform), child of the flow's run, with its parameters, status,
  error, and the upstream task runs Prefect knows (`task_run.task_inputs`).
- Files: which arguments and return values are files read and made is decided in `files.py`
  (files named by a str or Path; folders only where flowprov knows them as artifacts or a run
  returns them as a Path). Hashed in full and recorded where they are (never a new storage root).
  Inputs are hashed when the run starts and recorded when it ends, so an argument the run rewrites
  and returns is recorded as its output only. A file a flow returns that one of its tasks (or
  subflows) made or read is theirs, not the flow's. Inside a task, `fp.Artifact(...).save()` and
  `artifact.cache()` use the task's run.
- A flow run is recorded in the instance it started in, with all its tasks and subflows, even if
  a task points FLOWPROV_INSTANCE elsewhere midway (a run cannot end in another database).
- Never breaks the flow: every callback catches everything; an unreachable store → one warning
  and the events wait in the process's journal for `flowprov replay`; a Prefect it was not
  tested with → see `_engine.py`. Nothing is logged per task.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import os
import threading
from dataclasses import dataclass, field

from flowprov.events import jsonable

from .files import (
    input_paths,
    known_in_store,
    object_folders,
    output_paths,
    read,
    read_stored_copy,
    stored_copy,
    unchanged,
)

log = logging.getLogger("flowprov")
ENGINE = "prefect"
# Prefect's final state types; any other (a state type a newer Prefect adds) is recorded as
# "unknown" with the state's name in the error text, never guessed
_STATUS = {
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "crashed",
    "CANCELLED": "cancelled",
    "CANCELLING": "cancelled",
}

# the tracked flow run whose body is executing (subflows called from it are tracked too)
_active: contextvars.ContextVar = contextvars.ContextVar("flowprov_prefect_flow", default=None)


@dataclass
class RunRec:
    """A flow or task run being recorded."""

    uid: str
    inputs: dict = field(default_factory=dict)  # path → files.Seen, as found when it started
    token: object = None  # a task's: flowprov's current run while its body runs


@dataclass
class FlowRec(RunRec):
    spec: object = None  # TransformSpec of the flow
    sink: object = None  # pinned to the instance the flow run started in
    instance: object = None  # that Instance (None: none was set up; the journal keeps events)
    user: str = ""
    options: dict = field(default_factory=dict)
    parent: FlowRec | None = None
    # what a flow run reads once, when it starts, for itself and all its tasks: the storage
    # roots, the folders of flowprov's stored copies (files.object_folders) and the interpreter's
    # software (its package folders are not stat'ed again per task run)
    roots: list = field(default_factory=list)
    copies: dict = field(default_factory=dict)
    environment: object = None
    task_specs: dict = field(default_factory=dict)  # (task name, code) → its TransformSpec
    run_token: object = None  # flowprov's current run while the flow body runs
    tasks: dict = field(default_factory=dict)  # task_run id → RunRec
    # files its tasks and subflows made (path → hash) and read (path → files.Seen)
    made: dict = field(default_factory=dict)
    read: dict = field(default_factory=dict)


_flows: dict[str, FlowRec] = {}  # flow run id → record
_sinks: dict[tuple, object] = {}  # (instance, spool) → Sink
_lock = threading.Lock()
_warned = [False]
_made_folders: set[str] = set()  # folders tracked runs of this process returned (known artifacts)


def _warn(message: str) -> None:
    if not _warned[0]:
        _warned[0] = True
        log.warning(
            "flowprov: %s (the flow is not affected; further problems are not reported)", message
        )


_sources: dict = {}  # code object → its source, read once per process


def _source(fn) -> str | None:
    """The function's source as first read in this process (the code object is what runs:
    reading the file again per task run costs ~1 ms and could see a later edit)."""
    code = getattr(fn, "__code__", None)
    if code in _sources:
        return _sources[code]
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = None
    if code is not None:
        _sources[code] = text
    return text


def _roots(instance: str | None = None) -> list:
    """The declared storage roots (files in them are recorded by key, the rest by location)."""
    from flowprov.instance import current

    try:
        inst = current(instance)
    except Exception:  # noqa: BLE001 - no instance: the events wait in the journal
        return []
    try:
        return list(inst.storages().values())
    except Exception:  # noqa: BLE001 - the database is down: its default root at least
        return [inst.storage]


def _known_folder(sink, roots):
    """Whether a folder argument is an artifact flowprov knows (see files.py)."""

    def known(path: str) -> bool:
        if path in _made_folders:
            return True
        if getattr(sink, "spooling", False):
            return False  # the store is unreachable: do not wait for it per argument
        try:
            return known_in_store(path, roots, sink.instance)
        except Exception:  # noqa: BLE001 - cannot tell: record less
            return False

    return known


def _inputs(params, flow: FlowRec, run_ref) -> dict:
    """path → Seen for the files among the arguments of a run of flow (itself, or a task), hashed
    now."""
    seen = {}
    sink, roots, user = flow.sink, flow.roots, flow.user
    for p in input_paths(params, _known_folder(sink, roots)):
        try:
            where = stored_copy(p, flow.copies)
            if where is None:
                seen[p] = read(p, roots=roots, run=run_ref, user=user)
            elif not getattr(sink, "spooling", False):  # else the store cannot say: record less
                found = read_stored_copy(p, where, run=run_ref, user=user, instance=sink.instance)
                if found is not None:
                    seen[p] = found
        except Exception as e:  # noqa: BLE001 - an unreadable file: record the rest
            _warn(f"could not hash {p}: {e}")
    return seen


def _end_files(run: RunRec, value, flow: FlowRec, theirs=None):
    """The file events of the end of a run of flow (itself, or a task) — its inputs as found at
    its start, then what it returned, by the rules in files.py — and (kept inputs, outputs as
    path → event). `theirs(path, hash)`: a returned file that belongs to another run (a flow's
    task made or read it)."""
    from flowprov.artifacts import in_place_event
    from flowprov.events import RunRef

    inputs, outputs = dict(run.inputs), {}
    for p in output_paths(value):
        if stored_copy(p, flow.copies) and p not in inputs:
            continue  # flowprov's own copy of an artifact: made by whoever made that artifact
        try:
            ev = in_place_event(p, roots=flow.roots, run=RunRef(uid=run.uid), created_by=flow.user)
        except Exception as e:  # noqa: BLE001
            _warn(f"could not hash {p}: {e}")
            continue
        if p in inputs:
            if unchanged(p, inputs[p], ev.hash):
                continue  # read and passed on
            del inputs[p]  # it named where to write
        if theirs is None or not theirs(p, ev.hash):
            outputs[p] = ev
    events = [e for s in inputs.values() for e in s.events] + list(outputs.values())
    return events, inputs, outputs


def _returned(engine):
    """What the run returned; None (after the one warning) if it cannot be read — the run's end
    is recorded all the same."""
    from ._engine import return_value

    try:
        return return_value(engine)
    except Exception as e:  # noqa: BLE001
        _warn(f"cannot read what a Prefect run returned ({e!r}): its output files are not recorded")
        return None


def _note_files(flow: FlowRec, inputs: dict, outputs: dict) -> None:
    """What a member run of flow (a task, a subflow) read and made."""
    with _lock:
        flow.read.update(inputs)
        flow.made.update((p, ev.hash) for p, ev in outputs.items())
        _made_folders.update(p for p, ev in outputs.items() if ev.hash_type.endswith("-dir"))


# -- flows ---------------------------------------------------------------------------------
def on_flow_state(engine, state) -> None:
    try:
        _on_flow_state(engine, state)
    except Exception as e:  # noqa: BLE001
        _warn(f"could not record a Prefect flow state: {e!r}")


def _on_flow_state(engine, state) -> None:
    flow_run = getattr(engine, "flow_run", None)
    if flow_run is None:
        return
    fid = str(flow_run.id)
    rec = _flows.get(fid)
    if state.is_running():
        if rec is not None:
            return  # a retried flow: already recorded
        options = getattr(engine.flow, "_flowprov", None)
        parent = _active.get()
        if options is None and parent is None:
            return  # neither decorated nor called from a tracked flow
        _start_flow(engine, flow_run, fid, options or parent.options, parent)
    elif state.is_final() and rec is not None:
        _finish_flow(engine, state, fid, rec)


def _start_flow(engine, flow_run, fid, options, parent) -> None:
    from flowprov.config import current_user_config
    from flowprov.context import environment
    from flowprov.events import RunRef, RunStarted, TransformSpec
    from flowprov.liveness import keep_alive, process_facts
    from flowprov.uids import RUN_UID, random_uid

    flow = engine.flow
    spec = TransformSpec(
        name=flow.name,
        type="flow",
        key=f"prefect:{flow.fn.__module__}.{flow.fn.__qualname__}",
        version=str(flow.version) if flow.version else None,
        source_code=_source(flow.fn),
    )
    user = current_user_config().handle
    sink = parent.sink if parent else _sink(options)
    rec = FlowRec(random_uid(RUN_UID), spec=spec, sink=sink, user=user, options=options)
    rec.parent = parent
    rec.instance = parent.instance if parent else _instance(sink)
    # the interpreter's software (read once per process, its package folders checked once per
    # flow run; the sink sends it in full once, then by digest)
    rec.environment = environment()
    params = getattr(engine, "parameters", None) or {}
    if parent is None:  # a flow run tells many runs: OpenLineage's sender starts now, if any
        from flowprov.openlineage.emitter import expect_many

        expect_many()
    sink.send(
        [
            RunStarted(
                uid=rec.uid,
                transform=spec,
                engine=ENGINE,
                reference=str(flow_run.id),
                reference_type="prefect flow run",
                name=flow_run.name,
                params=jsonable(params),
                parent=RunRef(uid=parent.uid) if parent else None,
                environment=rec.environment,
                # who runs a top-level flow run, for `flowprov status` (flowprov.liveness)
                runtime=None if parent else {"liveness": process_facts()},
                created_by=user,
            )
        ]
    )
    if parent is None:
        keep_alive(sink, rec.uid)  # a heartbeat while it runs
    rec.roots = _roots(sink.instance)
    rec.copies = object_folders(rec.roots)
    rec.inputs = _inputs(params, rec, RunRef(uid=rec.uid))  # recorded at its end
    with _lock:
        _flows[fid] = rec
    rec.token = _active.set(rec)
    # fp.Artifact(...).save() / .cache() in the flow body (outside tasks) use the flow's run
    from flowprov.context import _current_run

    rec.run_token = _current_run.set(_api_run(rec.uid, rec))


def _api_run(uid: str, flow: FlowRec):
    """The flowprov Run the API sees as current while a flow or task body runs, pinned to the
    instance the flow run lives in (its saves and reads go there)."""
    from flowprov.context import pin_run
    from flowprov.records import Run

    run = Run._from_row({"uid": uid})
    if flow.instance is not None:
        pin_run(run, flow.instance)
    return run


def _sink(options: dict):
    """One Sink per instance and spool for the whole process: one journal, and one warning when
    the store is unreachable, however many flows run. The instance is the one named when the
    flow run starts (`track(instance=...)`, else FLOWPROV_INSTANCE, then the current one), by
    its config file's resolved path: the Sink, the storage roots and the store lookups of the
    flow run stay with it whatever FLOWPROV_INSTANCE says later."""
    from flowprov.config import locate_instance_config
    from flowprov.spool import Sink

    spool = options.get("spool") or os.path.join(os.getcwd(), ".flowprov-prefect-spool.jsonl")
    instance = options.get("instance")
    try:
        instance = str(locate_instance_config(instance).resolve())
    except Exception:  # noqa: BLE001 - no instance yet: the Sink says so and keeps the events
        pass
    key = (instance, os.path.abspath(spool))
    with _lock:
        if key not in _sinks:
            _sinks[key] = Sink(spool, "prefect", instance=instance)
        return _sinks[key]


def close() -> None:
    """Apply what this process's flow runs sent, end their store writer processes and forget
    the sinks — what exit does; the next flow run starts afresh (benchmarks use it to time a flow
    as a fresh process would run it)."""
    with _lock:
        sinks = list(_sinks.values())
        _sinks.clear()
    for sink in sinks:
        sink.close()


def _instance(sink):
    """The Instance the sink writes to; None when there is none (nothing to pin to)."""
    from flowprov.instance import current

    try:
        return current(sink.instance)
    except Exception:  # noqa: BLE001 - no instance: the journal keeps the events
        return None


def _theirs(rec: FlowRec):
    """A file the flow returns is its tasks' (or subflows') when they made it or read it, and it
    has not changed since: the flow only passes it up."""

    def theirs(path: str, now_hash: str) -> bool:
        if rec.made.get(path) == now_hash:
            return True
        seen = rec.read.get(path)
        return seen is not None and unchanged(path, seen, now_hash)

    return theirs


def _final_status(state) -> str:
    """flowprov's status of a Prefect final state ("unknown" for a type flowprov does not know)."""
    if state.is_completed():
        return "completed"
    kind = state.type.value if hasattr(state.type, "value") else str(state.type)
    return _STATUS.get(kind, "unknown")


def _finished(uid: str, status: str, state, user):
    """The RunFinished of a flow or task run: the state's message as the error unless completed."""
    from flowprov.events import RunFinished, RunRef

    error = None if status == "completed" else (state.message or state.name)
    return RunFinished(run=RunRef(uid=uid), status=status, created_by=user, error=error)


def _finish_flow(engine, state, fid, rec: FlowRec) -> None:
    from flowprov.liveness import let_go

    let_go(rec.uid)

    status = _final_status(state)
    value = _returned(engine) if status == "completed" else None
    events, inputs, outputs = _end_files(rec, value, rec, _theirs(rec))
    events.append(_finished(rec.uid, status, state, rec.user))
    rec.sink.send(events)
    if rec.parent is not None:  # a subflow: its files are its own, and its members'
        with _lock:
            rec.parent.made.update(rec.made)
            rec.parent.read.update(rec.read)
        _note_files(rec.parent, inputs, outputs)
    with _lock:
        _flows.pop(fid, None)
    if rec.token is not None:
        try:
            _active.reset(rec.token)
        except ValueError:  # finished in another context than it started
            _active.set(None)
    if rec.run_token is not None:
        from flowprov.context import _current_run

        try:
            _current_run.reset(rec.run_token)
        except ValueError:
            _current_run.set(None)


# -- tasks ---------------------------------------------------------------------------------
def on_task_state(engine, state) -> None:
    try:
        _on_task_state(engine, state)
    except Exception as e:  # noqa: BLE001
        _warn(f"could not record a Prefect task state: {e!r}")


def _on_task_state(engine, state) -> None:
    task_run = getattr(engine, "task_run", None)
    if task_run is None or task_run.flow_run_id is None:
        return
    rec = _flows.get(str(task_run.flow_run_id))
    if rec is None:
        return
    tid = str(task_run.id)
    if state.is_running():
        if tid not in rec.tasks:  # else a retry: the same task run, still running
            _start_task(engine, task_run, tid, rec)
    elif state.is_final() and tid in rec.tasks:
        _finish_task(engine, state, rec.tasks.pop(tid), rec)


def _start_task(engine, task_run, tid, rec: FlowRec) -> None:
    from flowprov.context import _current_run
    from flowprov.events import RunRef, RunStarted, TransformSpec
    from flowprov.uids import RUN_UID, random_uid

    task = engine.task
    which = (task.name, getattr(task.fn, "__code__", task.fn))
    spec = rec.task_specs.get(which)
    if spec is None:
        spec = rec.task_specs[which] = TransformSpec(
            name=task.name,
            type="task",
            key=f"prefect:{task.fn.__module__}.{task.fn.__qualname__}",
            source_code=_source(task.fn),
            parent=rec.spec,
        )
    run = RunRec(random_uid(RUN_UID))
    params = getattr(engine, "parameters", None) or {}
    upstream = {
        k: [str(getattr(x, "id", x)) for x in v]
        for k, v in (getattr(task_run, "task_inputs", None) or {}).items()
        if v and any(getattr(x, "input_type", "") == "task_run" for x in v)
    }
    started = RunStarted(
        uid=run.uid,
        transform=spec,
        parent=RunRef(uid=rec.uid),
        engine=ENGINE,
        reference=tid,
        reference_type="prefect task run",
        name=task_run.name,
        params={"parameters": jsonable(params), **({"upstream": upstream} if upstream else {})},
        environment=rec.environment,
        created_by=rec.user,
    )
    rec.sink.send([started], buffered=True)
    run.inputs = _inputs(params, rec, RunRef(uid=run.uid))  # recorded at its end
    # fp.Artifact(...).save() / .cache() inside the task body use the task's run
    run.token = _current_run.set(_api_run(run.uid, rec))
    rec.tasks[tid] = run


def _finish_task(engine, state, run: RunRec, rec: FlowRec) -> None:
    from flowprov.context import _current_run

    status = _final_status(state)
    value = _returned(engine) if status == "completed" else None
    events, inputs, outputs = _end_files(run, value, rec)
    _note_files(rec, inputs, outputs)
    events.append(_finished(run.uid, status, state, rec.user))
    rec.sink.send(events, buffered=True)
    try:
        _current_run.reset(run.token)
    except ValueError:
        pass


def track(*, instance: str | None = None, spool: str | os.PathLike | None = None):
    """Decorate a Prefect flow (put it above `@flow`): its runs and all their task runs are
    recorded. `instance`: the flowprov instance (default: FLOWPROV_INSTANCE, then the current
    one); `spool`: where events go if neither the store nor the cache folder's journal can be
    written. On a Prefect flowprov cannot hook into, one warning and the flow runs unrecorded —
    never an error in your code."""
    from ._engine import install

    hooked = install(on_task_state, on_flow_state)

    def decorate(flow):
        if not hooked:
            return flow
        try:
            from prefect import Flow
        except ImportError:  # pragma: no cover - a Prefect that moved Flow: not hooked either
            return flow
        if not isinstance(flow, Flow):
            from flowprov.errors import ValidationError

            raise ValidationError("@track() decorates a Prefect flow: put it above @flow")
        try:
            flow._flowprov = {"instance": instance, "spool": os.fspath(spool) if spool else None}
        except Exception as e:  # noqa: BLE001 - a Flow that refuses attributes
            _warn(f"cannot mark the flow {getattr(flow, 'name', flow)!r} for recording: {e!r}")
        return flow

    return decorate
