"""Rendering helpers shared by the CLI's modules (rich consoles, tables, uid lookup)."""

from __future__ import annotations


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
        console.width = max(console.width, 200)
    return console


def _fmt(v, column: str = "") -> str:
    from datetime import datetime

    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if column.endswith("_at"):  # SQLite text timestamps from the fast path
        return str(v)[:19]
    if column.startswith("is_"):
        return str(bool(v))
    if column == "hash":
        return str(v)[:16] + "…"
    if isinstance(v, int) and not isinstance(v, bool) and v > 10_000:
        return f"{v:,}"
    s = str(v)
    if column in ("root", "key", "uid") or len(s) <= 60:  # paths and ids are never shortened
        return s
    return s[:28] + "…" + s[-28:]


def _table(title: str, columns, rows):
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_lines=False, pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(_fmt(r.get(c), c) for c in columns))
    return t


def _find(uid: str):
    from .errors import DoesNotExist, MultipleResultsFound
    from .records import MODELS

    found = []
    for model in MODELS.values():
        found += model.filter(uid__startswith=uid).all()[:2]
    if not found:
        raise DoesNotExist(f"no record has uid {uid!r}")
    exact = [r for r in found if r.uid == uid]
    if len(exact) == 1:
        return exact[0]
    if len(found) > 1:
        raise MultipleResultsFound(
            f"{uid!r} is the start of several uids: {', '.join(r.uid for r in found)}; give more characters"
        )
    return found[0]
