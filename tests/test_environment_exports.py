"""Software environments shown and exported (issue 14): the lineage page's panel (in headless
Chromium), W3C PROV (activity attributes; the environment as a collection of package entities)
and RO-Crate (SoftwareApplication with softwareVersion, the Workflow Run Crate's ContainerImage),
for runs whose environments were chosen (a container with a sha256 digest, conda packages from
an environment file, tool versions, one declared but not deployed) and a Python-API run, which
records its interpreter's complete environment by itself."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import flowprov as fp
import pytest
from flowprov.artifacts import in_place_event, ref_of
from flowprov.environments import python_environment
from flowprov.events import (
    ArtifactUsed,
    EnvironmentSpec,
    Package,
    RunFinished,
    RunRef,
    RunStarted,
    TransformSpec,
)
from flowprov.exports import export
from flowprov.exports.prov import environment_id, package_id
from flowprov.exports.rocrate import WFRUN, software_id
from prov.model import (
    ProvActivity,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvInfluence,
    ProvMembership,
    ProvUsage,
)
from rocrate.rocrate import ROCrate

from tests.conftest import write
from tests.test_export import check_crate

IMAGE = "docker://quay.io/biocontainers/samtools:1.17--h00cdaf9_0"
SHA = "da61624fda230e94867c9429ca1112e1e77c24e500b52dfc84eaf2f5820b4a2a"
FASTQC_IMAGE = "quay.io/biocontainers/fastqc:0.12.1--hdfd78af_0"
SAMTOOLS = Package(
    name="samtools", version="1.17", build="h00cdaf9_0", source="conda", channel="bioconda"
)
HTSLIB = Package(
    name="htslib", version="1.17", build="h81da01d_2", source="conda", channel="bioconda"
)
ZLIB = Package(
    name="zlib", version="1.2.13", build="hd590300_5", source="conda", channel="conda-forge"
)
# in the samtools environment only
LIBDEFLATE = Package(
    name="libdeflate", version="1.18", build="h0b41bf4_0", source="conda", channel="conda-forge"
)
SAMTOOLS_ENV = (SAMTOOLS, HTSLIB, LIBDEFLATE, ZLIB)

# hostile strings: each would run script if it reached the page as markup; the image's `<!--`
# `<script` would put an HTML parser into the script element's escaped state, where the page's
# own </script> no longer closes it
HOSTILE_NAME = '<script>window.__pwned = "name"</script>'
HOSTILE_VERSION = '"><img src=x onerror="window.__pwned=\'version\'">'
HOSTILE_IMAGE = '<!--<script>window.__pwned="image"</script>'
HOSTILE_INTERPRETER = "</script><script>window.__pwned='interpreter'</script>"
HOSTILE_CHANNEL = "javascript:window.__pwned='channel'"

# the workflow-run ro-terms context (ResearchObject/ro-terms, workflow-run/context.json): the
# terms a Workflow Run Crate adds to RO-Crate 1.1's
WFRUN_TERMS = {
    "ParameterConnection",
    "ContainerImage",
    "DockerImage",
    "SIFImage",
    "connection",
    "sourceParameter",
    "targetParameter",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "environment",
    "registry",
    "tag",
    "containerImage",
    "resourceUsage",
}


def uid(name: str) -> str:
    return (name + "0" * 20)[:20]


@dataclass
class Story:
    reads: object  # artifacts
    env_yaml: object
    bam: object
    vcf: object
    report: object
    sort: object  # runs
    sort2: object  # same rule, same environment
    call: object  # its environment declared, not deployed
    qc: object  # Nextflow-style: tool versions in a Singularity image
    index: object  # one rule run in two environments
    index2: object
    report_run: object  # the Python API
    samtools_env: EnvironmentSpec
    declared_env: EnvironmentSpec
    qc_env: EnvironmentSpec


@pytest.fixture
def story(instance) -> Story:
    root = Path(instance.storage.root)
    roots = instance.storages().values()

    def placed(rel: str, data: str, run: RunRef | None = None):
        return in_place_event(str(write(root / rel, data)), roots=roots, run=run)

    reads = placed("raw/R1.fastq", "@r1\nACGT\n+\nIIII\n")
    reads2 = placed("raw/R2.fastq", "@r2\nTTGA\n+\nIIII\n")
    env_yaml = placed("envs/samtools.yaml", "channels: [bioconda]\ndependencies: [samtools=1.17]\n")
    bcf_yaml = placed("envs/bcftools.yaml", "channels: [bioconda]\ndependencies: [bcftools]\n")
    samtools_env = EnvironmentSpec(
        os="linux-64",
        packages=SAMTOOLS_ENV,
        container_image=IMAGE,
        container_digest=f"sha256:{SHA}",
        container_engine="docker",
        spec_file=ref_of(env_yaml),
        deployed=True,
        complete=True,
    )
    declared_env = EnvironmentSpec(
        packages=(Package(name="bcftools", source="conda"), ZLIB),
        spec_file=ref_of(bcf_yaml),
        deployed=False,
        details={"not_deployed": "Snakemake ran without --software-deployment-method conda"},
    )
    qc_env = EnvironmentSpec(
        packages=(
            Package(name="fastqc", version="0.12.1", source="tool"),
            Package(name="nextflow", version="24.04.4", source="engine"),
        ),
        container_image=FASTQC_IMAGE,
        container_digest="blake3:" + "c" * 64,
        container_engine="singularity",
        deployed=True,
    )

    def samtools(version: str) -> EnvironmentSpec:
        pkg = SAMTOOLS.model_copy(update={"version": version})
        return EnvironmentSpec(packages=(pkg, HTSLIB), deployed=True, complete=True)

    wf = RunRef(uid=uid("wfrun"))
    rule = {
        n: TransformSpec(name=n, type="rule", source_code=f"shell: '{n}'")
        for n in ("sort", "call", "index")
    }
    events: list = [reads, reads2, env_yaml, bcf_yaml]
    events.append(
        RunStarted(
            uid=wf.uid,
            transform=TransformSpec(name="variants", type="pipeline"),
            engine="snakemake",
            reference="wf-1",
        )
    )

    def job(name, n, env, ins, outs, transform=None):
        run = RunRef(uid=uid(f"{name}{n}run"))
        events.append(
            RunStarted(
                uid=run.uid,
                transform=transform or rule[name],
                engine="snakemake",
                reference=f"wf-1/{name}{n}",
                parent=wf,
                environment=env,
            )
        )
        events.extend(ArtifactUsed(run=run, artifact=ref_of(a)) for a in ins)
        made = [placed(rel, f"{name}{n}:{rel}\n", run) for rel in outs]
        events.extend(made)
        events.append(RunFinished(run=run, status="completed"))
        return run, made

    # sort read the environment file too: it is a file of the graph, and the page links to it
    sort, (bam,) = job("sort", 1, samtools_env, [reads, env_yaml], ["aligned/R1.bam"])
    sort2, _ = job("sort", 2, samtools_env, [reads, reads2], ["aligned/R2.bam"])
    call, (vcf,) = job("call", 1, declared_env, [bam], ["calls/R1.vcf"])
    index, _ = job("index", 1, samtools("1.17"), [bam], ["aligned/R1.bam.bai"])
    index2, _ = job("index", 2, samtools("1.18"), [bam], ["aligned/R1.v2.bam.bai"])
    events.append(RunFinished(run=wf, status="completed"))
    qc = RunRef(uid=uid("qcrun"))
    events += [
        RunStarted(
            uid=qc.uid,
            transform=TransformSpec(name="FASTQC", type="process"),
            engine="nextflow",
            reference="ab/cdef12",
            environment=qc_env,
        ),
        ArtifactUsed(run=qc, artifact=ref_of(bam)),  # FastQC reads BAM too
        placed("qc/R1_fastqc.html", "<html>qc</html>", qc),
        RunFinished(run=qc, status="completed"),
    ]
    instance.store.apply(events)

    get = fp.Artifact.get
    vcf_record = get(key="calls/R1.vcf")
    with fp.Run(transform=fp.Transform(name="report.py", type="script")) as report_run:
        vcf_record.cache()
        report = fp.Artifact(write(root / "report" / "summary.txt", "1 variant\n")).save()
    run = fp.Run.get
    return Story(
        reads=get(key="raw/R1.fastq"),
        env_yaml=get(key="envs/samtools.yaml"),
        bam=get(key="aligned/R1.bam"),
        vcf=vcf_record,
        report=report,
        sort=run(sort.uid),
        sort2=run(sort2.uid),
        call=run(call.uid),
        qc=run(qc.uid),
        index=run(index.uid),
        index2=run(index2.uid),
        report_run=report_run,
        samtools_env=samtools_env,
        declared_env=declared_env,
        qc_env=qc_env,
    )


def env_uid(spec: EnvironmentSpec) -> str:
    return spec.digest()[:16]


def as_tuple(p: Package) -> tuple:
    """A package as the graph keeps it: (name, version, build, source, channel)."""
    return (p.name, p.version, p.build, p.source, p.channel)


def everything(s: Story):
    """Both sort runs, what they read (the environment file too) and all that came of them:
    every run of the story."""
    return s.sort.transform.lineage("both")


# -- the graph ---------------------------------------------------------------------------------
def test_the_graph_keeps_each_environment_once(story):
    s = story
    g = fp.Run.get(s.sort2.uid).lineage("both")  # sort2 alone: its own environment, once
    assert list(g.environments) == [env_uid(s.samtools_env)]

    g = everything(s)
    node = {n.uid: n.id for n in [*g.runs, *g.groups.values()]}
    assert set(node) == {
        r.uid for r in (s.sort, s.sort2, s.call, s.qc, s.index, s.index2, s.report_run)
    } | {uid("wfrun")}
    samtools_env = g.environment_of(node[s.sort.uid])
    assert samtools_env is g.environment_of(node[s.sort2.uid])
    assert samtools_env.uid == env_uid(s.samtools_env) == fp.Run.get(s.sort.uid).environment.uid
    assert samtools_env.packages == [as_tuple(p) for p in (HTSLIB, LIBDEFLATE, SAMTOOLS, ZLIB)]
    assert (samtools_env.container_image, samtools_env.container_digest) == (IMAGE, f"sha256:{SHA}")
    assert samtools_env.deployed is True and samtools_env.complete is True
    # the environment file: a node of this graph (sort read it)
    assert samtools_env.spec_file["node"] == f"a{s.env_yaml.id}" in g.nodes
    assert samtools_env.spec_file["key"] == "envs/samtools.yaml"
    declared = g.environment_of(node[s.call.uid])
    assert declared.deployed is False and declared.complete is False
    assert declared.spec_file == {
        "uid": fp.Artifact.get(key="envs/bcftools.yaml").uid,
        "key": "envs/bcftools.yaml",
        "name": "envs/bcftools.yaml",
        "node": None,  # not a file of this graph
    }
    python = g.environment_of(node[s.report_run.uid])
    assert python.complete and python.deployed is True
    assert python.n_packages == len(python_environment().packages) == len(python.packages)
    assert python.interpreter.startswith("CPython ")
    # runs name their environment; the enclosing workflow run had none recorded
    assert g.nodes[node[s.call.uid]].record["environment"] == declared.uid
    assert "environment" not in g.groups[node[uid("wfrun")]].record
    assert g.environment_of(node[uid("wfrun")]) is None


def test_the_page_holds_each_environment_once(story, fp_env):
    s = story
    html = everything(s).save(fp_env / "lineage.html").read_text()
    data = json.loads(html.split('id="flowprov-data">', 1)[1].split("</script>", 1)[0])
    runs = {rec["uid"]: rec for rec in data["nodes"].values() if rec["kind"] == "run"}
    assert runs[s.sort.uid]["environment"] == runs[s.sort2.uid]["environment"]
    assert set(data["environments"]) == {
        r["environment"] for r in runs.values() if "environment" in r
    }
    # two runs, one environment: a package only it has is in the page once
    assert html.count(LIBDEFLATE.build) == 1
    env = data["environments"][env_uid(s.samtools_env)]
    assert ["samtools", "1.17", "h00cdaf9_0", "conda", "bioconda"] in env["packages"]


# -- the page, in a browser ----------------------------------------------------------------------
def click(browser, node_id: str):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ActionChains(browser).move_to_element(browser.find_element(By.ID, node_id)).click().perform()
    return browser.find_element(By.ID, "record")


def fields(panel, table_id: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    rows = panel.find_elements(By.CSS_SELECTOR, f"#{table_id} tr")
    return {
        r.get_attribute("data-field"): r.find_element(By.CSS_SELECTOR, "td.v").text for r in rows
    }


def visible_packages(browser) -> list[list[str]]:
    """The package rows the filter leaves, as text (in one call: a Python environment has
    hundreds)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#packages tr'))"
        ".filter(function (tr) { return !tr.hidden && tr.offsetParent !== null; })"
        ".map(function (tr) { return Array.from(tr.cells).map(function (td) {"
        " return td.textContent; }); });"
    )


def test_the_panel_shows_a_runs_environment(story, fp_env, browser):
    from selenium.webdriver.common.by import By

    s = story
    page = everything(s).save(fp_env / "lineage.html", title="environments")
    browser.get(page.as_uri())

    panel = click(browser, f"r{s.sort.id}")
    section = panel.find_element(By.ID, "environment")
    assert section.get_attribute("data-environment") == env_uid(s.samtools_env)
    shown = fields(panel, "environment-fields")
    assert shown["container"] == f"{IMAGE}\n@ sha256:{SHA}\n(docker)"
    assert shown["deployed"].startswith("yes") and shown["OS"] == "linux-64"
    assert shown["packages"].startswith("4, complete")
    assert "environment" not in fields(panel, "record-fields")  # its own section instead
    assert visible_packages(browser) == [
        ["htslib", "1.17", "h81da01d_2", "conda"],
        ["libdeflate", "1.18", "h0b41bf4_0", "conda"],
        ["samtools", "1.17", "h00cdaf9_0", "conda"],
        ["zlib", "1.2.13", "hd590300_5", "conda"],
    ]
    # the package list filters as one types
    panel.find_element(By.ID, "packages-filter").send_keys("zlib")
    assert visible_packages(browser) == [["zlib", "1.2.13", "hd590300_5", "conda"]]
    # the environment file is a node of the graph: its name links to it
    link = panel.find_element(By.CSS_SELECTOR, "#environment-fields a.node-link")
    assert link.text == "envs/samtools.yaml"
    link.click()
    assert panel.get_attribute("data-shown") == f"a{s.env_yaml.id}"
    assert s.env_yaml.uid in panel.text

    # declared, not deployed; its environment file is not in the graph: its key, no link
    panel = click(browser, f"r{s.call.id}")
    shown = fields(panel, "environment-fields")
    assert shown["deployed"].startswith("no: declared, but not deployed")
    assert shown["packages"].startswith("2, partial")
    assert shown["spec file"] == "envs/bcftools.yaml"
    assert not panel.find_elements(By.CSS_SELECTOR, "#environment a.node-link")
    assert "software-deployment-method" in shown["details"]

    # the Python API's run: the interpreter's complete environment, scrollable
    panel = click(browser, f"r{s.report_run.id}")
    shown = fields(panel, "environment-fields")
    n = len(python_environment().packages)
    assert shown["interpreter"].startswith("CPython") and shown["packages"].startswith(f"{n}, ")
    assert len(visible_packages(browser)) == n > 20
    box = panel.find_element(By.ID, "packages")
    assert box.size["height"] <= 290 and box.get_property("scrollHeight") > box.size["height"]
    assert ["pytest", fp_version("pytest")] in [row[:2] for row in visible_packages(browser)]

    # the find box searches the runs' packages too
    browser.find_element(By.ID, "find").send_keys("bcftools")
    matches = {g.get_attribute("id") for g in browser.find_elements(By.CSS_SELECTOR, "g.match")}
    assert f"r{s.call.id}" in matches and f"r{s.sort.id}" not in matches


def fp_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


@pytest.fixture
def hostile(instance):
    """A run whose environment's every string is hostile; it made hostile.txt."""
    root = Path(instance.storage.root)
    run = RunRef(uid=uid("hostilerun"))
    env = EnvironmentSpec(
        interpreter=HOSTILE_INTERPRETER,
        os=HOSTILE_NAME,
        packages=(
            Package(
                name=HOSTILE_NAME,
                version=HOSTILE_VERSION,
                build=HOSTILE_IMAGE,
                source="pip",
                channel=HOSTILE_CHANNEL,
            ),
            Package(name="../../etc/passwd", version="1.0 OR 1=1", source="conda"),
        ),
        container_image=HOSTILE_IMAGE,
        container_digest=HOSTILE_VERSION,
        container_engine=HOSTILE_INTERPRETER[:32],
        deployed=True,
        details={"note": HOSTILE_IMAGE},
    )
    made = in_place_event(
        str(write(root / "hostile.txt", "x")), roots=instance.storages().values(), run=run
    )
    instance.store.apply(
        [
            RunStarted(
                uid=run.uid,
                transform=TransformSpec(name=HOSTILE_NAME, type="script"),
                environment=env,
            ),
            made,
            RunFinished(run=run, status="completed"),
        ]
    )
    return fp.Run.get(run.uid), fp.Artifact.get(key="hostile.txt")


def test_hostile_environment_strings_stay_text_on_the_page(hostile, fp_env, browser):
    from selenium.webdriver.common.by import By

    run, made = hostile
    html = made.lineage().to_html()
    assert "<script>window" not in html and "<!--" not in html.split('id="flowprov-data"')[1]
    page = fp_env / "hostile.html"
    page.write_text(html)
    browser.get(page.as_uri())
    panel = click(browser, f"r{run.id}")
    shown = fields(panel, "environment-fields")
    assert shown["interpreter"] == HOSTILE_INTERPRETER and shown["OS"] == HOSTILE_NAME
    assert shown["container"].startswith(HOSTILE_IMAGE)
    packages = visible_packages(browser)
    assert [HOSTILE_NAME, HOSTILE_VERSION, HOSTILE_IMAGE, "pip"] in packages
    title = panel.find_element(By.CSS_SELECTOR, "#packages td.source[title]")
    assert title.get_attribute("title") == HOSTILE_CHANNEL
    browser.find_element(By.ID, "packages-filter").send_keys("<script>")
    assert visible_packages(browser) == [[HOSTILE_NAME, HOSTILE_VERSION, HOSTILE_IMAGE, "pip"]]
    assert browser.execute_script("return window.__pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#record img, #record script")


def test_hostile_environment_strings_in_the_exports(hostile, tmp_path):
    run, made = hostile
    doc = ProvDocument.deserialize(export(made, tmp_path / "h.json", "prov-json"), format="json")
    names = {
        next(iter(e.get_attribute("fp:name")))
        for e in doc.get_records(ProvEntity)
        if str(e.identifier).startswith("fp:package/")
    }
    assert names == {HOSTILE_NAME, "../../etc/passwd"}
    ids = {str(e.identifier) for e in doc.get_records(ProvEntity)}
    assert all("<" not in i and ".." not in i for i in ids)
    text = export(made, tmp_path / "h.provn", "prov-n").read_text()
    assert text == doc.get_provn() + "\n"

    crate = ROCrate(export(made, tmp_path / "crate", "ro-crate"))
    (action,) = [a for a in crate.get_by_type("CreateAction") if a.get("identifier") == run.uid]
    software = {e["name"]: e for e in action["instrument"]["softwareRequirements"]}
    assert software[HOSTILE_NAME]["softwareVersion"] == HOSTILE_VERSION
    assert software[HOSTILE_NAME].id.startswith("#software/pip/%3Cscript%3E")
    assert "url" not in software[HOSTILE_NAME]  # came from a "channel", not from PyPI
    image = action["containerImage"]
    assert image["alternateName"] == HOSTILE_IMAGE and "sha256" not in image.properties()


# -- W3C PROV ----------------------------------------------------------------------------------
def one(record, attribute):
    values = record.get_attribute(attribute)
    assert len(values) == 1, (attribute, values)
    return next(iter(values))


def test_prov_carries_the_environments(story, tmp_path):
    s = story
    path = export(s.sort.transform, tmp_path / "lineage.json", "prov-json", direction="both")
    doc = ProvDocument.deserialize(path, format="json")
    activities = {str(a.identifier): a for a in doc.get_records(ProvActivity)}
    entities = {str(e.identifier): e for e in doc.get_records(ProvEntity)}

    sort = activities[f"fp:run/{s.sort.uid}"]
    samtools = env_uid(s.samtools_env)
    assert one(sort, "fp:environment") == samtools
    assert one(sort, "fp:container_image") == IMAGE
    assert one(sort, "fp:container_digest") == f"sha256:{SHA}"
    assert one(sort, "fp:container_engine") == "docker"
    assert one(sort, "fp:deployed") is True and one(sort, "fp:complete") is True
    call = activities[f"fp:run/{s.call.uid}"]
    assert one(call, "fp:deployed") is False and one(call, "fp:complete") is False
    report = activities[f"fp:run/{s.report_run.uid}"]
    assert one(report, "fp:interpreter") == python_environment().interpreter

    env = entities[environment_id(samtools)]
    types = {str(t) for t in env.get_attribute("prov:type")}
    assert types == {"prov:Collection", "fp:Environment"}
    assert one(env, "fp:n_packages") == 4 and one(env, "fp:spec_file") == "envs/samtools.yaml"
    members = {}
    for m in doc.get_records(ProvMembership):
        members.setdefault(str(m.args[0]), set()).add(str(m.args[1]))
    assert members[environment_id(samtools)] == {package_id(as_tuple(p)) for p in SAMTOOLS_ENV}
    # a package with a channel is named by a digest (channels are URLs as often as names)
    assert re.fullmatch(r"fp:package/[0-9a-f]{32}", package_id(as_tuple(SAMTOOLS)))
    pkg = entities[package_id(as_tuple(SAMTOOLS))]
    assert {k: one(pkg, f"fp:{k}") for k in ("name", "version", "build", "source", "channel")} == (
        SAMTOOLS.model_dump()
    )
    assert one(pkg, "prov:label") == "samtools 1.17"
    # zlib is in two environments and one entity
    zlib = package_id(as_tuple(ZLIB))
    declared = environment_id(env_uid(s.declared_env))
    assert zlib in members[environment_id(samtools)] and zlib in members[declared]
    assert sum(1 for k in entities if k == zlib) == 1
    # a plain pip package has a readable identifier
    pytest_pkg = next(p for p in python_environment().packages if p.name == "pytest")
    assert pytest_pkg.channel is None  # installed from an index
    assert f"fp:package/pip/pytest/{pytest_pkg.version}" in entities

    # used when deployed; only an influence when declared and not deployed
    used = {(str(u.args[0]), str(u.args[1])) for u in doc.get_records(ProvUsage)}
    influenced = {(str(i.args[0]), str(i.args[1])) for i in doc.get_records(ProvInfluence)}
    assert (f"fp:run/{s.sort.uid}", environment_id(samtools)) in used
    assert (f"fp:run/{s.sort2.uid}", environment_id(samtools)) in used
    assert (f"fp:run/{s.call.uid}", declared) in influenced
    assert not {(r, e) for r, e in used if e == declared}
    derived = {(str(d.args[0]), str(d.args[1])) for d in doc.get_records(ProvDerivation)}
    assert (environment_id(samtools), f"fp:artifact/{s.env_yaml.uid}") in derived

    # PROV-N is the same document (prov reads no PROV-N: compare with the JSON's)
    text = export(
        s.sort.transform, tmp_path / "lineage.provn", "prov-n", direction="both"
    ).read_text()
    assert text == doc.get_provn() + "\n"
    assert f'fp:container_image="{IMAGE}"' in text
    assert f"used(fp:run/{s.sort.uid}, {environment_id(samtools)}, -)" in text


# -- RO-Crate ----------------------------------------------------------------------------------
def undefined_terms(metadata: dict) -> set[str]:
    """Property names and types of a crate that its @context does not define, checked offline
    against the RO-Crate 1.1 context the rocrate library ships, the workflow-run terms, and the
    crate's own term definitions."""
    from rocrate.vocabs import RO_CRATE

    context = metadata["@context"]
    assert context[:2] == [
        "https://w3id.org/ro/crate/1.1/context",
        "https://w3id.org/ro/terms/workflow-run/context",
    ]
    known = set(RO_CRATE["@context"]) | WFRUN_TERMS
    for extra in context[2:]:
        known |= set(extra)
    used = set()
    for entity in metadata["@graph"]:
        for k, v in entity.items():
            if k == "@type":
                used |= set(v if isinstance(v, list) else [v])
            elif not k.startswith("@"):
                used.add(k)
    return {t for t in used if t not in known and ":" not in t}


def test_ro_crate_describes_software_and_containers(story, tmp_path):
    s = story
    graph = everything(s)
    path = export(s.sort.transform, tmp_path / "crate", "ro-crate", direction="both")
    crate = ROCrate(path)
    check_crate(crate, path, graph)  # still a Provenance Run Crate of the same lineage
    metadata = json.loads((path / "ro-crate-metadata.json").read_text())
    assert undefined_terms(metadata) == set()
    actions = {a["identifier"]: a for a in crate.get_by_type("CreateAction") if "identifier" in a}

    # sort: conda packages from bioconda, in a Docker image with a sha256 digest
    sort = actions[s.sort.uid]
    tool = sort["instrument"]
    assert tool is actions[s.sort2.uid]["instrument"]  # one environment: one tool
    software = {e["name"]: e for e in tool["softwareRequirements"]}
    assert set(software) == {p.name for p in SAMTOOLS_ENV}
    samtools = software["samtools"]
    assert "SoftwareApplication" in samtools.type and samtools["softwareVersion"] == "1.17"
    assert samtools.id == "#software/conda/samtools/1.17/h00cdaf9_0/bioconda"
    assert samtools.id == software_id(as_tuple(SAMTOOLS))
    assert samtools["url"] == "https://anaconda.org/bioconda/samtools"
    assert software["zlib"]["url"] == "https://anaconda.org/conda-forge/zlib"
    image = sort["containerImage"]
    assert image.type == "ContainerImage"
    assert image["additionalType"] == f"{WFRUN}DockerImage"
    assert (image["registry"], image["name"], image["tag"], image["sha256"]) == (
        "quay.io",
        "biocontainers/samtools",
        "1.17--h00cdaf9_0",
        SHA,
    )
    assert actions[s.sort2.uid]["containerImage"] is image  # one entity for both runs
    assert f"software environment {env_uid(s.samtools_env)}" in sort["description"]
    # the step's build instructions: the environment file, a file of this crate
    (step,) = [st for st in crate.mainEntity["step"] if st["workExample"] is tool]
    assert step["buildInstructions"]["identifier"] == s.env_yaml.uid
    assert {"buildInstructions": "https://codemeta.github.io/terms/buildInstructions"} in (
        metadata["@context"]
    )

    # declared, not deployed: the requirements, no container, said so
    call = actions[s.call.uid]
    assert "containerImage" not in call.properties()
    assert "declared, not deployed" in call["description"]
    assert {e["name"] for e in call["instrument"]["softwareRequirements"]} == {"bcftools", "zlib"}
    zlib = [e for e in call["instrument"]["softwareRequirements"] if e["name"] == "zlib"][0]
    assert zlib is software["zlib"]  # one entity for the package of both environments

    # tool versions in a Singularity image whose file has a blake3 digest: no sha256
    qc = actions[s.qc.uid]
    image = qc["containerImage"]
    assert image["additionalType"] == f"{WFRUN}SIFImage"
    assert (image["registry"], image["name"], image["tag"]) == (
        "quay.io",
        "biocontainers/fastqc",
        "0.12.1--hdfd78af_0",
    )
    assert "sha256" not in image.properties() and image["identifier"] == "blake3:" + "c" * 64
    versions = {e["name"]: e["softwareVersion"] for e in qc["instrument"]["softwareRequirements"]}
    assert versions == {"fastqc": "0.12.1", "nextflow": "24.04.4"}

    # the Python API's run: every installed distribution, PyPI's page for those from an index
    report = actions[s.report_run.uid]
    software = {e["name"]: e for e in report["instrument"]["softwareRequirements"]}
    python = python_environment()
    assert len(software) == len({p.name for p in python.packages}) + 1  # and the interpreter
    name, version = python.interpreter.split(" ")
    assert software[name]["softwareVersion"] == version
    assert software["pytest"]["softwareVersion"] == fp_version("pytest")
    assert software["pytest"]["url"] == "https://pypi.org/project/pytest/"
    editable = [p for p in python.packages if p.channel and p.channel.startswith("editable")]
    for p in editable:  # the version alone does not say which code: no PyPI page claimed
        assert "url" not in software[p.name]


def test_runs_of_one_rule_in_two_environments_get_a_tool_each(story, tmp_path):
    s = story
    path = export(s.bam, tmp_path / "crate.zip", "ro-crate", direction="downstream")
    crate = ROCrate(path)
    check_crate(crate, Path(crate.source), s.bam.lineage("downstream"))
    actions = {a["identifier"]: a for a in crate.get_by_type("CreateAction") if "identifier" in a}
    one_, two = actions[s.index.uid]["instrument"], actions[s.index2.uid]["instrument"]
    assert one_ is not two and one_["name"] == two["name"] == "index"
    transform = s.index.transform.uid
    assert {one_.id, two.id} == {
        f"#transform-{transform}/environment-{fp.Run.get(r.uid).environment.uid}"
        for r in (s.index, s.index2)
    }
    version = {
        t.id: {e["name"]: e["softwareVersion"] for e in t["softwareRequirements"]}["samtools"]
        for t in (one_, two)
    }
    assert sorted(version.values()) == ["1.17", "1.18"]
    steps = {st["workExample"].id: st for st in crate.mainEntity["step"]}
    assert steps[one_.id]["name"] == f"index in software environment {one_.id.rsplit('-', 1)[1]}"
    assert steps[two.id] is not steps[one_.id]
    # the other readers of the bam: one step each (one environment each)
    names = [st["workExample"]["name"] for st in steps.values()]
    assert sorted(names) == ["FASTQC", "call", "index", "index", "report.py"]


@pytest.mark.parametrize(
    "image, engine, expected",
    [
        (
            "ubuntu:22.04",
            None,
            {
                "type": "DockerImage",
                "registry": "docker.io",
                "name": "library/ubuntu",
                "tag": "22.04",
            },
        ),
        (
            "localhost:5000/lab/aligner:2.1@sha256:" + "ab" * 32,
            "podman",
            {
                "type": "DockerImage",
                "registry": "localhost:5000",
                "name": "lab/aligner",
                "tag": "2.1",
                "sha256": "ab" * 32,
            },
        ),
        (
            "docker://biocontainers/bwa:v0.7.17_cv1",
            "apptainer",  # converted to a SIF file, which is what ran
            {
                "type": "SIFImage",
                "registry": "docker.io",
                "name": "biocontainers/bwa",
                "tag": "v0.7.17_cv1",
            },
        ),
        (
            "library://sylabsed/examples/lolcow:latest",
            None,
            {
                "type": "SIFImage",
                "registry": "cloud.sylabs.io",
                "name": "sylabsed/examples/lolcow",
                "tag": "latest",
            },
        ),
        ("/images/tools.sif", "singularity", {"type": "SIFImage", "name": "/images/tools.sif"}),
    ],
)
def test_container_references_read_as_the_workflow_run_crate_has_them(image, engine, expected):
    from flowprov.exports.rocrate import container_props

    env = EnvironmentSpec(container_image=image, container_engine=engine)
    props = {k: v for k, v in container_props(env).items() if v is not None}
    assert props.pop("additionalType") == {"@id": WFRUN + expected.pop("type")}
    assert props.pop("alternateName") == image
    props.pop("description", None)
    assert props == expected
