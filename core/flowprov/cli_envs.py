"""CLI: flowprov envs — the software environments recorded and the runs that used them."""

from __future__ import annotations

import json
import sys

import click
from rich.markup import escape

from .cli_output import _console, _fmt


def _connection():
    from .db import read_connection
    from .instance import current

    return read_connection(current().engine)


@click.command()
@click.argument("uid", required=False)
@click.option("--show", "show_uid", metavar="UID", help="One environment in full (same as UID).")
@click.option(
    "--package",
    metavar="NAME[==VERSION]",
    help="Only environments holding this package (any version, or this version exactly).",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="Environments listed, most recently used first (default 50); with UID: runs listed, "
    "newest first (default 20). 0 = all.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def envs(uid, show_uid, package, limit, fmt):
    """The software environments recorded, with the runs that used them; UID: one in full."""
    from . import software_queries as Q
    from .errors import ValidationError

    if uid and show_uid and uid != show_uid:
        raise ValidationError(f"give one environment: UID {uid!r} or --show {show_uid!r}")
    one = uid or show_uid
    if one and package:
        raise ValidationError("--package filters the list; it does not apply to one environment")
    spec = Q.parse_package(package) if package else None
    with _connection() as conn:
        if one:
            env = Q.environment_detail(conn, one, 20 if limit is None else limit)
        else:
            listing = Q.list_environments(conn, spec, 50 if limit is None else limit)
    if fmt == "json":
        data = env if one else listing
        sys.stdout.write(json.dumps(Q.json_ready(data), indent=2) + "\n")
        return
    if one:
        _print_environment(env)
    else:
        _print_listing(listing, spec)


def software_summary(env: dict) -> str:
    """What an environment is, in a few words: its image or interpreter, main packages, file."""
    parts = []
    if env["container_image"]:
        image = env["container_image"]
        if env["container_digest"]:
            image += f" @{env['container_digest'][:19]}…"
        parts.append(image)
    if env["interpreter"]:
        parts.append(env["interpreter"])
    main = env.get("main_packages") or []
    if main:
        shown = ", ".join(f"{p['name']} {p['version'] or '?'}" for p in main[:4])
        more = f" +{len(main) - 4}" if len(main) > 4 else ""
        parts.append(shown + more)
    if env["spec_file"]:
        parts.append(f"from {env['spec_file']['key'] or env['spec_file']['uid']}")
    return "\n".join(parts) or "—"


def _transforms_cell(transforms: list[dict], n: int = 3) -> str:
    """'align [rule] ×9,000, sort [rule] ×1,000 +2 more', versions of one name together."""
    by_name: dict[tuple[str, str], int] = {}
    for t in transforms:
        key = (t["name"], t["type"])
        by_name[key] = by_name.get(key, 0) + t["runs"]
    items = sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{name} [{kind}] ×{runs:,}" for (name, kind), runs in items[:n])
    return text + (f" +{len(items) - n} more" if len(items) > n else "")


def _print_listing(listing: dict, spec) -> None:
    from rich.table import Table
    from rich.text import Text

    out = _console()
    envs_, total = listing["environments"], listing["total"]
    if spec is not None and not listing["names"]:
        out.print(f"no package named {escape(spec.name)!r} is recorded in any environment")
        return
    if spec is not None and not total:
        versions = listing["versions_recorded"]
        out.print(
            f"no environment holds {escape(str(spec))}; "
            f"{escape(', '.join(listing['names']))} is recorded at "
            + escape(", ".join(v or "(no version)" for v in versions))
        )
        return
    what = f" holding {spec}" if spec is not None else ""
    shown = f"most recently used {len(envs_)} of {total:,}" if len(envs_) < total else f"{total:,}"
    t = Table(title=f"environments{what} ({shown})", title_justify="left", pad_edge=False)
    cols = ["uid", "software", "packages", "deployed", "list", "runs", "transforms", "last used"]
    if spec is not None:
        cols.insert(2, "matched")
    for c in cols:
        t.add_column(c, overflow="fold")
    for e in envs_:
        row = [
            e["uid"],
            software_summary(e),
            f"{e['n_packages']:,}",
            e["deployed_words"],
            e["complete_words"],
            f"{e['runs']:,}",
            _transforms_cell(e["transforms"]),
            _fmt(e["last_used"]) or "never",
        ]
        if spec is not None:
            row.insert(
                2,
                "\n".join(
                    f"{p['name']} {p['version'] or '?'} ({p['source']})"
                    for p in e["matched_packages"]
                ),
            )
        t.add_row(*(Text(str(c)) for c in row))
    out.print(t)
    if len(envs_) < total:
        out.print(f"{total - len(envs_):,} more: -n 0 lists all")
    out.print("one in full: flowprov envs UID")


def _print_environment(env: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    out = _console()
    out.print(f"[bold]Environment[/] {env['uid']}  ({env['hash']})")

    def line(label: str, value) -> None:
        if value not in (None, ""):
            out.print(f"  {label:<14} {escape(str(value))}")

    line("interpreter", env["interpreter"])
    line("os", env["os"])
    if env["container_image"]:
        engine = f" ({env['container_engine']})" if env["container_engine"] else ""
        digest = f" @ {env['container_digest']}" if env["container_digest"] else ""
        line("container", f"{env['container_image']}{digest}{engine}")
    if env["spec_file"]:
        sf = env["spec_file"]
        line("spec file", f"{sf['key'] or '(copied in)'} ({sf['uid']})")
    line("deployed", env["deployed_words"])
    line("packages", f"{env['n_packages']:,}, {env['complete_words']}")
    for k, v in (env["details"] or {}).items():
        line(str(k), v if not isinstance(v, (dict, list)) else json.dumps(v))
    used = (
        f"{env['runs']:,}, first {_fmt(env['first_used'])}, last {_fmt(env['last_used'])}"
        if env["runs"]
        else "none"
    )
    line("runs", used)
    if env["transforms"]:
        t = Table(
            title=f"transforms using it ({len(env['transforms'])})",
            title_justify="left",
            pad_edge=False,
        )
        for c in ("uid", "transform", "type", "version", "runs", "last used"):
            t.add_column(c, overflow="fold")
        for x in env["transforms"]:
            t.add_row(
                *(
                    Text(str(c))
                    for c in (
                        x["uid"],
                        x["name"],
                        x["type"],
                        x["version"] or "",
                        f"{x['runs']:,}",
                        _fmt(x["last_used"]),
                    )
                )
            )
        out.print(t)
    t = Table(title=f"packages ({len(env['packages']):,})", title_justify="left", pad_edge=False)
    for c in ("name", "version", "build", "source", "channel"):
        t.add_column(c, overflow="fold")
    for p in env["packages"]:
        t.add_row(*(Text(p[c] or "") for c in ("name", "version", "build", "source", "channel")))
    out.print(t)
    runs = env["run_list"]
    if runs:
        shown = f"newest {len(runs)} of {env['runs']:,}" if len(runs) < env["runs"] else len(runs)
        t = Table(title=f"runs ({shown})", title_justify="left", pad_edge=False)
        for c in ("uid", "transform", "status", "by", "started_at"):
            t.add_column(c, overflow="fold")
        for r in runs:
            t.add_row(
                *(
                    Text(str(c))
                    for c in (
                        r["uid"],
                        f"{r['transform']} [{r['transform_type']}] ({r['transform_uid']})",
                        r["status"],
                        r["created_by"] or "",
                        _fmt(r["started_at"]),
                    )
                )
            )
        out.print(t)
        if len(runs) < env["runs"]:
            out.print(f"{env['runs'] - len(runs):,} more runs: -n 0 lists all")


COMMANDS: tuple = (envs,)
