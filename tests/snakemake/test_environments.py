"""The software each Snakemake job ran with (issue 14), on real workflows: declared but not
deployed, deployed by Snakemake (`--sdm conda`, `--sdm apptainer`), modules, wrappers, the
workflow run's own interpreter; one environment record for many jobs; a failure costs the
environment, never the run.

conda and apptainer cannot be installed here: `standins/` answers the calls Snakemake makes to
them (see its README), and the environments are laid out as conda writes them, at the prefix
Snakemake itself computes, so Snakemake really activates them for each job.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import flowprov as fp
from flowprov.hashing import hash_file

STANDINS = Path(__file__).parent / "standins" / "bin"
PINNED = "docker://quay.io/biocontainers/samtools@sha256:" + "0123456789abcdef" * 4

SAMTOOLS_117 = """
channels: [conda-forge, bioconda]
dependencies:
  - samtools=1.17
"""
SAMTOOLS_116 = """
channels: [conda-forge, bioconda]
dependencies:
  - samtools=1.16.1
"""


def with_standins() -> dict:
    return {"PATH": f"{STANDINS}{os.pathsep}{os.environ['PATH']}"}


def conda_record(name, version, build, channel="bioconda") -> dict:
    """A conda-meta record with the fields conda writes (abridged lists)."""
    return {
        "name": name,
        "version": version,
        "build": build,
        "build_number": int(build.rsplit("_", 1)[-1]),
        "channel": f"https://conda.anaconda.org/{channel}/linux-64",
        "subdir": "linux-64",
        "fn": f"{name}-{version}-{build}.conda",
        "url": f"https://conda.anaconda.org/{channel}/linux-64/{name}-{version}-{build}.conda",
        "md5": hashlib.md5(f"{name}{version}".encode()).hexdigest(),
        "depends": [],
        "files": [f"bin/{name}"],
        "paths_data": {"paths": [], "paths_version": 1},
        "requested_spec": f"{channel}::{name}={version}",
        "license": "MIT",
    }


def lay_out_prefix(prefix: Path, packages: list[tuple[str, str, str]], tool: str, says: str):
    """A conda environment as conda leaves it: conda-meta records, a tool in bin/ (printing
    `says`), and, for one Snakemake created, the flag Snakemake writes when it is set up."""
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "bin").mkdir()
    for name, version, build in packages:
        rec = conda_record(name, version, build)
        (prefix / "conda-meta" / f"{name}-{version}-{build}.json").write_text(json.dumps(rec))
    (prefix / "conda-meta" / "history").write_text("==> 2026-01-01 00:00:00 <==\n")
    exe = prefix / "bin" / tool
    exe.write_text(f"#!/bin/sh\necho '{says}'\n")
    exe.chmod(0o755)


def snakemake_prefix(workdir: Path, env_file: Path) -> Path:
    """Where Snakemake 9 puts a file-based conda env: `.snakemake/conda/<md5>`, the md5 over the
    absolute env folder and the file's bytes (deployment/conda.py, Env._get_hash); plus its
    `.env_setup_done` flag, without which Snakemake deletes the folder as incomplete."""
    envs = os.path.realpath(workdir / ".snakemake" / "conda")
    digest = hashlib.md5(envs.encode() + env_file.read_bytes()).hexdigest()
    prefix = workdir / ".snakemake" / "conda" / digest
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".env_setup_done").touch()
    return prefix


def jobs_of(rule: str) -> list:
    return list(fp.Run.filter(transform__name=rule).order_by("id"))


def the_environment(runs) -> fp.Environment:
    envs = {r.environment.id for r in runs if r.environment is not None}
    assert len(envs) == 1 and all(r.environment is not None for r in runs), envs
    return runs[0].environment


def packages(env) -> set[tuple]:
    return {(p.name, p.version, p.build, p.source, p.channel) for p in env.packages}


def engine_package(env):
    (pkg,) = [p for p in env.packages if p.source == "engine"]
    assert pkg.name == "snakemake" and pkg.version.startswith("9.")
    return pkg


# -- declared, not deployed ----------------------------------------------------------------------
DECLARED = f"""
container: "docker://debian:12-slim"
conda: "envs/global.yaml"

rule all:
    input: expand("out/{{s}}.sam.txt", s=["a", "b"]), "out/plain.txt"

rule sam:
    output: "out/{{s}}.sam.txt"
    conda: "envs/samtools.yaml"
    container: "{PINNED}"
    shell: "echo {{wildcards.s}} > {{output}}"

rule plain:
    output: "out/plain.txt"
    shell: "echo plain > {{output}}"
"""


def test_declared_conda_and_container_are_recorded_as_not_deployed(workflow):
    workflow.write("Snakefile", DECLARED)
    env_file = workflow.write("envs/samtools.yaml", SAMTOOLS_117)
    global_file = workflow.write("envs/global.yaml", "dependencies:\n  - python=3.11\n")
    workflow.run()

    sam = jobs_of("sam")
    assert len(sam) == 2 and {j.status for j in sam} == {"completed"}
    env = the_environment(sam)  # both jobs, one record
    assert env.deployed is False and env.complete is False
    assert env.container_image == PINNED
    assert env.container_digest == "sha256:" + "0123456789abcdef" * 4  # pinned by the reference
    assert env.container_engine is None  # no engine ran it
    # the env file, registered where it is, by its content
    assert env.spec_file.key == "envs/samtools.yaml"
    assert env.spec_file.hash == hash_file(env_file).hash and env.spec_file.run is None
    # what was declared is not what ran: no samtools 1.17 is claimed
    assert [p.source for p in env.packages] == ["engine"] and engine_package(env)
    assert not fp.Run.filter(environment__packages__name="samtools").exists()
    assert env.details["deployed"] == {"conda": False, "container": False}
    assert "not deployed" in env.details["not_deployed"]
    assert "--software-deployment-method conda apptainer" in env.details["not_deployed"]
    assert all(j.runtime is None for j in sam)  # no prefix, no image file: nothing deployed

    # the workflow-level container, copied by Snakemake into the rule without its own
    (plain,) = jobs_of("plain")
    penv = plain.environment
    assert penv.container_image == "docker://debian:12-slim" and penv.container_digest is None
    assert penv.deployed is False and penv.spec_file is None
    assert penv.os  # the host's OS ran it

    # the workflow run: Snakemake's own interpreter, every installed distribution; the
    # workflow-level conda file (not deployed) with it
    wf_run = sam[0].parent
    wenv = wf_run.environment
    assert (
        wenv.deployed is True and wenv.complete is True and wenv.interpreter.startswith("CPython")
    )
    names = {p.name.lower() for p in wenv.packages if p.source == "pip"}
    assert {"snakemake", "flowprov"} <= names
    assert wenv.spec_file.key == "envs/global.yaml"
    assert wenv.spec_file.hash == hash_file(global_file).hash
    assert wenv.details["workflow_conda"]["deployed"] is False
    assert wenv.details["workflow_conda"]["file"] == "envs/global.yaml"
    assert fp.Environment.filter().count() == 3  # the rule's, plain's, the workflow run's


# -- deployed by Snakemake: --sdm conda --------------------------------------------------------
DEPLOYED = """
rule all:
    input:
        expand("out/{s}.v17.txt", s=["a", "b", "c"]),
        "out/x.v16.txt",
        "out/x.bcf.txt",
        "out/x.bwa.txt",

rule view17:
    output: "out/{s}.v17.txt"
    conda: "envs/samtools-1.17.yaml"
    shell: "samtools --version > {output}"

rule view16:
    output: "out/{s}.v16.txt"
    conda: "envs/samtools-1.16.yaml"
    shell: "samtools --version > {output}"

rule call:
    output: "out/{s}.bcf.txt"
    conda: config["bcftools_prefix"]
    shell: "bcftools --version > {output}"

rule align:
    output: "out/{s}.bwa.txt"
    conda: "bwa-tools"
    shell: "bwa > {output}"
"""


def test_conda_envs_snakemake_deployed_record_their_resolved_packages(workflow, fp_env):
    workflow.write("Snakefile", DEPLOYED)
    f17 = workflow.write("envs/samtools-1.17.yaml", SAMTOOLS_117)
    f16 = workflow.write("envs/samtools-1.16.yaml", SAMTOOLS_116)
    p17 = snakemake_prefix(workflow.root, f17)
    p16 = snakemake_prefix(workflow.root, f16)
    lay_out_prefix(
        p17,
        [("samtools", "1.17", "h00cdaf9_0"), ("htslib", "1.17", "h81da01d_2")],
        "samtools",
        "samtools 1.17",
    )
    lay_out_prefix(
        p16,
        [("samtools", "1.16.1", "h6899075_1"), ("htslib", "1.16", "h6bc39ce_0")],
        "samtools",
        "samtools 1.16.1",
    )
    # an environment someone made, named by its prefix (Snakemake does not manage it)
    bcf = fp_env / "envs" / "bcftools"
    lay_out_prefix(bcf, [("bcftools", "1.17", "haef29d1_0")], "bcftools", "bcftools 1.17")

    # and one known by its name (conda lists it in `conda info`)
    named = fp_env / "conda-envs" / "bwa-tools"
    lay_out_prefix(named, [("bwa", "0.7.18", "he4a0461_1")], "bwa", "bwa 0.7.18")

    workflow.run(
        "--sdm",
        "conda",
        "--config",
        f"bcftools_prefix={bcf}",
        env={**with_standins(), "STANDIN_CONDA_ENVS": str(named)},
    )
    # Snakemake activated each prefix: its job ran the tool installed there
    assert (workflow.root / "out/a.v17.txt").read_text() == "samtools 1.17\n"
    assert (workflow.root / "out/x.v16.txt").read_text() == "samtools 1.16.1\n"
    assert (workflow.root / "out/x.bcf.txt").read_text() == "bcftools 1.17\n"
    assert (workflow.root / "out/x.bwa.txt").read_text() == "bwa 0.7.18\n"

    v17 = jobs_of("view17")
    env = the_environment(v17)
    assert env.deployed is True and env.complete is True and env.os
    assert packages(env) >= {
        ("samtools", "1.17", "h00cdaf9_0", "conda", "bioconda"),
        ("htslib", "1.17", "h81da01d_2", "conda", "bioconda"),
    }
    assert len(packages(env)) == 3 and engine_package(env)
    assert env.spec_file.key == "envs/samtools-1.17.yaml"
    assert env.spec_file.hash == hash_file(f17).hash
    # where it lies is how the job ran (runtime), not what software it is
    assert {j.runtime["conda_prefix"] for j in v17} == {str(p17)}

    # the question after a bug report: exactly the jobs that ran samtools 1.17
    found = fp.Run.filter(
        environment__packages__name="samtools", environment__packages__version="1.17"
    )
    assert sorted(r.uid for r in found) == sorted(j.uid for j in v17) and len(v17) == 3
    (v16,) = jobs_of("view16")
    assert ("samtools", "1.16.1", "h6899075_1", "conda", "bioconda") in packages(v16.environment)
    assert v16.environment.spec_file.hash == hash_file(f16).hash

    (call,) = jobs_of("call")
    cenv = call.environment
    assert cenv.deployed is True and cenv.complete is True and cenv.spec_file is None
    assert ("bcftools", "1.17", "haef29d1_0", "conda", "bioconda") in packages(cenv)
    assert call.runtime["conda_prefix"] == str(bcf)
    # the software, not the folder, identifies an environment: the prefix is not in it
    assert str(bcf) not in json.dumps(cenv.details)
    assert (
        fp.Artifact.filter(run__environment__packages__name="bcftools").one().key == "out/x.bcf.txt"
    )
    (align,) = jobs_of("align")
    aenv = align.environment
    assert aenv.deployed is True and aenv.complete is True
    assert aenv.details["conda_env_name"] == "bwa-tools"
    assert ("bwa", "0.7.18", "he4a0461_1", "conda", "bioconda") in packages(aenv)
    assert align.runtime["conda_prefix"] == str(named)


ONE_ENV = """
rule view17:
    output: "out/a.v17.txt"
    conda: "envs/samtools-1.17.yaml"
    shell: "samtools --version > {output}"
"""


def test_the_same_software_in_another_work_folder_is_the_same_environment(undeclared_workflow):
    """Snakemake's prefix name hashes the work folder's path; the environment record must not."""
    envs = []
    for name in ("one", "two"):
        wf = undeclared_workflow(name)
        wf.write("Snakefile", ONE_ENV)
        f17 = wf.write("envs/samtools-1.17.yaml", SAMTOOLS_117)
        lay_out_prefix(
            snakemake_prefix(wf.root, f17), [("samtools", "1.17", "h00cdaf9_0")], "samtools", "1"
        )
        wf.run("--sdm", "conda", env=with_standins())
        envs.append(jobs_of("view17")[-1])
    one, two = envs
    assert one.runtime["conda_prefix"] != two.runtime["conda_prefix"]
    # the env files are two artifacts (two places) with one content: one environment
    assert one.environment.id == two.environment.id
    assert fp.Run.filter(environment__packages__name="samtools").count() == 2


# -- deployed by Snakemake: --sdm apptainer ----------------------------------------------------
IMAGE = "docker://quay.io/biocontainers/samtools:1.17--h00cdaf9_0"
CONTAINER = f"""
rule all:
    input: "out/c.txt", "out/p.txt"

rule c:
    output: "out/c.txt"
    container: "{IMAGE}"
    shell: "echo ran > {{output}}"

rule p:
    output: "out/p.txt"
    container: "{PINNED}"
    shell: "echo ran > {{output}}"
"""


def test_container_snakemake_ran_is_identified_by_its_image_file(workflow):
    workflow.write("Snakefile", CONTAINER)
    # the image files Snakemake pulled before: `.snakemake/singularity/<md5 of the URL>.simg`
    images = workflow.root / ".snakemake" / "singularity"
    images.mkdir(parents=True)
    files = {}
    for url in (IMAGE, PINNED):
        f = images / f"{hashlib.md5(url.encode()).hexdigest()}.simg"
        f.write_bytes(b"SIF\0" + url.encode() * 4096)  # > 1 MiB: hashed through the cache
        files[url] = f
    workflow.run("--sdm", "apptainer", env=with_standins())

    (c,) = jobs_of("c")
    env = c.environment
    assert env.deployed is True and env.complete is False and env.os is None
    assert env.container_image == IMAGE and env.container_engine == "apptainer"
    assert env.container_digest == "blake3:" + hash_file(files[IMAGE]).hash
    assert c.runtime == {"container_image_path": str(files[IMAGE])}
    assert fp.Run.filter(environment__container_digest=env.container_digest).one() == c
    (p,) = jobs_of("p")
    # a digest in the reference says which image; the file is not hashed for it
    assert p.environment.container_digest == "sha256:" + "0123456789abcdef" * 4


# -- envmodules, wrappers ------------------------------------------------------------------------
WRAPPED = """
rule all:
    input: "out/sorted.txt", "out/mod.txt"

rule sort:
    input: "data/in.txt"
    output: "out/sorted.txt"
    wrapper: "v3.3.0/bio/samtools/sort"

rule mod:
    output: "out/mod.txt"
    envmodules: "samtools/1.17", "bio/bwa"
    shell: "echo m > {output}"
"""
WRAPPER_PY = """
from snakemake.shell import shell
shell("sort {snakemake.input[0]} > {snakemake.output[0]}")
"""


def test_envmodules_and_wrapper_declared(workflow, fp_env):
    workflow.write("Snakefile", WRAPPED)
    workflow.write("data/in.txt", "b\na\n")
    # a copy of the wrappers repository, laid out as it is (<tag>/<path>/wrapper.py)
    repo = fp_env / "wrappers"
    wrapper = repo / "v3.3.0" / "bio" / "samtools" / "sort"
    wrapper.mkdir(parents=True)
    (wrapper / "wrapper.py").write_text(WRAPPER_PY)
    wenv_file = wrapper / "environment.yaml"
    wenv_file.write_text("channels: [conda-forge, bioconda]\ndependencies:\n  - samtools=1.17\n")
    workflow.run("--wrapper-prefix", f"file://{repo}/")
    assert (workflow.root / "out/sorted.txt").read_text() == "a\nb\n"

    (sort,) = jobs_of("sort")
    env = sort.environment
    (w,) = [p for p in env.packages if p.source == "wrapper"]
    assert (w.name, w.version) == ("bio/samtools/sort", "v3.3.0")
    assert env.details["wrapper"] == "v3.3.0/bio/samtools/sort"
    # the wrapper's environment.yaml, reachable here: registered where it is
    assert env.spec_file.hash == hash_file(wenv_file).hash
    assert env.spec_file.key == str(wenv_file).lstrip("/")
    assert env.deployed is False and env.details["deployed"] == {"conda": False}

    (mod,) = jobs_of("mod")
    menv = mod.environment
    assert menv.details["envmodules"] == ["samtools/1.17", "bio/bwa"]
    assert menv.deployed is False and "env-modules" in menv.details["not_deployed"]
    # modules that were not loaded are not software the job ran
    assert [p.source for p in menv.packages] == ["engine"]
    assert not fp.Run.filter(environment__packages__source="module").exists()


def test_module_packages_name_and_version():
    from snakemake_logger_plugin_flowprov.software import module_package, wrapper_package

    assert (module_package("samtools/1.17").name, module_package("samtools/1.17").version) == (
        "samtools",
        "1.17",
    )
    assert module_package("bio/samtools/1.17").name == "bio/samtools"
    # no version part: the default module, whose version is not known
    assert module_package("bio/bwa").version is None and module_package("bio/bwa").name == "bio/bwa"
    assert module_package("gcc").version is None
    assert wrapper_package("v3.3.0/bio/bwa/mem").version == "v3.3.0"
    url = "https://example.org/wrappers/bio/bwa/mem"
    assert wrapper_package(url).name == url and wrapper_package(url).version is None


# -- many jobs, nothing declared -------------------------------------------------------------------
MANY = """
rule all:
    input: expand("out/{i}.txt", i=range(500))

rule work:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"
"""


def test_500_jobs_of_one_rule_share_one_environment(workflow):
    workflow.write("Snakefile", MANY)
    workflow.run("--cores", "2", "-q")
    work = jobs_of("work")
    assert len(work) == 500
    env = the_environment(work)
    assert env.runs.count() == 500
    # nothing declared: a small, honest record — the host's tools ran, not known
    assert env.deployed is None and env.complete is False and env.os
    assert [(p.name, p.source) for p in env.packages] == [("snakemake", "engine")]
    assert "host's tools ran" in env.details["software"]
    assert env.container_image is None and env.spec_file is None
    # the target rule runs nothing: no environment
    assert jobs_of("all")[0].environment is None
    assert fp.Environment.filter().count() == 2  # this rule's and the workflow run's


# -- failures ------------------------------------------------------------------------------------
def test_a_failure_reading_environments_costs_them_not_the_runs(workflow, shim):
    workflow.write("Snakefile", DECLARED)
    workflow.write("envs/samtools.yaml", SAMTOOLS_117)
    workflow.write("envs/global.yaml", "dependencies: []\n")
    env = shim(
        """
        import snakemake_logger_plugin_flowprov.software as sw

        def broken(self, *a, **kw):
            raise RuntimeError("environment unreadable")

        sw.Software._build = broken
        sw.Software._workflow_environment = broken
        """
    )
    proc = workflow.run(env=env)
    assert proc.stderr.count("environment unreadable") == 1  # warned once
    jobs = jobs_of("sam") + jobs_of("plain")
    assert len(jobs) == 3 and {j.status for j in jobs} == {"completed"}
    assert all(j.environment is None for j in jobs) and jobs[0].parent.environment is None
    assert {a.key for a in fp.Artifact.filter(run__transform__name="sam")} == {
        "out/a.sam.txt",
        "out/b.sam.txt",
    }
    assert not fp.Environment.filter().exists()
