"""`from flowprov.prefect import track` — the Prefect plugin (plugins/prefect/flowprov_prefect)."""

from flowprov_prefect import track

__all__ = ["track"]
