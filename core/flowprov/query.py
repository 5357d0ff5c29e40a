"""Django-style queries over the records, compiled to SQL (one statement per query).

``Artifact.filter(key__contains="figures/", run__transform__name="Cell Ranger")`` becomes nested
``IN (SELECT ...)`` sub-queries — no per-row Python loops, no duplicate rows from joins.

Lookups: exact (default), iexact, contains, icontains, startswith, istartswith, endswith,
iendswith, in, gt, gte, lt, lte, isnull. As in Django, `contains` on SQLite ignores ASCII case
(SQLite's LIKE); use it knowing that, or `icontains` everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func, select
from sqlalchemy.sql import ColumnElement

from .errors import DoesNotExist, LookupFieldError, MultipleResultsFound

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
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "isnull",
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


def _apply_op(col, op: str, value: Any, where: str) -> ColumnElement:
    if op == "exact":
        return col.is_(None) if value is None else col == value
    if op == "iexact":
        return func.lower(col) == str(value).lower()
    if op == "contains":
        return col.contains(value, autoescape=True)
    if op == "icontains":
        return col.icontains(value, autoescape=True)
    if op == "startswith":
        return col.startswith(value, autoescape=True)
    if op == "istartswith":
        return col.istartswith(value, autoescape=True)
    if op == "endswith":
        return col.endswith(value, autoescape=True)
    if op == "iendswith":
        return col.iendswith(value, autoescape=True)
    if op == "in":
        return col.in_(list(value))
    if op == "gt":
        return col > value
    if op == "gte":
        return col >= value
    if op == "lt":
        return col < value
    if op == "lte":
        return col <= value
    if op == "isnull":
        return col.is_(None) if value else col.is_not(None)
    raise LookupFieldError(f"unknown lookup {op!r} in {where!r}; use one of {', '.join(OPS)}")


def _as_id(value: Any) -> Any:
    from .records import Record

    if isinstance(value, Record):
        return value._require_id()
    return value


def lookup_clause(model: type[Record], lookup: str, value: Any) -> ColumnElement:
    parts = lookup.split("__")
    op = "exact"
    if len(parts) > 1 and parts[-1] in OPS:
        op = parts.pop()
    return _clause(model, parts, op, value, lookup)


def _clause(
    model: type[Record], parts: list[str], op: str, value: Any, where: str
) -> ColumnElement:
    name = parts[0]
    table = model._table
    if name in model._aliases:
        parts = model._aliases[name] + parts[1:]
        name = parts[0]
    if name in table.c and len(parts) == 1:
        if op == "in":
            value = [_as_id(v) for v in value]
        return _apply_op(table.c[name], op, _as_id(value), where)
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
        null = value if op == "isnull" else True
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
                from sqlalchemy import or_

                return or_(target._table.c.uid == v, target._table.c.handle == v)
            return target._table.c.uid == v
        if isinstance(v, int):
            return target._table.c.id == v
        raise LookupFieldError(
            f"{where!r}: expected a {target.__name__}, a uid or an id, got {v!r}"
        )

    if op == "in":
        from sqlalchemy import false, or_

        clauses = [one(v) for v in value]
        return or_(*clauses) if clauses else false()
    if op != "exact":
        raise LookupFieldError(f"{where!r}: lookup {op!r} needs a field, e.g. {where}__name")
    return one(value)


class QuerySet:
    """A lazy query. Iterate it, or call all(), one(), first(), count(), df()."""

    def __init__(self, model: type[Record], where: tuple = (), order: tuple = (), limit=None):
        self.model = model
        self._where = where
        self._order = order
        self._limit = limit

    def filter(self, *clauses, **lookups) -> QuerySet:
        new = list(self._where) + list(clauses)
        for k, v in lookups.items():
            new.append(lookup_clause(self.model, k, v))
        return QuerySet(self.model, tuple(new), self._order, self._limit)

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
        return QuerySet(self.model, self._where, tuple(cols), self._limit)

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
            raise DoesNotExist(f"no {self.model.__name__} matches this query")
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
