"""flowprov's Nextflow bridge: ingest a run's trace file, its task work directories and its
data-lineage store (`flowprov nextflow ingest`). Nextflow itself is not needed — only its files.

Names load on first use: the flowprov CLI imports this package's `cli` on every start.
"""

import importlib

__all__ = ["IngestReport", "ingest_lineage", "ingest_trace"]


def __getattr__(name: str):
    if name in __all__:
        module = "lineage" if name == "ingest_lineage" else "ingest"
        return getattr(importlib.import_module(f"flowprov_nextflow.{module}"), name)
    raise AttributeError(f"module 'flowprov_nextflow' has no attribute {name!r}")
