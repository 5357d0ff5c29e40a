"""`flowprov diff A B`: where the histories of two artifacts or two runs part — on real Snakemake
workflows (run in a subprocess with the flowprov logger) and on runs applied as events."""

from __future__ import annotations

import json

import blake3
import flowprov as fp
import pytest
from flowprov.diff import diff, pair_inputs

SNAKEFILE = """
rule all:
    input: "results/summary.txt"

rule upper:
    input: "data/{sample}.txt"
    output: "up/{sample}.txt"
    shell: "SHELL"

rule summarize:
    input: expand("up/{sample}.txt", sample=["a", "b"])
    output: "results/summary.txt"
    shell: "cat {input} > {output}"
"""
UPPER = "tr a-z A-Z < {input} > {output}"


def b3(data: str) -> str:
    return blake3.blake3(data.encode()).hexdigest()


@pytest.fixture
def folder(instance, fp_env):
    """Makes a workflow folder, declared as a storage root (its files are keyed by their path in
    it), holding the test workflow and its two raw inputs."""
    from tests.snakemake.conftest import Workflow  # skips the test when Snakemake is missing

    def make(name: str, b: str = "raw b\n", shell: str = UPPER):
        root = fp_env / name
        root.mkdir()
        fp.Storage(root).save()
        wf = Workflow(root)
        wf.write("Snakefile", SNAKEFILE.replace("SHELL", shell))
        wf.write("data/a.txt", "raw a\n")
        wf.write("data/b.txt", b)
        return wf

    return make


def summaries() -> list:
    return fp.Artifact.filter(key="results/summary.txt").order_by("id").all()


def cli_diff(run_flowprov, a: str, b: str, *args: str):
    return run_flowprov("diff", a, b, *args, check=False)


def test_two_workflow_runs_with_a_changed_input(folder, run_flowprov):
    """The same workflow in three folders: the second is the same as the first, the third reads
    a corrected data/b.txt. The diff of the first and third summaries walks summarize → upper b
    and names data/b.txt with both hashes and its text diff; the first and second: identical."""
    folder("one").run()
    folder("two").run()
    folder("three", b="raw b, corrected\n").run()
    one, two, three = summaries()

    proc = cli_diff(run_flowprov, one.uid, three.uid)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "content: different" in out and "Where the histories part:" in out
    for h in (b3("raw b\n"), b3("raw b, corrected\n")):
        assert h[:12] in out  # the changed input's two hashes
    assert "-raw b\n" in out.replace("    ", "") and "+raw b, corrected" in out

    proc = cli_diff(run_flowprov, one.uid[:12], three.uid[:12], "--format", "json")
    assert proc.returncode == 1, proc.stderr
    d = json.loads(proc.stdout)
    assert d["format"] == "flowprov-diff/1" and d["kind"] == "artifacts"
    assert d["identical"] is False and d["truncated"] is False
    assert (d["a"]["uid"], d["b"]["uid"]) == (one.uid, three.uid)
    assert d["start"]["content"] == "different" and d["start"]["step"] == 1
    assert "-RAW B\n+RAW B, CORRECTED\n" in d["start"]["text_diff"]
    summarize, upper_b = d["steps"]
    assert summarize["a"]["transform"] == "summarize" and upper_b["a"]["transform"] == "upper"
    assert summarize["differences"] == ["inputs"] and upper_b["differences"] == ["inputs"]
    # up/a.txt has the same content in both folders: counted, not followed
    assert summarize["inputs"]["same"] == 1 and len(summarize["inputs"]["different"]) == 1
    up = summarize["inputs"]["different"][0]
    assert up["a"]["key"] == up["b"]["key"] == "up/b.txt" and up["step"] == 2
    assert up["paired_by"] == "path"  # the same key in another storage root
    assert upper_b["via"] == {"step": 1, "a_key": "up/b.txt", "b_key": "up/b.txt"}
    raw = upper_b["inputs"]["different"][0]
    assert raw["a"]["key"] == "data/b.txt" and raw["content"] == "different"
    assert (raw["a"]["hash"], raw["b"]["hash"]) == (b3("raw b\n"), b3("raw b, corrected\n"))
    assert raw["text_diff"].endswith("@@ -1 +1 @@\n-raw b\n+raw b, corrected\n")
    assert raw["producers"] == {"a": None, "b": None, "a_via_copy": False, "b_via_copy": False}
    assert raw["step"] is None
    for s in d["steps"]:  # the rest of each step agrees
        assert s["code"]["same"] and s["params"]["same"] and s["environment"]["same"]
        assert s["transform"]["same"]
        assert "filed under different keys" in s["transform"]["notes"][0]
    assert [(o["step"], o["kind"]) for o in d["origins"]] == [(2, "input")]
    assert "data/b.txt" in d["origins"][0]["summary"]

    # --depth 1: only the summaries' producers are compared; the branch is cut, and said so
    d = json.loads(
        cli_diff(run_flowprov, one.uid, three.uid, "--format", "json", "--depth", "1").stdout
    )
    assert len(d["steps"]) == 1 and d["truncated"] is True and d["depth_limit"] == 1
    assert [(o["step"], o["kind"]) for o in d["origins"]] == [(1, "depth-limit")]
    assert "up/b.txt" in d["origins"][0]["summary"]

    # the first two folders: the same history, though every record is another one
    proc = cli_diff(run_flowprov, one.uid, two.uid)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Identical histories" in proc.stdout and "Where the histories part" not in proc.stdout
    d = json.loads(cli_diff(run_flowprov, one.uid, two.uid, "--format", "json").stdout)
    assert d["identical"] is True and d["origins"] == [] and len(d["steps"]) == 1
    assert d["steps"][0]["differences"] == [] and d["steps"][0]["inputs"]["same"] == 2
    # two runs of one rule, by run uid
    job_a = fp.Run.filter(transform__name="upper", name__startswith="upper").order_by("id").all()
    first, second = [r for r in job_a if r.inputs.one().hash == b3("raw a\n")][:2]
    proc = cli_diff(run_flowprov, first.uid, second.uid)
    assert proc.returncode == 0 and "Identical histories" in proc.stdout, proc.stdout


def test_a_rerun_after_an_input_changed_in_place(folder):
    """The typical rerun: data/b.txt edited, the workflow run again in its folder. The old
    versions' bytes are gone (overwritten): the diff names both hashes and says the old bytes are
    not available rather than diffing against what the file holds now."""
    wf = folder("wf")
    wf.run()
    wf.write("data/b.txt", "raw b, corrected\n")
    wf.run()
    old, new = summaries()
    d = diff(old, new)
    assert not d.identical and d.start.content == "different"
    assert d.start.text_diff is None and "not available" in d.start.text_diff_note
    summarize, upper_b = d.steps
    assert summarize.inputs.same == 1  # up/a.txt: the same version, read by both runs
    assert upper_b.differences == ["inputs"]
    raw = upper_b.inputs.different[0]
    assert raw.paired_by == "place" and raw.a.key == "data/b.txt"
    assert (raw.a.hash, raw.b.hash) == (b3("raw b\n"), b3("raw b, corrected\n"))
    assert raw.text_diff is None
    assert raw.text_diff_note == (
        f"no text diff — A: the bytes of {raw.a.uid} are not available (data/b.txt now holds "
        "other bytes)"
    )
    # Snakemake's reason for each job ("Missing output files" the first time, "Updated input
    # files" now) is shown, not counted
    assert upper_b.params.same and "reason" in upper_b.params.ignored
    assert [(o.step, o.kind) for o in d.origins] == [(2, "input")]


def test_a_changed_shell_command(folder, run_flowprov):
    """The rule's shell command edited and the workflow run again (Snakemake reruns on changed
    code): the diff of the two summaries reaches both upper jobs and shows the code diff."""
    wf = folder("wf")
    wf.run()
    wf.write("Snakefile", SNAKEFILE.replace("SHELL", "tr a-z A-Z < {input} | rev > {output}"))
    wf.run()
    old, new = summaries()
    assert new.path.read_text() == "A WAR\nB WAR\n"

    proc = cli_diff(run_flowprov, old.uid, new.uid)
    assert proc.returncode == 1, proc.stderr
    assert "code differs" in proc.stdout
    assert "-shell: tr a-z A-Z < {input} > {output}" in proc.stdout
    assert "+shell: tr a-z A-Z < {input} | rev > {output}" in proc.stdout

    d = json.loads(cli_diff(run_flowprov, old.uid, new.uid, "--format", "json").stdout)
    summarize, *uppers = d["steps"]
    assert summarize["differences"] == ["inputs"] and summarize["code"]["same"]
    assert len(summarize["inputs"]["different"]) == 2
    assert [s["a"]["transform"] for s in uppers] == ["upper", "upper"]
    for s in uppers:
        assert s["differences"] == ["code", "params"]  # params: the rendered shellcmd
        assert set(s["params"]["changed"]) == {"shellcmd"}
        assert s["inputs"]["same"] == 1  # data/a.txt, data/b.txt: unchanged
        code = s["code"]["diff"]
        assert "-shell: tr a-z A-Z < {input} > {output}\n" in code
        assert "+shell: tr a-z A-Z < {input} | rev > {output}\n" in code
        assert "two versions of one transform" in s["transform"]["notes"][0]
    kinds = sorted((o["step"], o["kind"]) for o in d["origins"])
    assert kinds == [(2, "code"), (2, "params"), (3, "code"), (3, "params")]


def _env(samtools: str, build: str, extra, spec_file=None):
    from flowprov.events import EnvironmentSpec, Package

    return EnvironmentSpec(
        interpreter="CPython 3.11.9",
        os="Linux-6.1-x86_64",
        packages=(
            Package(
                name="samtools", version=samtools, build=build, source="conda", channel="bioconda"
            ),
            Package(
                name="htslib",
                version="1.17",
                build="h81da01d_2",
                source="conda",
                channel="bioconda",
            ),
            Package(name="numpy", version="1.26.4", source="pip"),
            *([extra] if extra else []),
        ),
        spec_file=spec_file,
        deployed=True,
        complete=True,
    )


def _align_run(instance, uid: str, env_file, env, out, reads, params=None):
    """A run of align.py in `env` (its environment file registered just before, when given),
    reading `reads` and writing `out`: the events an engine would send."""
    from flowprov.artifacts import in_place_event, input_events, ref_of
    from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec

    roots = [instance.storage]
    spec = [in_place_event(str(env_file), roots=roots)] if env_file else []
    env = env(ref_of(spec[0]) if spec else None)
    run = RunRef(uid=uid)
    align = TransformSpec(name="align.py", type="script", key="align.py", source_code="align()")
    params = {"threads": 4} if params is None else params
    instance.store.apply(
        [
            *spec,
            RunStarted(uid=uid, transform=align, params=params, environment=env),
            *input_events(str(reads), run=run, roots=roots),
            in_place_event(str(out), roots=roots, run=run),
            RunFinished(run=run),
        ]
    )


def test_a_changed_package_version(instance, fp_env, run_flowprov):
    """Two runs of one script whose environments differ: samtools 1.17 → 1.18 (another build),
    zlib removed, libdeflate added; the environment file edited in place, its old version still
    readable from an archived copy. The diff names each package with both versions."""
    from flowprov.artifacts import in_place_event
    from flowprov.events import Package

    from tests.conftest import write

    data = fp_env / "mydata"
    reads = write(data / "reads.fq", "@r1\nACGT\n+\nIIII\n")
    env_file = data / "envs/align.yaml"
    yaml = "dependencies:\n  - samtools=1.17\n  - htslib=1.17\n"
    write(env_file, yaml)
    archived = write(data / "archive/align.yaml", yaml)  # the old file, kept
    instance.store.apply([in_place_event(str(archived), roots=[instance.storage])])
    zlib = Package(name="zlib", version="1.2.13", source="conda", channel="conda-forge")
    write(data / "out/one.sam", "r1\t0\tchr1\t100\n")
    _align_run(
        instance, "alignrun000000000001", env_file,
        lambda spec: _env("1.17", "h00cdaf9_0", zlib, spec), data / "out/one.sam", reads,
    )  # fmt: skip
    write(env_file, yaml.replace("samtools=1.17", "samtools=1.18"))
    deflate = Package(name="libdeflate", version="1.20", source="conda", channel="conda-forge")
    write(data / "out/two.sam", "r1\t0\tchr1\t101\n")
    _align_run(
        instance, "alignrun000000000002", env_file,
        lambda spec: _env("1.18", "h50ea8bc_0", deflate, spec), data / "out/two.sam", reads,
    )  # fmt: skip
    one = fp.Artifact.filter(key="out/one.sam").one()
    two = fp.Artifact.filter(key="out/two.sam").one()

    proc = cli_diff(run_flowprov, one.uid, two.uid, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    d = json.loads(proc.stdout)
    (step,) = d["steps"]
    assert step["differences"] == ["environment"] and step["inputs"]["same"] == 1
    env = step["environment"]
    runs = {r.uid: r for r in fp.Run.filter(transform__name="align.py")}
    assert (env["a"], env["b"]) == (
        runs["alignrun000000000001"].environment.uid,
        runs["alignrun000000000002"].environment.uid,
    )
    assert env["fields"] == {}  # same interpreter, OS, no container
    assert env["packages"]["changed"] == [
        {
            "source": "conda",
            "name": "samtools",
            "a": {"version": "1.17", "build": "h00cdaf9_0", "channel": "bioconda"},
            "b": {"version": "1.18", "build": "h50ea8bc_0", "channel": "bioconda"},
        }
    ]
    assert [p["name"] for p in env["packages"]["added"]] == ["libdeflate"]
    assert [(p["name"], p["version"]) for p in env["packages"]["removed"]] == [("zlib", "1.2.13")]
    assert env["packages"]["same"] == 2  # htslib, numpy
    spec = env["spec_file"]
    assert spec["a"]["key"] == spec["b"]["key"] == "envs/align.yaml"
    # A's version is overwritten at its place; the archived copy holds its bytes
    assert "-  - samtools=1.17\n+  - samtools=1.18\n" in spec["text_diff"]
    ((origin_step, kind, summary),) = [tuple(o.values()) for o in d["origins"]]
    assert (origin_step, kind) == (1, "environment")
    assert "samtools 1.17 → 1.18" in summary and "1 package(s) added" in summary

    out = cli_diff(run_flowprov, one.uid, two.uid).stdout
    assert "environment differs" in out
    assert "samtools: 1.17 h00cdaf9_0 from bioconda → 1.18 h50ea8bc_0 from bioconda" in out
    assert "libdeflate: 1.20" in out and "zlib: 1.2.13" in out
    assert "+  - samtools=1.18" in out

    # the two runs themselves
    d = diff("alignrun000000000001", "alignrun000000000002")
    assert d.kind == "runs" and not d.identical and d.steps[0].differences == ["environment"]


def test_bad_uids_are_flowprov_errors_with_exit_status_2(instance, fp_env, run_flowprov):
    from tests.conftest import write

    with fp.Run(transform=fp.Transform(name="make.py", type="script").save()) as run:
        art = fp.Artifact(write(fp_env / "mydata/x.txt", "x\n"), key="x.txt").save()
    cases = {
        ("nosuchuid", art.uid): "no artifact or run has uid 'nosuchuid'",
        (art.uid, run.uid): f"{art.uid} is an artifact and {run.uid} a run",
        (run.transform.uid, run.uid): f"'{run.transform.uid}' is a Transform",
    }
    for (a, b), message in cases.items():
        proc = cli_diff(run_flowprov, a, b)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.startswith("flowprov error: ") and message in proc.stderr
        assert proc.stderr.count("\n") == 1 and not proc.stdout  # one line, no traceback
    # the same artifact, the same run: identical
    for uid in (art.uid, run.uid):
        proc = cli_diff(run_flowprov, uid, uid)
        assert proc.returncode == 0 and "Identical: A and B are the same" in proc.stdout


def row(id_, key, hash_, storage=1):
    return {"id": id_, "key": key, "file_name": None, "storage_id": storage, "hash": hash_,
            "hash_type": "blake3"}  # fmt: skip


def test_inputs_are_paired_by_place_then_path_then_content_then_what_is_left():
    a = [
        row(1, "ref/genome.fa", "g"),
        row(2, "wf1/data/s1.fq", "x"),
        row(3, "raw/old_name.txt", "same"),
        row(4, "config/a.yaml", "c1"),
        row(5, "only/in_a.txt", "p"),
        row(6, "only/also_a.txt", "q"),
    ]
    b = [
        row(1, "ref/genome.fa", "g"),
        row(12, "wf2/data/s1.fq", "y", storage=2),
        row(13, "raw/new_name.txt", "same"),
        row(14, "config/b.yaml", "c2"),
    ]
    pairs, only_a, only_b = pair_inputs(a, b)
    got = {(x["key"], y["key"], how) for x, y, how in pairs}
    assert got == {
        ("ref/genome.fa", "ref/genome.fa", "place"),
        ("wf1/data/s1.fq", "wf2/data/s1.fq", "path"),
        ("raw/old_name.txt", "raw/new_name.txt", "content"),
    }
    # three left on A's side, one on B's: not guessed
    assert {r["key"] for r in only_a} == {"config/a.yaml", "only/in_a.txt", "only/also_a.txt"}
    assert [r["key"] for r in only_b] == ["config/b.yaml"]
    pairs, only_a, only_b = pair_inputs(a[3:4], b[3:4])  # one on each side: each other's
    assert (
        [(x["key"], y["key"], how) for x, y, how in pairs]
        == [("config/a.yaml", "config/b.yaml", "remaining")]
        and not only_a
        and not only_b
    )


def test_what_the_records_cannot_explain_and_histories_that_part_under_equal_content(
    instance, fp_env
):
    """Two runs that agree in everything recorded yet wrote different bytes: said so (not
    reproducible, or something unrecorded differed). Two outputs with equal bytes whose runs had
    different params: their histories still part (exit status 1), and the diff says where."""
    from tests.conftest import write

    data = fp_env / "mydata"
    reads = write(data / "reads.fq", "@r1\nACGT\n+\nIIII\n")
    env = lambda _: _env("1.17", "h00cdaf9_0", None)  # noqa: E731
    outs = {}
    for i, (text, params) in enumerate(
        [("r1 100\n", {"threads": 4}), ("r1 101\n", {"threads": 4}), ("r1 100\n", {"threads": 8})]
    ):
        outs[i] = write(data / f"out/{i}.sam", text)
        _align_run(instance, f"alignrun00000000000{i}", None, env, outs[i], reads, params)
    arts = [fp.Artifact.filter(key=f"out/{i}.sam").one() for i in range(3)]

    d = diff(arts[0], arts[1])
    assert not d.identical and d.steps[0].differences == []
    assert [(o.step, o.kind) for o in d.origins] == [(1, "unexplained")]
    assert "agree in everything recorded" in d.origins[0].summary
    assert "-r1 100\n+r1 101\n" in d.start.text_diff

    d = diff(arts[0], arts[2])
    assert d.start.content == "same" and not d.identical
    assert d.steps[0].differences == ["params"]
    assert (
        d.steps[0].params.changed["threads"].a == 4 and d.steps[0].params.changed["threads"].b == 8
    )
    assert [(o.step, o.kind) for o in d.origins] == [(1, "params")]


CONDA = """
rule view:
    input: "data/a.txt"
    output: "out/version.txt"
    conda: "envs/samtools.yaml"
    shell: "samtools --version > {output}"
"""


def test_a_snakemake_conda_env_with_another_samtools(folder):
    """A rule's conda env file moved from samtools 1.17 to 1.18 and the workflow run again
    (`--sdm conda`; Snakemake reruns on a changed software environment): the diff of the two
    outputs names the packages with both versions and the changed environment file."""
    from tests.snakemake.test_environments import (
        SAMTOOLS_117,
        lay_out_prefix,
        snakemake_prefix,
        with_standins,
    )

    wf = folder("wf")
    wf.write("Snakefile", CONDA)
    for version, build, hts in (
        ("1.17", "h00cdaf9_0", "h81da01d_2"),
        ("1.18", "h50ea8bc_0", "h50ea8bc_1"),
    ):
        env_file = wf.write("envs/samtools.yaml", SAMTOOLS_117.replace("1.17", version))
        lay_out_prefix(
            snakemake_prefix(wf.root, env_file),
            [("samtools", version, build), ("htslib", version, hts)],
            "samtools",
            f"samtools {version}",
        )
        wf.run("--sdm", "conda", env=with_standins())
    old, new = fp.Artifact.filter(key="out/version.txt").order_by("id").all()
    assert new.path.read_text() == "samtools 1.18\n"

    d = diff(old, new)
    assert not d.identical
    (step,) = d.steps
    assert step.differences == ["environment"], step.differences
    assert "reason" in step.params.ignored  # "Missing output files" / "software environment"
    env = step.environment
    changed = {(c.name, c.a["version"], c.b["version"]) for c in env.packages.changed}
    assert changed == {("samtools", "1.17", "1.18"), ("htslib", "1.17", "1.18")}
    assert not env.packages.added and not env.packages.removed
    assert env.packages.same == 1  # the engine: the same Snakemake
    assert env.spec_file.a.key == "envs/samtools.yaml" and env.spec_file.content == "different"
    # the old env file was edited in place: its bytes are gone, and said so
    assert "not available" in env.spec_file.text_diff_note
    assert [(o.step, o.kind) for o in d.origins] == [(1, "environment")]
    assert "samtools 1.17 → 1.18" in d.origins[0].summary
