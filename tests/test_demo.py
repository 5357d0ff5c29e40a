"""The main job: `flowprov demo`, typed as the README says in a fresh clone, plays the project flow
for real and answers its questions; a step that fails says which and why."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import flowprov as fp
import pytest

from tests.conftest import TEST_ARTIFACTS, _reset_process_state

REPO = Path(__file__).resolve().parents[1]
# the installed command, as a user types it (not `python -m`)
FLOWPROV = Path(sys.executable).with_name("flowprov")
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Played:
    clone: Path  # a fresh clone of the repository: the working directory of `flowprov demo`
    env: dict
    out: str
    examples_before: str  # git's view of the example files the demo ran, before and after
    examples_after: str

    @property
    def folder(self) -> Path:
        return self.clone / "flowprov-demo"


def play(clone: Path, env: dict) -> str:
    proc = subprocess.run(
        [str(FLOWPROV), "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"flowprov demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    return proc.stdout


def git_status(clone: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", *args],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def examples_status() -> str:
    """Untracked and ignored files too, among the example files of the installed flowprov (the
    demo runs those, not the clone's)."""
    from flowprov.demo import examples_dir

    return git_status(examples_dir(), "--ignored", "--", ".")


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Played:
    if not (REPO / ".git").exists():
        pytest.skip("needs the git checkout of flowprov (the demo is played in a fresh clone)")
    tmp = tmp_path_factory.mktemp("demo")
    clone = tmp / "flowprov"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    env = dict(os.environ)
    for name in ("FLOWPROV_INSTANCE", "FLOWPROV_USER", "JPY_SESSION_NAME", "PREFECT_HOME"):
        env.pop(name, None)
    env.update(
        FLOWPROV_CONFIG_DIR=str(tmp / "config"),
        FLOWPROV_CACHE_DIR=str(tmp / "cache"),
        XDG_DATA_HOME=str(tmp / "data-home"),
    )
    before = examples_status()
    out = play(clone, env)
    return Played(clone, env, out, before, examples_status())


@pytest.fixture
def store(played, monkeypatch) -> Played:
    """This process reads the instance the demo made."""
    for name in ("FLOWPROV_CONFIG_DIR", "FLOWPROV_CACHE_DIR", "XDG_DATA_HOME"):
        monkeypatch.setenv(name, played.env[name])
    monkeypatch.setenv("FLOWPROV_INSTANCE", "flowprov-demo")
    monkeypatch.delenv("FLOWPROV_USER", raising=False)
    _reset_process_state()
    yield played
    _reset_process_state()


def test_the_readme_command_in_a_fresh_clone(played):
    out = played.out
    for i in range(1, 8):
        assert f"✓ {i}." in out
    assert "Transform.search('GWS CRIPSRa analysis').first() → 'GWS CRISPRa analysis'" in out
    assert "which user? testuser1 (Test User1)" in out
    assert "Notebooks created by testuser1: Project flow (1LCd8kco9lZU0000)" in out
    # every path is the demo folder's, absolute, in the folder `flowprov demo` was typed in
    assert f"at {played.folder / 'mydata'}" in out
    assert (played.folder / "prefect").is_dir()  # Prefect's home: where the demo said
    # the checkout is left as it was: the demo's folder is ignored; nothing is written beside the
    # example files it ran
    assert git_status(played.clone) == ""
    assert played.examples_after == played.examples_before


def test_the_demo_records_the_project_flow(store):
    users = {u.handle for u in fp.User.filter()}
    assert {"testuser1", "testuser2"} <= users
    # one run per step, plus the Snakemake jobs and the Prefect tasks inside theirs
    runs = fp.Run.filter().order_by("id").all()
    steps = [
        (r.transform.name, r.transform.type, r.created_by.handle)
        for r in runs
        if r.parent_id is None
    ]
    assert steps == [
        ("Upload GWS CRISPRa result", "upload", "testuser1"),
        ("GWS CRISPRa analysis", "notebook", "testuser2"),
        ("chromium_10x_upload.py", "script", "testuser1"),
        ("Cell Ranger", "pipeline", "testuser2"),
        ("postprocess_cellranger.py", "script", "testuser2"),
        ("Perform single cell analysis, integrate with CRISPRa screen", "flow", "testuser2"),
        ("Project flow", "notebook", "testuser1"),
    ]
    assert {r.status for r in runs} == {"completed"}
    cellranger = fp.Transform.filter(name="Cell Ranger").one()
    assert cellranger.version == "7.2.0" and cellranger.reference.startswith(
        "https://www.10xgenomics.com"
    )
    jobs = cellranger.runs.one().children
    assert sorted(r.transform.name for r in jobs) == ["all", "count"]
    assert {r.transform.type for r in jobs} == {"rule"} and {r.engine for r in jobs} == {
        "snakemake"
    }
    flow_run = fp.Transform.filter(type="flow").one().runs.one()
    assert flow_run.engine == "prefect" and sorted(r.transform.name for r in flow_run.children) == [
        "embed",
        "matrixplot_figure",
        "umap_figure",
    ]
    # what the flow body itself reads (outside its tasks) is the flow run's input
    assert {a.description for a in flow_run.inputs} == {
        "perturbseq counts",
        "hits from schmidt22 crispra GWS",
    }
    figure = fp.Artifact.filter(key__contains="figures/matrixplot").one()
    assert figure.transform.type == "task" and figure.created_by.handle == "testuser2"
    review = fp.Transform.get("1LCd8kco9lZU0000")
    assert [r.transform for r in figure.input_of] == [
        review
    ] and review.created_by.handle == "testuser1"
    matrix = fp.Artifact.filter(key__startswith="perturbseq/filtered_feature_bc_matrix/")
    assert sorted(a.key.rsplit("/", 1)[1] for a in matrix) == [
        "barcodes.tsv.gz",
        "features.tsv.gz",
        "matrix.mtx.gz",
    ]
    assert {a.run.transform.name for a in matrix} == {"count"}
    assert fp.Artifact.filter(description="perturbseq counts").one().suffix in (".h5ad", ".parquet")
    assert fp.Artifact.filter(key__startswith="figures/").count() == 2
    # the figure's upstream lineage reaches the screen result and the fastq files through every step
    g = figure.lineage()
    keys = {n.record["key"] for n in g.artifacts}
    assert {
        "schmidt22_crispra_gws_IFNG.parquet",
        "fastq/perturbseq_R1_001.fastq.gz",
        "fastq/perturbseq_R2_001.fastq.gz",
        "perturbseq/filtered_feature_bc_matrix/matrix.mtx.gz",
        "schmidt22_perturbseq.parquet",
    } <= keys
    through = {n.record["transform"].split(" (")[0] for n in g.runs}
    assert {
        "Upload GWS CRISPRa result",
        "GWS CRISPRa analysis",
        "chromium_10x_upload.py",
        "count",
        "postprocess_cellranger.py",
        "embed",
        "matrixplot_figure",
    } <= through
    assert "Cell Ranger" in {n.record["transform"].split(" (")[0] for n in g.groups.values()}

    # the whole story is one connected graph: the review's ancestry reaches both uploads
    from flowprov.demo import ancestry

    names = {t.name for _, t, _ in ancestry(review)}
    assert {
        "Upload GWS CRISPRa result",
        "chromium_10x_upload.py",
        "count",
        "GWS CRISPRa analysis",
        "embed",
    } <= names


def svg_texts(element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def outside_nodes(element) -> list[str]:
    """The texts of a picture that belong to no node, edge or box: its title and legend."""
    if element.get("class") in ("node", "edge", "cluster"):
        return []
    own = [element.text or ""] if element.tag == f"{SVG}text" else []
    return own + [t for child in element for t in outside_nodes(child)]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_the_demo_picture(store):
    figure = fp.Artifact.filter(key__contains="figures/matrixplot").one()
    page = store.folder / f"lineage_{figure.uid}.html"
    picture = store.folder / f"lineage_{figure.uid}.svg"
    assert str(page) in store.out and page.exists() and str(picture) in store.out
    svg = picture.read_text()
    root = ET.fromstring(svg)
    review = list(figure.input_of)[-1]
    g = figure.lineage("upstream", highlight_run=review)
    nodes = {e.get("id"): e for e in root.iter(f"{SVG}g") if e.get("class") == "node"}
    highlighted = {i for i, e in nodes.items() if 'fill="#ffedd5"' in ET.tostring(e).decode()}
    assert highlighted == {f"a{figure.id}", f"r{review.id}"}  # the review run and its input
    # each run once: the Prefect flow run (a box, and a node for the files its body read) and
    # the Snakemake workflow run (a box only) are each drawn as one node, on top of their box
    run_ids = {n.id for n in g.runs} | set(g.groups)
    assert run_ids <= set(nodes)
    flow = fp.Transform.filter(type="flow").one()
    flow_texts = [t for t in svg_texts(root) if t.startswith(flow.name)]
    assert len(flow_texts) == 1, flow_texts
    tooltips = Counter(a.get("{http://www.w3.org/1999/xlink}title") for a in root.iter(f"{SVG}a"))
    run_uids = {n.uid for n in g.runs} | {box.uid for box in g.groups.values()}
    assert {uid: tooltips[uid] for uid in run_uids} == dict.fromkeys(run_uids, 1)
    # no box has a label of its own for edges to run through
    for box in (e for e in root.iter(f"{SVG}g") if e.get("class") == "cluster"):
        assert not [t for t in box if t.tag == f"{SVG}text"]
    # times only where they tell runs apart: every run here is the only one of its kind
    stamp = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}|\b\d{2}:\d{2}\b")
    times = [m for t in svg_texts(root) for m in stamp.findall(t)]
    assert len(times) == len(set(times)) and times == [], times
    # the legend, in the picture itself (a graph label, outside every node)
    legend = outside_nodes(root)
    for entry in ("artifact (file)", "run", "enclosing run: a box, its run on top"):
        assert entry in legend, legend
    assert "current run and its inputs" in legend and "start (bold)" in legend
    # one producer per file: the figure is its task's; the flow that passed it up did not make
    # it (a file returned by a task and returned again by its flow — the Prefect plugin's fix)
    arrows = [e.findtext(f"{SVG}title") for e in root.iter(f"{SVG}g") if e.get("class") == "edge"]
    made_it = [a for a in arrows if a.endswith(f"->a{figure.id}")]
    assert len(made_it) == 1, made_it


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_the_hits_show_the_name_their_file_had(store):
    """The hits were copied in without a key: the picture names them by their file's name. (The
    label comes from the record's file_name, which the lineage graph's artifact rows must carry.)"""
    figure = fp.Artifact.filter(key__contains="figures/matrixplot").one()
    root = ET.fromstring((store.folder / f"lineage_{figure.uid}.svg").read_text())
    hits = fp.Artifact.filter(description="hits from schmidt22 crispra GWS").one()
    assert hits.key is None
    node = next(e for e in root.iter(f"{SVG}g") if e.get("id") == f"a{hits.id}")
    assert svg_texts(node) == ["hits from schmidt22 crispra GWS", "hits.parquet"]


def test_a_second_demo_replaces_the_first(store):
    runs = fp.Run.filter().count()
    play(store.clone, store.env)
    _reset_process_state()
    assert fp.Run.filter().count() == runs
    assert git_status(store.clone) == ""


def test_a_cause_is_found_in_a_traceback_another_thread_wrote_into():
    """The step output of a CI run: Prefect's temporary server logged its own failure while the
    flow's traceback was printed. The traceback still ends at its exception; chained tracebacks'
    joining lines are not causes."""
    from flowprov.demo import STEPS, _causes, _failure

    output = "\n".join(
        [
            "15:39:36.843 | ERROR   | uvicorn.error - Traceback (most recent call last):",
            '  File "server.py", line 1, in lifespan',
            "sqlite3.OperationalError: unable to open database file",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            '  File "aiosqlite/core.py", line 466, in connector',
            "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) unable to open database",
            "15:39:59.658 | ERROR   | uvicorn.error - Application startup failed. Exiting.",
            "Traceback (most recent call last):",
            '  File "integrated_analysis.py", line 80, in <module>',
            "15:39:59.700 | ERROR   | uvicorn.error - Application startup failed. Exiting.",
            "    ret_val = run_flow_sync(**kwargs)",
            '  File "prefect/server/api/server.py", line 1174, in start',
            "    raise RuntimeError(error_message)",
            "RuntimeError: Timed out while attempting to connect to ephemeral Prefect API server.",
            "KeyboardInterrupt",
        ]
    )
    causes = _causes(output)
    assert causes == [
        "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) unable to open database",
        "RuntimeError: Timed out while attempting to connect to ephemeral Prefect API server.",
    ]
    # the server's last retry, logged after the flow gave up: the cause again, not the "then"
    report = _failure(STEPS[5], 6, "exit code 1", [*causes, causes[0]], Path("x.log"))
    assert report.splitlines()[2] == f"  then:  {causes[1]}"


def test_a_failing_step_says_which_and_why(fp_env, monkeypatch):
    """A real failure, the one a relative Prefect home caused: Prefect's temporary server cannot
    open its database, and the flow gives up waiting for it. The cause comes first."""
    from flowprov import demo
    from flowprov.errors import FlowprovError

    folder = fp_env / "demo"
    inst = demo.prepare(folder)
    (folder / "prefect" / "prefect.db").mkdir(parents=True)  # a folder where its database goes
    # long enough for the server to fail by itself on a busy machine, before the flow gives up
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "25")
    with pytest.raises(FlowprovError) as e:
        demo.run_step(demo.STEPS[5], inst, folder, 6)
    lines = str(e.value).splitlines()
    # the step, then the cause — the first error in its output, not the last — in a few lines
    assert lines[0] == (
        "demo step 6/7 failed: Integrated analysis, figures, a Prefect flow "
        "(integrated_analysis.py, as testuser2; exit code 1)"
    )
    assert lines[1].startswith("  cause: ") and "unable to open database file" in lines[1], lines
    assert lines[2].startswith("  then:  ") and "Timed out" in lines[2], lines
    assert len(lines) == 4
    log = Path(lines[3].removeprefix("  full log: "))
    assert log == folder.resolve() / "logs" / "6-integrated_analysis.log"
    assert "Traceback (most recent call last)" in log.read_text()


@pytest.mark.parametrize(
    ("number", "how", "cause"),
    [
        (2, "a cell raised", "DoesNotExist: "),  # the notebook finds no screen result yet
        (4, "exit code 1", "MissingInputException in rule count"),  # no fastq files yet
    ],
)
def test_a_step_played_before_its_inputs_exist_says_why(fp_env, number, how, cause):
    """Real failures of a notebook and of a Snakemake workflow (which prints no traceback)."""
    from flowprov import demo
    from flowprov.errors import FlowprovError

    folder = fp_env / "demo"
    inst = demo.prepare(folder)
    step = demo.STEPS[number - 1]
    with pytest.raises(FlowprovError) as e:
        demo.run_step(step, inst, folder, number)
    lines = str(e.value).splitlines()
    assert (
        lines[0]
        == f"demo step {number}/7 failed: {step.title} ({step.file}, as {step.user}; {how})"
    )
    assert lines[1].startswith(f"  cause: {cause}"), lines
    assert (
        lines[-1].startswith(f"  full log: {folder.resolve() / 'logs'}/{number}-")
        and len(lines) <= 4
    )
    assert Path(lines[-1].removeprefix("  full log: ")).stat().st_size > 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_browse_the_demo_with_flowprov_serve(store, browser):
    """What the demo's last line says to do, in a real headless Chromium: `flowprov serve` as typed
    (in the clone, no flags), then home → search "CRIPSRa" (sic) → the notebook → follow its
    outputs to the figure → the figure's lineage → click the Cell Ranger run → its version and
    params, in the graph's panel and on the run's own page. Screenshots in test-artifacts/."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from tests.web.serving import navigate, serving

    assert "Browse it: flowprov serve, then open http://127.0.0.1:8700/" in store.out
    TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = iter(range(1, 100))

    def shot(name: str) -> None:
        assert browser.save_screenshot(str(TEST_ARTIFACTS / f"serve-demo-{next(shots)}-{name}.png"))

    def follow(xpath: str) -> None:
        links = browser.find_elements(By.XPATH, xpath)
        assert links, f"no link {xpath} on {browser.current_url}"
        navigate(browser, links[0].click)

    typed = _port_free(8700)  # as the demo says, unless something here holds 8700 already
    env = {k: v for k, v in store.env.items() if k != "FLOWPROV_INSTANCE"}
    with serving(env=env, cwd=store.clone, as_typed=typed) as url:
        browser.get(url + "/")
        assert "flowprov-demo" in browser.title
        recent = browser.find_element(By.ID, "recent").text
        assert "Cell Ranger" in recent and "GWS CRISPRa analysis" in recent
        shot("home")

        box = browser.find_element(By.ID, "search-box")
        navigate(browser, lambda: box.send_keys("CRIPSRa" + Keys.ENTER))
        assert "/search?q=CRIPSRa" in browser.current_url
        shot("search")
        follow("//a[contains(@class, 'hit') and starts-with(@href, '/transform/')"
               " and contains(., 'GWS CRISPRa analysis')]")  # fmt: skip
        assert "GWS CRISPRa analysis" in browser.find_element(By.TAG_NAME, "h1").text
        assert "notebook" in browser.find_element(By.TAG_NAME, "main").text
        shot("notebook")

        # the notebook's run → its output hits.parquet → the flow that read it → the figure
        follow("//table[@id='runs']//a[starts-with(@href, '/run/')]")
        follow("//table[@id='outputs']//a[contains(., 'hits.parquet')]")
        follow("//table[@id='readers']//tr[contains(., 'integrate with CRISPRa screen')]"
               "//a[starts-with(@href, '/run/')]")  # fmt: skip
        follow("//table[@id='children']//tr[contains(., 'matrixplot_figure')]"
               "//a[starts-with(@href, '/run/')]")  # fmt: skip
        follow("//table[@id='outputs']//a[contains(., 'matrixplot')]")
        assert "matrixplot_fig2" in browser.find_element(By.ID, "artifact-key").text
        shot("figure")

        navigate(browser, browser.find_element(By.ID, "lineage-link").click)
        boxes = [
            g for g in browser.find_elements(By.CSS_SELECTOR, "#graph g.node")
            if "Cell Ranger 7.2.0" in (g.get_attribute("textContent") or "")
        ]  # fmt: skip
        assert boxes, "no Cell Ranger box in the figure's lineage"
        ActionChains(browser).move_to_element(boxes[0]).click().perform()
        panel = browser.find_element(By.ID, "record")
        assert "7.2.0" in panel.text and "chemistry" in panel.text and "SC3Pv3" in panel.text
        shot("lineage")

        navigate(browser, panel.find_element(By.CSS_SELECTOR, "a.open-page").click)
        assert "7.2.0" in browser.find_element(By.ID, "transform-version").text
        params = browser.find_element(By.ID, "params").text
        assert "chemistry" in params and "SC3Pv3" in params and "3000" in params
        assert browser.find_element(By.ID, "status").text == "completed"
        shot("cellranger-run")
