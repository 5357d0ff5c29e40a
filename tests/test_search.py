"""Search through the database's trigram index (SQLite FTS5, PostgreSQL pg_trgm), on both
backends: typo tolerance, the index following every write (triggers / GIN indexes), hostile
query strings, the full-scan fallback where there is no index, and `contains_clause`.

`SCAN_BELOW = 0` makes the small tables of these tests go through the index, as a big one does;
the default reads tables of fewer than 500 rows whole, exactly as search did before the index.
"""

from __future__ import annotations

import flowprov as fp
import pytest
from flowprov import search
from flowprov.db import read_connection, write_transaction
from flowprov.instance import current, reset_cache
from flowprov.search_index import (
    SEARCH_COLUMNS,
    contains_clause,
    indexed_columns,
    is_search_object,
)
from sqlalchemy import select, text

from tests.conftest import write

HOSTILE = [
    '"',
    '""',
    "'",
    "*",
    "OR",
    "a OR b",
    "NEAR(",
    'NEAR("x" "y", 3)',
    "-",
    "^",
    "()",
    "(",
    ")",
    "%",
    "_",
    "%%%",
    "\\",
    "key:",
    '{key} : "x"',
    "'; DROP TABLE artifacts; --",
    "<script>alert(1)</script>",
    "\x00",
    "AND NOT",
    "* OR *",
    "",
    "   ",
]


def old_scan(model, query, limit=20, min_score=50.0):
    """Search as it was before the index: every row read and scored (the reference)."""
    with read_connection(current().engine) as conn:
        rows = conn.execute(select(model._table)).mappings().all()
    scored = [(search._score(query, [r[f] for f in model._search_fields]), r) for r in rows]
    scored = [(s, r) for s, r in scored if s >= min_score]
    scored.sort(key=lambda sr: (-sr[0], -sr[1]["id"]))
    return [(round(s, 1), r["uid"]) for s, r in scored[:limit]]


def found(model, query, **kw):
    res = model.search(query, **kw)
    return [(s, r.uid) for s, r in zip(res.scores, res, strict=True)]


@pytest.fixture
def indexed(monkeypatch):
    """Every table, however small, searched through the index."""
    monkeypatch.setattr(search, "SCAN_BELOW", 0)


@pytest.fixture
def lab(instance, fp_env, monkeypatch):
    """Transforms and artifacts as a lab names them."""
    monkeypatch.setenv("FLOWPROV_USER", "testuser1")
    up = fp.Transform(name="Upload GWS CRISPRa result", type="upload").save()
    nb = fp.Transform(
        name="GWS CRISPRa analysis", key="hit-identification.ipynb", type="notebook"
    ).save()
    fp.Transform(name="Cell Ranger count", key="cellranger.nf:COUNT", type="process").save()
    fp.Transform(name="review figures", key="review.ipynb", type="notebook").save()
    files = {
        "screens/GWS_0000123/counts.tsv": "raw sgRNA counts",
        "screens/GWS_0000124/counts.tsv": None,
        "sequencing/run_0042/fastq/PBMC_012_S1_L001_R1_001.fastq.gz": "reads of PBMC_012",
        "aligned/PBMC_012/PBMC_012.sorted.bam": "aligned reads, coordinate sorted",
        "figures/fig2_umap.png": "UMAP of integrated data",
        "analysis/hits_schmidt22.csv": "hits from schmidt22 crispra GWS",
        "analysis/hits_other.csv": "hits of another screen",
        "notes/schmidt22.txt": "notes on schmidt22",
        "qc/multiqc_report.html": "MultiQC report",
        "weird/100%_done_[a]_b.txt": "quotes \"x\" and 'y' and NEAR(z)",
    }
    arts = {}
    for i, (key, desc) in enumerate(files.items()):
        p = write(fp_env / "in" / f"f{i}.bin", f"content {i}")
        arts[key] = fp.Artifact(str(p), key=key, description=desc).save()
    return {"up": up, "nb": nb, "arts": arts}


def test_the_search_columns_are_the_records_search_fields():
    from flowprov.records import MODELS

    want = {m._table.name: m._search_fields for m in MODELS.values() if m._search_fields}
    assert SEARCH_COLUMNS == want
    assert [search.MODEL_TABLES[n] for n in search.MODEL_TABLES] == [
        MODELS[n]._table.name for n in MODELS if MODELS[n]._search_fields
    ]


def test_a_new_instance_has_the_index_and_says_so(instance):
    from flowprov.db import read_meta

    with read_connection(instance.engine) as conn:
        cols = indexed_columns(conn)
        meta = read_meta(conn)
    assert cols == SEARCH_COLUMNS
    assert meta["search_index"] in ("sqlite fts5 trigram", "postgresql pg_trgm")
    assert meta["schema_floor"] == "0008"  # indexes only: clients of 0008 keep working


@pytest.mark.parametrize("path", ["index", "scan"])
def test_typos_are_tolerated(lab, monkeypatch, path):
    if path == "index":
        monkeypatch.setattr(search, "SCAN_BELOW", 0)
    nb, T = lab["nb"], fp.Transform
    res = T.search("GWS CRIPSRa analysis")
    assert res.first() == nb and res.scores[0] > 80
    assert nb in T.search("CRIPSRa")  # the browser test's query: a swap in one word alone
    assert nb in T.search("CRSPRa analysis")  # a missing letter
    assert T.search("GWS CRISTRa analysys").first() == nb  # wrong letters
    assert T.search("GWS CRISSPRa analysis").first() == nb  # an extra letter
    assert T.search("hit identifcation").first() == nb
    # every word present wins over a part of them
    assert (
        fp.Artifact.search("hits schmidt22").first() == lab["arts"]["analysis/hits_schmidt22.csv"]
    )
    assert (
        fp.Artifact.search("PBMC_012 bam").first()
        == lab["arts"]["aligned/PBMC_012/PBMC_012.sorted.bam"]
    )
    assert T.search("zzzz qqqq") == []


def test_results_equal_the_old_scan_on_a_small_instance(lab):
    """Below SCAN_BELOW rows, the same hits in the same order with the same scores."""
    for q in ["GWS CRIPSRa analysis", "CRIPSRa", "counts", "hits schmidt22", "qc", "umap", "x"]:
        for model in (fp.Transform, fp.Artifact, fp.User, fp.Run):
            assert found(model, q) == old_scan(model, q), (model.__name__, q)


def test_through_the_index_the_top_hits_equal_the_old_scan(lab, indexed):
    """Through the index, hits are the old scan's hits (same scores, same order), only the weak
    ones sharing no three letters with the query may be missing: every hit scoring ≥ 80 is
    there."""
    queries = [
        "GWS CRIPSRa analysis",
        "CRIPSRa",
        "counts",
        "counts.tsv",
        "hits schmidt22",
        "schmidt22",
        "PBMC_012",
        "multiqc",
        "umap fig2",
        "review",
        "Cell Rnager",
        "qc",
    ]
    for q in queries:
        for model in (fp.Transform, fp.Artifact):
            got, old = found(model, q), old_scan(model, q)
            assert [h for h in got if h in old] == got, (model.__name__, q, got, old)
            assert [h for h in old if h[0] >= 80] == [h for h in got if h[0] >= 80], (q, got, old)


def test_search_all_and_the_cli_hits_agree(lab, indexed, run_flowprov):
    everything = search.search_all("GWS CRIPSRa analysis")
    assert everything[0][1] == lab["nb"]
    hits = search.search_hits("GWS CRIPSRa analysis")
    assert [(h.score, h.type, h.uid) for h in hits] == [
        (s, type(r).__name__, r.uid) for s, r in everything
    ]
    assert hits[0].row["name"] == "GWS CRISPRa analysis"
    out = run_flowprov("search", "CRIPSRa").stdout
    assert lab["nb"].uid in out


def _sql(statement: str, **params) -> None:
    with write_transaction(current().engine) as conn:
        conn.execute(text(statement), params)


def test_the_index_follows_inserts_updates_and_deletes(lab, fp_env, indexed):
    A = fp.Artifact
    new = A(str(write(fp_env / "late.bin", "late")), key="late/GWS_0999999_pool.tsv").save()
    assert A.search("GWS_0999999").first() == new
    assert A.filter(contains_clause(A, "key", "0999999_po")).one() == new
    # a key renamed (by any writer: raw SQL here) is found under its new name only
    _sql("UPDATE artifacts SET key = 'late/renamed_pool.tsv' WHERE id = :i", i=new.id)
    assert A.search("renamed_pool").first() == new
    assert new not in A.search("GWS_0999999")
    assert A.filter(contains_clause(A, "key", "0999999")).count() == 0
    assert A.filter(contains_clause(A, "key", "renamed_p")).one() == new
    # a description set later, then an update that changes no searched column
    _sql("UPDATE artifacts SET description = 'zebrafish larvae' WHERE id = :i", i=new.id)
    _sql("UPDATE artifacts SET size = 1 WHERE id = :i", i=new.id)
    assert A.search("zebrafsh").first() == new
    # deleted: never found again
    _sql("DELETE FROM run_outputs WHERE artifact_id = :i", i=new.id)
    _sql("DELETE FROM artifacts WHERE id = :i", i=new.id)
    assert A.search("renamed_pool") == [] or A.search("renamed_pool").first().uid != new.uid
    assert all(r.uid != new.uid for r in A.search("zebrafish larvae"))
    assert A.filter(contains_clause(A, "key", "renamed_p")).count() == 0
    # a storage root moved (what `flowprov storage move` writes) is found at its new place
    _sql("UPDATE storages SET root = '/mnt/moved/lab-data' WHERE is_default")
    assert fp.Storage.search("moved lab-data").first().root == "/mnt/moved/lab-data"
    if current().engine.dialect.name == "sqlite":  # FTS5's own consistency check
        with write_transaction(current().engine) as conn:
            for t in SEARCH_COLUMNS:
                conn.exec_driver_sql(
                    f"INSERT INTO search_{t}(search_{t}) VALUES ('integrity-check')"
                )


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_fail_nor_match_everything(lab, indexed, query):
    for model in (fp.Artifact, fp.Transform, fp.Run, fp.User):
        got = found(model, query)
        old = old_scan(model, query)
        assert [h for h in got if h in old] == got  # never a hit the old scan would not give
    n = fp.Artifact.filter().count()
    assert len(search.search_all(query, limit=100)) < n + 4  # not every record


@pytest.mark.parametrize("value", HOSTILE + ["100%_done", "[a]_b", 'quotes "x"', "NEAR(z)"])
def test_contains_is_literal(lab, value):
    A = fp.Artifact
    keys = [a.key for a in lab["arts"].values()]
    for field in ("key", "description"):
        rows = {a.uid: getattr(a, field) or "" for a in lab["arts"].values()}
        want = {u for u, v in rows.items() if value.lower() in v.lower()} if value else set(rows)
        got = {a.uid for a in A.filter(contains_clause(A, field, value))}
        assert got == want, (field, value, keys)


def test_contains_uses_the_index(lab):
    A = fp.Artifact
    clause = contains_clause(A, "key", "GWS_00001")
    stmt = select(A._table.c.id).where(clause)
    with read_connection(current().engine) as conn:
        if conn.dialect.name == "sqlite":
            plan = " ".join(
                str(r) for r in conn.execute(text("EXPLAIN QUERY PLAN " + _sqlite(stmt)))
            )
            assert "VIRTUAL TABLE INDEX" in plan and "search_artifacts" in plan
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert "search_artifacts_key" in plan
    assert {a.key for a in A.filter(clause)} == {
        "screens/GWS_0000123/counts.tsv",
        "screens/GWS_0000124/counts.tsv",
    }


def _sqlite(stmt) -> str:
    from sqlalchemy.dialects import sqlite

    return str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


def _drop_index(engine) -> None:
    from flowprov import search_index as si

    with write_transaction(engine) as conn:
        if conn.dialect.name == "sqlite":
            for t in SEARCH_COLUMNS:
                for stmt in si.sqlite_drop_statements(t):
                    conn.exec_driver_sql(stmt)
        else:
            si.drop_postgresql(conn, SEARCH_COLUMNS)


def test_without_the_index_search_reads_every_row(lab, indexed):
    """An instance whose index could not be made (no trigram FTS5, pg_trgm refused): the old
    scan's results, and contains falls back to LIKE."""
    _drop_index(current().engine)
    reset_cache()
    with read_connection(current().engine) as conn:
        assert indexed_columns(conn) == {}
    for q in ["GWS CRIPSRa analysis", "CRIPSRa", "hits schmidt22", "qc", '"*"']:
        for model in (fp.Transform, fp.Artifact):
            assert found(model, q) == old_scan(model, q)
    A = fp.Artifact
    assert A.filter(contains_clause(A, "key", "GWS_00001")).count() == 2
    assert search.search_hits("CRIPSRa")  # the CLI's path falls back too


def test_an_older_instance_is_searched_as_it_is_then_indexed_by_migrate(
    fp_env, db_url, run_flowprov, monkeypatch
):
    """0008 has no index: search reads every row; `flowprov migrate` builds the index from the
    rows already there."""
    from tests.test_schema_upgrades import _old_instance

    monkeypatch.setattr(search, "SCAN_BELOW", 0)
    _old_instance(fp_env, db_url, "0008")
    with read_connection(current().engine) as conn:
        assert indexed_columns(conn) == {}
    assert fp.Transform.search("analysis").first().key == "analysis.py"
    run_flowprov("migrate")
    reset_cache()
    with read_connection(current().engine) as conn:
        assert indexed_columns(conn) == SEARCH_COLUMNS
    assert fp.Transform.search("analysys").first().key == "analysis.py"
    assert fp.Artifact.search("out.txt").first().key == "out.txt"


def test_pg_trgm_refused_leaves_search_working(fp_env, postgres, monkeypatch):
    """A schema owner who may not create extensions in the database (it belongs to someone
    else): the migration records why and search reads every row."""
    import os

    db = postgres.new_database()
    role = f"owner_{os.getpid()}"
    postgres.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{postgres.password}'")
    try:
        postgres.admin(f'ALTER DATABASE "{db}" OWNER TO postgres')
        postgres.admin(f'REVOKE CREATE ON DATABASE "{db}" FROM PUBLIC')
        postgres.admin(f"GRANT CREATE, USAGE ON SCHEMA public TO {role}", db=db)
        monkeypatch.setenv("PGPASSWORD", postgres.password)
        from flowprov import instance as inst_mod
        from flowprov.db import read_meta

        inst, _ = inst_mod.init(fp_env / "data", db=postgres.url(db, user=role))
        with read_connection(inst.engine) as conn:
            assert indexed_columns(conn) == {}
            assert "pg_trgm could not be used" in read_meta(conn)["search_index"]
        nb = fp.Transform(name="GWS CRISPRa analysis", type="notebook").save()
        monkeypatch.setattr(search, "SCAN_BELOW", 0)
        assert fp.Transform.search("CRIPSRa").first() == nb
        A = fp.Artifact
        assert A.filter(contains_clause(A, "key", "x")).count() == 0
    finally:
        reset_cache()
        postgres.drop_database(db)
        postgres.admin(f"DROP ROLE {role}")


def test_short_words_are_looked_up_without_the_index(lab, indexed):
    A = fp.Artifact
    assert A.search("qc").first() == lab["arts"]["qc/multiqc_report.html"]
    assert A.search("R1").first().key.endswith("_R1_001.fastq.gz")


def test_search_objects_are_named_apart_from_the_schema():
    assert is_search_object("search_artifacts_data") and is_search_object("search_runs_name")
    assert not is_search_object("artifacts") and not is_search_object(None)


def test_an_index_this_sqlite_cannot_open_is_not_used(lab, indexed):
    """A database indexed by a client whose SQLite has the trigram tokenizer, read by one whose
    SQLite has not (simulated: the index names a tokenizer nobody has): search reads every row."""
    if current().engine.dialect.name != "sqlite":
        pytest.skip("an SQLite matter")
    import sqlite3

    from flowprov.db import sqlite_path

    path = sqlite_path(current().config.db)
    reset_cache()
    con = sqlite3.connect(path)
    con.execute("PRAGMA writable_schema=ON")
    con.execute(
        "UPDATE sqlite_master SET sql = replace(sql, 'trigram', 'nosuchtokenizer') "
        "WHERE name = 'search_transforms'"
    )
    con.commit()
    con.close()
    with read_connection(current().engine) as conn:
        assert "transforms" not in indexed_columns(conn) and "artifacts" in indexed_columns(conn)
    for q in ["GWS CRIPSRa analysis", "CRIPSRa"]:
        assert found(fp.Transform, q) == old_scan(fp.Transform, q)
    assert search.search_hits("GWS CRIPSRa analysis")[0].uid == lab["nb"].uid


def _trigger_sql(conn, name: str):
    return conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
    ).scalar()


def _index_matches_its_table(conn) -> None:
    """FTS5's own check, with the index compared to the table's rows (rank 1)."""
    conn.exec_driver_sql("INSERT INTO search_runs(search_runs, rank) VALUES ('integrity-check', 1)")


def test_a_batch_is_indexed_after_its_rows_as_its_trigger_would(instance, monkeypatch, indexed):
    """A large batch (a trace's tasks, a batch of files) is indexed by one statement after its
    rows, its insert trigger away meanwhile (fast_sql.insert_many): every row is found, the
    trigger is back as it was written, and a batch that fails part way — the whole transaction
    rolled back, or only a savepoint — leaves the index in step with the table."""
    from flowprov import fast_sql
    from flowprov import schema as S
    from flowprov.uids import RUN_UID, random_uid
    from sqlalchemy.exc import IntegrityError

    from tests.test_fast_sql import a_run

    if instance.engine.dialect.name != "sqlite":
        pytest.skip("the FTS5 index and its triggers are SQLite's (PostgreSQL: pg_trgm indexes)")
    values = a_run(instance)
    monkeypatch.setattr(fast_sql, "_max_params", lambda: 50 * len(values))  # 50 rows a chunk
    batch = [
        {**values, "uid": random_uid(RUN_UID), "name": f"zebrabatch_{i:03d}", "reference": None}
        for i in range(fast_sql._INDEX_AFTER + 20)
    ]
    with write_transaction(instance.engine) as conn:
        trigger = _trigger_sql(conn, "search_runs_insert")
        assert trigger
        fast_sql.insert_many(conn, S.runs, batch)
    R = fp.Run
    assert R.filter(contains_clause(R, "name", "zebrabatch_")).count() == len(batch)
    assert R.search("zebrabatch_117").first().uid == batch[117]["uid"]
    with write_transaction(instance.engine) as conn:
        assert _trigger_sql(conn, "search_runs_insert") == trigger
        _index_matches_its_table(conn)

    def failing():  # a duplicate in the third chunk
        rows = [{**r, "uid": random_uid(RUN_UID), "name": "lionbatch"} for r in batch]
        rows[110]["uid"] = rows[3]["uid"]
        return rows

    with pytest.raises(IntegrityError):
        with write_transaction(instance.engine) as conn:
            fast_sql.insert_many(conn, S.runs, failing())
    with write_transaction(instance.engine) as conn:  # caught inside the transaction
        with pytest.raises(IntegrityError):
            with conn.begin_nested():
                fast_sql.insert_many(conn, S.runs, failing())
        fast_sql.insert_many(conn, S.runs, [{**values, "uid": random_uid(RUN_UID), "name": "owl"}])
    assert R.filter(contains_clause(R, "name", "lionbatch")).count() == 0
    assert R.filter(contains_clause(R, "name", "owl")).count() == 1  # the trigger indexed it
    with write_transaction(instance.engine) as conn:
        assert _trigger_sql(conn, "search_runs_insert") == trigger
        _index_matches_its_table(conn)
