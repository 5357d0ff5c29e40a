"""One weblog POST, as Nextflow's WebLogObserver (nf-weblog) sends it — checked before it is
accepted, so a malformed body is refused (400, with the reason) and never reaches the journal.

Envelope: `runName`, `runId` (the session UUID, shared by a run and its `-resume`s), `event`,
`utcTime`, then `trace` (task events: the raw TraceRecord) or `metadata` (flow events:
{parameters|params, workflow}). See ../shared/reference/engines.md, C2.
"""

from __future__ import annotations

import json
from typing import Any

from flowprov.errors import FlowprovError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

FLOW_EVENTS = ("started", "completed")
TASK_EVENTS = ("process_submitted", "process_started", "process_completed")
KNOWN_EVENTS = FLOW_EVENTS + TASK_EVENTS + ("error",)
MAX_BODY = 1024 * 1024  # bytes: a TraceRecord is ~2 KB, a `started` with big params ~100 KB


class EnvelopeError(FlowprovError):
    """A body that is not a weblog event: refused with this reason, nothing written."""


class WeblogEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    runName: str
    runId: str
    event: str
    utcTime: str | None = None
    trace: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("runName", "runId", "event")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @property
    def known(self) -> bool:
        return self.event in KNOWN_EVENTS

    @property
    def launch(self) -> tuple[str, str]:
        """One launch of a pipeline: a `-resume` keeps runId and gets a new runName."""
        return self.runId, self.runName


def parse_body(body: bytes) -> WeblogEvent:
    """The envelope of one POST body, or EnvelopeError saying why not. A known task event must
    carry its `trace`, a flow event its `metadata`; unknown event kinds pass (counted, ignored)."""
    if len(body) > MAX_BODY:
        raise EnvelopeError(f"body of {len(body)} bytes is over the {MAX_BODY}-byte limit")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise EnvelopeError(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise EnvelopeError(f"not a JSON object but a {type(data).__name__}")
    try:
        ev = WeblogEvent.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise EnvelopeError(f"{where}: {first['msg']} ({e.error_count()} problem(s))") from None
    if ev.event in TASK_EVENTS and not ev.trace:
        raise EnvelopeError(f"a {ev.event} event without its `trace` object")
    if ev.event in FLOW_EVENTS and not isinstance(ev.metadata, dict):
        raise EnvelopeError(f"a {ev.event} event without its `metadata` object")
    if ev.trace is not None and not isinstance(ev.trace.get("task_id", 0), int | str):
        raise EnvelopeError("trace.task_id is neither a number nor a string")
    return ev
