"""The one place flowprov touches Prefect internals.

Prefect 3 has no public hook that sees every task run of a flow without decorating each task.
Its task and flow run engines call `call_hooks(state)` on every state they enter (Running, each
retry, the final state), with the engine — task, task run, resolved parameters, return value —
at hand. We wrap those four methods (sync and async, task and flow). Tested with the Prefect range
below; on any other version `check_version` refuses with a clear message instead of silently
recording nothing.
"""

from __future__ import annotations

import functools

from flowprov.errors import FlowprovError

TESTED = ((3, 4), (3, 10))  # [3.4, 3.10)
_installed = False


def check_version() -> None:
    import prefect

    try:
        major, minor = (int(x) for x in prefect.__version__.split(".")[:2])
    except ValueError:
        major, minor = (0, 0)
    lo, hi = TESTED
    if not (lo <= (major, minor) < hi):
        raise FlowprovError(
            f"flowprov's Prefect plugin is tested with Prefect {lo[0]}.{lo[1]} to before {hi[0]}.{hi[1]}, "
            f"not {prefect.__version__}: install a tested Prefect (pip install 'flowprov[prefect]') "
            "or record runs with the Python API"
        )


def install(on_task_state, on_flow_state) -> None:
    """Wrap the engines' call_hooks once per process. The callbacks never raise."""
    global _installed
    if _installed:
        return
    from prefect import flow_engine, task_engine

    def wrap_sync(cls, callback):
        original = cls.call_hooks

        @functools.wraps(original)
        def call_hooks(self, state=None):
            callback(self, state if state is not None else self.state)
            return original(self, state)

        cls.call_hooks = call_hooks

    def wrap_async(cls, callback):
        original = cls.call_hooks

        @functools.wraps(original)
        async def call_hooks(self, state=None):
            callback(self, state if state is not None else self.state)
            return await original(self, state)

        cls.call_hooks = call_hooks

    wrap_sync(task_engine.SyncTaskRunEngine, on_task_state)
    wrap_async(task_engine.AsyncTaskRunEngine, on_task_state)
    wrap_sync(flow_engine.FlowRunEngine, on_flow_state)
    wrap_async(flow_engine.AsyncFlowRunEngine, on_flow_state)
    _installed = True


def return_value(engine):
    """The run's in-memory return value, or None."""
    from prefect.utilities.annotations import NotSet

    value = getattr(engine, "_return_value", NotSet)
    if value is NotSet:
        return None
    return value.result if type(value).__name__ == "ResultRecord" else value
