"""flowprov for Prefect 3: decorate a flow with `@track()`; every task run is recorded.

    from prefect import flow, task
    from flowprov.prefect import track     # (also importable as flowprov_prefect.track)

    @track()
    @flow(version="1.2")
    def integrated_analysis(counts: Path, hits: Path) -> Path: ...

Tasks stay plain `@task`. See `recorder.py` for what is recorded and `_engine.py` for the one
place Prefect internals are touched.
"""

from .recorder import track

__all__ = ["track"]
