"""Prefect flow and task runs → flowprov events.

- A flow decorated with `@track()` → a Transform of type flow (name, `flow.version` — Prefect
  derives it from the source file when not given — and the function's source) and one Run per flow
  run: parameters, Prefect's flow-run id as reference, its name, start/end, final status
  (completed, failed, crashed, cancelled). Subflows called inside it become child runs.
- Every task run inside → a Run of a Transform of type task (versioned by the task function's
  source; its parent the flow Transform), child of the flow's run, with its parameters, status,
  error, and the upstream task runs Prefect knows (`task_run.task_inputs`).
- Files: arguments that are existing paths (str or Path, also inside lists, tuples, sets, dicts) are
  inputs; returned paths are outputs; hashed in full, registered in place, existing artifacts of
  the same content reused. Inside a task, `fp.Artifact(...).save()` and `artifact.cache()` use the
  task's run.
- Never breaks the flow: every callback catches everything; an unreachable store → one warning
  and the events go to a spool file for `flowprov replay`. Nothing is logged per task.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import PurePath

from flowprov.events import jsonable

log = logging.getLogger("flowprov")
ENGINE = "prefect"
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
class FlowRec:
    run_uid: str
    spec: object  # TransformSpec of the flow
    sink: object
    user: str
    token: object = None
    run_token: object = None  # flowprov's current run while the flow body runs
    tasks: dict = field(default_factory=dict)  # task_run id → (run uid, contextvar token)


_flows: dict[str, FlowRec] = {}  # flow run id → record
_lock = threading.Lock()
_warned = [False]


def _warn(message: str) -> None:
    if not _warned[0]:
        _warned[0] = True
        log.warning(
            "flowprov: %s (the flow is not affected; further problems are not reported)", message
        )


def paths_in(value, depth: int = 0) -> list[str]:
    """Existing file or folder paths among a value (str/Path, and inside containers)."""
    if depth > 4:
        return []
    if isinstance(value, PurePath) or (
        isinstance(value, str) and 0 < len(value) < 4096 and "\n" not in value
    ):
        try:
            p = os.fspath(value)
            return [os.path.abspath(p)] if os.path.isfile(p) or os.path.isdir(p) else []
        except (OSError, ValueError):
            return []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        out = []
        for v in value:
            out += paths_in(v, depth + 1)
        return out
    return []


def _source(fn) -> str | None:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return None


def _file_events(paths, roots, run_ref, user):
    from flowprov.artifacts import in_place_event

    events, hashes = [], []
    for p in dict.fromkeys(paths):
        try:
            ev = in_place_event(p, roots=roots, run=run_ref, created_by=user)
        except Exception as e:  # noqa: BLE001 - an unreadable file: record the rest
            _warn(f"could not hash {p}: {e}")
            continue
        events.append(ev)
        hashes.append(ev.hash)
    return events, hashes


def _roots(instance: str | None = None):
    from flowprov.instance import current
    from flowprov.storage import StorageRoot

    try:
        roots = list(current(instance).storages().values())
    except Exception:  # noqa: BLE001 - the store may be down; files then root at their folder
        roots = []
    return roots + [StorageRoot(os.getcwd())]


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
        _start_flow(engine, flow_run, fid, options or parent.options_for_child, parent)
    elif state.is_final() and rec is not None:
        _finish_flow(engine, state, fid, rec)


def _start_flow(engine, flow_run, fid, options, parent) -> None:
    from flowprov.config import current_user_config
    from flowprov.events import ArtifactRef, ArtifactUsed, RunRef, RunStarted, TransformSpec
    from flowprov.spool import Sink
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
    spool = options.get("spool") or os.path.join(os.getcwd(), ".flowprov-prefect-spool.jsonl")
    sink = parent.sink if parent else Sink(spool, "prefect", instance=options.get("instance"))
    rec = FlowRec(random_uid(RUN_UID), spec, sink, user)
    rec.options_for_child = options  # type: ignore[attr-defined]
    params = getattr(engine, "parameters", None) or {}
    run_ref = RunRef(uid=rec.run_uid)
    events = [
        RunStarted(
            uid=rec.run_uid,
            transform=spec,
            engine=ENGINE,
            reference=str(flow_run.id),
            reference_type="prefect flow run",
            name=flow_run.name,
            params=jsonable(params),
            parent=RunRef(uid=parent.run_uid) if parent else None,
            created_by=user,
        )
    ]
    regs, hashes = _file_events(paths_in(params), _roots(sink.instance), None, user)
    events += regs + [
        ArtifactUsed(run=run_ref, artifact=ArtifactRef(hash=h), created_by=user) for h in hashes
    ]
    sink.send(events)
    with _lock:
        _flows[fid] = rec
    rec.token = _active.set(rec)
    # fp.Artifact(...).save() / .cache() in the flow body (outside tasks) use the flow's run
    from flowprov.context import _current_run
    from flowprov.records import Run

    rec.run_token = _current_run.set(Run._from_row({"uid": rec.run_uid}))


def _finish_flow(engine, state, fid, rec: FlowRec) -> None:
    from flowprov.events import RunFinished, RunRef

    from ._engine import return_value

    status = _STATUS.get(
        state.type.value if hasattr(state.type, "value") else str(state.type), "failed"
    )
    events = []
    if status == "completed":
        events, _ = _file_events(
            paths_in(return_value(engine)),
            _roots(rec.sink.instance),
            RunRef(uid=rec.run_uid),
            rec.user,
        )
    events.append(
        RunFinished(
            run=RunRef(uid=rec.run_uid),
            status=status,
            created_by=rec.user,
            error=None if status == "completed" else (state.message or state.name),
        )
    )
    rec.sink.send(events)
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
    from flowprov.context import _current_run
    from flowprov.events import (
        ArtifactRef,
        ArtifactUsed,
        RunFinished,
        RunRef,
        RunStarted,
        TransformSpec,
    )
    from flowprov.records import Run
    from flowprov.uids import RUN_UID, random_uid

    task_run = getattr(engine, "task_run", None)
    if task_run is None or task_run.flow_run_id is None:
        return
    rec = _flows.get(str(task_run.flow_run_id))
    if rec is None:
        return
    tid = str(task_run.id)
    if state.is_running():
        if tid in rec.tasks:
            return  # a retry: the same task run, still running
        task = engine.task
        spec = TransformSpec(
            name=task.name,
            type="task",
            key=f"prefect:{task.fn.__module__}.{task.fn.__qualname__}",
            source_code=_source(task.fn),
            parent=rec.spec,
        )
        uid = random_uid(RUN_UID)
        params = getattr(engine, "parameters", None) or {}
        upstream = {
            k: [str(getattr(x, "id", x)) for x in v]
            for k, v in (getattr(task_run, "task_inputs", None) or {}).items()
            if v and any(getattr(x, "input_type", "") == "task_run" for x in v)
        }
        run_ref = RunRef(uid=uid)
        events = [
            RunStarted(
                uid=uid,
                transform=spec,
                parent=RunRef(uid=rec.run_uid),
                engine=ENGINE,
                reference=tid,
                reference_type="prefect task run",
                name=task_run.name,
                params={
                    "parameters": jsonable(params),
                    **({"upstream": upstream} if upstream else {}),
                },
                created_by=rec.user,
            )
        ]
        regs, hashes = _file_events(paths_in(params), _roots(rec.sink.instance), None, rec.user)
        events += regs + [
            ArtifactUsed(run=run_ref, artifact=ArtifactRef(hash=h), created_by=rec.user)
            for h in hashes
        ]
        rec.sink.send(events, buffered=True)
        # fp.Artifact(...).save() / .cache() inside the task body use the task's run
        token = _current_run.set(Run._from_row({"uid": uid}))
        rec.tasks[tid] = (uid, token)
    elif state.is_final() and tid in rec.tasks:
        from ._engine import return_value

        uid, token = rec.tasks.pop(tid)
        status = "completed" if state.is_completed() else _STATUS.get(state.type.value, "failed")
        events = []
        if status == "completed":
            events, _ = _file_events(
                paths_in(return_value(engine)), _roots(rec.sink.instance), RunRef(uid=uid), rec.user
            )
        events.append(
            RunFinished(
                run=RunRef(uid=uid),
                status=status,
                created_by=rec.user,
                error=None if status == "completed" else (state.message or state.name),
            )
        )
        rec.sink.send(events, buffered=True)
        try:
            _current_run.reset(token)
        except ValueError:
            pass


def track(*, instance: str | None = None, spool: str | os.PathLike | None = None):
    """Decorate a Prefect flow (put it above `@flow`): its runs and all their task runs are
    recorded. `instance`: the flowprov instance (default: FLOWPROV_INSTANCE, then the current
    one); `spool`: where events wait if the store is unreachable."""
    from flowprov.errors import ValidationError

    from ._engine import check_version, install

    check_version()
    install(on_task_state, on_flow_state)

    def decorate(flow):
        from prefect import Flow

        if not isinstance(flow, Flow):
            raise ValidationError("@track() decorates a Prefect flow: put it above @flow")
        flow._flowprov = {"instance": instance, "spool": os.fspath(spool) if spool else None}
        return flow

    return decorate
