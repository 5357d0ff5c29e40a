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
HOOKED = (  # (module, class) whose call_hooks we wrap
    ("task_engine", "SyncTaskRunEngine"),
    ("task_engine", "AsyncTaskRunEngine"),
    ("flow_engine", "FlowRunEngine"),
    ("flow_engine", "AsyncFlowRunEngine"),
)
_state: dict = {"ready": None}  # None: not tried yet; then True (hooked) or False


def _version(text: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2])) if m else None


def _missing() -> str | None:
    """The first hooked internal this Prefect lacks, or None."""
    import importlib

    for module, cls in HOOKED:
        try:
            hooks = getattr(importlib.import_module(f"prefect.{module}"), cls).call_hooks
        except (ImportError, AttributeError):
            return f"prefect.{module}.{cls}.call_hooks"
        if not callable(hooks):
            return f"prefect.{module}.{cls}.call_hooks"
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
    for module, cls in HOOKED:
        callback = on_task_state if module == "task_engine" else on_flow_state
        _wrap(getattr(modules[module], cls), callback)
    _state["ready"] = True
    return True


def _notify(callback, engine, args, kwargs) -> None:
    """Call back with the state the engine passes (or its current one); never raises."""
    try:
        state = args[0] if args else kwargs.get("state")
        callback(engine, state if state is not None else engine.state)
    except Exception:  # noqa: BLE001 - the callbacks report their own problems once
        pass


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
    """The run's in-memory return value, or None."""
    try:
        from prefect.utilities.annotations import NotSet
    except ImportError:
        NotSet = None  # noqa: N806
    value = getattr(engine, "_return_value", NotSet)
    if value is NotSet or value is None:
        return None
    return value.result if type(value).__name__ == "ResultRecord" else value
