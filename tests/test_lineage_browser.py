"""The lineage HTML page in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver. The screenshot is kept in test-artifacts/ (or $FLOWPROV_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import flowprov as fp
import pytest

from tests.conftest import IN_CI, TEST_ARTIFACTS, write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAS_SELENIUM = True
except ImportError:
    HAS_SELENIUM = False
MISSING = [
    name
    for name, ok in (
        ("chromium", CHROMIUM),
        ("chromedriver", CHROMEDRIVER),
        ("selenium", HAS_SELENIUM),
        ("dot", shutil.which("dot")),
    )
    if not ok
]
if MISSING and not IN_CI:  # under CI a missing browser is a failure, not a skip
    pytest.skip(
        f"needs {', '.join(MISSING)} (apt-get install chromium chromium-driver graphviz)",
        allow_module_level=True,
    )

ARTIFACTS = Path(
    os.environ.get("FLOWPROV_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


def test_click_a_node_and_see_its_record(instance, fp_env, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    root = fp_env / "mydata"
    up = fp.Transform(name="Upload GWS CRISPRa result", type="upload").save()
    with fp.Run(transform=up) as r0:
        screen = fp.Artifact(
            write(root / "screen.parquet", b"PAR1 screen"), run=r0, description="GWS screen"
        ).save()
    hits_t = fp.Transform(name="GWS CRIPSRa analysis", type="notebook").save()
    with fp.Run(transform=hits_t, params={"fdr": 0.05}) as r1:
        screen.cache()
        hits = fp.Artifact(write(root / "hits.parquet", b"PAR1 hits"), run=r1).save()
    bad = fp.Transform(name="qc that fails", type="script").save()
    with pytest.raises(RuntimeError):
        with fp.Run(transform=bad) as r2:
            hits.cache()
            raise RuntimeError("qc exploded")
    review = fp.Transform(name="Project flow", type="notebook").save()
    with fp.Run(transform=review) as current:
        hits.cache()
        g = hits.lineage("both", highlight_run=current)
    page = g.save(fp_env / "lineage.html", title="lineage of hits")

    browser.get(page.as_uri())
    assert browser.title == "lineage of hits"
    node = browser.find_element(By.ID, f"a{screen.id}")
    ActionChains(browser).move_to_element(node).click().perform()
    panel = browser.find_element(By.ID, "record")
    assert panel.get_attribute("data-shown") == f"a{screen.id}"
    text = panel.text
    for expected in (
        screen.uid,
        "screen.parquet",
        screen.hash,
        fp.User.current().handle,
        "created_at",
    ):
        assert expected in text, expected
    assert "selected" in node.get_attribute("class")

    run_node = browser.find_element(By.ID, f"r{r1.id}")
    ActionChains(browser).move_to_element(run_node).click().perform()
    text = panel.text
    assert r1.uid in text and "0.05" in text and "GWS CRIPSRa analysis" in text

    # failed runs stand out; the current run's input is highlighted
    failed = browser.find_element(By.ID, f"r{r2.id}")
    assert failed.find_element(By.CSS_SELECTOR, "path, polygon").get_attribute("fill") == "#fecaca"
    ActionChains(browser).move_to_element(failed).click().perform()
    assert "failed" in panel.text and "qc exploded" in panel.text
    # the highlighted input's record: its fields, not the page's drawing flags
    ActionChains(browser).move_to_element(
        browser.find_element(By.ID, f"a{hits.id}")
    ).click().perform()
    fields = {tr.get_attribute("data-field") for tr in panel.find_elements(By.CSS_SELECTOR, "tr")}
    assert "hash" in fields and not {"start", "highlight"} & fields, fields
    hl = browser.find_element(By.ID, f"a{hits.id}")
    assert hl.find_element(By.CSS_SELECTOR, "path, polygon").get_attribute("fill") == "#ffedd5"

    TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = TEST_ARTIFACTS / "lineage-page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_a_wide_graph_fits_the_window_when_the_page_opens(instance, fp_env, browser):
    from selenium.webdriver.common.by import By

    root = fp_env / "mydata"
    up = fp.Transform(name="sequencer upload", type="upload").save()
    with fp.Run(transform=up) as r0:
        lanes = [
            fp.Artifact(write(root / f"lane{i}.fastq.gz", f"@r{i}\n"), run=r0).save()
            for i in range(11)
        ]
    for i, lane in enumerate(lanes):  # one aligner per lane: eleven runs side by side
        t = fp.Transform(name=f"align lane {i}", type="script").save()
        with fp.Run(transform=t) as r:
            lane.cache()
            fp.Artifact(write(root / f"lane{i}.bam", f"BAM{i}"), run=r).save()
    g = up.runs.one().lineage("downstream")
    page = g.save(fp_env / "wide.html", title="a wide graph")

    browser.get(page.as_uri())
    size = browser.execute_script(
        "var box = document.getElementById('graph'), svg = box.querySelector('svg');"
        "var r = svg.getBoundingClientRect();"
        "return {w: r.width, h: r.height, natural: svg.width.baseVal.value,"
        " boxW: box.clientWidth, boxH: box.clientHeight};"
    )
    assert size["natural"] > size["boxW"]  # drawn at its own size, it would be cut off
    assert size["w"] <= size["boxW"] and size["h"] <= size["boxH"], size
    # the start's record is shown on opening, without the page's own flags
    panel = browser.find_element(By.ID, "record")
    fields = [tr.get_attribute("data-field") for tr in panel.find_elements(By.CSS_SELECTOR, "tr")]
    assert "uid" in fields and not {"start", "highlight"} & set(fields), fields
    assert "true" not in [td.text for td in panel.find_elements(By.CSS_SELECTOR, "td.v")]
    # its legend names what this picture shows (no failed runs here: none in the legend)
    legend = browser.find_element(By.ID, "legend").text
    assert "artifact" in legend and "run" in legend and "failed" not in legend
