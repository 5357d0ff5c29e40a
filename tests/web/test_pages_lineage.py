"""The lineage page of `flowprov serve`: the graph `flowprov lineage --format html` draws, every
node linked to its page, direction and depth controls, its own CSP naming its one script by hash,
and its JSON twin (the graph as data) — on SQLite and PostgreSQL; one test in a real Chromium."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re

import flowprov as fp
import pytest

from tests.conftest import TEST_ARTIFACTS, write

PAYLOAD = "<script>window.__pwned=1</script>"


def step(name: str, inputs, out_path, text: str, **run_kw):
    t = fp.Transform(name=name, type="script").save()
    with fp.Run(transform=t, **run_kw) as run:
        for a in inputs:
            a.cache()
        out = fp.Artifact(write(out_path, text)).save()
    return run, out


@pytest.fixture
def chain(instance, fp_env):
    """raw → count → counts.tsv → plot → fig.png; the plot run inside an enclosing 'analysis'
    run (a box in the picture)."""
    root = fp_env / "mydata"
    with fp.Run(transform=fp.Transform(name="Upload screen", type="upload").save()) as up:
        raw = fp.Artifact(write(root / "raw.parquet", b"PAR1 raw"), description="raw").save()
    count, counts = step("count", [raw], root / "counts.tsv", "g\t1\n", params={"min": 3})
    flow = fp.Transform(name="analysis", type="flow").save()
    with fp.Run(transform=flow) as outer:
        plot, fig = step("plot", [counts], root / "fig.png", "PNG", parent=outer)
    return {
        "raw": raw,
        "counts": counts,
        "fig": fig,
        "up": up,
        "count": count,
        "plot": plot,
        "outer": outer,
    }


def the_script(page: str) -> str:
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    return script


def page_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="flowprov-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_the_page_draws_the_graph_and_allows_exactly_its_script(chain, app_client):
    fig = chain["fig"]
    r = app_client().get(f"/lineage/{fig.uid}")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    script = the_script(r.text)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = dict(
        part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";")
    )
    assert csp["script-src"] == f"'sha256-{digest}'"  # that script, nothing else
    assert csp["default-src"] == "'self'"
    assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'"
    # the script flowprov ships, unchanged
    from flowprov.web.pages_lineage import shipped_script

    assert script == shipped_script()
    assert r.text.count("<script") == 2  # the graph's data (not run) and the script
    # the SVG of the graph: every record a node
    for rec in (chain["raw"], chain["counts"], chain["fig"]):
        assert f'id="a{rec.id}"' in r.text
    assert f'id="r{chain["count"].id}"' in r.text and f'id="r{chain["plot"].id}"' in r.text
    # every node's page, for the panel's "open its page"
    data = page_data(r.text)
    pages = data["pages"]
    assert pages[f"a{fig.id}"] == f"/artifact/{fig.uid}"
    assert pages[f"r{chain['count'].id}"] == f"/run/{chain['count'].uid}"
    # the enclosing run's box opens the enclosing run's page
    assert pages[f"box_r{chain['outer'].id}"] == f"/run/{chain['outer'].uid}"
    # the controls: the record's page, the three directions, a depth form
    assert f'<a href="/artifact/{fig.uid}" id="record-page">' in r.text
    assert '<a href="?upstream=1&amp;downstream=0" class="active">upstream</a>' in r.text
    assert '<a href="?upstream=0&amp;downstream=1">downstream</a>' in r.text
    assert '<a href="?upstream=1&amp;downstream=1">both</a>' in r.text
    assert re.search(r'<input type="number" name="depth" min="0" max="100" value=""', r.text)


def test_the_json_twin_is_the_graph_as_data(chain, app_client):
    c = app_client()
    fig, count, plot = chain["fig"], chain["count"], chain["plot"]
    d = c.get(f"/lineage/{fig.uid}?format=json").json()
    assert (d["kind"], d["uid"], d["direction"], d["depth"]) == (
        "artifact",
        fig.uid,
        "upstream",
        None,
    )
    assert d["upstream"] is True and d["downstream"] is False
    g = d["graph"]
    by_uid = {n["uid"]: n for n in g["nodes"]}
    assert {chain["raw"].uid, chain["counts"].uid, fig.uid, count.uid, plot.uid} <= set(by_uid)
    assert by_uid[fig.uid]["page"] == f"/artifact/{fig.uid}"
    assert by_uid[plot.uid]["page"] == f"/run/{plot.uid}"
    assert by_uid[count.uid]["record"]["params"] == {"min": 3}
    edges = {(e["source"], e["target"], e["kind"]) for e in g["edges"]}
    assert (f"r{plot.id}", f"a{fig.id}", "generated") in edges
    assert (f"a{chain['counts'].id}", f"r{plot.id}", "used") in edges
    assert g["start"] == [f"a{fig.id}"]
    assert [(b["uid"], b["page"]) for b in g["groups"]] == [
        (chain["outer"].uid, f"/run/{chain['outer'].uid}")
    ]
    assert d["counts"]["artifact"] == 3 and d["counts"]["run"] == 3
    # the same through Accept
    assert c.get(f"/lineage/{fig.uid}", headers={"accept": "application/json"}).json() == d


def test_direction_and_depth(chain, app_client):
    c = app_client()
    raw, fig, counts = chain["raw"], chain["fig"], chain["counts"]

    def uids(query: str, uid: str) -> set[str]:
        d = c.get(f"/lineage/{uid}?format=json&{query}").json()
        return {n["uid"] for n in d["graph"]["nodes"] if n["kind"] == "artifact"}

    assert uids("", raw.uid) == {raw.uid}  # nothing upstream of the raw file
    assert uids("downstream=1", raw.uid) == {raw.uid, counts.uid, fig.uid}
    assert uids("upstream=0&downstream=1&depth=1", raw.uid) == {raw.uid, counts.uid}
    assert uids("upstream=1&downstream=1", counts.uid) == {raw.uid, counts.uid, fig.uid}
    assert uids("upstream=1&depth=1", fig.uid) == {counts.uid, fig.uid}
    d = c.get(f"/lineage/{counts.uid}?upstream=1&downstream=1&depth=1&format=json").json()
    assert (d["direction"], d["depth"]) == ("both", 1)
    # the page keeps the choice in its controls
    page = c.get(f"/lineage/{counts.uid}?upstream=1&downstream=1&depth=1").text
    assert '<a href="?upstream=1&amp;downstream=1&amp;depth=1" class="active">both</a>' in page
    assert 'name="depth" min="0" max="100" value="1"' in page


def test_a_run_and_a_transform_as_the_start(chain, app_client):
    c = app_client()
    count = chain["count"]
    r = c.get(f"/lineage/{count.uid}?downstream=1")
    assert r.status_code == 200 and 'id="record-page"' in r.text
    assert f'<a href="/run/{count.uid}" id="record-page">' in r.text
    d = c.get(f"/lineage/{count.uid}?downstream=1&format=json").json()
    assert d["kind"] == "run" and d["graph"]["start"] == [f"r{count.id}"]
    assert chain["fig"].uid in {n["uid"] for n in d["graph"]["nodes"]}
    t = count.transform
    r = c.get(f"/lineage/{t.uid}")
    assert r.status_code == 200 and f'<a href="/transform/{t.uid}" id="record-page">' in r.text
    assert c.get(f"/lineage/{t.uid}?format=json").json()["kind"] == "transform"


def test_missing_uid_is_a_404(instance, app_client):
    c = app_client()
    r = c.get("/lineage/nosuchrecord00000000")
    assert r.status_code == 404
    assert "no artifact, run or transform has uid 'nosuchrecord00000000'" in html.unescape(r.text)
    assert c.get("/lineage/nosuchrecord00000000?format=json").json()["status"] == 404


@pytest.mark.parametrize(
    "query,reason",
    [
        ("depth=two", "depth must be a whole number, not 'two'"),
        ("depth=-1", "depth must be between 0 and 100, not -1"),
        ("depth=101", "depth must be between 0 and 100, not 101"),
        ("upstream=yes", "upstream must be one of 0, 1, not 'yes'"),
        ("downstream=2", "downstream must be one of 0, 1, not '2'"),
        ("upstream=0&downstream=0", "upstream=0 and downstream=0 leave nothing to draw"),
    ],
)
def test_bad_params_are_400_with_the_reason(chain, app_client, query, reason):
    c = app_client()
    uid = chain["fig"].uid
    r = c.get(f"/lineage/{uid}?{query}")
    assert r.status_code == 400 and reason in html.unescape(r.text)
    j = c.get(f"/lineage/{uid}?{query}&format=json")
    assert j.status_code == 400 and reason in j.json()["error"]


def test_a_graph_too_large_to_draw_says_so(chain, app_client, monkeypatch):
    from flowprov.web import pages_lineage

    monkeypatch.setattr(pages_lineage, "MAX_DRAWN", 3)
    c = app_client()
    fig = chain["fig"]
    r = c.get(f"/lineage/{fig.uid}")
    assert r.status_code == 200 and "<script" not in r.text
    assert "script-src 'none'" in r.headers["content-security-policy"]
    text = html.unescape(r.text)
    assert "too many to draw in a page (at most 3)" in text
    assert f"flowprov lineage {fig.uid}" in text and 'id="depth-form"' in r.text
    assert (
        c.get(f"/lineage/{fig.uid}?format=json").json()["too_large"].startswith("7 nodes")
    )  # 3 files, 3 runs, 1 box
    # a smaller depth draws
    assert "<script>" in c.get(f"/lineage/{fig.uid}?depth=0").text
    # a transform's lineage is that of all its runs: too many runs, and no graph is built
    monkeypatch.setattr(pages_lineage, "MAX_DRAWN", 0)
    t = chain["count"].transform
    d = c.get(f"/lineage/{t.uid}?format=json").json()
    assert d["graph"] is None and d["too_large"].startswith("1 runs of this transform")
    assert "too many to draw" in c.get(f"/lineage/{t.uid}").text


def test_hostile_strings_stay_inert_in_the_page(instance, fp_env, app_client):
    root = fp_env / "mydata"
    t = fp.Transform(name="evil " + PAYLOAD, type="script", source_code=PAYLOAD).save()
    with fp.Run(transform=t, params={"p": PAYLOAD, "q": "</script><!--"}) as run:
        a = fp.Artifact(
            write(root / "x.txt", "x"), description=PAYLOAD + " {{SVG}} {{DATA}}"
        ).save()
    r = app_client().get(f"/lineage/{a.uid}")
    assert r.status_code == 200
    assert PAYLOAD not in r.text and "</script><!--" not in r.text
    assert r.text.count("<script") == 2 and the_script(r.text)
    data = page_data(r.text)  # the data parse: nothing ended the data block early
    node = data["nodes"][f"a{a.id}"]
    assert node["description"] == PAYLOAD + " {{SVG}} {{DATA}}"
    assert data["nodes"][f"r{run.id}"]["params"] == {"p": PAYLOAD, "q": "</script><!--"}
    assert data["pages"][f"r{run.id}"] == f"/run/{run.uid}"


def test_the_cli_page_is_unchanged_without_the_options(chain, fp_env):
    """`flowprov lineage --format html` writes the page without links, controls or extra head."""
    from flowprov.lineage.render import to_html

    g = chain["fig"].lineage()
    page = to_html(g, title="t")
    assert "{{" not in page.replace("{{ ", "")  # every placeholder filled
    assert "page-controls" not in page and "open-page" not in page.split("<script>")[0]
    assert "pages" not in page_data(page)
    assert the_script(page) == the_script(
        to_html(g, title="t", page_url=lambda kind, uid: f"/{kind}/{uid}", controls="<nav></nav>")
    )
    # only records with a page get a link
    linked = page_data(to_html(g, page_url=lambda kind, uid: "/x" if kind == "run" else None))
    runs = {k for k, v in linked["nodes"].items() if v["kind"] in ("run", "enclosing run")}
    assert set(linked["pages"]) == runs and len(runs) == 5  # 3 runs, the enclosing one, its box


def test_in_a_real_browser_the_script_runs_and_nodes_open_their_pages(chain, fp_env, browser):
    """The CSP lets the graph's script run (a node's record shows), and a node's "open its page"
    leads to the record's page."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from tests.web.serving import navigate, serving

    count = chain["count"]
    with serving(cwd=fp_env) as url:
        browser.get(f"{url}/lineage/{chain['fig'].uid}")
        panel = browser.find_element(By.ID, "record")
        # the script ran: the start's record is shown, with its page's link
        assert panel.get_attribute("data-shown") == f"a{chain['fig'].id}"
        link = panel.find_element(By.CSS_SELECTOR, "a.open-page")
        assert link.get_attribute("href") == f"{url}/artifact/{chain['fig'].uid}"
        logs = browser.get_log("browser") if hasattr(browser, "get_log") else []
        assert not [e for e in logs if "Content Security Policy" in e.get("message", "")], logs
        node = browser.find_element(By.ID, f"r{count.id}")
        ActionChains(browser).move_to_element(node).click().perform()
        assert panel.get_attribute("data-shown") == f"r{count.id}"
        TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(TEST_ARTIFACTS / "serve-lineage.png"))
        navigate(browser, panel.find_element(By.CSS_SELECTOR, "a.open-page").click)
        assert browser.current_url == f"{url}/run/{count.uid}"
        version = browser.find_element(By.ID, "transform-version")
        assert version.text == "count" and version.get_attribute("href").endswith(
            f"/transform/{count.transform.uid}"
        )
        assert "min" in browser.find_element(By.ID, "params").text
