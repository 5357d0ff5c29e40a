"""Typo-tolerant search ranked by similarity (rapidfuzz), per record type or across all of them.

The database preselects candidates through its trigram index (search_index.py: SQLite FTS5,
PostgreSQL pg_trgm) and rapidfuzz ranks only those, so a search reads a few hundred rows per
table instead of all of them. Candidates come in rounds, each stopping the search once
`CANDIDATES` rows are found, newest first:

1. rows holding every word of the query (words as rapidfuzz sees them: lower case, letters and
   digits; words of fewer than 3 characters only rank, a trigram index cannot look them up);
2. the same with typos allowed: per word, what a one-letter typo leaves intact — the word with
   two neighbours swapped, with a letter dropped, and the pieces around a wrong or missing
   letter (SQLite: NEAR of the two pieces; PostgreSQL: the regular expression 'piece.piece'),
   or the longer piece alone. "CRIPSRa" finds "CRISPRa" through a swap, "CRSPRa" through the
   piece "spra";
3. every word but one, then each word alone (a query may hold a word no record has);
4. per word, shorter leftovers of a typo (3-letter pieces): looser, last.

A query of short words only reads the newest `SHORT_SCAN` rows with LIKE until it has enough.
Tables of fewer than `SCAN_BELOW` rows, and instances without the index (an older schema read as
it is, SQLite without trigram FTS5, pg_trgm refused), are read whole and scored as before.

On a big table the ranking is over the candidates: when more rows than `CANDIDATES` hold every
word, the newest of them are ranked (all of them score alike: every word present).

`search_hits` answers the CLI: on a current SQLite instance it reads through the standard
library's sqlite3, without importing SQLAlchemy or the records (their import alone would take
longer than the whole search; see fastread.py).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

# rows per table the database hands to rapidfuzz (at least 4 × the limit asked)
CANDIDATES = 100
# a query of short words only (no trigram to look up) reads at most this many newest rows
SHORT_SCAN = 20_000
# PostgreSQL looks for candidates among the newest this many rows first
PG_WINDOW = 20_000
# tables whose largest id is below this are read whole: as fast as the index there, and every
# weak match (a score of 50 shares no three letters with the query) is still found
SCAN_BELOW = 500

# record type -> table, in the order search_all lists ties (records.MODELS' order)
MODEL_TABLES = {
    "User": "users",
    "Storage": "storages",
    "Transform": "transforms",
    "Run": "runs",
    "Artifact": "artifacts",
    "Environment": "environments",
}


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


@dataclass(frozen=True)
class Hit:
    """One search hit as plain data: the record type's name, its uid and its row."""

    score: float
    type: str
    uid: str
    row: dict


def _score(query: str, values) -> float:
    return _scorer(query)(values)


def _scorer(query: str, cutoff: float = 0.0):
    """score(values) -> the best similarity (0-100) of the query to any of the values; below
    `cutoff`, 0 (rapidfuzz then stops early)."""
    from rapidfuzz import fuzz, utils

    # WRatio tolerates typos and partial matches; token_set_ratio gives 100 when every word of
    # the query is present, so "hits schmidt22" prefers the record containing both words. Both
    # compare the texts as default_process leaves them: the query's is computed once.
    q = utils.default_process(query)
    process, wratio, token_set = utils.default_process, fuzz.WRatio, fuzz.token_set_ratio

    def score(values) -> float:
        best = 0.0
        for v in values:
            if not v:
                continue
            pv = process(v)
            best = max(
                best,
                wratio(q, pv, score_cutoff=cutoff),
                token_set(q, pv, score_cutoff=cutoff),
            )
        return best

    return score


# -- what to ask the index ---------------------------------------------------------------------


def query_words(query: str) -> list[str]:
    """The query's words as rapidfuzz compares them (lower case, letters and digits only), each
    once: nothing of the query's punctuation — quotes, FTS5 or LIKE operators — reaches SQL."""
    from rapidfuzz import utils

    return list(dict.fromkeys(utils.default_process(query or "").split()))


def _minimal(phrases) -> list[str]:
    """The phrases none of the others is part of: holding "spra" already holds "crispra"."""
    out: list[str] = []
    for p in sorted(set(phrases), key=lambda s: (len(s), s)):
        if not any(k in p for k in out):
            out.append(p)
    return out


@dataclass(frozen=True)
class WordMatch:
    """How a row may hold a word: any of `phrases` as a substring, or the two parts of a pair
    apart by one character (a wrong or missing letter between them)."""

    phrases: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...] = ()


def word_match(word: str, level: str) -> WordMatch:
    """level "exact": the word itself; "typo": what one typo (swap, extra, wrong or missing
    letter) leaves of it, in pieces of ≥ 4 letters or pairs of ≥ 3; "loose": also 3-letter
    pieces (short words' typos; slower, less precise)."""
    n = len(word)
    if level == "exact" or n < 3:
        return WordMatch((word,))
    phrases = {word}
    phrases |= {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(n - 1)}
    pairs = set()
    shortest = 3 if level == "loose" else 4
    if n >= 5 or level == "loose":
        phrases |= {d for i in range(n) if len(d := word[:i] + word[i + 1 :]) >= shortest}
        # wrong letter at i (word[:i] ? word[i+1:]) or a letter missing before i (word[:i] ?
        # word[i:]): both leave the pieces around it, one character apart
        cuts = [(word[:i], word[i + 1 :]) for i in range(n)]
        cuts += [(word[:i], word[i:]) for i in range(1, n)]
        for a, b in cuts:
            if len(a) >= 3 and len(b) >= 3:
                pairs.add((a, b))
            elif max(len(a), len(b)) >= shortest:
                phrases.add(a if len(a) >= len(b) else b)
    kept = _minimal(phrases)
    pairs = {(a, b) for a, b in pairs if not any(k in a or k in b for k in kept)}
    return WordMatch(tuple(kept), tuple(sorted(pairs)))


def candidate_rounds(words: list[str]) -> list[list[WordMatch]]:
    """The rounds of candidate queries (each a list of WordMatch to AND), in order."""
    long = [w for w in words if len(w) >= 3]
    rounds: list[list[WordMatch]] = []

    def add(r):
        if r and r not in rounds:
            rounds.append(r)

    add([word_match(w, "exact") for w in long])
    add([word_match(w, "typo") for w in long])
    if len(long) >= 3:
        for i in range(len(long)):
            add([word_match(w, "typo") for j, w in enumerate(long) if j != i])
    if len(long) >= 2:
        for w in long:
            add([word_match(w, "typo")])
    add([word_match(w, "loose") for w in long])
    if len(long) >= 2:
        for w in long:
            add([word_match(w, "loose")])
    return rounds


def _fts_phrase(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def fts_expression(matches: list[WordMatch]) -> str:
    """An FTS5 MATCH expression (trigram tokenizer): every word, each in any of its forms."""
    parts = []
    for m in matches:
        alts = [_fts_phrase(p) for p in m.phrases]
        # the pieces' trigrams are 3 positions apart across one character; NEAR allows ≤ 3
        alts += [f"NEAR({_fts_phrase(a)} {_fts_phrase(b)}, 3)" for a, b in m.pairs]
        parts.append("(" + " OR ".join(alts) + ")")
    return " AND ".join(parts)


def pg_regex(m: WordMatch) -> str:
    """A PostgreSQL regular expression (for ~*) matching any form of the word: one predicate per
    word and column, whose trigrams pg_trgm's GIN index looks up."""

    def lit(x: str) -> str:  # words hold letters and digits only; anything else made literal
        return "".join(c if c.isalnum() else "\\" + c for c in x)

    alts = [lit(p) for p in m.phrases] + [f"{lit(a)}.{lit(b)}" for a, b in m.pairs]
    return "(" + "|".join(alts) + ")"


# -- one search, whatever the backend -------------------------------------------------------


class _Search:
    """A query, prepared once for every table it is run on."""

    def __init__(self, query: str, limit: int, min_score: float):
        self.query = query
        self.limit = limit
        self.min_score = min_score
        self.words = query_words(query)
        self.cap = max(CANDIDATES, 4 * limit)
        self.short_only = not any(len(w) >= 3 for w in self.words)
        self._rounds = None
        self._fts = None
        self.score = _scorer(query, cutoff=min_score)

    @property
    def empty(self) -> bool:
        return not self.words or self.limit <= 0

    @property
    def rounds(self) -> list[list[WordMatch]]:
        if self._rounds is None:
            self._rounds = candidate_rounds(self.words)
        return self._rounds

    @property
    def fts(self) -> list[str]:
        if self._fts is None:
            self._fts = [fts_expression(r) for r in self.rounds]
        return self._fts

    def rank(self, rows, fields) -> list[tuple[float, dict]]:
        """(score, row) of the best `limit` rows scoring ≥ min_score, by score then newest
        first; rows are mappings holding id and `fields`, each id once."""
        best: list[tuple[float, int, dict]] = []  # a heap of the best so far, worst on top
        limit, min_score, score = self.limit, self.min_score, self.score
        for r in rows:
            s = score([r[f] for f in fields])
            if s < min_score:
                continue
            item = (s, r["id"], r)  # ids are unique: the rows themselves are never compared
            if len(best) < limit:
                heapq.heappush(best, item)
            elif item[:2] > best[0][:2]:
                heapq.heapreplace(best, item)
        best.sort(key=lambda x: (-x[0], -x[1]))
        return [(round(s, 1), r) for s, _, r in best]

    # -- SQLite, through any DB-API-like `rows(sql, params) -> list of dicts` --

    def sqlite_candidates(self, rows, table: str, fields, indexed) -> list[dict] | None:
        """Candidate rows (id and `fields`) to rank; None: read the whole table."""
        from .search_index import _q, fts_name, like_escape

        top = rows(f"SELECT max(id) AS top FROM {_q(table)}", ())[0]["top"]
        if top is None:
            return []
        if top < SCAN_BELOW or not indexed:
            return None
        cols = ", ".join(_q(c) for c in ("id", *fields))
        if self.short_only:  # no trigram to look up: newest first until enough hold them all
            where = " AND ".join(
                "(" + " OR ".join(f"{_q(c)} LIKE ? ESCAPE '\\'" for c in fields) + ")"
                for _ in self.words
            )
            params = [f"%{like_escape(w)}%" for w in self.words for _ in fields]
            return rows(
                f"SELECT {cols} FROM {_q(table)} WHERE id > ? AND {where} ORDER BY id DESC LIMIT ?",
                (top - SHORT_SCAN, *params, self.cap),
            )
        fts = _q(fts_name(table))
        sql = (
            f"SELECT {cols} FROM {_q(table)} WHERE id IN (SELECT rowid FROM {fts} "
            f"WHERE {fts} MATCH ? ORDER BY rowid DESC LIMIT ?)"
        )
        found: dict[int, dict] = {}
        for expr in self.fts:
            for r in rows(sql, (expr, self.cap)):
                found.setdefault(r["id"], r)
            if len(found) >= self.cap:
                break
        return list(found.values())

    # -- PostgreSQL, through SQLAlchemy --

    def pg_candidates(self, conn, t, fields, indexed) -> list[dict] | None:
        from sqlalchemy import func, select

        top = conn.execute(select(func.max(t.c.id))).scalar()
        if top is None:
            return []
        if top < SCAN_BELOW or not indexed:
            return None
        # the planner prices a regular expression per row far too low: it would read the whole
        # table, or walk the primary key newest first hoping to meet matches soon — for a rare
        # word, the whole table again. The trigram index's bitmaps cost what the matches cost.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        found = self._pg_rounds(conn, t, fields, indexed, top)
        # the rest of the transaction plans as usual (max(id), rows by id); after an error the
        # transaction ends, and these settings with it
        conn.exec_driver_sql("SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = on")
        return found

    def _pg_rounds(self, conn, t, fields, indexed, top) -> list[dict]:
        from sqlalchemy import and_, or_, select

        from .search_index import like_escape

        cols = [t.c[c] for c in indexed]
        base = select(t.c.id, *[t.c[f] for f in fields]).order_by(t.c.id.desc()).limit(self.cap)
        if self.short_only:
            cond = and_(
                t.c.id > top - SHORT_SCAN,
                *[
                    or_(*[c.ilike(f"%{like_escape(w)}%", escape="\\") for c in cols])
                    for w in self.words
                ],
            )
            return [dict(r) for r in conn.execute(base.where(cond)).mappings()]
        found: dict[int, dict] = {}
        for r in self.rounds:
            cond = and_(*[or_(*[c.regexp_match(pg_regex(m), flags="i") for c in cols]) for m in r])
            # the newest rows first: a common word fills the candidates there, and its bitmap
            # over the whole table (sorted to find the newest) is never built
            for where in (
                and_(t.c.id > top - PG_WINDOW, cond),
                and_(t.c.id <= top - PG_WINDOW, cond),
            ):
                for row in conn.execute(base.where(where)).mappings():
                    found.setdefault(row["id"], dict(row))
                if len(found) >= self.cap or top <= PG_WINDOW:
                    break
            if len(found) >= self.cap:
                break
        return list(found.values())


# -- through SQLAlchemy (records; SQLite and PostgreSQL) ---------------------------------------


def _search_conn(conn, model, s: _Search, indexed) -> list[tuple[float, dict]]:
    """(score, full row) of `model`'s best matches through the SQLAlchemy connection `conn`."""
    from sqlalchemy import select

    t = model._table
    fields = model._search_fields
    if s.empty:
        return []
    cols = indexed.get(t.name, ())
    if conn.dialect.name == "sqlite":

        def rows(sql, params):
            return [dict(r) for r in conn.exec_driver_sql(sql, tuple(params)).mappings()]

        found = s.sqlite_candidates(rows, t.name, fields, cols)
    elif conn.dialect.name == "postgresql":
        found = s.pg_candidates(conn, t, fields, cols)
    else:
        found = None
    if found is None:  # the whole table, only the searched columns, streamed
        q = select(t.c.id, *[t.c[f] for f in fields])
        found = (r._mapping for r in conn.execute(q, execution_options={"yield_per": 5000}))
    ranked = s.rank(found, fields)
    if not ranked:
        return []
    full = {
        r["id"]: r
        for r in conn.execute(select(t).where(t.c.id.in_([r["id"] for _, r in ranked])))
        .mappings()
        .all()
    }
    return [(score, full[r["id"]]) for score, r in ranked if r["id"] in full]


def search_records(model, query: str, limit: int = 20, min_score: float = 50.0) -> SearchResult:
    from .db import read_connection
    from .instance import current
    from .search_index import indexed_columns

    s = _Search(query, limit, min_score)
    with read_connection(current().engine) as conn:
        found = _search_conn(conn, model, s, indexed_columns(conn)) if not s.empty else []
    return SearchResult(model, [model._from_row(r) for _, r in found], [sc for sc, _ in found])


def search_all(query: str, limit: int = 10, min_score: float = 50.0) -> list[tuple[float, object]]:
    """(score, record) across every record type, best first."""
    from .db import read_connection
    from .instance import current
    from .records import MODELS
    from .search_index import indexed_columns

    s = _Search(query, limit, min_score)
    hits = []
    with read_connection(current().engine) as conn:
        indexed = indexed_columns(conn) if not s.empty else {}
        for model in MODELS.values():
            if not model._search_fields or s.empty:
                continue
            for score, r in _search_conn(conn, model, s, indexed):
                hits.append((score, model._from_row(r)))
    hits.sort(key=lambda h: -h[0])
    return hits[:limit]


# -- the CLI's fast path -----------------------------------------------------------------------


def search_hits(query: str, limit: int = 10, min_score: float = 50.0) -> list[Hit]:
    """search_all as plain data (what `flowprov search` prints). A current SQLite instance with
    its index is read through the standard library's sqlite3 (rows as stored: times as text);
    anything else goes through search_all."""
    from . import config as C

    try:
        cfg = C.load_instance_config(C.locate_instance_config())
    except Exception:  # noqa: BLE001 - search_all raises the proper error for the member
        cfg = None
    fast = _sqlite_fast(cfg.db, query, limit, min_score) if cfg is not None else None
    if fast is not None:
        return fast
    return [
        Hit(score, type(r).__name__, r.uid, dict(r._row))
        for score, r in search_all(query, limit, min_score)
    ]


def _sqlite_fast(db_url: str, query: str, limit: int, min_score: float) -> list[Hit] | None:
    import sqlite3

    from .fastread import _sqlite_path
    from .migrations import SCHEMA_HEAD
    from .search_index import SEARCH_COLUMNS, _q, fts_name

    path = _sqlite_path(db_url)
    if path is None:
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    con.row_factory = sqlite3.Row
    try:
        rev = con.execute("SELECT version_num FROM alembic_version").fetchone()
        if rev is None or rev[0] != SCHEMA_HEAD:
            return None
        have = {
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'search\\_%' "
                "ESCAPE '\\'"
            )
        }
        if any(fts_name(t) not in have for t in MODEL_TABLES.values()):
            return None
        con.execute(f"PRAGMA table_info({_q(fts_name('artifacts'))})")  # this SQLite can open it
        s = _Search(query, limit, min_score)
        if s.empty:
            return []

        def rows(sql, params):
            return con.execute(sql, tuple(params)).fetchall()

        hits: list[Hit] = []
        for name, table in MODEL_TABLES.items():
            fields = SEARCH_COLUMNS[table]
            found = s.sqlite_candidates(rows, table, fields, fields)
            if found is None:
                cols = ", ".join(_q(c) for c in ("id", *fields))
                found = con.execute(f"SELECT {cols} FROM {_q(table)}")
            ranked = s.rank(found, fields)
            if not ranked:
                continue
            ids = [r["id"] for _, r in ranked]
            full = {
                r["id"]: dict(r)
                for r in rows(
                    f"SELECT * FROM {_q(table)} WHERE id IN ({','.join('?' * len(ids))})", ids
                )
            }
            hits += [Hit(sc, name, full[r["id"]]["uid"], full[r["id"]]) for sc, r in ranked]
    except sqlite3.Error:
        return None
    finally:
        con.close()
    hits.sort(key=lambda h: -h.score)
    return hits[:limit]
