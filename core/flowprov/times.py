"""Times as the store keeps them: UTC. A module of its own so that what only reads the store
(the OpenLineage sender, say) need not import the event models and pydantic to get it."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(t: datetime | None) -> datetime | None:
    """Every time the store keeps is UTC: an aware time is converted, a naive one is taken as UTC
    (SQLite keeps no zone: a local time stored as given would be read back hours off)."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
