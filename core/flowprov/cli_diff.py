"""CLI: flowprov diff — where the histories of two artifacts or two runs part (logic: diff.py)."""

from __future__ import annotations

import sys

import click
from rich.markup import escape
from rich.text import Text

from .cli_output import _console

SHOWN_LINES = 200  # of one diff, in the readable output (--format json has every line)
SHOWN_ITEMS = 50  # packages, params, inputs listed per step
# diff(1)'s exit statuses
SAME, DIFFERENT, TROUBLE = 0, 1, 2


@click.command(name="diff")
@click.argument("a")
@click.argument("b")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=None,
    help="Compare at most this many steps (pairs of runs) upstream; default: until the first "
    "differences on every branch.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: the whole comparison for machines (keys documented in flowprov.diff).",
)
def diff(a, b, depth, fmt):
    """Where the histories of two artifacts or two runs part (uids or unique uid prefixes).

    Walks upstream from A and B in step: for artifacts their content, then the runs that made
    them; for each pair of runs their transform, code (a unified diff), params, environment
    (packages added, removed, changed) and inputs (both hashes; a unified diff of small text
    files whose recorded bytes can still be read). A differing input leads to the runs that made
    its two versions, until the first differences on every branch. Identical parts are counted,
    not listed.

    \b
    Exit status (as diff(1)): 0 the histories are identical, 1 they differ,
    2 trouble (an unknown uid, an artifact compared with a run, no instance).
    """
    from .diff import diff as compare
    from .errors import FlowprovError

    try:
        result = compare(a, b, depth)
    except (FlowprovError, OSError) as e:
        # not the CLI's usual exit status 1, which here means "they differ"
        what = str(e) if isinstance(e, FlowprovError) else f"{e.strerror or e}"
        _console(stderr=True).print(f"[bold red]flowprov error:[/] {escape(what)}")
        sys.exit(TROUBLE)
    if fmt == "json":
        sys.stdout.write(result.to_json() + "\n")
    else:
        render(result, _console())
    sys.exit(SAME if result.identical else DIFFERENT)


# -- rendering ---------------------------------------------------------------------------------
def render(d, out) -> None:
    """The readable form of a flowprov.diff.Diff."""
    for name, side in (("A", d.a), ("B", d.b)):
        out.print(Text.assemble((f"{name}  ", "bold"), _side(side)))
    if d.start is not None:
        _start(d, out)
    for step in d.steps:
        _step(step, out)
    out.print()
    if d.identical:
        _identical(d, out)
        return
    out.print(Text("Where the histories part:", "bold"))
    for o in d.origins:
        where = "start" if o.step is None else f"step {o.step}"
        out.print(Text.assemble("  ", (f"{where} ", "yellow"), (f"[{o.kind}] ", "dim"), o.summary))
    if not d.origins and d.start is not None and d.start.content != "same":
        out.print("  only in their content (their recorded histories agree)")
    if d.truncated:
        out.print(
            Text(
                f"(walk cut at --depth {d.depth_limit}: differences further upstream not compared)",
                "dim",
            )
        )


def _identical(d, out) -> None:
    if d.a.uid == d.b.uid:
        what = "artifact version" if d.kind == "artifacts" else "run"
        out.print(Text(f"Identical: A and B are the same {what}.", "green"))
        return
    n = len(d.steps)
    what = (
        f"{n} pair(s) of runs compared: the same transform, code, params, environment and inputs"
        if n
        else "no producing run recorded for either"
    )
    content = "equal content; " if d.kind == "artifacts" else ""
    out.print(Text(f"Identical histories: {content}{what}.", "green"))


def _side(side) -> Text:
    if side.kind == "artifact":
        made = f"  made by run {side.run}" if side.run else "  (no producing run recorded)"
        where = f"  in {side.storage}" if side.storage else ""
        return Text.assemble(
            ("artifact ", "dim"), side.uid, "  ", (side.label, "bold"), where, (made, "dim")
        )
    version = f" {side.version}" if side.version else ""
    started = f"  started {side.started_at[:19].replace('T', ' ')}" if side.started_at else ""
    return Text.assemble(
        ("run ", "dim"),
        side.uid,
        "  ",
        (f"{side.transform}{version}", "bold"),
        f" [{side.transform_type}]",
        (f"{started}  {side.status}", "dim"),
    )


def _start(d, out) -> None:
    p = d.start
    if p.content == "same":
        out.print(Text(f"content: the same ({_hash(p.a)})", "green"))
    elif p.content == "unknown":
        out.print(Text(f"content: cannot be compared — {p.note}", "yellow"))
    else:
        out.print(Text.assemble(("content: different  ", "yellow"), f"{_hash(p.a)} → {_hash(p.b)}"))
    _text_diff(p, out, "  ")


def _step(s, out) -> None:
    out.print()
    title = Text.assemble(
        (f"step {s.step}", "bold cyan"),
        f" · {s.a.transform} [{s.a.transform_type}]",
        f" · run {s.a.uid} vs run {s.b.uid}",
    )
    if s.via is not None and s.via.step is None:
        title.append("  (made A and B)", "dim")
    elif s.via is not None:
        key = s.via.a_key if s.via.a_key == s.via.b_key else f"{s.via.a_key} / {s.via.b_key}"
        title.append(f"  (made the two versions of {key} read at step {s.via.step})", "dim")
    out.print(title)
    same = [x for x in ("transform", "code", "params", "environment") if x not in s.differences]
    total = s.inputs.same + len(s.inputs.different) + len(s.inputs.only_a)
    if total:
        same.append(f"{s.inputs.same} of {total} input(s)")
    if same:
        out.print(Text.assemble(("  same: ", "green"), ", ".join(same)))
    if not s.transform.same:
        for f, c in s.transform.changed.items():
            out.print(f"  transform {f}: {_v(c.a)} → {_v(c.b)}", markup=False)
    for note in s.transform.notes:
        out.print(Text(f"  ({note})", "dim"))
    if not s.code.same:
        out.print(Text.assemble(("  code differs", "yellow"), _paren(s.code.note)))
        if s.code.diff:
            _lines(s.code.diff, out, "    ")
    elif s.code.note:
        out.print(Text(f"  (code: {s.code.note})", "dim"))
    _params(s.params, out)
    _environment(s.environment, out)
    _inputs(s.inputs, out)


def _params(p, out) -> None:
    if not p.same:
        out.print(Text("  params differ:", "yellow"))
        rows = [("changed", k, f"{_v(c.a)} → {_v(c.b)}") for k, c in p.changed.items()]
        rows += [("added", k, _v(v)) for k, v in p.added.items()]
        rows += [("removed", k, _v(v)) for k, v in p.removed.items()]
        _rows(rows, out)
    if p.ignored:
        out.print(
            Text(
                f"  not counted: {', '.join(p.ignored)} differ (how the engine scheduled the run, "
                "not what it computed)",
                "dim",
            )
        )


def _environment(e, out) -> None:
    if e.same:
        for note in e.notes:
            out.print(Text(f"  environment: {note}", "dim"))
        return
    out.print(
        Text.assemble(("  environment differs", "yellow"), f": {e.a or 'none'} → {e.b or 'none'}")
    )
    _rows([("", f, f"{_v(c.a)} → {_v(c.b)}") for f, c in e.fields.items()], out)
    p = e.packages
    if p.added or p.removed or p.changed:
        out.print(
            f"    packages: {len(p.changed)} changed, {len(p.added)} added, "
            f"{len(p.removed)} removed, {p.same} the same",
            markup=False,
        )
        rows = [
            ("changed", f"{c.source} {c.name}", f"{_pkg(c.a)} → {_pkg(c.b)}") for c in p.changed
        ]
        rows += [("added", f"{x['source']} {x['name']}", _pkg(x)) for x in p.added]
        rows += [("removed", f"{x['source']} {x['name']}", _pkg(x)) for x in p.removed]
        _rows(rows, out, "      ")
    if e.spec_file is not None:
        f = e.spec_file
        out.print(f"    environment file: {f.a.label} {_hash(f.a)} → {_hash(f.b)}", markup=False)
        _text_diff(f, out, "      ")
    for note in e.notes:
        out.print(Text(f"    ({note})", "dim"))


def _inputs(ins, out) -> None:
    for p in ins.different[:SHOWN_ITEMS]:
        key = p.a.label if p.a.label == p.b.label else f"{p.a.label} / {p.b.label}"
        then = ""
        if p.step is not None:
            then = f"  → step {p.step}"
        elif p.producers.a is None and p.producers.b is None:
            then = "  (no run recorded as making either version)"
        line = Text.assemble(
            ("  input differs  ", "yellow"), (key, "bold"), f"  {_hash(p.a)} → {_hash(p.b)}"
        )
        line.append(then, "dim")
        out.print(line)
        if p.note:
            out.print(Text(f"    ({p.note})", "dim"))
        _text_diff(p, out, "    ")
    if len(ins.different) > SHOWN_ITEMS:
        out.print(Text(f"  … {len(ins.different) - SHOWN_ITEMS} more differing inputs", "dim"))
    for side, arts in (("A", ins.only_a), ("B", ins.only_b)):
        for art in arts[:SHOWN_ITEMS]:
            out.print(
                Text.assemble(
                    (f"  input of {side} only  ", "yellow"),
                    (art.label, "bold"),
                    f"  {art.uid}  {_hash(art)}",
                )
            )
        if len(arts) > SHOWN_ITEMS:
            out.print(Text(f"  … {len(arts) - SHOWN_ITEMS} more inputs of {side} only", "dim"))


def _text_diff(pair, out, indent: str) -> None:
    if pair.text_diff:
        _lines(pair.text_diff, out, indent)
    elif pair.text_diff_note and pair.content != "same":
        out.print(Text(f"{indent}({pair.text_diff_note})", "dim"))


def _lines(text: str, out, indent: str) -> None:
    lines = text.splitlines()
    for line in lines[:SHOWN_LINES]:
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        out.print(Text(indent + line, style))
    if len(lines) > SHOWN_LINES:
        out.print(
            Text(f"{indent}… {len(lines) - SHOWN_LINES} more lines (--format json has all)", "dim")
        )


def _rows(rows, out, indent: str = "    ") -> None:
    width = max((len(what) for what, _, _ in rows), default=0)
    for what, name, value in rows[:SHOWN_ITEMS]:
        label = f"{what:<{width}}  " if width else ""
        out.print(Text.assemble(indent, (label, "dim"), (name, "bold"), f": {value}"))
    if len(rows) > SHOWN_ITEMS:
        out.print(Text(f"{indent}… {len(rows) - SHOWN_ITEMS} more (--format json has all)", "dim"))


def _hash(side) -> str:
    return f"{side.hash_type} {side.hash[:12]}…"


def _pkg(p: dict) -> str:
    parts = [str(p["version"]) if p["version"] is not None else "(no version)"]
    if p.get("build"):
        parts.append(str(p["build"]))
    if p.get("channel"):
        parts.append(f"from {p['channel']}")
    return " ".join(parts)


def _v(v) -> str:
    import json

    if v is None:
        return "—"
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s if len(s) <= 200 else s[:199] + "…"


def _paren(s) -> str:
    return f" ({s})" if s else ""


COMMANDS = (diff,)
