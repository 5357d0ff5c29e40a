"""Software environments answered: `flowprov envs`, `flowprov impact --package`, and queries
through the environment relations — on real records (engine events applied through the store,
Python-API runs recording their interpreter), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import flowprov as fp
import pytest
from flowprov import software_queries as Q
from flowprov.db import read_connection
from flowprov.errors import ValidationError
from flowprov.events import (
    ArtifactRef,
    ArtifactRegistered,
    ArtifactUsed,
    EnvironmentSpec,
    Package,
    RunFinished,
    RunRef,
    RunStarted,
    TransformSpec,
)
from flowprov.hashing import hash_file

from tests.conftest import write

IMAGE = "quay.io/biocontainers/samtools"


def conda(name: str, version: str, build: str = "h50ea8bc_0", channel="bioconda") -> Package:
    return Package(name=name, version=version, build=build, source="conda", channel=channel)


def tool(name: str, version: str) -> Package:  # as an nf-core versions.yml reports it
    return Package(name=name, version=version, source="tool")


# samtools 1.17 in a container whose conda packages and versions.yml both name it: two package
# rows of one environment, the same name and version from two sources
ENV_17 = EnvironmentSpec(
    container_image=f"{IMAGE}:1.17--h00cdaf9_0",
    container_digest="sha256:" + "1" * 64,
    container_engine="docker",
    packages=(conda("samtools", "1.17"), tool("samtools", "1.17"), conda("htslib", "1.17")),
    deployed=True,
)
ENV_18 = EnvironmentSpec(
    container_image=f"{IMAGE}:1.18--h50ea8bc_1",
    container_engine="docker",
    packages=(conda("samtools", "1.18"), tool("samtools", "1.18"), conda("htslib", "1.18")),
    deployed=True,
)
# a Snakemake rule's conda: file without --software-deployment-method: declared, not what ran
ENV_DECLARED = EnvironmentSpec(
    packages=(conda("samtools", "1.17"), conda("zlib", "1.2.13", build="hd590300_5")),
    deployed=False,
    details={"conda_env_file": "envs/samtools.yaml"},
)
ENV_BCF = EnvironmentSpec(
    container_image="quay.io/biocontainers/bcftools:1.18--h8b25389_0",
    packages=(tool("bcftools", "1.18"),),
    deployed=True,
)


@dataclass
class World:
    """The records of the scenario, by name: runs and artifacts (records read back)."""

    runs: dict[str, fp.Run] = field(default_factory=dict)
    arts: dict[str, fp.Artifact] = field(default_factory=dict)

    def run_uids(self, *names) -> set[str]:
        return {self.runs[n].uid for n in names}

    def art_uids(self, *names) -> set[str]:
        return {self.arts[n].uid for n in names}


def engine_run(uid: str, rule: str, env, inputs=(), outputs=(), root="") -> list:
    """Events of one Snakemake-like job: started in `env`, reading `inputs` (artifact uids or
    (key, hash) places), writing `outputs` ((key, hash) pairs), finished."""
    ref = RunRef(uid=uid)
    events = [
        RunStarted(
            uid=uid,
            transform=TransformSpec(name=rule, type="rule", source_code=f"rule {rule}: ..."),
            engine="snakemake",
            reference=f"wf-1/{uid}",
            environment=env,
            created_by="testuser2",
        )
    ]
    for key, h in inputs:
        events.append(
            ArtifactUsed(run=ref, artifact=ArtifactRef(storage_root=root, key=key, hash=h))
        )
    for key, h in outputs:
        events.append(
            ArtifactRegistered(
                stem=(key.replace("/", "").replace(".", "") + "0" * 16)[:16],
                storage_root=root,
                key=key,
                hash=h,
                hash_type="blake3",
                size=100,
                suffix="." + key.rsplit(".", 1)[-1],
                run=ref,
                created_by="testuser2",
            )
        )
    events.append(RunFinished(run=ref, status="completed"))
    return events


def H(c: str) -> str:
    return c * 64


@pytest.fixture
def world(instance, fp_env) -> World:
    """raw.fastq ─ sort (samtools 1.17) → sorted17.bam ─ index (1.17) → sorted17.bam.bai
                                       sorted17.bam ─ call (bcftools) → calls17.vcf
                                                        └ published/calls17.vcf (a copy, no run)
                                       calls17.vcf ─ report (Python API) → report17.html
    raw.fastq ─ sort (samtools 1.18) → sorted18.bam ─ call (bcftools) → calls18.vcf
    raw.fastq ─ sort (declared samtools 1.17, not deployed) → declared.bam
    raw.fastq ─ fastqc (no environment) → fastqc.html"""
    root = instance.storage.root
    raw = ("raw/sample.fastq", H("a"))
    events = [
        ArtifactRegistered(
            stem="rawfastq00000000",
            storage_root=root,
            key=raw[0],
            hash=raw[1],
            hash_type="blake3",
            size=100,
            suffix=".fastq",
        )
    ]
    s17, bai17 = ("bam/sorted17.bam", H("b")), ("bam/sorted17.bam.bai", H("c"))
    # the calls a Python-API run reads (cache() checks the bytes): a real file
    calls = write(fp_env / "mydata" / "calls" / "calls17.vcf", "#" * 99 + "\n")  # 100 bytes
    c17 = ("calls/calls17.vcf", hash_file(calls).hash)
    s18, c18 = ("bam/sorted18.bam", H("e")), ("calls/calls18.vcf", H("f"))
    declared = ("bam/declared.bam", H("9"))
    events += engine_run("sort17aaaaaaaaaaaaaa", "sort", ENV_17, [raw], [s17], root)
    events += engine_run("index17aaaaaaaaaaaaa", "index", ENV_17, [s17], [bai17], root)
    events += engine_run("call17aaaaaaaaaaaaaa", "call", ENV_BCF, [s17], [c17], root)
    events += engine_run("sort18aaaaaaaaaaaaaa", "sort", ENV_18, [raw], [s18], root)
    events += engine_run("call18aaaaaaaaaaaaaa", "call", ENV_BCF, [s18], [c18], root)
    events += engine_run("sortdeclaredaaaaaaaa", "sort", ENV_DECLARED, [raw], [declared], root)
    events += engine_run(
        "fastqcaaaaaaaaaaaaaa", "fastqc", None, [raw], [("qc/fastqc.html", H("7"))], root
    )
    # the calls published elsewhere: the same bytes, registered with no run of their own
    events.append(
        ArtifactRegistered(
            stem="publishedcalls17",
            storage_root=root,
            key="published/calls17.vcf",
            hash=c17[1],
            hash_type="blake3",
            size=100,
            suffix=".vcf",
        )
    )
    instance.store.apply(events)
    w = World()
    for uid in (
        "sort17aaaaaaaaaaaaaa",
        "index17aaaaaaaaaaaaa",
        "call17aaaaaaaaaaaaaa",
        "sort18aaaaaaaaaaaaaa",
        "call18aaaaaaaaaaaaaa",
        "sortdeclaredaaaaaaaa",
        "fastqcaaaaaaaaaaaaaa",
    ):
        w.runs[uid.rstrip("a")] = fp.Run.get(uid)
    for name, key in (
        ("raw", raw[0]),
        ("sorted17", s17[0]),
        ("bai17", bai17[0]),
        ("calls17", c17[0]),
        ("sorted18", s18[0]),
        ("calls18", c18[0]),
        ("declared", declared[0]),
        ("published17", "published/calls17.vcf"),
        ("fastqc", "qc/fastqc.html"),
    ):
        w.arts[name] = fp.Artifact.get(key=key)
    # a Python-API run (its environment: this interpreter's) reads the 1.17 calls
    t = fp.Transform(name="report.py", type="script").save()
    with fp.Run(transform=t) as run:
        w.arts["calls17"].cache()
        out = fp.Artifact(write(fp_env / "mydata" / "report17.html", "<p>17</p>"), run=run).save()
    w.runs["report"], w.arts["report17"] = fp.Run.get(run.uid), out
    assert {a.uid for a in w.runs["report"].inputs} == {w.arts["calls17"].uid}
    return w


def conn_of(instance):
    return read_connection(instance.engine)


# -- queries through the relations -------------------------------------------------------------
def test_runs_and_artifacts_by_package_through_relations(world):
    runs = fp.Run.filter(
        environment__packages__name="samtools", environment__packages__version="1.17"
    ).all()
    # once each, though ENV_17 lists samtools 1.17 twice (conda and versions.yml)
    assert sorted(r.uid for r in runs) == sorted(
        world.run_uids("sort17", "index17", "sortdeclared")
    )
    assert len(runs) == 3
    assert (
        fp.Run.filter(
            environment__packages__name="samtools", environment__packages__version="1.17"
        ).count()
        == 3
    )
    # samtools 1.18's run, and the bcftools 1.18 runs
    v118 = fp.Run.filter(environment__packages__version="1.18")
    assert {r.uid for r in v118} == world.run_uids("sort18", "call17", "call18")
    arts = fp.Artifact.filter(run__environment__packages__name="samtools").all()
    assert sorted(a.uid for a in arts) == sorted(
        world.art_uids("sorted17", "bai17", "sorted18", "declared")
    )
    assert {
        a.uid
        for a in fp.Artifact.filter(
            run__environment__packages__name="samtools",
            run__environment__container_image=ENV_17.container_image,
        )
    } == world.art_uids("sorted17", "bai17")
    # the Python-API run's environment is the interpreter's: complete, what ran, no samtools
    env = world.runs["report"].environment
    assert env.complete and env.deployed and env.interpreter.startswith("CPython")
    assert fp.Run.filter(environment=env).count() == 1
    assert "samtools" not in {p.name for p in env.packages}


def test_name_and_version_match_one_package(instance):
    """An environment with samtools 1.18 and bcftools 1.17 does not hold samtools 1.17: not for
    the query layer (lookups through one relation in one filter() call hold for one related
    record), not for impact or envs --package."""
    env = EnvironmentSpec(packages=(tool("samtools", "1.18"), tool("bcftools", "1.17")))
    t = TransformSpec(name="mpileup", type="process")
    instance.store.apply([RunStarted(uid="mixedaaaaaaaaaaaaaaa", transform=t, environment=env)])
    assert not fp.Run.filter(
        environment__packages__name="samtools", environment__packages__version="1.17"
    ).exists()
    assert fp.Run.filter(
        environment__packages__name="samtools", environment__packages__version="1.18"
    ).exists()
    with conn_of(instance) as conn:
        assert Q.package_impact(conn, Q.parse_package("samtools==1.17"))["used"]["total"] == 0
        assert Q.package_impact(conn, Q.parse_package("samtools==1.18"))["used"]["total"] == 1
        assert Q.list_environments(conn, Q.parse_package("samtools==1.17"))["total"] == 0
        assert Q.list_environments(conn, Q.parse_package("bcftools==1.17"))["total"] == 1


# -- flowprov envs ------------------------------------------------------------------------------
def test_envs_lists_environments_with_their_runs(world, instance, run_flowprov):
    data = json.loads(run_flowprov("envs", "--format", "json").stdout)
    by_image = {e["container_image"]: e for e in data["environments"]}
    assert data["total"] == 5 == len(data["environments"])  # 17, 18, declared, bcftools, python
    e17 = by_image[ENV_17.container_image]
    assert e17["uid"] == ENV_17.digest()[:16] and e17["runs"] == 2
    assert e17["n_packages"] == 3 and e17["container_digest"] == ENV_17.container_digest
    assert (e17["deployed_words"], e17["complete_words"]) == ("what ran", "partial")
    assert {(t["name"], t["runs"]) for t in e17["transforms"]} == {("sort", 1), ("index", 1)}
    # a small environment is summarised by all its packages, samtools once though listed twice
    assert [(p["name"], p["version"]) for p in e17["main_packages"]] == [
        ("htslib", "1.17"),
        ("samtools", "1.17"),
    ]
    bcf = by_image[ENV_BCF.container_image]
    assert bcf["runs"] == 2
    assert [(t["name"], t["type"], t["runs"]) for t in bcf["transforms"]] == [("call", "rule", 2)]
    declared = next(e for e in data["environments"] if e["deployed"] is False)
    assert declared["deployed_words"] == "declared, not deployed" and declared["runs"] == 1
    python = next(e for e in data["environments"] if e["interpreter"])
    assert python["complete_words"] == "complete list" and python["runs"] == 1
    assert python["n_packages"] > 20 and python["transforms"][0]["name"] == "report.py"
    # most recently used first: the Python-API run came last
    assert data["environments"][0]["uid"] == python["uid"]
    # the counts are those of the records
    for e in data["environments"]:
        assert e["runs"] == fp.Run.filter(environment__uid=e["uid"]).count()
    # the text listing says the same in words
    text = run_flowprov("envs").stdout
    for word in ("what ran", "declared, not deployed", "complete list", "partial", "sort [rule]"):
        assert word in text
    assert ENV_17.container_image in text and e17["uid"] in text


def test_envs_package_filter(world, run_flowprov):
    got = json.loads(run_flowprov("envs", "--package", "samtools==1.17", "--format", "json").stdout)
    assert got["names"] == ["samtools"]
    assert {e["uid"] for e in got["environments"]} == {
        ENV_17.digest()[:16],
        ENV_DECLARED.digest()[:16],
    }
    e17 = next(e for e in got["environments"] if e["uid"] == ENV_17.digest()[:16])
    assert sorted(p["source"] for p in e17["matched_packages"]) == ["conda", "tool"]
    anyv = json.loads(run_flowprov("envs", "--package", "SAMtools", "--format", "json").stdout)
    assert anyv["total"] == 3
    text = run_flowprov("envs", "--package", "samtools==1.19").stdout
    assert "no environment holds samtools==1.19" in text and "1.17, 1.18" in text
    assert "no package named 'samtoolz'" in run_flowprov("envs", "--package", "samtoolz").stdout
    bad = run_flowprov("envs", "--package", "samtools>=1.17", check=False)
    assert bad.returncode == 1 and "flowprov error" in bad.stderr and "NAME==VERSION" in bad.stderr


def test_envs_show_one_environment(world, run_flowprov):
    uid = ENV_17.digest()[:16]
    full = json.loads(run_flowprov("envs", uid, "--format", "json").stdout)
    assert full == json.loads(run_flowprov("envs", "--show", uid[:8], "--format", "json").stdout)
    assert {(p["name"], p["version"], p["source"], p["channel"]) for p in full["packages"]} == {
        ("samtools", "1.17", "conda", "bioconda"),
        ("samtools", "1.17", "tool", None),
        ("htslib", "1.17", "conda", "bioconda"),
    }
    assert {r["uid"] for r in full["run_list"]} == world.run_uids("sort17", "index17")
    one = json.loads(run_flowprov("envs", uid, "-n", "1", "--format", "json").stdout)
    assert len(one["run_list"]) == 1 and one["runs"] == 2
    assert one["run_list"][0]["uid"] == world.runs["index17"].uid  # the newest
    text = run_flowprov("envs", uid, "-n", "1").stdout
    assert "h50ea8bc_0" in text and "bioconda" in text and "newest 1 of 2" in text
    assert run_flowprov("envs", "ffffffffffff", check=False).returncode == 1
    both = run_flowprov("envs", uid, "--show", "0" * 16, check=False)
    assert both.returncode == 1 and "give one environment" in both.stderr


def test_envs_spec_file_is_an_artifact(instance):
    root = instance.storage.root
    spec_file = ArtifactRef(storage_root=root, key="envs/samtools.yaml", hash=H("5"))
    env = EnvironmentSpec(packages=(conda("samtools", "1.17"),), spec_file=spec_file)
    instance.store.apply(
        [
            ArtifactRegistered(
                stem="envyamlsamtools0",
                storage_root=root,
                key="envs/samtools.yaml",
                hash=H("5"),
                hash_type="blake3",
                size=80,
                suffix=".yaml",
            ),
            RunStarted(
                uid="withspecaaaaaaaaaaaa",
                transform=TransformSpec(name="sort", type="rule"),
                environment=env,
            ),
        ]
    )
    with conn_of(instance) as conn:
        full = Q.environment_detail(conn, env.digest()[:16])
        listed = Q.list_environments(conn)["environments"]
    yaml = fp.Artifact.get(key="envs/samtools.yaml")
    assert full["spec_file"] == {"uid": yaml.uid, "key": "envs/samtools.yaml"}
    assert listed[0]["spec_file"] == full["spec_file"]
    from flowprov.cli_envs import software_summary

    assert "from envs/samtools.yaml" in software_summary(listed[0])


def test_ten_thousand_runs_in_one_environment_are_one_row(instance):
    env = EnvironmentSpec(
        interpreter="CPython 3.11.9", packages=(conda("samtools", "1.17"),), deployed=True
    )
    rule = TransformSpec(name="sort", type="rule")
    events = [
        RunStarted(
            uid=f"bulk{i:016d}",
            transform=rule,
            environment=env,
            reference=f"w/{i}",
            engine="snakemake",
        )
        for i in range(10_000)
    ]
    for i in range(0, len(events), 2500):
        instance.store.apply(events[i : i + 2500])
    with conn_of(instance) as conn:
        listing = Q.list_environments(conn)
        only = Q.list_environments(conn, Q.parse_package("samtools==1.17"), limit=1)
        full = Q.environment_detail(conn, env.digest()[:16], runs_limit=20)
        impact = Q.package_impact(conn, Q.parse_package("samtools==1.17"), limit=10)
    assert listing["total"] == 1 and len(listing["environments"]) == 1
    assert listing["environments"][0]["runs"] == 10_000
    assert listing["environments"][0]["transforms"][0]["runs"] == 10_000
    assert only["environments"][0]["runs"] == 10_000
    assert full["runs"] == 10_000 and len(full["run_list"]) == 20
    assert impact["used"]["total"] == 10_000 and len(impact["used"]["runs"]) == 10
    assert impact["used"]["by_transform"][0]["runs"] == 10_000


# -- flowprov impact --package ------------------------------------------------------------------
def test_impact_of_a_package_version(world, run_flowprov):
    got = json.loads(
        run_flowprov("impact", "--package", "samtools==1.17", "--format", "json").stdout
    )
    used = {r["uid"] for r in got["used"]["runs"]}
    assert used == world.run_uids("sort17", "index17", "sortdeclared")
    assert got["used"]["total"] == 3 and got["environments"] == 2
    assert got["used"]["by_deployed"] == {
        "what ran": 2,
        "declared, not deployed": 1,
        "unknown": 0,
    }
    by_t = {(d["name"], d["package_version"]): d for d in got["used"]["by_transform"]}
    assert by_t[("sort", "1.17")]["runs"] == 2 and by_t[("sort", "1.17")]["not_known_deployed"] == 1
    assert by_t[("index", "1.17")]["runs"] == 1
    made = {a["uid"] for a in got["made"]["artifacts"]}
    assert made == world.art_uids("sorted17", "bai17", "declared") and got["made"]["total"] == 3
    down = got["downstream"]
    assert {r["uid"] for r in down["runs"]} == world.run_uids("call17", "report")
    assert {a["uid"] for a in down["artifacts"]} == world.art_uids(
        "calls17", "published17", "report17"
    )
    assert (down["runs_total"], down["artifacts_total"]) == (2, 3)
    assert {d["name"]: d["runs"] for d in down["by_transform"]} == {"call": 1, "report.py": 1}
    # nothing made with 1.18, nothing that did not come of samtools 1.17
    never = world.run_uids("sort18", "call18", "fastqc") | world.art_uids(
        "sorted18", "calls18", "raw", "fastqc"
    )
    everything = (
        used | made | {r["uid"] for r in down["runs"]} | {a["uid"] for a in down["artifacts"]}
    )
    assert not (never & everything)
    # the same answer from the lineage graph of each result, walked one by one
    expected = set()
    for name in ("sorted17", "bai17", "declared"):
        g = world.arts[name].lineage("downstream")
        expected |= g.uids("artifact") | g.uids("run")
    assert expected - made == {r["uid"] for r in down["runs"]} | {
        a["uid"] for a in down["artifacts"]
    } | world.run_uids("index17")  # index17 reads sorted17: used, and downstream of it


def test_impact_of_any_version_and_depth(world, run_flowprov, instance):
    got = json.loads(run_flowprov("impact", "--package", "samtools", "--format", "json").stdout)
    assert {r["uid"] for r in got["used"]["runs"]} == world.run_uids(
        "sort17", "index17", "sortdeclared", "sort18"
    )
    assert got["versions_recorded"] == ["1.17", "1.18"]
    assert {a["uid"] for a in got["downstream"]["artifacts"]} == world.art_uids(
        "calls17", "published17", "report17", "calls18"
    )
    with conn_of(instance) as conn:
        one = Q.package_impact(conn, Q.parse_package("samtools==1.17"), depth=1)
        none = Q.package_impact(conn, Q.parse_package("samtools==1.17"), depth=0)
    assert {r["uid"] for r in one["downstream"]["runs"]} == world.run_uids("call17")
    assert {a["uid"] for a in one["downstream"]["artifacts"]} == world.art_uids(
        "calls17", "published17"
    )
    assert none["downstream"]["runs_total"] == 0 and none["made"]["total"] == 3


def test_impact_text_and_errors(world, run_flowprov):
    text = run_flowprov("impact", "--package", "samtools==1.17", "-n", "1").stdout
    assert (
        "Impact of samtools 1.17" in text
        and "3 runs (2 environments, 2 transforms) made 3 artifacts" in text
    )
    assert "declared, not deployed" in text and "more runs" in text
    assert "downstream artifacts (3)" in text and "artifacts they made (3)" in text
    none = run_flowprov("impact", "--package", "samtools==1.19").stdout
    assert "no run used samtools==1.19" in none and "1.17, 1.18" in none
    for args, msg in (
        ((), "impact takes a UID or --package"),
        ((world.runs["sort17"].uid, "--package", "samtools"), "not both"),
        (("--package", "samtools=1.17"), "NAME==VERSION"),
        (("--package", "==1.17"), "NAME==VERSION"),
    ):
        p = run_flowprov("impact", *args, check=False)
        assert p.returncode == 1 and msg in p.stderr, (args, p.stderr)
    # the UID form still works, and speaks JSON too
    by_uid = json.loads(
        run_flowprov("impact", world.arts["sorted17"].uid, "--format", "json").stdout
    )
    assert {r["uid"] for r in by_uid["runs"]} == world.run_uids("index17", "call17", "report")


def test_impact_of_a_python_package_of_the_interpreter(world, instance):
    """A Python-API run's environment is its interpreter's: names match as pip compares them."""
    from importlib.metadata import distribution

    dist = distribution("typing_extensions")  # its metadata spells it typing_extensions
    with conn_of(instance) as conn:
        got = Q.package_impact(conn, Q.parse_package(f"Typing-Extensions=={dist.version}"))
        envs = Q.list_environments(conn, Q.parse_package("typing.extensions"))
    assert got["names"] == [dist.metadata["Name"]] == envs["names"]
    assert {r["uid"] for r in got["used"]["runs"]} == {world.runs["report"].uid}
    assert {a["uid"] for a in got["made"]["artifacts"]} == {world.arts["report17"].uid}
    assert got["downstream"]["runs_total"] == 0 == got["downstream"]["artifacts_total"]
    assert got["used"]["by_deployed"]["what ran"] == 1
    assert [e["uid"] for e in envs["environments"]] == [world.runs["report"].environment.uid]


def test_hostile_input_is_a_clear_error_or_nothing(world, instance):
    """Quotes, wildcards, a NUL, 5,000 characters: as package names and uids they find nothing
    or are refused in one line, and change nothing."""
    from click.testing import CliRunner
    from flowprov.cli import cli

    from tests.test_security import HOSTILE, table_counts

    before = table_counts(instance)
    runner = CliRunner()
    for s in HOSTILE:
        for args in (
            ("envs", "--package", s),
            ("envs", "--package", f"samtools=={s}"),
            ("envs", s),
            ("impact", "--package", s),
            ("impact", "--package", f"{s}==1.17", "--format", "json"),
        ):
            r = runner.invoke(cli, list(args))
            assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.output)
            assert r.exit_code in (0, 1), (args, r.exit_code, r.output[-500:])
            if r.exit_code == 0 and "json" in args:
                assert json.loads(r.output)["used"]["total"] == 0
            elif r.exit_code == 0:
                assert "no package named" in r.output or "no environment holds" in r.output
    assert table_counts(instance) == before


@pytest.mark.parametrize(
    "text,name,version",
    [
        ("samtools==1.17", "samtools", "1.17"),
        (" samtools == 1.17 ", "samtools", "1.17"),
        ("samtools", "samtools", None),
        ("r-base==4.3.1", "r-base", "4.3.1"),
    ],
)
def test_parse_package(text, name, version):
    assert Q.parse_package(text) == Q.PackageSpec(name, version)


@pytest.mark.parametrize(
    "text",
    ["", "samtools==", "samtools>=1.17", "samtools=1.17", "a==1==2", "a\x00b", "x" * 256],
)
def test_parse_package_refuses(text):
    with pytest.raises(ValidationError, match=r"NAME\[?==VERSION|255 characters"):
        Q.parse_package(text)
