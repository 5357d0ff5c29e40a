"""Typo-tolerant search ranked by similarity (rapidfuzz), per record type or across all of them."""

from __future__ import annotations

from sqlalchemy import select

from .db import read_connection


class SearchResult(list):
    """Records, best match first; each has a `score` (0-100) in `scores`."""

    def __init__(self, model, records, scores):
        super().__init__(records)
        self.model = model
        self.scores = scores

    def first(self):
        return self[0] if self else None

    def one(self):
        from .errors import DoesNotExist, MultipleResultsFound

        if not self:
            raise DoesNotExist(f"no {self.model.__name__} matches the search")
        if len(self) > 1:
            raise MultipleResultsFound(
                f"{len(self)} {self.model.__name__} records match the search"
            )
        return self[0]

    def df(self):
        df = self.model._frame([r._row for r in self])
        df.insert(0, "score", self.scores)
        return df


def _score(query: str, values) -> float:
    from rapidfuzz import fuzz, utils

    best = 0.0
    for v in values:
        if not v:
            continue
        # WRatio tolerates typos and partial matches; token_set_ratio gives 100 when every word
        # of the query is present, so "hits schmidt22" prefers the record containing both words.
        s = max(
            fuzz.WRatio(query, v, processor=utils.default_process),
            fuzz.token_set_ratio(query, v, processor=utils.default_process),
        )
        best = max(best, s)
    return best


def search_records(model, query: str, limit: int = 20, min_score: float = 50.0) -> SearchResult:
    from .instance import current

    t = model._table
    with read_connection(current().engine) as conn:
        rows = conn.execute(select(t)).mappings().all()
    scored = [(_score(query, [r[f] for f in model._search_fields]), r) for r in rows]
    scored = [(s, r) for s, r in scored if s >= min_score]
    scored.sort(key=lambda sr: (-sr[0], -sr[1]["id"]))
    scored = scored[:limit]
    return SearchResult(
        model, [model._from_row(r) for _, r in scored], [round(s, 1) for s, _ in scored]
    )


def search_all(query: str, limit: int = 10, min_score: float = 50.0) -> list[tuple[float, object]]:
    """(score, record) across every record type, best first."""
    from .records import MODELS

    hits = []
    for model in MODELS.values():
        if not model._search_fields:
            continue
        res = search_records(model, query, limit=limit, min_score=min_score)
        hits.extend(zip(res.scores, res, strict=True))
    hits.sort(key=lambda h: -h[0])
    return hits[:limit]
