"""The home page (what runs now, recent top-level runs of every engine with failures first,
counts) and the search page of `flowprov serve` (issue 16), with their JSON twins, on SQLite
and PostgreSQL."""

from __future__ import annotations

import html

from tests.web import test_pages_lists as lists
from tests.web.test_pages_lists import HOSTILE, _bad, _json

lab = lists.lab  # the lists' fixture: the same lab instance


def test_home_on_an_empty_instance(app_client):
    c = app_client()
    j = _json(c, "/")
    assert j["now"] == [] and j["recent"] == [] and j["now_total"] == 0
    assert j["counts"]["artifacts"] == {"n": 0, "exact": True, "at_most": 0}
    assert j["counts"]["runs"]["n"] == 0 and j["counts"]["transforms"]["n"] == 0
    assert j["counts"]["users"]["n"] == 1 and j["counts"]["storages"]["n"] == 1
    page = c.get("/").text
    assert 'id="now-none"' in page and 'id="recent-none"' in page
    assert 'href="/artifacts" id="count-artifacts"><b>0</b>' in page


def test_home_shows_recent_top_level_runs_failures_first(lab, app_client):
    r = lab["runs"]
    c = app_client()
    j = _json(c, "/")
    recent = [x["uid"] for x in j["recent"]]
    # top-level runs only (no rule jobs), the failed script first, then newest first
    assert recent == [r["script"], r["live"], r["flow"], r["nb"], r["wf"]]
    by_uid = {x["uid"]: x for x in j["recent"]}
    assert {u: by_uid[u]["kind"] for u in recent} == {
        r["script"]: "script",
        r["live"]: "snakemake",
        r["flow"]: "prefect",
        r["nb"]: "notebook",
        r["wf"]: "snakemake",
    }
    assert by_uid[r["script"]]["user"] == "bob" and by_uid[r["wf"]]["user"] == "alice"
    assert by_uid[r["script"]]["status"] == "failed" and by_uid[r["wf"]]["status"] == "completed"
    assert by_uid[r["wf"]]["transform_name"] == "Cell Ranger"
    counts = {k: (v["n"], v["exact"]) for k, v in j["counts"].items()}
    assert counts == {
        "artifacts": (5, True),
        "runs": (9, True),
        "transforms": (6, True),
        "users": (3, True),
        "storages": (2, True),
    }
    page = c.get("/").text
    for u in recent:
        assert f'href="/run/{u}"' in page
    # failures first in the page too; the error is text
    assert page.index(f'href="/run/{r["script"]}"') < page.index(f'href="/run/{r["wf"]}"')
    assert "<script>" not in page and "ValueError: bad input &lt;script&gt;" in page
    assert 'href="/runs?user=bob"' in page and 'href="/artifacts" id="count-artifacts"' in page


def test_home_shows_what_runs_now(lab, app_client):
    r = lab["runs"]
    c = app_client()
    now = _json(c, "/")["now"]
    # only the run started five minutes ago: the others ended in 2025
    assert [a["uid"] for a in now] == [r["live"]]
    live = now[0]
    assert live["state"] == "running" and live["kind"] == "snakemake" and live["user"] == "alice"
    assert live["name"] == "align" and live["run_name"] == "live run"
    assert (live["tasks"]["done"], live["tasks"]["running"], live["tasks"]["seen"]) == (1, 1, 2)
    assert 240 < live["elapsed"] < 3600
    page = c.get("/").text
    assert 'id="now"' in page and "1 done · 1 running" in page
    assert f'<a class="mono" href="/run/{r["live"]}">align</a>' in page


def test_home_counts_stop_at_the_cap(lab, app_client, monkeypatch):
    from flowprov.web import pages_home

    monkeypatch.setattr(pages_home, "COUNT_CAP", 4)
    c = app_client()
    counts = _json(c, "/")["counts"]
    assert counts["artifacts"] == {"n": 4, "exact": False, "at_most": 5}
    assert counts["storages"] == {"n": 2, "exact": True, "at_most": 2}
    page = html.unescape(c.get("/").text)
    assert "<b>> 4</b>artifacts" in page and "(at most 5)" in page


# -- search ------------------------------------------------------------------------------------
def test_search_finds_a_typo(lab, app_client):
    t = lab["transforms"]
    c = app_client()
    j = _json(c, "/search?q=CRIPSRa")
    top = j["hits"][0]
    assert (top["type"], top["uid"], top["url"]) == (
        "transform",
        t["notebook"],
        f"/transform/{t['notebook']}",
    )
    assert top["field"] == "name" and top["matched"] == "GWS CRISPRa analysis"
    assert top["title"] == "GWS CRISPRa analysis" and 50 <= top["score"] <= 100
    assert j["q"] == "CRIPSRa" and j["type"] is None and j["limit"] == 20
    page = c.get("/search?q=CRIPSRa").text
    assert f'<a class="hit" href="/transform/{t["notebook"]}">GWS CRISPRa analysis</a>' in page
    assert 'value="CRIPSRa"' in page  # the header's box keeps the words
    # the whole phrase of the issue, with its typo
    assert _json(c, "/search?q=GWS%20CRIPSRa%20analysis")["hits"][0]["uid"] == t["notebook"]


def test_search_every_type_links_where_it_should(lab, app_client):
    c = app_client()
    arts, runs = lab["arts"], lab["runs"]
    hits = _json(c, "/search?q=umap&type=artifact")["hits"]
    assert hits[0]["uid"] == arts["umap"] and hits[0]["url"] == f"/artifact/{arts['umap']}"
    assert all(h["type"] == "artifact" for h in hits)
    hits = _json(c, "/search?q=alice&type=user")["hits"]
    assert [(h["title"], h["url"]) for h in hits][:1] == [("alice", "/runs?user=alice")]
    hits = _json(c, "/search?q=lab-raw&type=storage")["hits"]
    assert hits[0]["url"] == f"/artifacts?storage={lab['raw_storage']}"
    hits = _json(c, "/search?q=flow%20run&type=run")["hits"]
    assert hits[0]["uid"] == runs["flow"] and hits[0]["url"] == f"/run/{runs['flow']}"
    assert hits[0]["detail"] == "run of nightly · completed"
    hits = _json(c, "/search?q=ghcr.io/lab/gws&type=environment")["hits"]
    env = hits[0]
    assert env["uid"] == lab["environment"] and env["url"] is None
    assert env["runs_url"] == f"/runs?environment={lab['environment']}"
    assert _json(c, env["runs_url"])["rows"][0]["uid"] == runs["nb"]
    page = c.get("/search?q=ghcr.io/lab/gws&type=environment").text
    assert f'<a class="runs" href="/runs?environment={lab["environment"]}">' in page
    assert len(_json(c, "/search?q=a&limit=2")["hits"]) <= 2


def test_search_empty_nothing_and_bad(lab, app_client):
    c = app_client()
    for url in ("/search", "/search?q=", "/search?q=%20%20"):
        assert _json(c, url)["hits"] == [] and _json(c, url)["q"] is None
        assert 'id="search-empty"' in c.get(url).text
    j = _json(c, "/search?q=zzqqxxjj")
    assert j["hits"] == []
    assert 'id="no-hits"' in c.get("/search?q=zzqqxxjj").text
    _bad(c, "/search?q=x&type=package", "type must be one of artifact, environment, run,")
    _bad(c, "/search?q=x&limit=0", "limit must be between 1 and 100, not 0")
    _bad(c, "/search?q=" + "x" * 201, "q is longer than 200 characters")


def test_search_shows_hostile_strings_as_text(lab, app_client):
    c = app_client()
    j = _json(c, "/search?q=pwned&type=artifact")
    assert j["hits"][0]["uid"] == lab["arts"]["hostile"]
    assert j["hits"][0]["detail"] == HOSTILE
    page = c.get("/search?q=pwned&type=artifact").text
    assert "<script>" not in page and "&lt;script&gt;" in page
