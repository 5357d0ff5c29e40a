"""flowprov: every task of every engine, by full content hash, in one provenance graph.

    import flowprov as fp
    fp.track()                                   # this script or notebook, and a run of it
    raw = fp.Artifact.filter(description="Raw data of schmidt22 crispra GWS").one()
    df = raw.load()                              # recorded as an input of the current run
    fp.Artifact("hits.parquet", description="hits from schmidt22 crispra GWS").save()
    fp.finish()

Names are imported on first use (PEP 562) so that `import flowprov` and the CLI start fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.4.0"

_EXPORTS = {
    "Artifact": "records",
    "Environment": "records",
    "Package": "records",
    "Run": "records",
    "Storage": "records",
    "Transform": "records",
    "User": "records",
    "track": "context",
    "finish": "context",
    "current_run": "context",
    "settings": "_settings",
    "view": "views",
    "FlowprovError": "errors",
    "save": "artifacts",
    "diff": "diff",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowprov' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"flowprov.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
