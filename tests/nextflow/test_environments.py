"""Issue 14 (Nextflow): the software each task ran — its container, its conda/spack environment,
the tool versions nf-core's versions.yml reports — recorded as shared environment records.

The files are real (tests/nextflow/fixtures/software/README.md): a `.command.run` Nextflow
25.10.2 wrote, Nextflow's own wrapper test fixture and the launch commands its tests expect,
versions.yml files whose bytes match the md5 nf-core's test snapshots hold, and a resolved conda
environment (nf-core's fastqc lock) laid out as conda writes its conda-meta records."""

import hashlib
import json
import re
from pathlib import Path

import flowprov as fp
import pytest
from flowprov_nextflow import ingest_lineage, ingest_trace
from flowprov_nextflow.software import (
    SoftwareFileError,
    launch_engine,
    parse_command_run,
    parse_versions,
)

from tests.nextflow.test_lineage_store import TASK, TASK_OUT, _lineage_store, _set

HERE = Path(__file__).parent
FIX = HERE / "fixtures" / "software"
WRAPPER = FIX / "command_run" / "docker-cowpy.command.run"
TRAINING_DIR = "/workspaces/training/hello-nextflow/work/98/656c6c90cce1667c094d880f4b6dcc"
COWPY = "community.wave.seqera.io/library/cowpy:1.1.5--3db457ae1977a273"
PIPELINE = "NFCORE_DEMO:DEMO"
SAMTOOLS_IMAGE = "biocontainers/samtools:1.17--h00cdaf9_0"  # nf-core/modules samtools/sort @977d17c
BWA_IMAGE = (  # nf-core/modules bwa/mem @b29f6be
    "biocontainers/mulled-v2-fe8faa35dbf6dc65a0f7f5d4ea12e31a79f73e40:"
    "219b6c272b25e7e642ae3ff0bf0c5c81a5135ab4-0"
)
CONDA_ENV = "env-" + "5cb1a2fa2f18c7c2" * 2  # a Nextflow conda cache name: env-<32 hex>


# -- the fixtures are the real files ------------------------------------------------------------
@pytest.mark.parametrize(
    "versions, snapshot",
    [
        ("samtools_sort", "samtools_sort@977d17c"),
        ("bwa_mem", "bwa_mem@b29f6be"),
        ("fastqc", "fastqc@b29f6be"),
        ("samtools_collate", "samtools_collate@c8be52d"),
    ],
)
def test_the_versions_files_are_the_bytes_nf_core_snapshotted(versions, snapshot):
    data = (FIX / "versions_yml" / f"{versions}.versions.yml").read_bytes()
    snap = (FIX / "nf_core_snapshots" / f"{snapshot}.main.nf.test.snap").read_text()
    assert f"versions.yml:md5,{hashlib.md5(data).hexdigest()}" in snap


def test_parsed_versions_agree_with_the_snapshot_that_shows_them():
    # the later snapshot prints versions.yml parsed: {"SAMTOOLS_COLLATE": {"samtools": "1.22.1"}}
    snap = json.loads(
        (FIX / "nf_core_snapshots" / "samtools_collate@c8be52d.main.nf.test.snap").read_text()
    )
    shown = next(
        item
        for case in snap.values()
        for item in case["content"]
        if isinstance(item, dict) and "SAMTOOLS_COLLATE" in item
    )
    data = (FIX / "versions_yml" / "samtools_collate.versions.yml").read_bytes()
    tools, issues = parse_versions(data, "SAMTOOLS_COLLATE")
    assert {p.name: p.version for p in tools} == shown["SAMTOOLS_COLLATE"] and issues == []


# -- .command.run as Nextflow writes it ---------------------------------------------------------
def test_the_real_docker_wrapper():
    w, issues = parse_command_run(WRAPPER.read_text())
    assert (w.container, w.engine, w.conda, w.spack, w.modules) == (COWPY, "docker", None, None, ())
    assert issues == []


def test_nextflows_wrapper_fixture_with_conda_and_spack():
    w, issues = parse_command_run((FIX / "command_run" / "test-bash-wrapper.txt").read_text())
    assert (w.container, w.engine) == (None, None)  # runs on the host
    assert (w.conda, w.spack) == ("/conda/env/path", "/spack/env/path") and issues == []


def _table(name: str) -> list[tuple[str, str]]:
    lines = (FIX / "command_run" / name).read_text().splitlines()
    return [tuple(line.split("\t", 1)) for line in lines if line and not line.startswith("#")]


LAUNCH = {
    "859": ("docker", "busybox"),
    "873": ("docker", "busybox"),
    "929": ("docker", "busybox"),  # sudo docker run
    "971": ("docker", "busybox"),  # a mount with blanks
    "1017": ("docker", "busybox"),
    "1130": ("singularity", "docker://ubuntu:latest"),
    "1172": ("singularity", "docker://ubuntu:latest"),
    "1412": ("podman", "busybox"),
    "1428": ("podman", "busybox"),  # --entrypoint /bin/bash before the image
    "1032": ("sarus", "busybox"),
    "1114": ("shifter", "docker://ubuntu:latest"),
    "ApptainerBuilderTest.groovy:100": ("apptainer", "busybox"),
    "ApptainerBuilderTest.groovy:119": ("apptainer", "ubuntu"),
    "CharliecloudBuilderTest.groovy:41": ("charliecloud", "/cacheDir/busybox"),
}


def test_every_launch_command_nextflows_tests_expect():
    rows = _table("BashWrapperBuilderTest.launch_cmds.txt") + [
        (where, cmd + " /bin/bash -ue /work/dir/.command.sh")  # the builder appends the command
        for where, cmd in _table("ContainerBuilderTest.run_cmds.txt")
    ]
    assert {where for where, _ in rows} == set(LAUNCH)
    for where, cmd in rows:
        assert launch_engine(cmd) == LAUNCH[where], where
    assert launch_engine("/bin/bash -ue /work/dir/.command.sh") == (None, None)


def _wrapper_text(
    task_dir: Path, image: str | None = None, launch: str | None = None, env_lines=()
) -> str:
    """The real wrapper re-targeted: its folder, image and launch command replaced, and
    environment lines put where Nextflow puts them (after `set +u` in nxf_main)."""
    text = WRAPPER.read_text().replace(TRAINING_DIR, str(task_dir))
    text = text.replace(
        f"### container: '{COWPY}'",
        f"### container: '{image}'" if image else "### container: 'null'",
    )
    if launch is None:
        launch = f"/bin/bash -ue {task_dir}/.command.sh"
        if image:
            launch = (
                f'docker run -i --cpu-shares 1024 -e "NXF_TASK_WORKDIR" -v {task_dir.parent.parent}:'
                f'{task_dir.parent.parent} -w "$NXF_TASK_WORKDIR" --name $NXF_BOXID {image} '
                f"/bin/bash -ue {task_dir}/.command.sh"
            )
    text = re.sub(r"(nxf_launch\(\) \{\n    ).*\n", lambda m: m.group(1) + launch + "\n", text)
    lines = "".join(f"    {line}\n" for line in env_lines)
    return text.replace("    set +u\n    set -u\n", f"    set +u\n{lines}    set -u\n")


def test_activation_lines_of_every_form(tmp_path):
    snippets = dict(_table("activate_snippets.txt"))
    for where in ("BashWrapperBuilderTest.groovy:815", "test-bash-wrapper.txt@e3919275c^"):
        w, _ = parse_command_run(
            _wrapper_text(tmp_path, env_lines=["# conda environment", snippets[where]])
        )
        assert w.conda == ("/some/conda/env/foo" if "815" in where else "/conda/env/path")
    modules = [snippets[f"BashWrapperBuilderTest.groovy:{n}"] for n in (761, 762, 763)]
    spack = snippets["BashWrapperBuilderTest.groovy:832"]
    w, _ = parse_command_run(_wrapper_text(tmp_path, env_lines=[*modules, spack]))
    assert w.modules == (("ciao", "1"), ("mondo", "2"), ("bioinfo-tools", None))
    assert w.spack == "/some/spack/env/foo"
    # a prefix Nextflow escaped: `/a\ b` is the folder '/a b'
    w, _ = parse_command_run(
        _wrapper_text(tmp_path, env_lines=["source activate /env/with\\ blank"])
    )
    assert w.conda == "/env/with blank"


def test_a_wrapper_that_names_two_conda_prefixes_records_neither(tmp_path):
    text = _wrapper_text(tmp_path, env_lines=["source activate /a", "conda activate /b"])
    w, issues = parse_command_run(text)
    assert w.conda is None and issues == ["activates 2 conda environments (/a, /b)"]


def test_what_is_not_a_wrapper_is_refused():
    for text in ("", "#!/bin/bash\necho hello\n", WRAPPER.read_text()[:2000]):
        with pytest.raises(SoftwareFileError, match="not a Nextflow task wrapper"):
            parse_command_run(text)


# -- versions.yml --------------------------------------------------------------------------------
def test_versions_keep_their_text():
    tools, _ = parse_versions(
        b'"P:SAMTOOLS":\n    samtools: 1.10\n    htslib: 1.20 \n', "P:SAMTOOLS"
    )
    assert [(p.name, p.version, p.source) for p in tools] == [
        ("samtools", "1.10", "tool"),  # not the number 1.1
        ("htslib", "1.20", "tool"),
    ]


@pytest.mark.parametrize(
    "data, why",
    [
        (b"\xff\xfe\x00binary", "not a text file"),
        (b'"P:A":\n\tsamtools: 1.17\n', "not valid YAML at line 2"),
        (b"- samtools\n- 1.17\n", "not a mapping"),
        (b"", "not a mapping"),
        (b'"OTHER":\n    samtools: 1.17\n', "lists process OTHER, not this task's P:A"),
        (b'"P:A": 1.17\n', "is not a mapping of tool: version"),
        (b'"P:A":\n    samtools:\n        - 1.17\n', "samtools: the version is not a single value"),
    ],
)
def test_a_malformed_versions_file_is_refused_with_its_reason(data, why):
    with pytest.raises(SoftwareFileError, match=re.escape(why)):
        parse_versions(data, "P:A")


# -- a whole run: trace + work folders, through the CLI -----------------------------------------
def _conda_prefix(prefix: Path) -> int:
    """nf-core's fastqc environment as conda lays it out: conda-meta/<name>-<version>-<build>.json
    for each package of its lock (linux-64). Returns how many packages."""
    lock = (FIX / "conda" / "fastqc.linux_amd64.conda-lock.txt").read_text().splitlines()
    start = lock.index("linux-64:") + 1
    end = lock.index("packages:", start)
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True)
    urls = [line.removeprefix("- conda: ") for line in lock[start:end]]
    for url in urls:
        channel_subdir, fn = url.rsplit("/", 1)
        stem = fn.removesuffix(".conda").removesuffix(".tar.bz2")
        name, version, build = stem.rsplit("-", 2)
        record = {
            "name": name,
            "version": version,
            "build": build,
            "channel": channel_subdir,
            "subdir": channel_subdir.rsplit("/", 1)[1],
            "fn": fn,
            "url": url,
            "files": [],
        }
        (meta / f"{stem}.json").write_text(json.dumps(record))
    (meta / "history").write_text("")  # conda's own file beside the records
    return len(urls)


TRACE_HEADER = "task_id\thash\tnative_id\tprocess\ttag\tname\tstatus\texit\tcontainer\tworkdir\tsubmit\tduration\trealtime"


def _task_dir(work: Path, n: int) -> Path:
    return work / f"{n:02x}" / (f"{n:06x}" + "ab" * 12)


def _task(work: Path, n: int, process: str, tag: str, container, *, run=None, versions=None):
    """One task folder in Nextflow's layout, and its trace row."""
    d = _task_dir(work, n)
    short, rest = d.parent.name, d.name
    d.mkdir(parents=True)
    (d / ".command.sh").write_text(f"#!/bin/bash -ue\n{process.rsplit(':', 1)[1].lower()} {tag}\n")
    (d / ".exitcode").write_text("0")
    (d / f"{tag}.out").write_text(f"{process} {tag}\n")
    if run is not None:
        (d / ".command.run").write_bytes(run if isinstance(run, bytes) else run(d).encode())
    if versions is not None:
        (d / "versions.yml").write_bytes(versions)
    name = f"{process} ({tag})"
    row = [str(n), f"{short}/{rest[:6]}", str(4000 + n), process, tag, name, "COMPLETED", "0"]
    row += [container or "-", str(d), f"2025-03-0{1 + n % 3} 10:00:{n:02d}.000", "2s", "1.5s"]
    return "\t".join(row)


def _demo_run(root: Path) -> tuple[Path, Path, int]:
    """An nf-core-style run: SAMTOOLS_SORT ×3 and BWA_MEM ×2 in docker, FASTQC ×2 in a conda
    environment Nextflow made, MULTIQC with a broken versions.yml, BROKEN with a broken wrapper."""
    work = root / "work"
    versions = FIX / "versions_yml"
    sort_yml = (versions / "samtools_sort.versions.yml").read_bytes()
    # in a pipeline `${task.process}` is the full path; the nf-test snapshot ran it alone
    sort_yml = sort_yml.replace(b'"SAMTOOLS_SORT"', f'"{PIPELINE}:SAMTOOLS_SORT"'.encode())
    n_conda = _conda_prefix(work / "conda" / CONDA_ENV)
    conda_line = (
        'source $(conda info --json | awk \'/conda_prefix/ { gsub(/"|,/, "", $2); print $2 }\')'
        f"/bin/activate {work}/conda/{CONDA_ENV}"
    )
    rows, n = [], 0

    def add(process, tags, container, run=None, versions=None):
        nonlocal n
        for tag in tags:
            n += 1
            rows.append(
                _task(work, n, f"{PIPELINE}:{process}", tag, container, run=run, versions=versions)
            )

    add(
        "SAMTOOLS_SORT",
        ["s1", "s2", "s3"],
        SAMTOOLS_IMAGE,
        lambda d: _wrapper_text(d, SAMTOOLS_IMAGE),
        sort_yml,
    )
    add(
        "BWA_MEM",
        ["s1", "s2"],
        BWA_IMAGE,
        lambda d: _wrapper_text(d, BWA_IMAGE),
        (versions / "bwa_mem.versions.yml").read_bytes(),  # as snapshotted: the short name
    )
    add(
        "FASTQC",
        ["s1", "s2"],
        None,
        lambda d: _wrapper_text(d, env_lines=["# conda environment", conda_line]),
        (versions / "fastqc.versions.yml")
        .read_bytes()
        .replace(b'"FASTQC"', f'"{PIPELINE}:FASTQC"'.encode()),
    )
    add(
        "MULTIQC",
        ["all"],
        COWPY,
        lambda d: _wrapper_text(d, COWPY),
        b'"NFCORE_DEMO:DEMO:MULTIQC":\n\tmultiqc: 1.21\n',
    )
    # a wrapper cut short (a full disk): the trace still names its image
    add("BROKEN", ["x"], "ubuntu:22.04", WRAPPER.read_bytes()[:1500])
    trace = root / "pipeline_info" / "execution_trace.txt"
    trace.parent.mkdir()
    trace.write_text(TRACE_HEADER + "\n" + "\n".join(rows) + "\n")
    return trace, work, n_conda


def _runs(process: str) -> list:
    return list(fp.Run.filter(transform__name=f"{PIPELINE}:{process}"))


def _packages(env) -> list[tuple]:
    return [(p.name, p.version, p.source) for p in env.packages]


def test_a_run_with_its_work_folders_through_the_cli(instance, fp_env, run_flowprov):
    trace, work, n_conda = _demo_run(fp_env)
    args = ("nextflow", "ingest", str(trace), "--workdir", str(work), "--pipeline", "nf-core/demo")
    out = run_flowprov(*args).stdout
    assert "9 tasks; 10 runs recorded" in out

    # one environment for the tasks of one process in one image with the same tool versions
    sort = _runs("SAMTOOLS_SORT")
    assert len(sort) == 3 and len({r.environment.id for r in sort}) == 1
    env = sort[0].environment
    assert (env.container_image, env.container_engine) == (SAMTOOLS_IMAGE, "docker")
    assert (env.deployed, env.complete, env.details) == (True, False, None)
    assert _packages(env) == [("samtools", "1.17", "tool")] and env.n_packages == 1
    assert {r.uid for r in env.runs} == {r.uid for r in sort}

    bwa = _runs("BWA_MEM")
    assert len({r.environment.id for r in bwa}) == 1
    assert bwa[0].environment.container_image == BWA_IMAGE
    assert _packages(bwa[0].environment) == [
        ("bwa", "0.7.17-r1188", "tool"),
        ("samtools", "1.16.1", "tool"),
    ]

    # the question after a tool's bug report: exactly the tasks that ran samtools 1.17
    found = fp.Run.filter(
        environment__packages__name="samtools", environment__packages__version="1.17"
    )
    assert {r.uid for r in found} == {r.uid for r in sort}
    assert {r.uid for r in fp.Run.filter(environment__container_image=BWA_IMAGE)} == {
        r.uid for r in bwa
    }

    # conda: the prefix Nextflow made is here, so its resolved packages are the complete set
    fastqc = _runs("FASTQC")
    assert len({r.environment.id for r in fastqc}) == 1
    env = fastqc[0].environment
    assert (env.container_image, env.deployed, env.complete) == (None, True, True)
    assert env.details == {"conda_env": CONDA_ENV}  # its content-derived name, not the folder
    conda = [p for p in env.packages if p.source == "conda"]
    assert len(conda) == n_conda == 64
    (fq,) = [p for p in conda if p.name == "fastqc"]
    assert (fq.version, fq.build, fq.channel) == ("0.12.1", "hdfd78af_0", "bioconda")
    assert ("fastqc", "0.12.1", "tool") in _packages(env)

    # what cannot be read adds nothing, and is named
    multiqc = _runs("MULTIQC")[0].environment
    assert (multiqc.container_image, multiqc.container_engine) == (COWPY, "docker")
    assert list(multiqc.packages) == []
    broken = _runs("BROKEN")[0]
    assert broken.status == "completed"
    assert (broken.environment.container_image, broken.environment.container_engine) == (
        "ubuntu:22.04",
        None,  # the trace names the image, not the engine
    )
    warnings = [line for line in out.splitlines() if "warning" in line]
    multiqc_yml, broken_run = (
        _task_dir(work, 8) / "versions.yml",
        _task_dir(work, 9) / ".command.run",
    )
    assert any(f"{multiqc_yml}: not valid YAML at line 2" in w for w in warnings)
    assert any(f"{broken_run}: not a Nextflow task wrapper" in w for w in warnings)
    assert len(warnings) == 2
    assert fp.Run.filter(transform__type="pipeline").one().environment is None
    assert fp.Environment.filter().count() == 5

    # again: nothing new
    before = (fp.Run.filter().count(), fp.Environment.filter().count(), fp.Package.filter().count())
    again = run_flowprov(*args).stdout
    assert "0 runs recorded, 10 already known" in again
    assert before == (
        fp.Run.filter().count(),
        fp.Environment.filter().count(),
        fp.Package.filter().count(),
    )


def test_the_container_column_alone(instance, fp_env):
    header = "task_id\thash\tname\tstatus\texit\tcontainer\tsubmit\tduration"
    rows = [
        f"{i}\t{i:02x}/{i:06x}\tALIGN (s{i})\tCOMPLETED\t0\t{SAMTOOLS_IMAGE}\t2025-01-01 10:00:00.000\t1s"
        for i in (1, 2, 3)
    ]
    rows.append(
        f"4\t04/000004\tQC (s1)\tCOMPLETED\t0\tquay.io/x/qc@sha256:{'ab' * 32}\t2025-01-01 10:00:01.000\t1s"
    )
    rows.append("5\t05/000005\tLOCAL (s1)\tCOMPLETED\t0\t-\t2025-01-01 10:00:02.000\t1s")
    trace = fp_env / "trace.txt"
    trace.write_text(header + "\n" + "\n".join(rows) + "\n")
    r = ingest_trace(trace, pipeline="p")
    assert r.warnings == []
    align = list(fp.Run.filter(transform__name="ALIGN"))
    assert len({a.environment.id for a in align}) == 1
    env = align[0].environment
    assert (env.container_image, env.container_engine, env.deployed, env.complete) == (
        SAMTOOLS_IMAGE,
        None,
        True,
        False,
    )
    qc = fp.Run.filter(transform__name="QC").one().environment
    assert qc.container_digest == "sha256:" + "ab" * 32  # pinned by digest: the digest is known
    assert fp.Run.filter(transform__name="LOCAL").one().environment is None  # nothing known
    assert fp.Environment.filter().count() == 2


# -- the lineage store -------------------------------------------------------------------------
def test_the_lineage_store(instance, fp_env):
    store = _lineage_store(fp_env)
    wf = "16b31030474f2e96c55f4940bca3ab64"
    # the tutorial elides the WorkflowRun's metadata; these are two of its keys (WorkflowMetadata)
    _set(store, wf, metadata={"nextflow": {"version": "25.04.0"}, "containerEngine": "docker"})
    # two tasks of one process in one container, and one whose conda prefix is here
    image = "quay.io/biocontainers/fastqc:0.12.1--hdfd78af_0"
    base = json.loads((store / TASK / ".data.json").read_text())
    for key, name, spec in (
        ("a1" * 16, "FASTQC (ggal_gut)", {"container": image, "conda": None}),
        ("a2" * 16, "FASTQC (ggal_liver)", {"container": image, "conda": None}),
        (
            "a3" * 16,
            "QC_LOCAL",
            {"conda": f"file://{fp_env}/conda/{CONDA_ENV}", "architecture": "linux/amd64"},
        ),
    ):
        rec = {**base, "spec": {**base["spec"], "name": name, **spec}}
        (store / key).mkdir()
        (store / key / ".data.json").write_text(json.dumps(rec))
    n_conda = _conda_prefix(fp_env / "conda" / CONDA_ENV)
    r = ingest_lineage(store)
    assert r.warnings == []

    # MULTIQC: the tutorial's conda environment, not here — named, its packages unknown
    multiqc = fp.Run.filter(transform__name="MULTIQC").one().environment
    assert multiqc.details == {"conda_env": "env-4a436c230263dfdbbf4dddd0623505d1"}
    assert (multiqc.deployed, multiqc.complete, multiqc.container_image) == (True, False, None)
    assert _packages(multiqc) == [("nextflow", "25.04.0", "engine")]

    fastqc = list(fp.Run.filter(transform__name="FASTQC"))
    assert len(fastqc) == 2 and len({t.environment.id for t in fastqc}) == 1
    env = fastqc[0].environment
    assert (env.container_image, env.container_engine, env.deployed) == (image, "docker", True)

    local = fp.Run.filter(transform__name="QC_LOCAL").one().environment
    assert (local.os, local.complete) == ("linux/amd64", True)
    assert len([p for p in local.packages if p.source == "conda"]) == n_conda

    # Nextflow itself ran the pipeline, and every task of it
    pipeline = fp.Run.filter(transform__type="pipeline").one()
    assert _packages(pipeline.environment) == [("nextflow", "25.04.0", "engine")]
    assert pipeline.environment.deployed is True
    by_engine = fp.Run.filter(
        environment__packages__name="nextflow", environment__packages__version="25.04.0"
    )
    assert by_engine.count() == fp.Run.filter().count() == 5

    before = fp.Environment.filter().count(), fp.Package.filter().count()
    assert before[0] == 4
    again = ingest_lineage(store)
    assert again.new_runs == 0
    assert (fp.Environment.filter().count(), fp.Package.filter().count()) == before


def test_the_wrapper_is_what_ran_when_the_trace_disagrees(tmp_path):
    from flowprov_nextflow.software import Environments

    d = tmp_path / "work" / "ab" / ("cd" * 15)
    d.mkdir(parents=True)
    (d / ".command.run").write_text(_wrapper_text(d, SAMTOOLS_IMAGE))
    envs = Environments(tmp_path / "work")
    spec = envs.for_trace_task("P:SORT", "biocontainers/samtools:1.16.1--h6899075_1", d)
    assert (spec.container_image, spec.container_engine) == (SAMTOOLS_IMAGE, "docker")
    assert envs.warnings() == [
        f"{d}/.command.run: runs image {SAMTOOLS_IMAGE}, the trace says "
        "biocontainers/samtools:1.16.1--h6899075_1; recorded the image the wrapper ran"
    ]


def test_a_staged_versions_file_is_another_tasks(tmp_path):
    from flowprov_nextflow.software import Environments

    upstream = tmp_path / "versions.yml"
    upstream.write_bytes((FIX / "versions_yml" / "samtools_sort.versions.yml").read_bytes())
    d = tmp_path / "task"
    d.mkdir()
    (d / "versions.yml").symlink_to(upstream)  # staged in as an input (a symlink)
    envs = Environments()
    assert envs.for_trace_task("SAMTOOLS_SORT", None, d) is None and envs.warnings() == []
    (d / "versions.yml").unlink()
    (d / "versions.yml").write_bytes(upstream.read_bytes())  # written by the task itself
    spec = envs.for_trace_task("SAMTOOLS_SORT", None, d)
    assert [(p.name, p.version) for p in spec.packages] == [("samtools", "1.17")]
    assert (spec.deployed, spec.complete, spec.container_image) == (True, False, None)


def test_a_lineage_task_whose_work_folder_is_here(instance, fp_env):
    store = _lineage_store(fp_env)
    work = fp_env / "work" / "86" / TASK[2:]
    work.mkdir(parents=True)
    (work / "multiqc_report.html").write_text("<html>MultiQC</html>")
    _set(store, TASK_OUT, path=f"file://{work}/multiqc_report.html", size=20)
    prefix = "/conda/env-4a436c230263dfdbbf4dddd0623505d1"  # the TaskRun's conda
    activate = (
        'source $(conda info --json | awk \'/conda_prefix/ { gsub(/"|,/, "", $2); print $2 }\')'
        f"/bin/activate {prefix}"
    )
    (work / ".command.run").write_text(
        _wrapper_text(work, env_lines=["# conda environment", activate])
    )
    # nf-core's multiqc module heredoc (nf-core/modules @b29f6be), with its container's version
    (work / "versions.yml").write_text('"MULTIQC":\n    multiqc: 1.18\n')
    r = ingest_lineage(store)
    assert r.warnings == []
    env = fp.Run.filter(transform__name="MULTIQC").one().environment
    assert _packages(env) == [("multiqc", "1.18", "tool")]
    assert env.details == {"conda_env": "env-4a436c230263dfdbbf4dddd0623505d1"}
    assert (env.deployed, env.complete, env.container_image) == (True, False, None)
