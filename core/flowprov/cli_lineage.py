"""CLI commands over the lineage graph: lineage, parents, impact, stale, verify, export."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from .cli_output import _console, _find, _fmt

DIRECTION = [
    click.option(
        "--upstream",
        "direction",
        flag_value="upstream",
        default=True,
        help="Where it came from (default).",
    ),
    click.option("--downstream", "direction", flag_value="downstream", help="What came of it."),
    click.option("--both", "direction", flag_value="both", help="Both ways."),
    click.option(
        "--depth",
        type=click.IntRange(min=0),
        default=None,
        help="Steps (runs) to walk; default: no limit.",
    ),
]


def _direction(f):
    for opt in reversed(DIRECTION):
        f = opt(f)
    return f


def _lineage_record(uid: str):
    from .errors import ValidationError
    from .records import Artifact, Run, Transform

    rec = _find(uid)
    if not isinstance(rec, (Artifact, Run, Transform)):
        raise ValidationError(
            f"{uid} is a {type(rec).__name__}: lineage is of artifacts, runs and transforms"
        )
    return rec


@click.command()
@click.argument("uid")
@_direction
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "svg", "png", "mermaid", "dot", "json"]),
    default=None,
    help="Default: from -o's suffix, else html.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="File to write (default: lineage_<uid>.<format>; mermaid/dot/json print to stdout).",
)
@click.option(
    "--collapse",
    "collapse_over",
    type=click.IntRange(min=0),
    default=12,
    show_default=True,
    help="Draw more than this many dead-end outputs (or source inputs) of a run as one node; 0 = never.",
)
@click.option("--transforms", is_flag=True, help="Also draw each run's transform as a node.")
@click.option(
    "--highlight-run",
    default=None,
    metavar="RUN_UID",
    help="Highlight the inputs of this run (it is drawn below them).",
)
def lineage(uid, direction, depth, fmt, output, collapse_over, transforms, highlight_run):
    """Draw the lineage of an artifact, run or transform (all its runs)."""
    from .lineage import title_of
    from .lineage.render import format_of, render
    from .records import Run

    rec = _lineage_record(uid)
    hl = Run.get(_find(highlight_run).uid) if highlight_run else None
    g = rec.lineage(direction, depth, highlight_run=hl)
    fmt = format_of(output, fmt) if output else (fmt or "html")
    title = title_of(rec, direction)
    if output is None and fmt in ("mermaid", "dot", "json"):
        sys.stdout.write(render(g, fmt, collapse_over or None, title, transforms).decode())
        return
    from pathlib import Path

    ext = {"mermaid": "mmd"}.get(fmt, fmt)
    path = g.save(
        Path(output or f"lineage_{rec.uid}.{ext}"),
        fmt,
        collapse_over=collapse_over or None,
        title=title,
        transforms=transforms,
    )
    k = {kind: len([n for n in g.nodes.values() if n.kind == kind]) for kind in ("artifact", "run")}
    _console().print(
        f"wrote {escape(str(path))} ({fmt}: {k['artifact']} artifacts, {k['run']} runs)"
    )


@click.command()
@click.argument("uid")
@click.option("--depth", type=click.IntRange(min=0), default=None, help="Levels; default: all.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw the graph of transforms to this file (html, svg, png, mmd, dot).",
)
def parents(uid, depth, output):
    """The transforms that feed a transform (or the transform of a run or artifact), as a tree."""
    from .records import Artifact, Run, Transform

    rec = _find(uid)
    t = (
        rec
        if isinstance(rec, Transform)
        else rec.transform
        if isinstance(rec, (Run, Artifact))
        else None
    )
    if t is None:
        from .errors import ValidationError

        raise ValidationError(f"{uid} has no transform")
    g = t.parents_graph("upstream", depth)
    out = _console()

    def label(node_id: str) -> str:
        n = g.nodes[node_id]
        r = n.record
        v = f" {r['version']}" if r.get("version") else ""
        part = (
            f" — part of {g.groups[n.group].label.splitlines()[0]}" if n.group in g.groups else ""
        )
        return escape(
            f"{r['name']}{v} [{r['type']}] by {r.get('created_by') or '?'} ({n.uid}){part}"
        )

    for level, node_id, repeat in g.tree(order=lambda i: g.nodes[i].record["name"]):
        out.print(
            f"{'   ' * level}{'└─ ' if level else ''}{label(node_id)}{' (shown above)' if repeat else ''}"
        )
    if output:
        path = g.save(output, title=f"transforms feeding {t.name} ({t.uid})")
        out.print(f"wrote {escape(str(path))}")


@click.command()
@click.argument("uid", required=False)
@click.option(
    "--package",
    metavar="NAME[==VERSION]",
    help="Instead of a UID: what runs using this package (this version exactly, or any) made, "
    "and everything downstream of it.",
)
@click.option("--depth", type=click.IntRange(min=0), default=None, help="Steps; default: all.")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="With --package: runs and artifacts listed per section (default 50; with --format json "
    "all). 0 = all. Counts are always of everything.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def impact(uid, package, depth, limit, fmt):
    """Everything downstream of a record: the runs, artifacts and transforms that depend on it.
    With --package samtools==1.17 instead: every result made by a run whose environment holds
    that version, and everything downstream of those results."""
    from .errors import ValidationError

    if (uid is None) == (package is None):
        raise ValidationError(
            "impact takes a UID or --package NAME[==VERSION]"
            + (", not both" if uid is not None else "")
        )
    if package is not None:
        _package_impact(package, depth, limit, fmt)
        return
    from rich.table import Table

    rec = _lineage_record(uid)
    g = rec.lineage("downstream", depth)
    runs = sorted(g.runs, key=lambda n: (n.depth or 0, n.record["started_at"] or ""))
    arts = [n for n in g.artifacts if n.id not in g.start]
    tfs = {n.uid: n for n in g.transforms}
    if fmt == "json":
        import json

        data = {
            "start": {"type": type(rec).__name__, "uid": rec.uid},
            "depth": depth,
            "runs": [{**n.record, "step": n.depth} for n in runs],
            "artifacts": [n.record for n in arts],
            "transforms": [n.record for n in tfs.values()],
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    out = _console()
    out.print(
        f"[bold]Downstream of {type(rec).__name__} {rec.uid}[/]: {len(runs)} runs, "
        f"{len(arts)} artifacts, {len(tfs)} transforms"
    )
    t = Table(title="runs", title_justify="left", pad_edge=False)
    for c in ("step", "uid", "transform", "status", "by", "started_at"):
        t.add_column(c, overflow="fold")
    for n in runs:
        r = n.record
        t.add_row(
            str(n.depth or ""),
            n.uid,
            r["transform"],
            r["status"],
            r["created_by"] or "",
            _fmt(r["started_at"], "started_at"),
        )
    out.print(t)
    t = Table(title="artifacts", title_justify="left", pad_edge=False)
    for c in ("uid", "key", "description", "size", "by"):
        t.add_column(c, overflow="fold")
    for n in arts:
        r = n.record
        t.add_row(
            n.uid, r["key"] or "", r["description"] or "", _fmt(r["size"]), r["created_by"] or ""
        )
    out.print(t)
    out.print(
        "[bold]transforms:[/] "
        + (
            ", ".join(
                escape(f"{n.record['name']} [{n.record['type']}] ({uid})") for uid, n in tfs.items()
            )
            or "none"
        )
    )


def _package_impact(package: str, depth, limit, fmt) -> None:
    """impact --package: the runs that used it (by transform), what they made, what is downstream."""
    import json

    from rich.table import Table
    from rich.text import Text

    from . import software_queries as Q
    from .db import read_connection
    from .instance import current

    spec = Q.parse_package(package)
    if limit is None:
        limit = 0 if fmt == "json" else 50
    with read_connection(current().engine) as conn:
        res = Q.package_impact(conn, spec, depth, limit or None)
    if fmt == "json":
        sys.stdout.write(json.dumps(Q.json_ready(res), indent=2) + "\n")
        return
    out = _console()
    if not res["names"]:
        out.print(f"no package named {escape(spec.name)!r} is recorded in any environment")
        return
    used, made, down = res["used"], res["made"], res["downstream"]
    if not used["total"]:
        versions = ", ".join(v or "(no version)" for v in res["versions_recorded"])
        held = "holds it" if spec.version is None else f"holds {spec}"
        out.print(
            escape(
                f"no run used {spec}: {res['environments']} environment(s) {held}; "
                f"{', '.join(res['names'])} is recorded at {versions}"
            )
        )
        return
    what = escape(f"{spec.name} {spec.version}" if spec.version else f"{spec.name} (any version)")

    def n(count: int, word: str) -> str:
        return f"{count:,} {word}{'' if count == 1 else 's'}"

    tfs = {d["uid"] for d in used["by_transform"]}
    out.print(
        f"[bold]Impact of {what}[/]: {n(used['total'], 'run')} ({n(res['environments'], 'environment')}, "
        f"{n(len(tfs), 'transform')}) made {n(made['total'], 'artifact')}; downstream: "
        f"{n(down['runs_total'], 'run')} ({n(len(down['by_transform']), 'transform')}) made "
        f"{n(down['artifacts_total'], 'artifact')}"
        + (f" (at most {depth} steps)" if depth is not None else "")
    )
    if res["names"] != [spec.name]:
        out.print(f"  names matched: {escape(', '.join(res['names']))}")
    unsure = {k: c for k, c in used["by_deployed"].items() if k != "what ran" and c}
    if unsure:
        out.print(
            "  [yellow]note:[/] "
            + escape(
                "; ".join(
                    f"{n(c, 'run')} in an environment "
                    + ("declared, not deployed" if k != "unknown" else "not known to be deployed")
                    for k, c in unsure.items()
                )
                + " — the package is what was declared; the software that ran may differ"
            )
        )

    def table(title, columns, rows):
        t = Table(title=title, title_justify="left", pad_edge=False)
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*(Text(str(c)) for c in r))
        out.print(t)

    def transform(d, prefix=""):
        version = f" {d[prefix + 'version']}" if d.get(prefix + "version") else ""
        return f"{d[prefix + 'name']}{version} [{d[prefix + 'type']}]"

    def more(shown, total, what):
        if shown < total:
            out.print(f"  … {total - shown:,} more {what} (-n 0 or --format json lists all)")

    table(
        f"runs that used {spec.name}, by transform",
        ("transform", "uid", f"{spec.name} version", "runs", "not known deployed", "last used"),
        [
            (
                transform(d),
                d["uid"],
                d["package_version"] or "?",
                f"{d['runs']:,}",
                f"{d['not_known_deployed']:,}" if d["not_known_deployed"] else "",
                _fmt(d["last_used"]),
            )
            for d in used["by_transform"]
        ],
    )
    run_columns = ("uid", "transform", "status", "by", "started_at", "environment")

    def run_row(r):
        return (
            r["uid"],
            f"{r['transform']} [{r['transform_type']}]",
            r["status"],
            r["created_by"] or "",
            _fmt(r["started_at"]),
            r["environment"] or "",
        )

    table(
        f"runs that used {spec.name} ({used['total']:,}, newest first)",
        run_columns,
        [run_row(r) for r in used["runs"]],
    )
    more(len(used["runs"]), used["total"], "runs")
    art_columns = ("uid", "key", "description", "size", "made by run", "by")

    def art_row(a):
        return (
            a["uid"],
            a["key"] or a["file_name"] or "",
            a["description"] or "",
            _fmt(a["size"]),
            a["run"] or "(copy)",
            a["created_by"] or "",
        )

    table(
        f"artifacts they made ({made['total']:,})",
        art_columns,
        [art_row(a) for a in made["artifacts"]],
    )
    more(len(made["artifacts"]), made["total"], "artifacts")
    if down["runs_total"] or down["artifacts_total"]:
        table(
            "downstream runs, by transform",
            ("transform", "uid", "runs"),
            [(transform(d), d["uid"], f"{d['runs']:,}") for d in down["by_transform"]],
        )
        stepped = any(r["step"] is not None for r in down["runs"])  # counted when --depth
        table(
            f"downstream runs ({down['runs_total']:,}, oldest first)",
            (("step",) if stepped else ()) + run_columns,
            [((r["step"],) if stepped else ()) + run_row(r) for r in down["runs"]],
        )
        more(len(down["runs"]), down["runs_total"], "downstream runs")
        table(
            f"downstream artifacts ({down['artifacts_total']:,})",
            art_columns,
            [art_row(a) for a in down["artifacts"]],
        )
        more(len(down["artifacts"]), down["artifacts_total"], "downstream artifacts")
    else:
        out.print("nothing recorded is downstream of them")


@click.command()
@click.option(
    "--files/--no-files",
    default=True,
    show_default=True,
    help="Also check that files on disk still match their hashes (via the hash cache).",
)
def stale(files):
    """Artifacts whose inputs have newer versions, whose code has a newer version, or whose files
    changed on disk — with the chain of records that explains why. Exit status 1 if any."""
    from .lineage.stale import stale as find_stale

    found = find_stale(check_files=files)
    out = _console()
    if not found:
        out.print("nothing is stale")
        return
    out.print(f"[bold]{len(found)} stale artifact(s)[/]")
    for s in found:
        out.print(f"[bold]{escape(s.key or s.uid)}[/] ({s.uid})")
        for r in s.reasons:
            out.print(f"  [yellow]{escape(r.kind)}[/]: {escape(r.detail)}")
            out.print(f"    path: {escape(' → '.join(r.labels or r.path))}")
    sys.exit(1)


@click.command()
@click.argument("uids", nargs=-1)
@click.option(
    "--sample",
    default=None,
    metavar="N|P%",
    help="Check a random sample: a count (1000) or a share (5%) of all artifacts.",
)
@click.option("--seed", type=int, default=None, help="Make --sample repeatable.")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--show-ok", is_flag=True, help="List the fine files too.")
@click.option(
    "--all-versions",
    is_flag=True,
    help="Also older versions recorded in place (their successors overwrote them).",
)
def verify(uids, sample, seed, workers, show_ok, all_versions):
    """Re-hash artifacts' files and compare with their records (all, UIDS, or --sample).

    Exit status: 0 when every file checked is fine, 1 when any is modified, missing or unreadable."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from .verify import artifact_rows, check_rows

    out = _console()
    rows = artifact_rows(uids, sample, seed, all_versions)  # a bad --sample fails here, before work
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("verify", total=len(rows))
        checks = check_rows(rows, workers, lambda c: bar.advance(task))
    counts = {s: 0 for s in ("ok", "modified", "missing", "removed", "error")}
    for c in checks:
        counts[c.status] += 1
    shown = [c for c in checks if show_ok or not c.ok]
    if shown:
        t = Table(pad_edge=False)
        for col in ("status", "uid", "key", "path", "detail"):
            t.add_column(col, overflow="fold")
        colour = {
            "ok": "green",
            "removed": "blue",
            "modified": "red",
            "missing": "red",
            "error": "yellow",
        }
        for c in shown:
            t.add_row(
                f"[{colour[c.status]}]{c.status}[/]",
                c.uid,
                escape(c.key or ""),
                escape(c.path),
                escape(c.detail or ""),
            )
        out.print(t)
    removed = (
        f", {counts['removed']} deleted on purpose by their engine" if counts["removed"] else ""
    )
    out.print(
        f"{len(checks)} checked: {counts['ok']} fine{removed}, {counts['modified']} modified, "
        f"{counts['missing']} missing, {counts['error']} unreadable"
    )
    if not uids and not sample:  # a whole check: say what lies in storage without a record
        from .gc import orphans_hint
        from .instance import current

        hint = orphans_hint(current())
        if hint:
            out.print(f"note: {escape(hint)}")
    if not all(c.ok for c in checks):
        sys.exit(1)


@click.command()
@click.argument("uid")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["prov-json", "prov-n", "ro-crate", "openlineage"]),
    required=True,
    help="openlineage: the runs' START and final RunEvents, newline-delimited, in time order"
    " (a backfill of what a live OpenLineage transport would have received).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    required=True,
    help="File (PROV) or folder / .zip (RO-Crate) to write.",
)
@_direction
@click.option("--with-data", is_flag=True, help="RO-Crate: copy the files into the crate.")
@click.option(
    "--license",
    "license_",
    default=None,
    metavar="URL|SPDX",
    help="RO-Crate: the crate's license (Workflow RO-Crate asks for one), e.g. CC-BY-4.0; "
    "default: the instance setting export.license.",
)
@click.option(
    "--places",
    type=click.Choice(["absolute", "relative", "storage"]),
    default="absolute",
    show_default=True,
    help="PROV, RO-Crate: how file locations are written: absolute (this machine's paths, "
    "storage URLs), relative (urn:flowprov:storage:<storage uid>/<path under its root>), storage "
    "(s3://, gs:// URLs of cloud files, the relative form for local ones). Other than absolute, "
    "no path of this machine is written.",
)
@click.option(
    "--people",
    type=click.Choice(["named", "pseudonymised"]),
    default="named",
    show_default=True,
    help="PROV, RO-Crate: name people (handle, full name) or write a stable pseudonym for each.",
)
def export(uid, fmt, output, direction, depth, with_data, license_, places, people):
    """Export the lineage of a record as W3C PROV (PROV-JSON, PROV-N), an RO-Crate, or
    OpenLineage RunEvents."""
    from .exports import export as do_export

    rec = _lineage_record(uid)
    if fmt == "openlineage":
        if with_data or license_:
            raise click.UsageError("--with-data and --license are options of an RO-Crate export")
        from .lineage import lineage as graph_of
        from .openlineage.backfill import write_events

        path, n = write_events(graph_of(rec, direction, depth), output)
        _console().print(f"wrote {escape(str(path))} ({n} OpenLineage RunEvents)")
        return
    if fmt == "ro-crate" and license_ is None:
        from .exports import default_license

        license_ = default_license()
        if license_ is None:
            _console().print(
                "note: no license given, so this crate is not a valid Workflow RO-Crate (the "
                "profile requires one): give it with --license (e.g. --license CC-BY-4.0) or "
                "set the instance's default: flowprov instance set export.license CC-BY-4.0"
            )
    path = do_export(
        rec,
        output,
        fmt,
        direction=direction,
        depth=depth,
        with_data=with_data,
        license=license_,
        places=places,
        people=people,
    )
    _console().print(f"wrote {escape(str(path))} ({fmt})")


COMMANDS = (lineage, parents, impact, stale, verify, export)
