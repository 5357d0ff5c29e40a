"""What is running now, in every engine, and what just finished: `flowprov status`.

`current_runs()` returns one `RunActivity` per top-level run (a run with no parent: a Snakemake
workflow, a Nextflow pipeline, a Prefect flow, a tracked script or notebook) that is still open,
or that ended within `since`: its tasks (every run below it) done / running / queued / failed, and
their total when the engine says it (Snakemake's job count), its elapsed time, its last event (the
newest `updated_at` of the run and everything below it — heartbeats, the engine's task events) and
its user. Three statements whatever the number of runs (four with Nextflow pipelines running), on
SQLite and PostgreSQL alike.

"Lost" is a judgement made here, for display, and never written to the store. A run still open in
the store is lost when:

- its process (runtime["liveness"], see liveness.py) ran on this host and is gone, or its pid now
  belongs to another process — certain, shown at once;
- otherwise, when that process keeps a heartbeat, no sign of life came for MISSED heartbeats and
  one interval more (from another host: a node lost, a process SIGKILLed or frozen);
- a Nextflow pipeline heard through the weblog (no heartbeat: Nextflow reports task events only):
  when every running task has a time limit (`time_ms`), no event came by the latest of their
  limits (from each task's start) plus NEXTFLOW_GRACE; else after `lost_after` without an event;
- any other open run (recorded without liveness facts; heartbeat off): after `lost_after` without
  an event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, select, union_all

from . import schema as S
from .events import utc
from .liveness import process_state, silence_limit

DEFAULT_SINCE = 3600.0  # runs that ended within the last hour are shown
DEFAULT_LOST_AFTER = 12 * 3600.0  # a run nothing can be judged from: lost after 12 h of silence
NEXTFLOW_GRACE = 15 * 60.0  # beyond a task's time limit: the executor's kill, Nextflow's polling

OPEN = ("started", "scheduled")
DONE = ("completed", "cached")
FAILED = ("failed", "crashed", "aborted", "cancelled")
_CHUNK = 500
_R, _T, _U = S.runs, S.transforms, S.users


@dataclass
class TaskCounts:
    done: int = 0  # completed or cached
    running: int = 0
    queued: int = 0  # scheduled (a Nextflow task submitted, not yet started)
    failed: int = 0  # failed, crashed, aborted, cancelled
    other: int = 0  # ended in a way that is not known ("unknown")
    total: int | None = None  # how many the engine says there will be, when it says

    @property
    def seen(self) -> int:
        return self.done + self.running + self.queued + self.failed + self.other


@dataclass
class RunActivity:
    uid: str
    name: str  # the transform's name (the workflow, pipeline, flow, script)
    run_name: str | None
    kind: str  # the engine (snakemake, nextflow, prefect), else the transform type (script, ...)
    user: str | None
    status: str  # as stored
    state: str  # shown: running, queued, lost, or the stored end (completed, failed, ...)
    started_at: datetime
    finished_at: datetime | None
    last_event: datetime
    elapsed: float  # seconds: to its end, to its last sign of life (lost), or to now
    tasks: TaskCounts = field(default_factory=TaskCounts)
    why: str | None = None  # how `state` was judged (lost, or running by a live process)
    error: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


def current_runs(
    inst=None,
    *,
    since: float = DEFAULT_SINCE,
    user: str | None = None,
    kind: str | None = None,
    lost_after: float = DEFAULT_LOST_AFTER,
    now: datetime | None = None,
) -> list[RunActivity]:
    """Top-level runs open now, or ended (or judged lost) within `since` seconds; newest first."""
    from .db import read_connection
    from .instance import current

    inst = inst or current()
    now = utc(now) or datetime.now(UTC)
    cutoff = now - timedelta(seconds=since)
    with read_connection(inst.engine) as conn:
        tops = _top_level(conn, cutoff, user)
        ids = [r["id"] for r in tops]
        below = _below(conn, ids)
        nextflow = [r["id"] for r in tops if _is_weblog(r) and r["status"] in OPEN]
        limits = _running_limits(conn, nextflow)
    out = []
    for r in tops:
        counts, last = below.get(r["id"], (TaskCounts(), None))
        a = _activity(r, counts, last, limits.get(r["id"]), now, lost_after)
        if kind and a.kind != kind:
            continue
        ended = a.finished_at or (a.last_event if a.state == "lost" else None)
        if ended is not None and ended < cutoff:
            continue
        out.append(a)
    out.sort(key=lambda a: (a.started_at, a.uid), reverse=True)
    return out


# -- the queries -------------------------------------------------------------------------------
def _top_level(conn, cutoff: datetime, user: str | None) -> list[dict]:
    """Runs with no parent, open or ended since the cutoff: two index lookups joined by UNION
    ALL — open ones through (status, started_at), ended ones through (parent_id, finished_at).
    One OR over both made the database read every top-level run (32 ms on 27,000 of them)."""
    base = (
        select(
            _R.c.id,
            _R.c.uid,
            _R.c.name,
            _R.c.status,
            _R.c.started_at,
            _R.c.finished_at,
            _R.c.updated_at,
            _R.c.runtime,
            _R.c.engine,
            _R.c.error,
            _T.c.name.label("transform"),
            _T.c.type,
            _U.c.handle,
        )
        .join(_T, _T.c.id == _R.c.transform_id)
        .outerjoin(_U, _U.c.id == _R.c.created_by_id)
    )
    if user:
        base = base.where(_U.c.handle == user)
    # the ids first, each branch on the runs table alone and served by its own index (a join
    # or a second condition beside them let SQLite's planner read a whole table instead); the
    # open runs' parent is tested on the few rows found: `parent_id + 0` is that test, made
    # unservable by the parent_id indexes
    ids = union_all(
        select(_R.c.id).where(_R.c.status.in_(OPEN)),
        select(_R.c.id).where(
            _R.c.parent_id.is_(None), _R.c.finished_at >= cutoff, _R.c.status.not_in(OPEN)
        ),
    )
    q = base.where(_R.c.id.in_(ids), (_R.c.parent_id + 0).is_(None))
    return [dict(m) for m in conn.execute(q).mappings()]


def _below(conn, ids: list[int]) -> dict[int, tuple[TaskCounts, datetime | None]]:
    """Per top-level run: its descendants counted by status, and their newest updated_at. One
    recursive statement per 500 runs (a Prefect flow's subflows have tasks of their own)."""
    out: dict[int, tuple[TaskCounts, datetime | None]] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        child = _R.alias("child")
        tree = (
            select(_R.c.parent_id.label("root"), _R.c.id.label("id"))
            .where(_R.c.parent_id.in_(chunk))
            .cte("tree", recursive=True)
        )
        tree = tree.union_all(
            select(tree.c.root, child.c.id).join(child, child.c.parent_id == tree.c.id)
        )
        q = (
            select(
                tree.c.root,
                _R.c.status,
                func.count().label("n"),
                func.max(_R.c.updated_at).label("last"),
            )
            .join(_R, _R.c.id == tree.c.id)
            .group_by(tree.c.root, _R.c.status)
        )
        for root, status, n, last in conn.execute(q):
            counts, newest = out.get(root, (TaskCounts(), None))
            _count(counts, status, n)
            last = _as_time(last)
            out[root] = (counts, last if newest is None or (last and last > newest) else newest)
    return out


def _count(c: TaskCounts, status: str, n: int) -> None:
    if status in DONE:
        c.done += n
    elif status == "started":
        c.running += n
    elif status == "scheduled":
        c.queued += n
    elif status in FAILED:
        c.failed += n
    else:
        c.other += n


def _running_limits(conn, ids: list[int]) -> dict[int, list[tuple[datetime, float | None]]]:
    """Per open Nextflow pipeline: (start, time limit in seconds or None) of its running tasks."""
    out: dict[int, list[tuple[datetime, float | None]]] = {}
    for i in range(0, len(ids), _CHUNK):
        q = select(_R.c.parent_id, _R.c.started_at, _R.c.params).where(
            and_(_R.c.parent_id.in_(ids[i : i + _CHUNK]), _R.c.status == "started")
        )
        for parent, started, params in conn.execute(q):
            limit = (params or {}).get("time_ms") if isinstance(params, dict) else None
            ok = isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0
            out.setdefault(parent, []).append((_as_time(started), limit / 1000 if ok else None))
    return out


def _as_time(v) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):  # SQLite's max() of a text column
        v = datetime.fromisoformat(v)
    return utc(v)


# -- the judgement ---------------------------------------------------------------------------
def _is_weblog(r: dict) -> bool:
    rt = r["runtime"] if isinstance(r["runtime"], dict) else {}
    return r["engine"] == "nextflow" and rt.get("source") == "weblog"


def _activity(r, counts, below_last, limits, now, lost_after) -> RunActivity:
    runtime = r["runtime"] if isinstance(r["runtime"], dict) else {}
    started, finished = utc(r["started_at"]), utc(r["finished_at"])
    last = max(t for t in (utc(r["updated_at"]), below_last, started) if t is not None)
    total = runtime.get("jobs_total")
    if isinstance(total, int) and not isinstance(total, bool):
        counts.total = total
    a = RunActivity(
        uid=r["uid"],
        name=r["transform"],
        run_name=r["name"],
        kind=r["engine"] or r["type"],
        user=r["handle"],
        status=r["status"],
        state=r["status"],
        started_at=started,
        finished_at=finished,
        last_event=last,
        elapsed=0.0,
        tasks=counts,
        error=r["error"],
    )
    if a.is_open:
        a.state = "running" if r["status"] == "started" else "queued"
        lost, a.why = _judge(r, runtime, last, limits, now, lost_after)
        if lost:
            a.state = "lost"
    end = finished or (last if a.state == "lost" else now)
    a.elapsed = max((end - started).total_seconds(), 0.0)
    return a


def _judge(r, runtime, last, limits, now, lost_after) -> tuple[bool, str | None]:
    """(lost?, how it was judged) for a run open in the store."""
    silent = (now - last).total_seconds()
    facts = runtime.get("liveness")
    facts = facts if isinstance(facts, dict) else {}
    if facts:
        state = process_state(facts)
        where = f"pid {facts.get('pid')} on {facts.get('host')}"
        if state == "dead":
            return True, f"its process ({where}) is gone without recording an end"
        if state == "alive":
            return False, f"its process ({where}) is alive"
    if _is_weblog(r):
        return _judge_nextflow(last, limits or [], now, lost_after)
    limit = silence_limit(facts)
    if limit is not None:
        if silent > limit:
            return True, (
                f"no heartbeat for {_span(silent)} (it beats every {_span(facts['heartbeat'])})"
            )
        return False, None
    if silent > lost_after:
        return True, f"no event for {_span(silent)} (no heartbeat to judge by)"
    return False, None


def _judge_nextflow(last, running, now, lost_after) -> tuple[bool, str | None]:
    """Nextflow reports task events only: while tasks run, the next event is due by the end of
    the longest time limit among them (Nextflow kills a task at its limit and says so)."""
    silent = (now - last).total_seconds()
    if running and all(limit is not None for _, limit in running):
        deadline = max(
            [start + timedelta(seconds=limit) for start, limit in running]
            + [last]  # a task started before the newest event
        ) + timedelta(seconds=NEXTFLOW_GRACE)
        if now > deadline:
            return True, (
                f"no event for {_span(silent)}, past its running tasks' time limits "
                f"(+{_span(NEXTFLOW_GRACE)})"
            )
        return False, None
    if silent > lost_after:
        return (
            True,
            f"no event for {_span(silent)} (no time limit known: lost after {_span(lost_after)})",
        )
    return False, None


# -- durations -------------------------------------------------------------------------------
def parse_duration(text: str, option: str = "duration") -> float:
    """'90s', '30m', '1h', '2d', '1h30m', or seconds → seconds; a FlowprovError otherwise."""
    import re

    from .errors import ValidationError

    s = str(text).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd]?)", s)
    if not s or not parts or re.sub(r"\s+", "", s) != "".join(n + u for n, u in parts):
        raise ValidationError(f"{option} takes a duration such as 90s, 30m, 1h or 2d, not {text!r}")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * unit[u] for n, u in parts)


def _span(seconds: float) -> str:
    """A short human duration: 45s, 12m, 3h05m, 2d04h."""
    if 0 < seconds < 1:  # a heartbeat interval set this short (tests)
        return f"{seconds:.1f}s"
    s = int(math.floor(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s" if m < 10 else f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


span = _span
