"""CLI: `flowprov status [--watch]` — what runs now in every engine, and what just finished."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the status queries load SQLAlchemy: only when `status` runs (every CLI
    from .status import RunActivity  # command loads this module; `flowprov search` must be fast)

_STYLE = {
    "running": "bold green",
    "queued": "cyan",
    "lost": "bold red",
    "completed": "green",
    "cached": "green",
    "failed": "red",
    "crashed": "red",
    "aborted": "yellow",
    "cancelled": "yellow",
    "unknown": "magenta",
}


def _tasks(a: RunActivity) -> str:
    t = a.tasks
    if not t.seen and t.total is None:
        return ""
    parts = [f"{t.done} done"]
    if t.running:
        parts.append(f"{t.running} running")
    if t.queued:
        parts.append(f"{t.queued} queued")
    if t.failed:
        parts.append(f"{t.failed} failed")
    if t.other:
        parts.append(f"{t.other} unknown")
    return " · ".join(parts) + (f" / {t.total}" if t.total is not None else "")


def _ago(a: RunActivity, now: float) -> str:
    from .status import span

    return span(now - a.last_event.timestamp()) + " ago"


def _table(runs: list[RunActivity], title: str):
    from rich.table import Table
    from rich.text import Text

    from .status import span

    t = Table(title=title, title_justify="left", pad_edge=False)
    for c in ("run", "name", "engine", "user", "state", "tasks", "elapsed", "last event", "note"):
        t.add_column(c, overflow="fold", no_wrap=c in ("run", "state", "elapsed"))
    now = time.time()
    for a in runs:
        note = a.why if a.state == "lost" else ((a.error or "").splitlines() or [""])[0][:80]
        t.add_row(
            Text(a.uid),
            Text(
                a.name if not a.run_name or a.kind == "script" else f"{a.name} ({a.run_name})"[:80]
            ),
            Text(a.kind or ""),
            Text(a.user or ""),
            Text(a.state, style=_STYLE.get(a.state, "")),
            Text(_tasks(a)),
            Text(span(a.elapsed)),
            Text(_ago(a, now)),
            Text(note or ""),
        )
    return t


def _json(runs: list[RunActivity]) -> str:
    def one(a: RunActivity) -> dict:
        d = {k: getattr(a, k) for k in ("uid", "name", "run_name", "kind", "user", "status")}
        d |= {"state": a.state, "why": a.why, "error": a.error, "elapsed": round(a.elapsed, 3)}
        for k in ("started_at", "finished_at", "last_event"):
            v = getattr(a, k)
            d[k] = v.isoformat() if v is not None else None
        t = a.tasks
        d["tasks"] = {
            "done": t.done,
            "running": t.running,
            "queued": t.queued,
            "failed": t.failed,
            "unknown": t.other,
            "total": t.total,
        }
        return d

    return json.dumps([one(a) for a in runs], indent=2)


@click.command()
@click.option("--watch", is_flag=True, help="Refresh in place until Ctrl-C.")
@click.option(
    "--interval",
    default="2s",
    show_default=True,
    metavar="DURATION",
    help="With --watch: how often to refresh.",
)
@click.option(
    "--since",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Also show runs that ended (or were lost) within this time: 90s, 30m, 1h, 2d.",
)
@click.option("--user", "user", metavar="HANDLE", help="Only this user's runs.")
@click.option(
    "--engine",
    "kind",
    metavar="NAME",
    help="Only runs of this engine or kind: snakemake, nextflow, prefect, script, notebook.",
)
@click.option(
    "--lost-after",
    default="12h",
    show_default=True,
    metavar="DURATION",
    help="A run with nothing better to judge it by (a Nextflow pipeline whose running tasks "
    "have no time limit; a run recorded without a heartbeat) is shown lost after this long "
    "without an event.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def status(watch, interval, since, user, kind, lost_after, fmt):
    """Runs in progress and just finished, across engines: per workflow, pipeline, flow, script
    or notebook its tasks done / running / failed (of the total when the engine knows it), its
    elapsed time, last event and user. A run whose process died without saying so is shown
    "lost" (see the README: how lost is judged)."""
    from rich.live import Live

    from .cli_output import _console
    from .errors import ValidationError
    from .instance import current
    from .status import current_runs, parse_duration, span

    every = parse_duration(interval, "--interval")
    kw = dict(
        since=parse_duration(since, "--since"),
        user=user,
        kind=kind,
        lost_after=parse_duration(lost_after, "--lost-after"),
    )
    if watch and fmt == "json":
        raise ValidationError("--watch shows a table; --format json prints once")
    if watch and every <= 0:
        raise ValidationError("--interval must be more than 0 seconds")
    inst = current()
    title = f"runs now and since {span(kw['since'])} ago — {inst.name}"

    def render():
        runs = current_runs(inst, **kw)
        if not runs:
            from rich.text import Text

            return Text(f"no runs in progress, none ended in the last {span(kw['since'])}")
        return _table(runs, title)

    if fmt == "json":
        sys.stdout.write(_json(current_runs(inst, **kw)) + "\n")
        return
    out = _console()
    if not watch:
        out.print(render())
        return
    try:
        with Live(render(), console=out, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(every)
                live.update(render(), refresh=True)
    except KeyboardInterrupt:
        pass


COMMANDS = (status,)
