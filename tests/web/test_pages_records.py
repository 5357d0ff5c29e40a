"""The record pages of `flowprov serve` — artifact (and its download), run, transform — and their
JSON twins, over real records on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass

import flowprov as fp
import pytest
from flowprov.events import (
    ArtifactRegistered,
    RunFinished,
    RunRef,
    RunStarted,
    StorageDeclared,
    TransformSpec,
)

from tests.conftest import write

PAYLOAD = "<script>window.__pwned=1</script>"
HOSTILE = [
    PAYLOAD,
    '"><img src=x onerror="window.__pwned=1">',
    "</pre><iframe srcdoc='x'></iframe>",
    "{{ 7*7 }} {% raw %}",
]
LOG_TEXT = "step 1 done\n" * 8000  # 96,000 bytes: more than a page shows


@dataclass
class World:
    raw: fp.Artifact
    out1: fp.Artifact
    out2: fp.Artifact
    copy: fp.Artifact
    log: fp.Artifact
    t1: fp.Transform
    t2: fp.Transform
    upload: fp.Run
    r1: fp.Run
    r2: fp.Run
    child: fp.Run
    reader: fp.Run
    failed: fp.Run


@pytest.fixture
def world(instance, fp_env) -> World:
    """upload → raw.txt; count v1 (k=1) → out.txt; count v2 (k=2, new code) reads raw.txt → out.txt
    (a second version) and logs/count.log, with a child run; a copy of out.txt's bytes elsewhere;
    a review run reads out.txt; a failed run."""
    root = fp_env / "mydata"
    up_t = fp.Transform(name="Upload screen", type="upload").save()
    with fp.Run(transform=up_t) as upload:
        raw = fp.Artifact(write(root / "raw.txt", "raw\n"), description="raw screen").save()
    t1 = fp.Transform(
        name="count", type="script", key="count.py", source_code="print('v1')\n"
    ).save()
    with fp.Run(transform=t1, params={"k": 1}) as r1:
        raw.cache()
        out1 = fp.Artifact(write(root / "out.txt", "one\n")).save()
    t2 = fp.Transform(
        name="count",
        type="script",
        key="count.py",
        version="2",
        source_code="def count(x):\n    return x  # v2\n",
    ).save()
    with fp.Run(transform=t2, params={"k": 2, "opts": {"deep": [1, 2]}}) as r2:
        raw.cache()
        out2 = fp.Artifact(write(root / "out.txt", "two\n")).save()
        log = fp.Artifact(write(root / "logs" / "count.log", LOG_TEXT)).save()
        with fp.Run(transform=t2, parent=r2, name="child") as child:
            pass
    copy = fp.Artifact(write(root / "published" / "out.txt", "two\n")).save()
    review_t = fp.Transform(name="review", type="notebook").save()
    with fp.Run(transform=review_t) as reader:
        out2.cache()
    with pytest.raises(RuntimeError):
        with fp.Run(transform=review_t) as failed:
            raise RuntimeError("it broke: " + PAYLOAD)
    return World(raw, out1, out2, copy, log, t1, t2, upload, r1, r2, child, reader, failed)


def text_of(r) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", r.text))


# -- artifact ----------------------------------------------------------------------------------


def test_artifact_page_and_its_json_twin(world, app_client):
    w = world
    c = app_client()
    r = c.get(f"/artifact/{w.out2.uid}")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert f'<a id="producer" href="/run/{w.r2.uid}"' in r.text
    assert f'<a id="lineage-link" href="/lineage/{w.out2.uid}"' in r.text
    assert f'href="/artifact/{w.out2.uid}/download"' in r.text
    shown = text_of(r)
    assert w.out2.hash in shown and "blake3" in shown and "out.txt" in shown
    assert f'href="/artifact/{w.out1.uid}"' in r.text  # the older version, listed
    assert f'href="/artifact/{w.copy.uid}"' in r.text  # the same bytes at another place
    assert "published/out.txt" in shown
    assert f'href="/run/{w.reader.uid}"' in r.text  # a run that read it

    d = c.get(f"/artifact/{w.out2.uid}?format=json").json()
    assert d["uid"] == w.out2.uid and d["key"] == "out.txt" and d["size"] == 4
    assert d["hash"] == w.out2.hash and d["hash_type"] == w.out2.hash_type
    assert d["producer"]["uid"] == w.r2.uid
    assert d["producer"]["transform"] == {
        "uid": w.t2.uid,
        "name": "count",
        "version": "2",
        "type": "script",
    }
    assert [v["uid"] for v in d["versions"]["items"]] == [w.out1.uid, w.out2.uid]
    assert [v["is_latest"] for v in d["versions"]["items"]] == [False, True]
    # what changed from the version before: the code and the params of the run that made it
    ch = d["changes"]
    assert ch["previous"] == w.out1.uid and ch["content"] == "different"
    assert {o["kind"] for o in ch["origins"]} == {"transform", "code", "params"}
    assert ch["params"]["changed"]["k"] == {"a": 1, "b": 2}
    assert "print('v1')" in ch["code_diff"] and "return x" in ch["code_diff"]
    assert [a["uid"] for a in d["same_bytes"]["items"]] == [w.copy.uid]
    assert d["same_bytes"]["total"] == 1
    assert [x["uid"] for x in d["readers"]["items"]] == [w.reader.uid]
    assert d["download"] == {
        "available": True,
        "url": f"/artifact/{w.out2.uid}/download",
        "reason": None,
    }
    assert d["stale"]["stale"] is False
    assert d["lineage"] == f"/lineage/{w.out2.uid}"
    # Accept: application/json is the same twin
    assert c.get(f"/artifact/{w.out2.uid}", headers={"accept": "application/json"}).json() == d


def test_an_older_version_says_so_and_is_not_offered_for_download(world, app_client):
    w = world
    c = app_client()
    d = c.get(f"/artifact/{w.out1.uid}?format=json").json()
    assert d["is_latest"] is False and d["changes"] is None  # the first version: nothing before
    assert d["stale"]["stale"] is None and "newer version holds this place" in d["stale"]["note"]
    # the page offers it (the file is there), the download itself finds other bytes there
    r = c.get(f"/artifact/{w.out1.uid}/download", headers={"accept": "application/json"})
    assert r.status_code == 404 and "no longer holds" in r.json()["error"]


def test_readers_are_paged(instance, fp_env, app_client):
    root = fp_env / "mydata"
    a = fp.Artifact(write(root / "ref.fa", ">chr1\nACGT\n")).save()
    ref = a.uid
    spec = TransformSpec(name="align", type="rule")
    events = [RunStarted(uid=f"reader{i:014d}", transform=spec) for i in range(120)]
    from flowprov.events import ArtifactRef, ArtifactUsed

    events += [
        ArtifactUsed(run=RunRef(uid=f"reader{i:014d}"), artifact=ArtifactRef(uid=ref))
        for i in range(120)
    ]
    instance.store.apply(events)
    c = app_client()
    d = c.get(f"/artifact/{ref}?format=json").json()["readers"]
    assert (d["total"], d["page"], d["pages"], len(d["items"])) == (120, 1, 3, 50)
    last = c.get(f"/artifact/{ref}?format=json&readers_page=3").json()["readers"]
    assert len(last["items"]) == 20
    seen = {
        x["uid"]
        for p in (1, 2, 3)
        for x in c.get(f"/artifact/{ref}?format=json&readers_page={p}").json()["readers"]["items"]
    }
    assert len(seen) == 120
    page2 = c.get(f"/artifact/{ref}?readers_page=2")
    assert "page 2 of 3" in page2.text and "readers_page=3" in page2.text


# -- download ----------------------------------------------------------------------------------


def test_download_serves_the_bytes_of_a_file_inside_the_root(world, app_client):
    c = app_client()
    r = c.get(f"/artifact/{world.log.uid}/download")
    assert r.status_code == 200
    assert r.content == LOG_TEXT.encode()
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"count.log\"; filename*=UTF-8''count.log"
    )
    assert r.headers["x-content-type-options"] == "nosniff"


def test_download_name_cannot_break_the_header(instance, fp_env, app_client):
    root = fp_env / "mydata"
    a = fp.Artifact(write(root / 'we"ird;name\u00e9.txt', "x")).save()
    r = app_client().get(f"/artifact/{a.uid}/download")
    assert r.status_code == 200 and r.content == b"x"
    cd = r.headers["content-disposition"]
    assert cd == (
        "attachment; filename=\"we_ird_name_.txt\"; filename*=UTF-8''we%22ird%3Bname%C3%A9.txt"
    )


def refused(c, uid: str) -> str:
    r = c.get(f"/artifact/{uid}/download")
    assert r.status_code == 404, r.text
    j = c.get(f"/artifact/{uid}/download?format=json").json()
    assert j["status"] == 404
    page = c.get(f"/artifact/{uid}?format=json").json()["download"]
    if not page["available"]:
        assert page["reason"]
    return j["error"]


def test_download_refuses_a_symlink_leading_out_of_the_root(instance, fp_env, tmp_path, app_client):
    root = fp_env / "mydata"
    a = fp.Artifact(write(root / "notes.txt", "secret")).save()
    outside = write(tmp_path / "elsewhere" / "secret.txt", "secret")  # the very same bytes
    os.remove(root / "notes.txt")
    os.symlink(outside, root / "notes.txt")
    c = app_client()
    assert "outside every registered storage root" in refused(c, a.uid)
    assert c.get(f"/artifact/{a.uid}?format=json").json()["download"]["available"] is False


def test_download_refuses_a_file_whose_folder_leads_out_of_the_root(
    instance, fp_env, tmp_path, app_client
):
    root = fp_env / "mydata"
    a = fp.Artifact(write(root / "sub" / "data.csv", "a,b\n")).save()
    outside = tmp_path / "other"
    write(outside / "data.csv", "a,b\n")
    (root / "sub" / "data.csv").unlink()
    (root / "sub").rmdir()
    os.symlink(outside, root / "sub", target_is_directory=True)
    assert "outside every registered storage root" in refused(app_client(), a.uid)


def test_download_follows_a_symlink_that_stays_inside_the_root(instance, fp_env, app_client):
    root = fp_env / "mydata"
    a = fp.Artifact(write(root / "b.txt", "same")).save()
    write(root / "real" / "b.txt", "same")
    os.remove(root / "b.txt")
    os.symlink(root / "real" / "b.txt", root / "b.txt")
    r = app_client().get(f"/artifact/{a.uid}/download")
    assert r.status_code == 200 and r.content == b"same"


def test_download_refuses_a_missing_or_changed_file(instance, fp_env, app_client):
    root = fp_env / "mydata"
    gone = fp.Artifact(write(root / "gone.txt", "here")).save()
    edited = fp.Artifact(write(root / "edited.txt", "abcd")).save()
    grown = fp.Artifact(write(root / "grown.txt", "abcd")).save()
    (root / "gone.txt").unlink()
    (root / "edited.txt").write_text("wxyz")  # same size, other bytes
    (root / "grown.txt").write_text("abcdef")
    c = app_client()
    assert "missing" in refused(c, gone.uid)
    assert "no longer holds" in refused(c, edited.uid)
    assert "no longer holds" in refused(c, grown.uid)
    # and the page says why it offers none, and that the file is missing
    d = c.get(f"/artifact/{gone.uid}?format=json").json()
    assert d["download"]["available"] is False and "missing" in d["download"]["reason"]
    assert d["stale"]["stale"] is True and d["stale"]["reasons"][0]["kind"] == "file missing"


def test_download_refuses_a_remote_file(instance, app_client):
    from flowprov.uids import ARTIFACT_STEM, random_uid

    instance.store.apply(
        [
            StorageDeclared(root="s3://flowprov-remote-bucket", type="s3"),
            ArtifactRegistered(
                stem=random_uid(ARTIFACT_STEM),
                storage_root="s3://flowprov-remote-bucket",
                key="runs/counts.tsv",
                hash="e" * 32,
                hash_type="md5",
                size=12,
                suffix=".tsv",
            ),
        ]
    )
    a = fp.Artifact.get(key="runs/counts.tsv")
    c = app_client()
    reason = refused(c, a.uid)
    assert "s3://flowprov-remote-bucket/runs/counts.tsv" in reason and "only local" in reason
    d = c.get(f"/artifact/{a.uid}?format=json").json()
    assert d["storage"]["type"] == "s3" and d["download"]["available"] is False
    assert d["path"] == "s3://flowprov-remote-bucket/runs/counts.tsv"


def test_download_refuses_a_folder(instance, fp_env, app_client):
    root = fp_env / "mydata"
    write(root / "matrix" / "a.tsv", "a")
    write(root / "matrix" / "b.tsv", "b")
    a = fp.Artifact(root / "matrix").save()
    assert "a folder" in refused(app_client(), a.uid)


# -- staleness -------------------------------------------------------------------------------


def test_stale_and_why_as_flowprov_stale_says(world, fp_env, app_client):
    from flowprov.lineage.stale import stale

    w = world
    root = fp_env / "mydata"
    # a mirror of raw.txt's bytes (no producer of its own), read by a summary run
    mirror = fp.Artifact(write(root / "mirror" / "raw.txt", "raw\n")).save()
    summary_t = fp.Transform(name="summary", type="script").save()
    with fp.Run(transform=summary_t):
        mirror.cache()
        summary = fp.Artifact(write(root / "summary.txt", "1 line\n")).save()
    # raw.txt gets a newer version: what count v2 made from the old one is stale
    with fp.Run(transform=fp.Transform(name="Upload screen", type="upload").save()):
        fp.Artifact(write(root / "raw.txt", "raw, corrected\n")).save()
    # and count's code moves on: out.txt also rests on an older code version
    fp.Transform(name="count", type="script", key="count.py", source_code="print('v3')\n").save()
    expected = {s.uid: s for s in stale(check_files=False)}
    c = app_client()
    d = c.get(f"/artifact/{w.out2.uid}?format=json").json()["stale"]
    assert d["stale"] is True
    got = {(r["kind"], r["cause"]) for r in d["reasons"]}
    assert got == {(r.kind, r.cause) for r in expected[w.out2.uid].reasons}
    assert got == {("newer input version", w.raw.uid), ("newer code version", w.t2.uid)}
    by_kind = {r["kind"]: r for r in d["reasons"]}
    assert [p["uid"] for p in by_kind["newer input version"]["path"]] == [
        w.raw.uid,
        w.r2.uid,
        w.out2.uid,
    ]
    assert [p["url"] for p in by_kind["newer input version"]["path"]] == [
        f"/artifact/{w.raw.uid}",
        f"/run/{w.r2.uid}",
        f"/artifact/{w.out2.uid}",
    ]
    assert by_kind["newer code version"]["path"][0]["url"] == f"/transform/{w.t2.uid}"
    # what was made from a copy of the old raw bytes rests on them too
    d = c.get(f"/artifact/{summary.uid}?format=json").json()["stale"]
    assert (
        {(r["kind"], r["cause"]) for r in d["reasons"]}
        == {(r.kind, r.cause) for r in expected[summary.uid].reasons}
        == {("newer input version", w.raw.uid)}
    )
    # a producer-less copy of out.txt's bytes is judged as `flowprov stale` judges it: only what
    # runs made from it would be stale
    copy = c.get(f"/artifact/{w.copy.uid}?format=json").json()["stale"]
    assert w.copy.uid not in expected and copy["stale"] is False
    page = text_of(c.get(f"/artifact/{w.out2.uid}"))
    assert "stale" in page and "raw.txt has a newer version" in page
    # the new raw file is up to date, the old one is an older version
    raw2 = fp.Artifact.get(key="raw.txt", is_latest=True)
    assert c.get(f"/artifact/{raw2.uid}?format=json").json()["stale"]["stale"] is False
    assert c.get(f"/artifact/{w.raw.uid}?format=json").json()["stale"]["stale"] is None


# -- run ---------------------------------------------------------------------------------------


def test_run_page_and_its_json_twin(world, app_client):
    w = world
    c = app_client()
    r = c.get(f"/run/{w.r2.uid}")
    assert r.status_code == 200
    m = re.search(r'<a id="transform-version" href="([^"]+)">([^<]+)</a>', r.text)
    assert m and m.group(1) == f"/transform/{w.t2.uid}" and m.group(2) == "count v2"
    assert re.search(r'<span id="status" class="status completed">completed</span>', r.text)
    params = re.search(r'<table id="params".*?</table>', r.text, re.S).group(0)
    assert re.search(r'data-key="k"><th class="wrap">k</th><td class="mono wrap">2</td>', params)
    assert '{"deep": [1, 2]}' in html.unescape(params)
    shown = text_of(r)
    assert w.raw.uid not in shown  # artifacts are shown by key
    assert "raw.txt" in shown and "out.txt" in shown and "logs/count.log" in shown
    assert w.child.uid in shown  # a child run
    assert "truncated" in shown  # the log, longer than a page shows

    d = c.get(f"/run/{w.r2.uid}?format=json").json()
    assert d["uid"] == w.r2.uid and d["status"] == "completed"
    assert d["transform"]["uid"] == w.t2.uid and d["transform"]["version"] == "2"
    assert d["params"] == {"k": 2, "opts": {"deep": [1, 2]}}
    assert d["user"]["handle"] == w.r2.created_by.handle
    assert d["started_at"] and d["finished_at"] and d["duration"] >= 0
    assert [a["uid"] for a in d["inputs"]["items"]] == [w.raw.uid]
    assert {a["uid"] for a in d["outputs"]["items"]} == {w.out2.uid, w.log.uid}
    assert [x["uid"] for x in d["children"]["items"]] == [w.child.uid]
    assert d["parent"] is None
    (log,) = d["logs"]
    assert log["uid"] == w.log.uid and log["truncated"] is True
    assert log["text"] == LOG_TEXT[: 64 * 1024]
    # the software it ran with: this interpreter, its packages
    env = d["environment"]
    assert env["interpreter"].startswith("CPython") and env["n_packages"] > 10
    assert any(p["name"] == "pytest" for p in env["packages"])
    assert "CPython" in shown
    # the child names its parent
    child = c.get(f"/run/{w.child.uid}?format=json").json()
    assert child["parent"]["uid"] == w.r2.uid and child["name"] == "child"
    assert f'href="/run/{w.r2.uid}"' in c.get(f"/run/{w.child.uid}").text


def test_a_failed_run_shows_its_error_as_text(world, app_client):
    c = app_client()
    r = c.get(f"/run/{world.failed.uid}")
    assert r.status_code == 200
    assert PAYLOAD not in r.text
    err = re.search(r'<pre id="error" class="error">(.*?)</pre>', r.text, re.S).group(1)
    assert "RuntimeError: it broke: " + PAYLOAD in html.unescape(err)
    assert 'class="status failed"' in r.text
    assert (
        c.get(f"/run/{world.failed.uid}?format=json")
        .json()["error"]
        .endswith("RuntimeError: it broke: " + PAYLOAD + "\n")
    )


def test_a_log_replaced_since_is_not_shown_as_this_runs(world, fp_env, app_client):
    (fp_env / "mydata" / "logs" / "count.log").write_text("another run's log\n")
    d = app_client().get(f"/run/{world.r2.uid}?format=json").json()
    (log,) = d["logs"]
    assert log["text"] is None and "no longer holds" in log["note"]


def test_child_runs_are_paged(instance, app_client):
    spec = TransformSpec(name="nf-core/rnaseq", type="pipeline")
    task = TransformSpec(name="FASTQC", type="process")
    top = "pipeline000000000001"
    events = [RunStarted(uid=top, transform=spec, engine="nextflow", reference="launch-1")]
    events += [
        RunStarted(uid=f"task{i:016d}", transform=task, parent=RunRef(uid=top), status="completed")
        for i in range(1234)
    ]
    events.append(RunFinished(run=RunRef(uid=top), status="completed"))
    instance.store.apply(events)
    c = app_client()
    d = c.get(f"/run/{top}?format=json").json()["children"]
    assert (d["total"], d["pages"], len(d["items"])) == (1234, 25, 50)
    assert d["items"][0]["uid"] == "task0000000000000000"
    last = c.get(f"/run/{top}?format=json&children_page=25").json()["children"]
    assert [x["uid"] for x in last["items"]][-1] == "task0000000000001233"
    assert len(last["items"]) == 34
    assert "page 1 of 25" in c.get(f"/run/{top}").text


# -- transform ---------------------------------------------------------------------------------


def test_transform_page_and_its_json_twin(world, app_client):
    w = world
    c = app_client()
    r = c.get(f"/transform/{w.t2.uid}")
    assert r.status_code == 200
    # the code, highlighted by Pygments: CSS classes, no inline style
    src = re.search(r'<div id="source">(.*?)</div>\s*<h2>', r.text, re.S).group(1)
    assert '<div class="highlight">' in src and 'class="k">def</span>' in src
    assert "style=" not in src
    d = c.get(f"/transform/{w.t2.uid}?format=json").json()
    assert d["uid"] == w.t2.uid and d["version"] == "2" and d["language"] == "Python"
    assert d["source_code"] == "def count(x):\n    return x  # v2\n"
    assert [v["uid"] for v in d["versions"]] == [w.t1.uid, w.t2.uid]
    assert [v["runs"] for v in d["versions"]] == [1, 2]
    assert {x["uid"] for x in d["runs"]["items"]} == {w.r2.uid, w.child.uid}
    # the transforms that feed it: the upload made what its runs read
    assert [f["name"] for f in d["feeds"]["items"]] == ["Upload screen"]
    assert d["feeds"]["total"] == 1
    assert f'href="/transform/{d["feeds"]["items"][0]["uid"]}"' in r.text
    assert f'href="/transform/{w.t1.uid}"' in r.text  # the other version


def test_the_feeding_transforms_of_a_transform_of_many_runs_wait_to_be_asked(
    world, app_client, monkeypatch
):
    from flowprov.web import pages_records

    monkeypatch.setattr(pages_records, "FEEDS_RUNS_AT_ONCE", 1)  # count v2 has 2 runs
    c = app_client()
    uid = world.t2.uid
    d = c.get(f"/transform/{uid}?format=json").json()["feeds"]
    assert d == {"total": None, "items": [], "deferred": True}
    assert f"/transform/{uid}?feeds=all" in c.get(f"/transform/{uid}").text
    d = c.get(f"/transform/{uid}?format=json&feeds=all").json()["feeds"]
    assert [f["name"] for f in d["items"]] == ["Upload screen"] and d["deferred"] is False
    assert c.get(f"/transform/{uid}?feeds=some").status_code == 400


def test_transform_runs_are_paged_and_members_listed(instance, app_client):
    wf = TransformSpec(name="Cell Ranger", type="pipeline", key="cr/Snakefile", version="7.2.0")
    rule = TransformSpec(name="count", type="rule", key="cr/Snakefile:count", parent=wf)
    events = [RunStarted(uid=f"countrun{i:012d}", transform=rule) for i in range(75)]
    instance.store.apply(events)
    c = app_client()
    t = fp.Transform.get(key="cr/Snakefile:count")
    d = c.get(f"/transform/{t.uid}?format=json").json()
    assert (d["runs"]["total"], d["runs"]["pages"]) == (75, 2)
    assert d["runs"]["items"][0]["uid"] == "countrun000000000074"  # newest first
    assert len(c.get(f"/transform/{t.uid}?format=json&runs_page=2").json()["runs"]["items"]) == 25
    assert d["parent"]["name"] == "Cell Ranger" and d["parent"]["version"] == "7.2.0"
    parent = c.get(f"/transform/{d['parent']['uid']}?format=json").json()
    assert [m["uid"] for m in parent["members"]["items"]] == [t.uid]
    assert parent["source_code"] is None and parent["language"] is None
    assert "no source code recorded" in c.get(f"/transform/{d['parent']['uid']}").text


def test_hostile_source_code_stays_inert(instance, app_client):
    code = f"x = 1  # {PAYLOAD}\ns = '{HOSTILE[1]}'\n# {HOSTILE[2]}\n"
    t = fp.Transform(name="evil " + PAYLOAD, type="script", source_code=code).save()
    r = app_client().get(f"/transform/{t.uid}")
    assert r.status_code == 200
    for s in HOSTILE[:3]:
        assert s not in r.text
    assert html.escape(PAYLOAD, quote=False) in r.text  # a comment: one token, escaped
    assert "<iframe" not in r.text and "<img" not in r.text
    assert PAYLOAD in text_of(r)


# -- hostile strings everywhere ----------------------------------------------------------------


def test_hostile_strings_are_shown_as_text_on_every_page(instance, tmp_path, app_client):
    t = fp.Transform(
        name="hostile " + HOSTILE[0], type="script", description=HOSTILE[1], source_code=HOSTILE[2]
    ).save()
    with fp.Run(transform=t, params={"p<b>": HOSTILE[0], "q": HOSTILE[3]}) as run:
        a = fp.Artifact(
            write(tmp_path / "outside" / "h.txt", "x"),  # copied in under the hostile key
            key="dir/" + HOSTILE[1] + ".txt",
            description=HOSTILE[0] + " " + HOSTILE[3],
        ).save()
    with pytest.raises(RuntimeError):
        with fp.Run(transform=t) as failed:
            a.cache()
            raise RuntimeError(HOSTILE[0] + HOSTILE[2])
    c = app_client()
    for path in (
        f"/artifact/{a.uid}",
        f"/run/{run.uid}",
        f"/run/{failed.uid}",
        f"/transform/{t.uid}",
    ):
        r = c.get(path)
        assert r.status_code == 200, path
        assert "<script" not in r.text, path
        assert "<img" not in r.text and "<iframe" not in r.text, path
        assert html.escape(HOSTILE[0]) in r.text, path
    shown = text_of(c.get(f"/run/{run.uid}"))
    assert "p<b>" in shown and HOSTILE[0] in shown and "{{ 7*7 }}" in shown
    shown = text_of(c.get(f"/artifact/{a.uid}"))
    assert HOSTILE[1] in shown and HOSTILE[0] + " " + HOSTILE[3] in shown  # no template ran it
    assert HOSTILE[0] + HOSTILE[2] in text_of(c.get(f"/run/{failed.uid}"))


# -- missing and bad -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/artifact/nosuchartifact0000000",
        "/artifact/nosuchartifact0000000/download",
        "/run/nosuchrun00000000000",
        "/transform/nosuchtransf0000",
    ],
)
def test_missing_uids_are_404_pages(instance, app_client, path):
    c = app_client()
    r = c.get(path)
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert "has uid" in html.unescape(r.text)
    j = c.get(path, headers={"accept": "application/json"})
    assert j.status_code == 404 and "has uid 'nosuch" in j.json()["error"]


def test_a_uid_of_another_kind_is_not_found(world, app_client):
    c = app_client()
    assert c.get(f"/artifact/{world.r1.uid}").status_code == 404
    assert c.get(f"/run/{world.out1.uid}").status_code == 404
    assert c.get(f"/transform/{world.r1.uid}").status_code == 404
    # no prefix matching: a page's URL names one record for good
    assert c.get(f"/artifact/{world.out1.uid[:10]}").status_code == 404
    assert c.get("/artifact/" + "x" * 500).status_code == 404


@pytest.mark.parametrize(
    "query,reason",
    [
        ("children_page=abc", "children_page must be a whole number"),
        ("children_page=0", "children_page must be between 1 and"),
        ("children_page=9", "children_page 9 is past the last page (1)"),
        ("inputs_page=-1", "inputs_page must be between 1 and"),
        ("format=xml", "format must be 'json' or 'html'"),
    ],
)
def test_bad_params_are_400_with_the_reason(world, app_client, query, reason):
    c = app_client()
    r = c.get(f"/run/{world.r2.uid}?{query}")
    assert r.status_code == 400 and reason in html.unescape(r.text)
    if "format" not in query:
        j = c.get(f"/run/{world.r2.uid}?{query}&format=json")
        assert j.status_code == 400 and reason in j.json()["error"]


def test_record_pages_answer_get_only(world, app_client):
    c = app_client()
    for path in (f"/artifact/{world.out2.uid}", f"/artifact/{world.out2.uid}/download"):
        assert c.post(path).status_code == 405
