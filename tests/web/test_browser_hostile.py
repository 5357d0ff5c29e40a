"""Everything from the store is user data: hostile keys, descriptions, names, params, error texts
and source code, served by a real `flowprov serve` and opened in a real headless Chromium, are
shown as text — no element they spell is created, no script they carry runs."""

from __future__ import annotations

import urllib.parse

import flowprov as fp
import pytest

from tests.conftest import TEST_ARTIFACTS, write
from tests.web.serving import serving

MARK = "window.__flowprov_pwned = 1"
PAYLOADS = [
    f"<script>{MARK}</script>",
    f'<img src=x onerror="{MARK}">',
    f'"><svg onload="{MARK}"></svg>',
    f'</textarea></pre><iframe srcdoc="<script>{MARK}</script>"></iframe>',
    f"javascript:{MARK}",
    "{{ 7*7 }} {% raw %}",  # a template's own syntax stays text too
]
ELEMENTS = "img[src='x'], svg[onload], iframe, [onerror], [onload]"


def page_script() -> str:
    """The text of the lineage page's one script, as flowprov ships it."""
    import re
    from importlib.resources import files

    page = files("flowprov.lineage").joinpath("page.html").read_text(encoding="utf-8")
    return re.findall(r"<script>(.*?)</script>", page, re.S)[0]


@pytest.fixture
def hostile(instance, fp_env):
    t = fp.Transform(
        name="hostile " + PAYLOADS[0],
        type="script",
        description=PAYLOADS[1],
        source_code="print('x')\n# " + PAYLOADS[0] + "\n" + PAYLOADS[3] + "\n",
    ).save()
    with fp.Run(transform=t, params={"p<b>": PAYLOADS[2], "q": PAYLOADS[4]}) as r:
        a = fp.Artifact(
            write(fp_env / "elsewhere" / "hostile.txt", "x"),
            key="dir/" + PAYLOADS[2] + ".txt",
            description=PAYLOADS[0] + " " + PAYLOADS[5],
        ).save()
    with pytest.raises(RuntimeError):
        with fp.Run(transform=t) as failed:
            a.cache()
            raise RuntimeError(PAYLOADS[1] + " " + PAYLOADS[3])
    return {"transform": t, "run": r, "artifact": a, "failed": failed}


def test_hostile_strings_stay_text_in_a_real_browser(hostile, fp_env, browser):
    from selenium.webdriver.common.by import By

    pages = [
        "/",
        "/search?q=" + urllib.parse.quote("hostile script"),
        "/artifacts",
        "/runs",
        "/transforms",
        f"/artifact/{hostile['artifact'].uid}",
        f"/run/{hostile['run'].uid}",
        f"/run/{hostile['failed'].uid}",
        f"/transform/{hostile['transform'].uid}",
        f"/lineage/{hostile['artifact'].uid}",
    ]
    with serving(cwd=fp_env) as url:
        for path in pages:
            browser.get(url + path)
            assert "500" not in browser.title, path
            assert browser.execute_script("return window.__flowprov_pwned") is None, path
            injected = browser.find_elements(By.CSS_SELECTOR, ELEMENTS)
            assert not injected, (path, [e.get_attribute("outerHTML")[:120] for e in injected])
            # the lineage page carries flowprov's own script and its data; nothing else does
            scripts = browser.execute_script(
                "return Array.from(document.scripts).map(s => [s.id, s.type, s.text])"
            )
            if path.startswith("/lineage/"):
                assert [(i, t) for i, t, _ in scripts] == [
                    ("flowprov-data", "application/json"),
                    ("", ""),
                ]
                assert scripts[1][2] == page_script(), path
            else:
                assert scripts == [], path
        # and the strings are there, as text, where they belong
        browser.get(f"{url}/artifact/{hostile['artifact'].uid}")
        assert PAYLOADS[2] in browser.find_element(By.TAG_NAME, "body").text
        browser.get(f"{url}/run/{hostile['failed'].uid}")
        body = browser.find_element(By.TAG_NAME, "body").text
        assert PAYLOADS[1] in body  # the error text, shown as text
        browser.get(f"{url}/transform/{hostile['transform'].uid}")
        assert PAYLOADS[0] in browser.find_element(By.TAG_NAME, "body").text  # the source code
        TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(TEST_ARTIFACTS / "serve-hostile-transform.png"))
