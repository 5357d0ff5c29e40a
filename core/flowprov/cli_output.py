"""Rendering helpers shared by the CLI's modules (rich consoles, tables, listings, uid lookup)."""

from __future__ import annotations

_WHOLE = ("root", "storage", "key", "file_name", "uid", "run", "parent", "transform", "name")
# what a one-line summary of a related record shows (`show`), from its listing's columns
_SUMMARY = {
    "artifacts": ("uid", "key", "description", "size", "is_latest", "created_by"),
    "runs": ("uid", "transform", "status", "started_at", "created_by"),
    "transforms": ("uid", "name", "type", "version", "created_by"),
    "users": ("uid", "handle", "name"),
    "storages": ("uid", "root", "type"),
}


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal:  # piped or captured: one line per record, nothing folded
        console.width = max(console.width, 1000)
    return console


def _fmt(v, column: str = "") -> str:
    from datetime import datetime

    if v is None:
        return ""
    if isinstance(v, datetime):  # shown in UTC, as SQLite stores them (PostgreSQL: any zone)
        if v.tzinfo is not None:
            from datetime import UTC

            v = v.astimezone(UTC)
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
    if column in _WHOLE or len(s) <= 60:  # paths, names and uids are never shortened
        return s
    return s[:28] + "…" + s[-28:]


def _table(title: str, columns, rows):
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left", show_lines=False, pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        # plain Text: a key holding "[red]" or ":smile:" is shown as written (and no markup
        # parsing per cell keeps `ls` fast)
        t.add_row(*(Text(_fmt(r.get(c), c)) for c in columns))
    return t


def _listing_table(table: str, limit: int | None, lookups=None, ids: bool = False, title=None):
    """The rich table of a listing: `ls`, `view`, the demo. One query (and a count)."""
    from .views import LISTINGS, labels, listing_rows

    rows, total = listing_rows(table, lookups, limit, ids)
    if title is None:
        title = LISTINGS[table].model
    return _table(title, labels(table, ids), rows), rows, total


def _print_listings(out, limit: int) -> None:
    """The newest records of every table, by record type."""
    from .views import LISTINGS

    for table in LISTINGS:
        out.print(_listing_table(table, limit)[0])


def _summaries(qs, limit: int = 20) -> tuple[list[str], int]:
    """One line per record of a QuerySet, newest first, names resolved in one query: (lines, how
    many records match)."""
    from .views import TABLE_OF_MODEL, listing_rows

    table = TABLE_OF_MODEL[qs.model.__name__]
    rows, total = listing_rows(table, limit=limit, clauses=qs._where)
    return [_summary_line(r, _SUMMARY[table]) for r in rows], total


def _summary_line(row: dict, cols) -> str:
    parts = []
    for c in cols:
        v = row.get(c)
        if v is None or v == "" or (c == "is_latest" and not v):
            continue
        if c == "is_latest":
            parts.append("latest")
        elif c == "size":
            parts.append(f"{_fmt(v, c)} bytes")
        else:
            parts.append(_fmt(v, c))
    return "  ".join(parts)


def _summary(record) -> str:
    """One line for one record, or '—'."""
    if record is None:
        return "—"
    lines, _ = _summaries(type(record).filter(id=record.id), 1)
    return lines[0] if lines else "—"


def _find(uid: str):
    from .errors import DoesNotExist, MultipleResultsFound
    from .records import MODELS

    found = []
    for model in MODELS.values():
        if "uid" in model._table.c:  # packages have none: they are shown with their environment
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
