"""flowprov: every task of every engine, by full content hash, in one provenance graph.

    import flowprov as fp
    fp.track()                                   # this script or notebook, and a run of it
    raw = fp.Artifact.filter(description="Raw data of schmidt22 crispra GWS").one()
    df = raw.load()                              # recorded as an input of the current run
    fp.Artifact("hits.parquet", description="hits from schmidt22 crispra GWS").save()
    fp.finish()
"""

from .context import current_run, finish, track
from .errors import FlowprovError
from .records import Artifact, Run, Storage, Transform, User
from .settings import settings
from .view import view

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "FlowprovError",
    "Run",
    "Storage",
    "Transform",
    "User",
    "current_run",
    "finish",
    "save",
    "settings",
    "track",
    "view",
    "__version__",
]


def save(records) -> list:
    """Save many records at once; Artifacts are hashed, placed and recorded in one transaction."""
    from .artifacts import register

    records = list(records)
    artifacts = [r for r in records if isinstance(r, Artifact) and r._row.get("id") is None]
    if artifacts:
        register(artifacts)
    for r in records:
        if not isinstance(r, Artifact):
            r.save()
    return records
