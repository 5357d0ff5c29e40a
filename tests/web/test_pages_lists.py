"""The lists of `flowprov serve` (issue 16): /artifacts, /runs, /transforms, /users, /storages —
filters that filter, sort orders, page boundaries, 400s with the reason, JSON twins — on SQLite
and PostgreSQL, empty and with records."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import flowprov as fp
import pytest

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert('pwned')</script>"
LISTS = ("/artifacts", "/runs", "/transforms", "/users", "/storages")


def _uid() -> str:
    from flowprov.uids import RUN_UID, random_uid

    return random_uid(RUN_UID)


@pytest.fixture
def lab(instance, tmp_path):
    """A lab's instance written through the events every engine uses (times and users chosen):

    - alice's Snakemake workflow "Cell Ranger" (2025-03-01 12:00, completed) with two rule jobs,
      the second failed; bob's script clean.py (03-02, failed, a traceback); alice's notebook
      "GWS CRISPRa analysis" (03-03, completed, with its software environment); bob's Prefect
      flow "nightly" (03-04, completed); a run of alice's going on now (started 5 minutes ago,
      one task done, one running);
    - five artifacts: figures/umap.png, counts/A.tsv (alice's jobs), tables/clean.csv (bob's
      script), raw/sample1.csv (bob, in s3://lab-raw, no run, 02-28), and one whose key and
      description are hostile markup (03-04);
    - users alice, bob (and whoever set the instance up); storages: the default root, s3://lab-raw.
    """
    from flowprov.events import (
        ArtifactRegistered,
        EnvironmentSpec,
        RunFinished,
        RunRef,
        RunStarted,
        TransformSaved,
        TransformSpec,
    )

    store = instance.store
    root = str((tmp_path / "mydata").resolve())

    def transform(name, type_, key=None, version=None, parent=None, by="alice"):
        spec = TransformSpec(name=name, type=type_, key=key, version=version, parent=parent)
        return store.apply([TransformSaved(transform=spec, created_by=by, at=T0)])[0].uid

    cellranger = transform("Cell Ranger", "pipeline", "cellranger/Snakefile", "7.1")
    count = transform("count", "rule", parent=cellranger)
    clean = transform("clean.py", "script", "scripts/clean.py", by="bob")
    notebook = transform("GWS CRISPRa analysis", "notebook", "gws_crispra.ipynb")
    nightly = transform("nightly", "flow", "flows/nightly.py", by="bob")
    live = transform("align", "pipeline", "align/Snakefile")

    runs: dict[str, str] = {}
    now = datetime.now(UTC).replace(microsecond=0)

    def run(name, t, at, by, status="completed", engine=None, parent=None, error=None, env=None):
        uid = _uid()
        runs[name] = uid
        store.apply(
            [
                RunStarted(
                    uid=uid,
                    transform=t,
                    at=at,
                    created_by=by,
                    engine=engine,
                    reference=f"ref-{name}" if engine else None,
                    parent=RunRef(uid=runs[parent]) if parent else None,
                    environment=env,
                    name=None if parent else f"{name} run",
                )
            ]
        )
        if status != "started":
            store.apply(
                [
                    RunFinished(
                        run=RunRef(uid=uid),
                        status=status,
                        error=error,
                        at=at + timedelta(minutes=30),
                        created_by=by,
                    )
                ]
            )
        return uid

    run("wf", cellranger, T0, "alice", engine="snakemake")
    run("job1", count, T0 + timedelta(minutes=1), "alice", engine="snakemake", parent="wf")
    run(
        "job2",
        count,
        T0 + timedelta(minutes=2),
        "alice",
        status="failed",
        engine="snakemake",
        parent="wf",
        error="rule count failed\nexit status 1",
    )
    run(
        "script",
        clean,
        T0 + timedelta(days=1),
        "bob",
        status="failed",
        error=f"Traceback (most recent call last):\nValueError: bad input {HOSTILE}",
    )
    env = EnvironmentSpec(interpreter="CPython 3.11.2", container_image="ghcr.io/lab/gws:1.0")
    run("nb", notebook, T0 + timedelta(days=2), "alice", env=env)
    run("flow", nightly, T0 + timedelta(days=3), "bob", engine="prefect")
    run("live", live, now - timedelta(minutes=5), "alice", status="started", engine="snakemake")
    run("live1", count, now - timedelta(minutes=4), "alice", engine="snakemake", parent="live")
    run("live2", count, now - timedelta(minutes=3), "alice", "started", "snakemake", "live")

    arts: dict[str, str] = {}

    def artifact(name, key, at, by, run=None, storage=root, description=None):
        suffix = "." + key.rsplit(".", 1)[1]
        e = ArtifactRegistered(
            stem=_uid()[:16],
            storage_root=storage,
            key=key,
            suffix=suffix,
            size=1000 + len(arts),
            hash=f"{len(arts):064x}",
            hash_type="blake3",
            run=RunRef(uid=runs[run]) if run else None,
            description=description,
            created_by=by,
            at=at,
        )
        arts[name] = store.apply([e])[0].uid

    artifact("umap", "figures/umap.png", T0 + timedelta(minutes=5), "alice", "job1")
    artifact("counts", "counts/A.tsv", T0 + timedelta(minutes=6), "alice", "job2")
    artifact("clean", "tables/clean.csv", T0 + timedelta(days=1, minutes=5), "bob", "script")
    artifact("raw", "raw/sample1.csv", T0 - timedelta(days=1), "bob", storage="s3://lab-raw")
    artifact("hostile", f"notes/{HOSTILE}.txt", T0 + timedelta(days=3), "bob", description=HOSTILE)

    storages = {s.root: s.uid for s in fp.Storage.filter()}
    return dict(
        runs=runs,
        arts=arts,
        transforms=dict(
            cellranger=cellranger,
            count=count,
            clean=clean,
            notebook=notebook,
            nightly=nightly,
            live=live,
        ),
        raw_storage=storages["s3://lab-raw"],
        root_storage=storages[root],
        environment=fp.Run.get(runs["nb"]).environment.uid,
    )


def _json(c, url: str) -> dict:
    r = c.get(url, headers={"accept": "application/json"})
    assert r.status_code == 200, (url, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def _uids(c, url: str) -> list[str]:
    return [row["uid"] for row in _json(c, url)["rows"]]


def _bad(c, url: str, reason: str) -> None:
    """A 400 saying why, as a page and as JSON."""
    r = c.get(url)
    assert r.status_code == 400, (url, r.status_code)
    assert reason in html.unescape(r.text), (url, html.unescape(r.text)[-600:])
    j = c.get(url, headers={"accept": "application/json"})
    assert j.status_code == 400 and reason in j.json()["error"], j.json()


# -- empty instance ----------------------------------------------------------------------------
def test_every_list_on_an_empty_instance(app_client):
    c = app_client()
    for path in ("/artifacts", "/runs", "/transforms"):
        r = c.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        noun = path.strip("/")
        assert f"no {noun}" in r.text and 'id="rows"' not in r.text
        assert 'id="filters"' in r.text and "page 1" in r.text
        j = _json(c, path)
        assert j["list"] == noun and j["rows"] == [] and j["total"] == 0 and j["total_exact"]
        assert j["page"] == 1 and j["next"] is None and j["prev"] is None
    # setting the instance up recorded who did it, and its storage root
    users, storages = _json(c, "/users"), _json(c, "/storages")
    assert len(users["rows"]) == users["total"] == 1
    assert len(storages["rows"]) == 1 and storages["rows"][0]["is_default"] is True


# -- filters -----------------------------------------------------------------------------------
def test_artifact_filters_filter(lab, app_client):
    a = lab["arts"]
    c = app_client()
    assert set(_uids(c, "/artifacts")) == set(a.values())
    assert set(_uids(c, "/artifacts?suffix=.csv")) == {a["clean"], a["raw"]}
    assert set(_uids(c, "/artifacts?suffix=csv")) == {a["clean"], a["raw"]}  # the dot is implied
    assert _uids(c, f"/artifacts?storage={lab['raw_storage']}") == [a["raw"]]
    assert set(_uids(c, f"/artifacts?storage={lab['root_storage']}")) == set(a.values()) - {
        a["raw"]
    }
    assert set(_uids(c, "/artifacts?user=bob")) == {a["clean"], a["raw"], a["hostile"]}
    assert _uids(c, "/artifacts?key=FIGURES/") == [a["umap"]]  # "contains", ignoring case
    assert _uids(c, "/artifacts?key=100%25") == []  # % is a character, not a wildcard
    # under 3 characters the trigram index cannot help: a LIKE, with the same meaning
    assert _uids(c, "/artifacts?key=a.") == [a["counts"]]
    # a date alone for `to` is that whole (UTC) day
    assert set(_uids(c, "/artifacts?from=2025-03-01&to=2025-03-01")) == {a["umap"], a["counts"]}
    assert _uids(c, "/artifacts?to=2025-02-28") == [a["raw"]]
    assert set(_uids(c, "/artifacts?from=2025-03-01T12:06:00")) == {
        a["counts"],
        a["clean"],
        a["hostile"],
    }
    both = _json(c, "/artifacts?user=alice&suffix=.tsv")
    assert [r["uid"] for r in both["rows"]] == [a["counts"]]
    row = both["rows"][0]
    assert row["key"] == "counts/A.tsv" and row["user"] == "alice" and row["size"] == 1001
    assert row["run_uid"] == lab["runs"]["job2"] and row["transform_name"] == "count"
    assert row["created_at"] == (T0 + timedelta(minutes=6)).isoformat()
    f = {x["name"]: x["value"] for x in both["filters"]}
    assert f["user"] == "alice" and f["suffix"] == ".tsv" and f["key"] is None
    storage = next(x for x in both["filters"] if x["name"] == "storage")
    assert [lab["raw_storage"], "s3://lab-raw"] in storage["choices"]
    page = c.get(f"/artifacts?storage={lab['raw_storage']}").text
    assert f'<option value="{lab["raw_storage"]}" selected>s3://lab-raw</option>' in page
    page = c.get("/artifacts?user=alice&suffix=.tsv").text
    assert 'value="alice"' in page and f'href="/artifact/{a["counts"]}"' in page
    assert f'href="/run/{lab["runs"]["job2"]}"' in page


def test_run_filters_filter(lab, app_client):
    r = lab["runs"]
    c = app_client()
    snake = {r["wf"], r["job1"], r["job2"], r["live"], r["live1"], r["live2"]}
    assert set(_uids(c, "/runs?engine=snakemake")) == snake
    assert _uids(c, "/runs?engine=prefect") == [r["flow"]]
    # no engine recorded: the kind is the transform's type, as `flowprov status` says
    assert _uids(c, "/runs?engine=script") == [r["script"]]
    assert _uids(c, "/runs?engine=notebook") == [r["nb"]]
    assert _uids(c, "/runs?engine=rule") == []  # rules ran under Snakemake: kind snakemake
    tops = {r["wf"], r["script"], r["nb"], r["flow"], r["live"]}
    assert set(_uids(c, "/runs?top=1")) == tops
    assert set(_uids(c, "/runs?status=failed")) == {r["job2"], r["script"]}
    assert set(_uids(c, "/runs?status=failed&top=1")) == {r["script"]}
    assert set(_uids(c, "/runs?user=bob")) == {r["script"], r["flow"]}
    assert set(_uids(c, "/runs?transform=CELL")) == {r["wf"]}  # name or key contains
    assert set(_uids(c, "/runs?transform=snakefile")) == {r["wf"], r["live"]}
    assert set(_uids(c, "/runs?transform=count")) == {r["job1"], r["job2"], r["live1"], r["live2"]}
    assert set(_uids(c, "/runs?from=2025-03-02&to=2025-03-03")) == {r["script"], r["nb"]}
    assert _uids(c, f"/runs?environment={lab['environment']}") == [r["nb"]]
    rows = {x["uid"]: x for x in _json(c, "/runs?top=1")["rows"]}
    wf, script = rows[r["wf"]], rows[r["script"]]
    assert wf["kind"] == "snakemake" and wf["transform_name"] == "Cell Ranger"
    assert wf["transform_version"] == "7.1" and wf["user"] == "alice"
    assert wf["duration"] == 1800.0 and wf["status"] == "completed" and wf["parent_uid"] is None
    assert script["kind"] == "script" and script["status"] == "failed"
    assert script["error"] == f"ValueError: bad input {HOSTILE}"  # a traceback's last line
    job = _json(c, "/runs?status=failed&engine=snakemake")["rows"]
    assert [x["parent_uid"] for x in job] == [r["wf"]]


def test_transform_user_storage_filters(lab, app_client):
    t = lab["transforms"]
    c = app_client()
    assert set(_uids(c, "/transforms?type=pipeline")) == {t["cellranger"], t["live"]}
    assert _uids(c, "/transforms?type=notebook") == [t["notebook"]]
    assert set(_uids(c, "/transforms?key=SNAKEFILE")) == {t["cellranger"], t["live"]}
    assert set(_uids(c, "/transforms?user=bob")) == {t["clean"], t["nightly"]}
    rule = _json(c, "/transforms?type=rule")["rows"]
    assert [(x["name"], x["parent_uid"], x["parent_name"]) for x in rule] == [
        ("count", t["cellranger"], "Cell Ranger")
    ]
    assert [u["handle"] for u in _json(c, "/users?q=ALI")["rows"]] == ["alice"]
    assert _uids(c, "/storages?type=s3") == [lab["raw_storage"]]
    assert _uids(c, "/storages?root=lab-raw") == [lab["raw_storage"]]
    # users and storages have no page: their rows link to filtered lists, which work
    users = c.get("/users").text
    assert 'href="/runs?user=alice"' in users and 'href="/artifacts?user=bob"' in users
    storages = c.get("/storages").text
    assert f'href="/artifacts?storage={lab["raw_storage"]}"' in storages


def test_bad_parameters_are_400_with_the_reason(lab, app_client):
    c = app_client()
    _bad(c, "/artifacts?user=nobody", "no user with the handle 'nobody'")
    _bad(c, "/artifacts?storage=XXXXXXXXXXXX", "no storage with the uid 'XXXXXXXXXXXX'")
    _bad(c, "/artifacts?suffix=a%20b", "suffix must look like .csv")
    _bad(c, "/artifacts?from=yesterday", "from must be a date like 2026-12-01, not 'yesterday'")
    _bad(c, "/artifacts?from=2025-03-02&to=2025-03-01", "from (2025-03-02 00:00) is after to")
    _bad(c, "/artifacts?latest=yes", "latest must be one of")
    _bad(c, "/runs?engine=cromwell", "engine must be one of flow, function, nextflow, notebook,")
    _bad(c, "/runs?status=done", "status must be one of aborted, cached,")
    _bad(c, "/runs?top=2", "top must be one of")
    _bad(c, "/runs?environment=nope", "no environment with the uid 'nope'")
    _bad(c, "/transforms?type=workflow", "type must be one of")
    _bad(c, "/storages?type=ftp", "type must be one of local, s3, not 'ftp'")
    _bad(c, "/artifacts?page=0", "page must be between 1 and")
    _bad(c, "/artifacts?size=0", "size must be between 1 and 500, not 0")
    _bad(c, "/artifacts?size=501", "size must be between 1 and 500, not 501")
    _bad(c, "/artifacts?page=two", "page must be a whole number, not 'two'")
    _bad(c, "/artifacts?key=" + "k" * 501, "key is longer than 500 characters")


# -- sorting -----------------------------------------------------------------------------------
def test_sort_orders(lab, app_client):
    a, r = lab["arts"], lab["runs"]
    c = app_client()
    newest = [a["hostile"], a["clean"], a["counts"], a["umap"], a["raw"]]
    assert _uids(c, "/artifacts") == newest  # default: newest first
    assert _json(c, "/artifacts")["sort"] == "-created_at"
    assert _uids(c, "/artifacts?sort=created_at") == newest[::-1]
    by_key = [a["counts"], a["umap"], a["hostile"], a["raw"], a["clean"]]
    assert _uids(c, "/artifacts?sort=key") == by_key
    assert _uids(c, "/artifacts?sort=-key") == by_key[::-1]
    tops = _uids(c, "/runs?top=1")
    assert tops == [r["live"], r["flow"], r["nb"], r["script"], r["wf"]]
    assert _uids(c, "/runs?top=1&sort=started_at") == tops[::-1]
    by_status = _json(c, "/runs?top=1&sort=status")["rows"]
    assert [x["status"] for x in by_status] == ["completed"] * 3 + ["failed", "started"]
    # runs of one status by their start, in the sort's direction
    assert [x["uid"] for x in by_status[:3]] == [r["wf"], r["nb"], r["flow"]]
    desc = _uids(c, "/runs?top=1&sort=-status")
    assert desc == [r["live"], r["script"], r["flow"], r["nb"], r["wf"]]
    names = [x["name"] for x in _json(c, "/transforms?sort=name")["rows"]]
    assert names == sorted(names) and len(names) == 6
    assert [x["type"] for x in _json(c, "/transforms?sort=-type")["rows"]][0] == "script"
    handles = [u["handle"] for u in _json(c, "/users?sort=-handle")["rows"]]
    assert handles.index("bob") < handles.index("alice") and len(handles) == 3
    roots = [s["root"] for s in _json(c, "/storages?sort=root")["rows"]]
    assert [s["root"] for s in _json(c, "/storages?sort=-root")["rows"]] == roots[::-1]
    _bad(
        c,
        "/artifacts?sort=size",
        "sort must be one of -created_at, -key, created_at, key, not 'size'",
    )
    _bad(c, "/runs?sort=-transform", "sort must be one of -started_at, -status, started_at,")
    # the column headings sort, and say which way
    page = html.unescape(c.get("/artifacts?sort=key&suffix=.csv").text)
    assert '<a class="sort" href="/artifacts?suffix=.csv&sort=-key">key ▲</a>' in page


# -- pages -------------------------------------------------------------------------------------
def test_pagination_boundaries(lab, app_client):
    a = lab["arts"]
    c = app_client()
    newest = [a["hostile"], a["clean"], a["counts"], a["umap"], a["raw"]]
    p1 = _json(c, "/artifacts?size=2")
    assert [x["uid"] for x in p1["rows"]] == newest[:2]
    assert p1["prev"] is None and p1["next"] == "/artifacts?size=2&page=2"
    assert (p1["total"], p1["total_exact"], p1["first"], p1["last"]) == (5, True, 1, 2)
    p2 = _json(c, p1["next"])
    assert [x["uid"] for x in p2["rows"]] == newest[2:4]
    assert p2["prev"] == "/artifacts?size=2" and p2["next"] == "/artifacts?size=2&page=3"
    p3 = _json(c, p2["next"])
    assert [x["uid"] for x in p3["rows"]] == newest[4:]
    assert p3["next"] is None and p3["prev"] == "/artifacts?size=2&page=2"
    assert (p3["first"], p3["last"], p3["total"]) == (5, 5, 5)
    beyond = _json(c, "/artifacts?size=2&page=4")
    assert beyond["rows"] == [] and beyond["next"] is None and beyond["prev"]
    # exactly one full page: no next page
    full = _json(c, "/artifacts?size=5")
    assert len(full["rows"]) == 5 and full["next"] is None
    # the filters and the sort go along with the pages
    f = _json(c, "/artifacts?suffix=.csv&sort=key&size=1")
    assert [x["uid"] for x in f["rows"]] == [a["raw"]]
    assert f["next"] == "/artifacts?suffix=.csv&sort=key&size=1&page=2"
    assert _uids(c, f["next"]) == [a["clean"]]
    # a "contains" filter (the set found once, sorted and counted in one statement on SQLite)
    f = _json(c, "/artifacts?key=.csv&size=1&sort=key")
    assert [x["uid"] for x in f["rows"]] == [a["raw"]] and (f["total"], f["total_exact"]) == (
        2,
        True,
    )
    assert _uids(c, f["next"]) == [a["clean"]]
    # runs of transforms named so (dense on SQLite: walked in started_at order), page by page
    r = lab["runs"]
    jobs = [r["live2"], r["live1"], r["job2"], r["job1"]]
    pages = [_json(c, f"/runs?transform=count&size=1&page={i}") for i in (1, 2, 3, 4, 5)]
    assert [p["rows"][0]["uid"] for p in pages[:4]] == jobs and pages[4]["rows"] == []
    assert [(p["total"], p["total_exact"]) for p in pages[:4]] == [(4, True)] * 4
    page = html.unescape(c.get("/artifacts?suffix=.csv&sort=key&size=1&page=2").text)
    assert "page 2" in page and "2–2 of 2 artifacts" in page
    assert 'id="prev" href="/artifacts?suffix=.csv&sort=key&size=1"' in page
    assert 'id="next"' not in page


def test_counts_stop_at_the_cap(lab, app_client, monkeypatch):
    from flowprov.web import pages_lists

    monkeypatch.setattr(pages_lists, "COUNT_CAP", 3)
    c = app_client()
    j = _json(c, "/artifacts?size=2")
    assert (j["total"], j["total_exact"], j["count_cap"], j["count_stopped"]) == (
        3,
        False,
        3,
        "cap",
    )
    page = html.unescape(c.get("/artifacts?size=2").text)
    assert "1–2 of more than 3 artifacts" in page
    # under the cap, exact
    j = _json(c, "/artifacts?size=1&suffix=.csv")
    assert (j["total"], j["total_exact"]) == (2, True)


def test_counting_stops_on_time_and_the_reading_goes_on(instance):
    """count_within: a count that would outlast its budget is abandoned (None) — SQLite through
    a progress handler, PostgreSQL through statement_timeout in a savepoint — and the read
    transaction goes on, its timeout as before."""
    import time

    from flowprov.db import read_connection
    from flowprov.web.pages_lists import count_within
    from sqlalchemy import text

    slow = text(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
        "SELECT count(*) FROM c"
    )
    quick = text("SELECT count(*) FROM (SELECT 1 AS x UNION ALL SELECT 2) AS t")
    with read_connection(instance.engine) as conn:
        t0 = time.perf_counter()
        assert count_within(conn, slow, 0.05) is None
        assert time.perf_counter() - t0 < 2
        assert count_within(conn, quick, 5) == 2
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 1
        if conn.dialect.name == "postgresql":
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"


def test_a_count_stopped_on_time_says_so(lab, app_client, backend, monkeypatch):
    if backend == "postgresql":
        pytest.skip("PostgreSQL's shortest timeout (1 ms) outlasts counting 5 rows")
    from flowprov.web import pages_lists

    monkeypatch.setattr(pages_lists, "COUNT_BUDGET", -1.0)
    monkeypatch.setattr(pages_lists, "_PROGRESS_STEPS", 1)
    c = app_client()
    j = _json(c, "/artifacts?size=2")
    assert (j["total"], j["total_exact"], j["count_stopped"]) == (2, False, "time")
    page = html.unescape(c.get("/artifacts?size=2").text)
    assert "1–2 of more than 2 artifacts" in page and "counting stopped after" in page
    # the last page needs no count: it is exact
    j = _json(c, "/artifacts?size=2&page=3")
    assert (j["total"], j["total_exact"], j["count_stopped"]) == (5, True, None)


# -- user data stays inert --------------------------------------------------------------------
def test_hostile_strings_are_text(lab, app_client):
    c = app_client()
    for url in ("/artifacts", "/runs?status=failed", "/artifacts?key=notes"):
        body = c.get(url).text
        assert "<script>" not in body, url
        assert html.escape(HOSTILE) in body or "&lt;script&gt;alert(&#39;pwned&#39;)" in body, url
    j = _json(c, "/artifacts?key=notes")
    assert j["rows"][0]["key"] == f"notes/{HOSTILE}.txt" and j["rows"][0]["description"] == HOSTILE


def test_every_list_renders_its_rows_and_twin(lab, app_client):
    """Each list page shows what its JSON twin holds, every row linking where it should."""
    c = app_client()
    for path in LISTS:
        j = _json(c, path)
        page = c.get(path).text
        assert j["rows"], path
        for row in j["rows"]:
            assert html.escape(row["uid"]) in page or row.get("handle", "") in page, (path, row)
        assert re.search(r"<tr>\s*<td", page), path
    runs = c.get("/runs").text
    assert f'href="/transform/{lab["transforms"]["cellranger"]}"' in runs
    assert f'href="/run/{lab["runs"]["wf"]}"' in runs  # the jobs' parent
