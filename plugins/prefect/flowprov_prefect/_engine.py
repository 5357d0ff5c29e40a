"""The one place flowprov touches Prefect internals.

Prefect 3 has no public hook that sees every task run of a flow without decorating each task.
Its task and flow run engines call `call_hooks(state)` on every state they enter (Running, each
retry, the final state), with the engine — task, task run, resolved parameters, return value —
at hand. We wrap those four methods (sync and async, task and flow), passing every call through
unchanged.

Never breaks the user's flow, even on a Prefect we were not tested with: a version outside TESTED
gets one warning and we try; if a method we hook is missing, one warning and nothing is hooked
(all four or none: flows recorded without their tasks would be silently incomplete). Never more
than one of these warnings per process.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re

log = logging.getLogger("flowprov")

TESTED = ((3, 4), (3, 9))  # the oldest and the newest minor release the tests ran against
HOOKED = (  # (module, class) whose call_hooks we wrap, and the engine fields the callbacks read
    ("task_engine", "SyncTaskRunEngine", ("task", "task_run", "parameters", "_return_value")),
    ("task_engine", "AsyncTaskRunEngine", ("task", "task_run", "parameters", "_return_value")),
    ("flow_engine", "FlowRunEngine", ("flow", "flow_run", "parameters", "_return_value")),
    ("flow_engine", "AsyncFlowRunEngine", ("flow", "flow_run", "parameters", "_return_value")),
)
_state: dict = {"ready": None}  # None: not tried yet; then True (hooked) or False


def _version(text: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2])) if m else None


def _missing() -> str | None:
    """The first internal this Prefect lacks that the plugin needs, or None."""
    import dataclasses
    import importlib

    try:
        from prefect.utilities.annotations import NotSet  # noqa: F401 - return_value needs it
    except ImportError:
        return "prefect.utilities.annotations.NotSet"
    for module, name, fields in HOOKED:
        where = f"prefect.{module}.{name}"
        try:
            cls = getattr(importlib.import_module(f"prefect.{module}"), name)
        except (ImportError, AttributeError):
            return where
        if not callable(getattr(cls, "call_hooks", None)):
            return f"{where}.call_hooks"
        if dataclasses.is_dataclass(cls):  # else its fields cannot be known before a run
            known = {f.name for f in dataclasses.fields(cls)}
            lacking = [f for f in fields if f not in known]
            if lacking:
                return f"{where}.{lacking[0]}"
    return None


def install(on_task_state, on_flow_state) -> bool:
    """Wrap the engines' call_hooks, once per process. At most one warning: for a Prefect outside
    TESTED (we try anyway), or for one lacking a hooked method (then nothing is hooked and this
    returns False: flows run unrecorded). The callbacks never raise."""
    if _state["ready"] is not None:
        return _state["ready"]
    import prefect

    version = str(getattr(prefect, "__version__", "?"))
    found, (lo, hi) = _version(version), TESTED
    tested = f"{lo[0]}.{lo[1]} to {hi[0]}.{hi[1]}"
    missing = _missing()
    if missing is not None:
        _state["ready"] = False
        log.warning(
            "flowprov: Prefect %s has no %s, which flowprov hooks to see flow and task runs "
            "(tested with Prefect %s): flows run normally but are not recorded — update flowprov, "
            "or record with the Python API",
            version,
            missing,
            tested,
        )
        return False
    if found is None or not lo <= found <= hi:
        log.warning(
            "flowprov: Prefect %s is outside the range flowprov's Prefect plugin was tested with "
            "(%s); recording anyway — check the records of the first flow runs",
            version,
            tested,
        )
    from prefect import flow_engine, task_engine

    modules = {"task_engine": task_engine, "flow_engine": flow_engine}
    for module, name, _ in HOOKED:
        callback = on_task_state if module == "task_engine" else on_flow_state
        _wrap(getattr(modules[module], name), callback)
    _state["ready"] = True
    return True


def _notify(callback, engine, args, kwargs) -> None:
    """Call back with the state the engine passes (else its current one). The callbacks catch
    everything, and warn once, themselves."""
    state = args[0] if args else kwargs.get("state")
    callback(engine, state if state is not None else getattr(engine, "state", None))


def _wrap(cls, callback) -> None:
    original = cls.call_hooks
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def call_hooks(self, *args, **kwargs):
            _notify(callback, self, args, kwargs)
            return await original(self, *args, **kwargs)

    else:

        @functools.wraps(original)
        def call_hooks(self, *args, **kwargs):
            _notify(callback, self, args, kwargs)
            return original(self, *args, **kwargs)

    cls.call_hooks = call_hooks


def return_value(engine):
    """The run's in-memory return value (None when it returned nothing); raises AttributeError
    when this Prefect keeps it elsewhere (the caller warns: outputs cannot be recorded)."""
    from prefect.utilities.annotations import NotSet

    value = engine._return_value
    if value is NotSet:
        return None
    return value.result if type(value).__name__ == "ResultRecord" else value
