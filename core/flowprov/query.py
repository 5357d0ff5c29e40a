r"""Django-style queries over the records, compiled to SQL (one statement per query).

``Artifact.filter(key__contains="figures/", run__transform__name="Cell Ranger")`` becomes nested
``IN (SELECT ...)`` sub-queries — no per-row Python loops, no duplicate rows from joins.

Lookups, and the fields they apply to (anything else is a LookupFieldError naming the ones that
do apply):

- text fields (uid, key, name, description, suffix, hash, status, ...): exact (the default),
  iexact, contains, icontains, startswith, istartswith, endswith, iendswith, regex, iregex, in,
  gt, gte, lt, lte, isnull;
- whole numbers (id, size, n_objects, the ``*_id`` columns) and times (``created_at``,
  ``started_at``, ...): exact, in, gt, gte, lt, lte, isnull;
- true/false fields (``is_latest``, ``managed``, ...): exact, in, isnull;
- JSON fields (``params``, ``environment``, ``checksums``): isnull;
- relations (``run``, ``created_by``, ``transform``, ``input_of``, ...): a record, a uid or an
  id (a handle for users), ``__in`` a list of them, ``__isnull``, or ``__<field>__<lookup>`` on
  the related record, to any depth.

Lookups through one relation in one ``filter()`` call hold for the same related record, as in
Django: ``Run.filter(environment__packages__name="samtools", environment__packages__version=
"1.17")`` is a run whose environment has samtools 1.17; chained ``.filter().filter()`` calls may
each match a different package.

Lookups mean the same on SQLite and PostgreSQL: contains, startswith and endswith respect case
(SQLite's LIKE would not); the i-variants ignore the case of ASCII letters everywhere (PostgreSQL
also folds other letters, as its locale says). ``regex`` is the database's: Python's ``re`` on
SQLite, POSIX regular expressions on PostgreSQL — their common part (``. * + ? [] ^ $ | ()
{m,n} \d \s \w``) means the same on both; an invalid pattern is a ValidationError.

Values are read as the field's type, so text from the command line works: ``size__gt="1000"``,
``is_latest="false"``, ``key__isnull="true"``. Times are datetimes (naive ones are UTC, the times
flowprov shows), dates, or ISO text: ``"2024-08-16"``, ``"2024-08-16T09:30"``,
``"2024-08-16T09:30:00+02:00"``; a date alone means that whole UTC day (``created_at__lte=
"2024-08-16"`` includes the 16th). Anything else is a ValidationError naming field and value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Integer,
    String,
    Table,
    and_,
    cast,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from .errors import DoesNotExist, LookupFieldError, MultipleResultsFound, ValidationError

if TYPE_CHECKING:
    from .records import Record

OPS = (
    "exact",
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "regex",
    "iregex",
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "isnull",
)
_ORDERED = {"exact", "in", "gt", "gte", "lt", "lte", "isnull"}
_KIND_OPS = {
    "text": set(OPS),
    "int": _ORDERED,
    "datetime": _ORDERED,
    "bool": {"exact", "in", "isnull"},
    "json": {"isnull"},
}
_KIND_WORDS = {
    "text": "text",
    "int": "a whole number",
    "datetime": "a time",
    "bool": "true or false",
    "json": "JSON",
}
_TIME_FORMS = (
    "an ISO date or date-time (2024-08-16, 2024-08-16T09:30:00, 2024-08-16T09:30:00+02:00; "
    "no zone means UTC), a datetime or a date"
)


@dataclass(frozen=True)
class Rel:
    """A relation of a record type: fk (this row points at one), rev (rows point at this one),
    m2m (through a link table)."""

    kind: str
    target: str  # record class name
    column: str | None = None  # fk: our column; rev: the target's column pointing at us
    through: Table | None = None
    through_self: str | None = None
    through_other: str | None = None


def _registry() -> dict[str, type[Record]]:
    from .records import MODELS

    return MODELS


def field_kind(col) -> str:
    """text, int, datetime, bool or json: which lookups and values a column takes."""
    t = col.type
    if isinstance(t, JSON):
        return "json"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, DateTime):
        return "datetime"
    if isinstance(t, Integer):  # BigInteger too
        return "int"
    return "text"


def ops_for(kind: str) -> set[str]:
    return set(_KIND_OPS[kind])


class _position(FunctionElement):
    """1-based position of the second argument in the first (0: absent), case-sensitive on
    every backend — unlike LIKE, which ignores ASCII case on SQLite."""

    inherit_cache = True
    type = Integer()


@compiles(_position)
def _position_default(element, compiler, **kw):
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(_position, "sqlite")
def _position_sqlite(element, compiler, **kw):
    return f"instr({compiler.process(element.clauses, **kw)})"


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValidationError(f"{where}: {value!r} is not true or false (use true or false)")


def _as_int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValidationError(f"{where}: {value!r} is not a whole number")


def _as_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # version=2 means "2"
    raise ValidationError(f"{where}: expected text, got {value!r}")


def _as_time(value: Any, where: str) -> tuple[datetime, bool]:
    """(the instant in UTC, whether only a date was given)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(
                f"{where}: cannot read {value!r} as a time; use {_TIME_FORMS}"
            ) from None
        only_date = re.fullmatch(r"\s*\d{4}-?\d{2}-?\d{2}\s*", value) is not None
        return _utc(parsed), only_date
    if isinstance(value, datetime):
        return _utc(value), False
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC), True
    raise ValidationError(f"{where}: cannot read {value!r} as a time; use {_TIME_FORMS}")


def _utc(d: datetime) -> datetime:
    # naive means UTC (what flowprov stores and shows); SQLite's driver drops zones, so every
    # value is turned into UTC before it is compared
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def _time_clause(col, op: str, value: Any, where: str) -> ColumnElement:
    """A time comparison; a date alone stands for its whole UTC day."""
    t, whole_day = _as_time(value, where)
    if not whole_day:
        return _compare(col, op, t)
    end = t + timedelta(days=1)
    if op == "exact":
        return and_(col >= t, col < end)
    return {"gt": col >= end, "gte": col >= t, "lt": col < t, "lte": col < end}[op]


def _compare(col, op: str, value: Any) -> ColumnElement:
    return {
        "exact": lambda: col == value,
        "gt": lambda: col > value,
        "gte": lambda: col >= value,
        "lt": lambda: col < value,
        "lte": lambda: col <= value,
    }[op]()


def _regex(col, pattern: str, ignore_case: bool, where: str) -> ColumnElement:
    try:
        re.compile(pattern)  # SQLite runs Python's re: a bad pattern would fail deep in the driver
    except re.error as e:
        raise ValidationError(f"{where}: {pattern!r} is not a valid regular expression: {e}") from e
    if ignore_case:
        # an inline flag at the very start means "ignore case" to Python and PostgreSQL alike
        m = re.match(r"\(\?([a-zA-Z]+)\)", pattern)
        pattern = f"(?i{m.group(1)}){pattern[m.end() :]}" if m else f"(?i){pattern}"
    return col.regexp_match(pattern)


def _text_clause(col, op: str, value: str, where: str) -> ColumnElement:
    n = len(value)
    if op == "contains":
        return _position(col, value) > 0
    if op == "startswith":
        if not n:
            return col.is_not(None)
        # LIKE lets PostgreSQL use an index (uid prefixes); substr makes it case-sensitive on SQLite
        return and_(col.startswith(value, autoescape=True), func.substr(col, 1, n) == value)
    if op == "endswith":
        return func.substr(col, func.length(col) - (n - 1)) == value if n else col.is_not(None)
    if op in ("regex", "iregex"):
        return _regex(col, value, op == "iregex", where)
    if op == "iexact":
        return func.lower(col) == value.lower()
    if op in ("icontains", "istartswith", "iendswith"):
        return getattr(col, op)(value, autoescape=True)  # lower(col) LIKE lower(value), escaped
    return _compare(col, op, value)


def _value_list(value: Any, where: str) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError(f"{where}: expected a list of values, got {value!r}")
    return list(value)


def _column_clause(model, name: str, op: str, value: Any, where: str) -> ColumnElement:
    col = model._table.c[name]
    kind = field_kind(col)
    if op == "exact" and value is None:
        return col.is_(None)
    if op not in _KIND_OPS[kind]:
        raise LookupFieldError(
            f"lookup {op!r} (in {where!r}) does not apply to {model.__name__}.{name}, which holds "
            f"{_KIND_WORDS[kind]}; use {', '.join(o for o in OPS if o in _KIND_OPS[kind])}"
        )
    if op == "isnull":
        null = col.is_(None)
        if kind == "json":  # None is stored as JSON's null, not SQL's NULL: both mean "none"
            null = or_(null, cast(col, String) == "null")
        return null if _as_bool(value, where) else ~null
    if op == "in":
        values = _value_list(value, where)
        if kind == "datetime":  # each value may be a whole day
            return or_(false(), *(_time_clause(col, "exact", v, where) for v in values))
        return col.in_([_read(kind, _as_id(v), where) for v in values])
    if kind == "datetime":
        return _time_clause(col, op, value, where)
    value = _read(kind, _as_id(value), where)
    if kind == "text":
        return _text_clause(col, op, value, where)
    return _compare(col, op, value)


def _read(kind: str, value: Any, where: str) -> Any:
    """The value as the column's type, or a ValidationError naming lookup and value."""
    if kind == "int":
        return _as_int(value, where)
    if kind == "bool":
        return _as_bool(value, where)
    return _as_text(value, where)


def _as_id(value: Any) -> Any:
    from .records import Record

    if isinstance(value, Record):
        return value._require_id()
    return value


def _split(lookup: str) -> tuple[list[str], str]:
    parts = lookup.split("__")
    op = "exact"
    if len(parts) > 1 and parts[-1] in OPS:
        op = parts.pop()
    return parts, op


def lookup_clause(model: type[Record], lookup: str, value: Any) -> ColumnElement:
    parts, op = _split(lookup)
    return _clause(model, parts, op, value, lookup)


def lookups_clauses(model: type[Record], lookups: dict[str, Any]) -> list[ColumnElement]:
    """The clauses of one filter() call. Lookups through the same relation hold for the SAME
    related record, as in Django: `environment__packages__name="samtools",
    environment__packages__version="1.17"` is one package that is samtools 1.17 — not an
    environment with samtools (any version) and something else at 1.17."""
    items = []
    for k, v in lookups.items():
        parts, op = _split(k)
        items.append((parts, op, v, k))
    return _grouped(model, items)


def _grouped(model: type[Record], items: list) -> list[ColumnElement]:
    table = model._table
    out: list[ColumnElement] = []
    groups: dict[str, list] = {}
    for parts, op, value, where in items:
        if parts[0] in model._aliases:
            parts = model._aliases[parts[0]] + parts[1:]
        name = parts[0]
        if name not in table.c and name in model._relations and len(parts) > 1:
            groups.setdefault(name, []).append((parts[1:], op, value, where))
        else:
            out.append(_clause(model, parts, op, value, where))
    for name, sub in groups.items():
        if len(sub) == 1:  # alone: the usual path (and its messages)
            parts, op, value, where = sub[0]
            out.append(_clause(model, [name, *parts], op, value, where))
            continue
        rel = model._relations[name]
        target = _registry()[rel.target]
        inner = and_(*_grouped(target, sub))
        if rel.kind == "fk":
            out.append(table.c[rel.column].in_(select(target._table.c.id).where(inner)))
        else:
            out.append(table.c.id.in_(_linked_ids(table, rel, target, inner)))
    return out


def _clause(
    model: type[Record], parts: list[str], op: str, value: Any, where: str
) -> ColumnElement:
    name = parts[0]
    table = model._table
    if name in model._aliases:
        parts = model._aliases[name] + parts[1:]
        name = parts[0]
    if name in table.c:
        if len(parts) > 1:  # key__regexp, created_at__year: a lookup we do not have
            kind = field_kind(table.c[name])
            raise LookupFieldError(
                f"unknown lookup {parts[1]!r} in {where!r}: {model.__name__}.{name} takes "
                f"{', '.join(o for o in OPS if o in _KIND_OPS[kind])}"
            )
        return _column_clause(model, name, op, value, where)
    rel = model._relations.get(name)
    if rel is None:
        fields = sorted(set(table.c.keys()) | set(model._relations) | set(model._aliases))
        raise LookupFieldError(
            f"{model.__name__} has no field {name!r} (in {where!r}); fields: {', '.join(fields)}"
        )
    target = _registry()[rel.target]
    rest = parts[1:]
    if rest:
        inner = _clause(target, rest, op, value, where)
    elif op == "isnull" or (op == "exact" and value is None):
        null = _as_bool(value, where) if op == "isnull" else True
        if rel.kind == "fk":
            col = table.c[rel.column]
            return col.is_(None) if null else col.is_not(None)
        has = table.c.id.in_(_linked_ids(table, rel, target, None))
        return ~has if null else has
    else:
        inner = _match_records(target, op, value, where)
    if rel.kind == "fk":
        return table.c[rel.column].in_(select(target._table.c.id).where(inner))
    return table.c.id.in_(_linked_ids(table, rel, target, inner))


def _linked_ids(table: Table, rel: Rel, target, inner):
    """ids of `table` rows linked (rev or m2m) to target rows matching inner (any, if None)."""
    if rel.kind == "rev":
        col = target._table.c[rel.column]
        q = select(col).where(col.is_not(None))
        return q.where(inner) if inner is not None else q
    link = rel.through
    q = select(link.c[rel.through_self])
    if inner is not None:
        q = q.where(link.c[rel.through_other].in_(select(target._table.c.id).where(inner)))
    return q


def _match_records(target, op: str, value: Any, where: str) -> ColumnElement:
    """`created_by=user`, `run=run_uid`, `input_of__in=[...]`: records, uids or ids (and handles,
    for users)."""
    from .records import Record

    def one(v):
        if isinstance(v, Record):
            return target._table.c.id == v._require_id()
        if isinstance(v, str):
            if target.__name__ == "User":  # created_by="testuser1": a handle is as good as a uid
                return or_(target._table.c.uid == v, target._table.c.handle == v)
            return target._table.c.uid == v
        if isinstance(v, int):
            return target._table.c.id == v
        raise LookupFieldError(
            f"{where!r}: expected a {target.__name__}, a uid or an id, got {v!r}"
        )

    if op == "in":
        clauses = [one(v) for v in _value_list(value, where)]
        return or_(*clauses) if clauses else false()
    if op != "exact":
        raise LookupFieldError(f"{where!r}: lookup {op!r} needs a field, e.g. {where}__name")
    return one(value)


class QuerySet:
    """A lazy query. Iterate it, or call all(), one(), first(), count(), df()."""

    def __init__(
        self, model: type[Record], where: tuple = (), order: tuple = (), limit=None, said=()
    ):
        self.model = model
        self._where = where
        self._order = order
        self._limit = limit
        self._said = said  # the lookups as given, for messages ("key='x', is_latest=True")

    def filter(self, *clauses, **lookups) -> QuerySet:
        new = list(self._where) + list(clauses)
        said = list(self._said) + ["(a condition)"] * len(clauses)
        new += lookups_clauses(self.model, lookups)
        for k, v in lookups.items():
            said.append(f"{k}={v.uid if hasattr(v, 'uid') else v!r}")
        return QuerySet(self.model, tuple(new), self._order, self._limit, tuple(said))

    def order_by(self, *fields: str) -> QuerySet:
        cols = []
        for f in fields:
            desc = f.startswith("-")
            name = f.lstrip("-")
            if name not in self.model._table.c:
                raise LookupFieldError(
                    f"cannot order {self.model.__name__} by unknown field {name!r}"
                )
            c = self.model._table.c[name]
            cols.append(c.desc() if desc else c.asc())
        return QuerySet(self.model, self._where, tuple(cols), self._limit, self._said)

    def _select(self, limit=None):
        t = self.model._table
        q = select(t).where(*self._where).order_by(*(self._order or (t.c.id.asc(),)))
        lim = limit if limit is not None else self._limit
        return q.limit(lim) if lim is not None else q

    def _rows(self, limit=None):
        from .db import read_connection
        from .instance import current

        with read_connection(current().engine) as conn:
            return conn.execute(self._select(limit)).mappings().all()

    def all(self) -> list:
        return [self.model._from_row(r) for r in self._rows()]

    def __iter__(self) -> Iterator:
        return iter(self.all())

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.all()[i]
        if i < 0:
            return self.all()[i]
        rows = self._select().offset(i).limit(1)
        from .db import read_connection
        from .instance import current

        with read_connection(current().engine) as conn:
            row = conn.execute(rows).mappings().first()
        if row is None:
            raise IndexError(i)
        return self.model._from_row(row)

    def first(self):
        rows = self._rows(limit=1)
        return self.model._from_row(rows[0]) if rows else None

    def last(self):
        rows = self._rows()
        return self.model._from_row(rows[-1]) if rows else None

    def one(self):
        rows = self._rows(limit=2)
        if not rows:
            what = ", ".join(self._said) if self._said else "this query"
            raise DoesNotExist(f"no {self.model.__name__} matches {what}")
        if len(rows) > 1:
            n = self.count()
            raise MultipleResultsFound(
                f"{n} {self.model.__name__} records match this query, expected exactly one: "
                "add filters, or use .first() / .all()"
            )
        return self.model._from_row(rows[0])

    def one_or_none(self):
        rows = self._rows(limit=2)
        if len(rows) > 1:
            raise MultipleResultsFound(
                f"several {self.model.__name__} records match this query, expected at most one"
            )
        return self.model._from_row(rows[0]) if rows else None

    def get(self, uid: str | None = None, **lookups):
        if uid is not None:
            lookups["uid"] = uid
        return self.filter(**lookups).one()

    def exists(self) -> bool:
        return bool(self._rows(limit=1))

    def count(self) -> int:
        from .db import read_connection
        from .instance import current

        q = select(func.count()).select_from(self._select().subquery())
        with read_connection(current().engine) as conn:
            return conn.execute(q).scalar()

    def df(self):
        """A pandas DataFrame with the record type's columns, indexed by id."""
        return self.model._frame(self._rows())

    def __repr__(self) -> str:
        items = self.all()[:10]
        body = ",\n  ".join(repr(x) for x in items)
        return f"<QuerySet [{body}{', ...' if len(items) == 10 else ''}]>"
