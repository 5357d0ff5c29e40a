"""OpenLineage out: every run, of every engine, as RunEvents through openlineage-python.

Configured the client's usual way, and only that way: `OPENLINEAGE_URL` (with
`OPENLINEAGE_ENDPOINT`, `OPENLINEAGE_API_KEY`), an `openlineage.yml` (`OPENLINEAGE_CONFIG`, the
working directory, `~/.openlineage/`), or `OPENLINEAGE__TRANSPORT__...` variables;
`OPENLINEAGE_DISABLED=true` turns it off. With none of these, nothing is imported and nothing is
sent: `configured()` is the whole cost.

- emitter.py: live events after each committed write, from a background thread; spooling
- facts.py: the runs, their transforms, parents and datasets, read in bulk
- mapping.py: facts → RunEvent (job per transform, run id from the run's uid, facets)
- backfill.py: a lineage's recorded history as newline-delimited RunEvents
"""

from __future__ import annotations

import os
from pathlib import Path


def configured() -> bool:
    """Whether the openlineage-python client would find a transport here (without importing it:
    the client falls back to printing events to the console, which flowprov does not want)."""
    env = os.environ
    if env.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OPENLINEAGE_URL"):
        return True
    # asked on every write: os.environ's own (encoded) keys are read without decoding each one
    raw = getattr(env, "_data", None)
    if isinstance(raw, dict) and isinstance(next(iter(raw), b""), bytes):
        found = any(k.startswith(b"OPENLINEAGE__TRANSPORT") for k in raw)
    else:
        found = any(k.startswith("OPENLINEAGE__TRANSPORT") for k in env)
    if found:
        return True
    if env.get("OPENLINEAGE_CONFIG"):
        return Path(env["OPENLINEAGE_CONFIG"]).is_file()
    return os.path.isfile("openlineage.yml") or os.path.isfile(
        os.path.expanduser("~/.openlineage/openlineage.yml")
    )


def flush(timeout: float | None = None) -> bool:
    """Wait until this process's OpenLineage events are sent (or spooled) — those of the store
    writer processes its sinks started too; False if `timeout` seconds ran out first."""
    from ..spool import flush_all
    from .emitter import flush as _flush

    flush_all(openlineage=True)
    return _flush(timeout)
