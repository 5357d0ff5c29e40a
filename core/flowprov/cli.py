"""The `flowprov` command line (click + rich). Library code never prints; this module renders."""

from __future__ import annotations

import sys

import click

from .cli_output import (
    _console,
    _find,
    _fmt,
    _listing_table,
    _print_listings,
    _summaries,
    _summary,
    _table,
)
from .errors import FlowprovError

TABLE_NAMES = {
    "artifacts": "Artifact",
    "transforms": "Transform",
    "runs": "Run",
    "users": "User",
    "storages": "Storage",
}


class _Group(click.Group):
    """The commands of this file are here from the start; the rest (the cli_*.py modules, and
    the engine plugins' groups found through their entry points) are added the first time a
    command not here is asked for, or the list of commands is: `flowprov ls` imports none of
    them (~35 ms of a 0.17 s run)."""

    _complete = False

    def _add_the_rest(self) -> None:
        if not self._complete:
            self._complete = True
            _add_engine_commands()
            _add_lineage_commands()

    def get_command(self, ctx, cmd_name):
        found = super().get_command(ctx, cmd_name)
        if found is None and not self._complete:
            self._add_the_rest()
            found = super().get_command(ctx, cmd_name)
        return found

    def list_commands(self, ctx):
        self._add_the_rest()
        return super().list_commands(ctx)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FlowprovError as e:
            from rich.markup import escape

            _console(stderr=True).print(f"[bold red]flowprov error:[/] {escape(str(e))}")
            sys.exit(1)
        except OSError as e:  # a path the user gave that the OS refuses: one line, not a traceback
            from rich.markup import escape

            what = f"{e.strerror or e}" + (f": {str(e.filename)[:200]}" if e.filename else "")
            _console(stderr=True).print(f"[bold red]flowprov error:[/] {escape(what)}")
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="flowprov")
def cli():
    """flowprov — provenance for Snakemake, Nextflow, Prefect, scripts and notebooks."""


@cli.command(name="ls")
@click.argument("table", type=click.Choice(sorted(TABLE_NAMES)))
@click.option("-n", "--limit", default=50, show_default=True, help="Newest N records (0 = all).")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Django-style lookup, e.g. --filter key__contains=figures/ (repeatable); "
    "FIELD__in=A,B,C for a list.",
)
@click.option(
    "--status",
    default=None,
    metavar="STATUS",
    help="runs only: runs with this status (started, completed, failed, ...); "
    "same as --filter status=STATUS.",
)
@click.option("--ids", is_flag=True, help="Also show the numeric ids (id, run_id, ...).")
def ls(table, limit, filters, status, ids):
    """List records of one table, newest first, with uids, names and handles."""
    lookups = {}
    for f in filters:
        if "=" not in f:
            raise click.BadParameter(f"expected FIELD=VALUE, got {f!r}", param_hint="--filter")
        k, v = f.split("=", 1)
        lookups[k] = v.split(",") if k.endswith("__in") else v
    if status is not None:
        lookups["status"] = _run_status(table, status)
    fast = None
    if not lookups:
        from . import config as C
        from .fastread import list_rows
        from .views import LISTINGS, labels

        cfg = C.load_instance_config(C.locate_instance_config())
        sql = LISTINGS[table].sql(ids)
        fast = list_rows(cfg.db, table, sql, labels(table, ids), limit or None)
    if fast is not None:
        from .views import labels

        rows, total = fast
        shown = f" (newest {len(rows)} of {total})" if len(rows) < total else f" ({total})"
        _console().print(_table(f"{table}{shown}", labels(table, ids), rows))
        return
    rendered, rows, total = _listing_table(table, limit or None, lookups, ids)
    shown = f" (newest {len(rows)} of {total})" if len(rows) < total else f" ({total})"
    rendered.title = f"{table}{shown}"
    _console().print(rendered)


def _run_status(table: str, status: str) -> str:
    """--status, checked: only for runs, only a status flowprov records."""
    if table != "runs":
        raise click.BadParameter(
            f"only `flowprov ls runs` takes it, not {table}", param_hint="--status"
        )
    from .events import RUN_STATUSES

    if status not in RUN_STATUSES:
        raise click.BadParameter(
            f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}",
            param_hint="--status",
        )
    return status


@cli.command()
@click.argument("uid")
def show(uid):
    """One record (by uid or a unique uid prefix) with its relations."""
    from rich.markup import escape

    from .records import Artifact, Run, Storage, Transform, User

    rec = _find(uid)
    out = _console()
    out.print(f"[bold]{type(rec).__name__}[/] {rec.uid}")
    for k, v in rec._row.items():
        # numeric ids are shown below as the records they point at
        if k in ("id", "family", "version_tag", "stem") or k.endswith("_id") or v is None:
            continue
        if k == "source_code":
            v = f"{len(v.splitlines())} lines"
        out.print(f"  {k:<16} {_fmt(v) if not isinstance(v, dict) else v}")

    def one(label, record):
        out.print(f"  [bold]{label:<16}[/]{escape(_summary(record))}")

    def rel(label, qs):
        lines, total = _summaries(qs, 20)  # newest first, names resolved in one query
        out.print(f"  [bold]{label}[/] ({total})")
        for line in lines:
            out.print(f"    {escape(line)}")
        if total > len(lines):
            out.print(f"    … {total - len(lines)} more")

    if isinstance(rec, Artifact):
        out.print(f"  {'path':<16} {rec.path}")
        run = rec.run
        one("storage", rec.storage)
        one("created by run", run)
        one("transform", run.transform if run else None)
        one("created by", rec.created_by)
        rel("input of runs", rec.input_of)
        rel("versions", rec.versions)
    elif isinstance(rec, Run):
        one("transform", rec.transform)
        one("created by", rec.created_by)
        if rec.parent_id:
            one("parent", rec.parent)
        rel("inputs", rec.inputs)
        rel("outputs", rec.outputs)
        rel("child runs", rec.children)
    elif isinstance(rec, Transform):
        one("created by", rec.created_by)
        if rec.parent_id:
            one("part of", rec.parent)
            rel("children", rec.children)
        rel("runs", rec.runs)
        rel("parents", rec.parents)
        rel("versions", rec.versions)
    elif isinstance(rec, Storage):
        one("created by", rec.created_by)
    elif isinstance(rec, User):
        rel("transforms", Transform.filter(created_by=rec))
        rel("artifacts", Artifact.filter(created_by=rec))


@cli.command()
@click.argument("query")
@click.option("-n", "--limit", default=10, show_default=True)
def search(query, limit):
    """Typo-tolerant search across every record type, best match first."""
    from .search import search_hits  # plain rows: no records, no SQLAlchemy on SQLite

    rows = []
    for h in search_hits(query, limit=limit):
        r = h.row  # each record type has its own fields: a User has no key, a Run no name
        label = next(
            (
                str(r[f])
                for f in ("name", "key", "file_name", "description", "handle", "root", "reference")
                if r.get(f)
            ),
            "",
        )
        rows.append({"score": f"{h.score:.0f}", "type": h.type, "uid": h.uid, "match": label})
    _console().print(_table(f"search {query!r}", ("score", "type", "uid", "match"), rows))


@cli.command()
@click.option("-n", "--limit", default=7, show_default=True)
def view(limit):
    """The most recent records of every table, newest first."""
    _print_listings(_console(), limit)


@cli.command()
@click.option(
    "--dir",
    "directory",
    default="flowprov-demo",
    show_default=True,
    type=click.Path(),
    help="Folder for the demo's instance and files (replaced if it holds an earlier demo).",
)
def demo(directory):
    """Play the project flow (CRISPR screen + scRNA-seq) on a fresh local instance and answer its questions."""
    from pathlib import Path

    from rich.markup import escape

    from . import demo as D

    out = _console()
    directory = Path(directory).resolve()  # once: the steps run in other working directories
    inst = D.prepare(directory)
    out.print(f"[bold]flowprov demo[/]: instance {inst.name!r} at {inst.storage.root}")
    for i, step in enumerate(D.STEPS, 1):
        with out.status(f"{i}/{len(D.STEPS)} {step.title} ({step.user}) …"):
            D.run_step(step, inst, directory, i)
        out.print(f"  [green]✓[/] {i}. {escape(step.title)} — {step.file}, as {step.user}")
    a = D.answers()

    def label(t) -> str:
        version = f", {t.version}" if t.version else ""
        return escape(f"{t.name} [{t.type}{version}] by {t.created_by.handle}")

    out.print()
    out.print("[bold]Where did the matrixplot figure come from?[/]")
    out.print(f"  {a['figure'].key}  ({a['figure'].uid})")
    out.print(f"  created by {label(a['figure_transform'])}, transform {a['figure_transform'].uid}")
    out.print(
        f"  read by {len(a['figure_read_by'])} run(s): "
        + ", ".join(
            escape(f"{r.transform.name} ({r.created_by.handle})") for r in a["figure_read_by"]
        )
    )
    out.print("  upstream transforms (each reads what the ones below it wrote):")
    for depth, t, repeat in a["ancestry"]:
        out.print(
            f"    {'   ' * depth}{'└─ ' if depth else ''}{label(t)}{' (shown above)' if repeat else ''}"
        )
    out.print()
    t = a["searched_transform"]
    out.print(
        f"[bold]Transform.search('GWS CRIPSRa analysis').first()[/] → {escape(repr(t.name))} ({t.uid}, {t.type}, key {t.key})"
    )
    out.print("[bold]Artifacts created by that notebook:[/]")
    for art in a["artifacts_of_notebook"]:
        out.print(
            f"  {art.uid}  {escape(art.description or art.key)}  {art.suffix}  {art.size} bytes"
        )
    out.print(
        f"[bold]Which transform ingested the first artifact?[/] {label(a['first_transform'])}; "
        f"[bold]which user?[/] {a['first_user'].handle} ({a['first_user'].name})"
    )
    out.print(
        "[bold]Transforms created by testuser1:[/] "
        + ", ".join(label(x) for x in a["transforms_by_testuser1"])
    )
    out.print(
        "[bold]Notebooks created by testuser1:[/] "
        + ", ".join(escape(f"{x.name} ({x.uid})") for x in a["notebooks_by_testuser1"])
    )
    out.print()
    out.print("[bold]Recent additions, every table:[/]")
    _print_listings(out, 5)
    pictures = D.draw_lineage(a, directory)
    out.print()
    out.print("[bold]Lineage of the figure[/] (the review notebook's input highlighted):")
    for p in pictures:
        out.print(f"  {escape(str(p))}")
    out.print(
        f"\nThe demo instance is now current. Explore it: [bold]flowprov ls artifacts[/], "
        f"[bold]flowprov show {a['figure'].uid}[/], [bold]flowprov lineage {a['figure'].uid}[/]."
    )
    out.print(
        "Browse it: [bold]flowprov serve[/], then open http://127.0.0.1:8700/ "
        f"(the figure: http://127.0.0.1:8700/artifact/{a['figure'].uid})."
    )


@cli.command()
@click.argument("file", required=False, type=click.Path())
def replay(file):
    """Apply events kept on disk, idempotently. No FILE: every pending journal of this machine
    (left by a killed process, or one that could not reach its store), each to its instance, then
    every OpenLineage event a process could not send. FILE: that journal, or a spool file of an
    earlier flowprov (to the current instance)."""
    from rich.markup import escape

    from .spool import journal_dir, replay_pending
    from .spool import replay as do_replay

    out = _console()
    if file:
        batches, events = do_replay(file)
        out.print(f"replayed {events} events in {batches} batches from {escape(file)}")
        return
    results = replay_pending()
    for r in results:
        where = escape(str(r.path))
        if r.skipped:
            out.print(f"skipped {where}: {escape(r.skipped)}")
        elif r.error:
            _console(stderr=True).print(f"[bold red]not applied[/] {where}: {escape(r.error)}")
        else:
            cut = " (its last line, cut short by the kill, skipped)" if r.damaged_tail else ""
            out.print(f"replayed {r.events} events in {r.batches} batches from {where}{cut}")
    if not results:
        out.print(f"no pending journals in {escape(str(journal_dir()))}")
    failed = any(r.error for r in results)
    # then the OpenLineage events a process could not send (rebuilt from the store, which now
    # holds what the journals held)
    from .openlineage.emitter import replay_spools

    for path, n, error in replay_spools():
        if error:
            failed = True
            _console(stderr=True).print(
                f"[bold red]OpenLineage events not sent[/] from {escape(str(path))}: {escape(error)}"
            )
        else:
            out.print(f"sent {n} OpenLineage events from {escape(str(path))}")
    if failed:
        sys.exit(1)


ENTRY_POINT_GROUP = "flowprov.commands"


def _add_engine_commands() -> None:
    """Each engine plugin adds its command group through the `flowprov.commands` entry-point
    group (as Snakemake finds its logger plugins): the core never imports a plugin, so a fourth
    engine is one new folder and its line in pyproject.toml."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in cli.commands:
            continue
        try:
            command = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take the CLI down
            import logging

            logging.getLogger("flowprov").warning(
                "flowprov: the %r commands (%s) could not be loaded: %s", ep.name, ep.value, e
            )
            continue
        cli.add_command(command, ep.name)


def _add_lineage_commands() -> None:
    from .cli_diff import COMMANDS as DIFF_COMMANDS
    from .cli_envs import COMMANDS as ENV_COMMANDS
    from .cli_instance import COMMANDS as INSTANCE_COMMANDS
    from .cli_lineage import COMMANDS
    from .cli_serve import COMMANDS as SERVE_COMMANDS
    from .cli_status import COMMANDS as STATUS_COMMANDS
    from .cli_storage import COMMANDS as STORAGE_COMMANDS
    from .cli_user import COMMANDS as USER_COMMANDS

    for command in (
        INSTANCE_COMMANDS
        + USER_COMMANDS
        + COMMANDS
        + STORAGE_COMMANDS
        + ENV_COMMANDS
        + DIFF_COMMANDS
        + STATUS_COMMANDS
        + SERVE_COMMANDS
    ):
        cli.add_command(command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
