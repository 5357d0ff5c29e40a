"""A Snakemake workflow run is recorded in the instance it started in, even when the workflow
points FLOWPROV_INSTANCE at another instance midway in Snakemake's own process (a `run:` block
under --force-use-threads). See tests/test_run_instance_pinning for scripts."""

import flowprov as fp

SWITCHING = """
rule all:
    input: "after.txt"

rule switch:
    output: "switched.txt"
    run:
        import os
        os.environ["FLOWPROV_INSTANCE"] = "b"
        with open(output[0], "w") as f:
            f.write("switched")

rule after:
    input: "switched.txt"
    output: "after.txt"
    shell: "cp {input} {output}"
"""


def test_a_job_switching_the_instance_leaves_the_workflow_where_it_started(
    workflow, second_instance, monkeypatch
):
    workflow.write("Snakefile", SWITCHING)
    workflow.run("--force-use-threads")

    wf_run = fp.Transform.filter(type="pipeline").one().runs.one()
    assert wf_run.status == "completed"
    jobs = {r.transform.name: r for r in wf_run.children}
    assert {name: r.status for name, r in jobs.items()} == {
        "switch": "completed",
        "after": "completed",
        "all": "completed",
    }
    # keyed by their path in the workflow folder: a storage root of this instance, not of b
    assert [a.key for a in jobs["switch"].outputs] == ["switched.txt"]
    assert [a.key for a in jobs["after"].inputs] == ["switched.txt"]
    assert [a.key for a in jobs["after"].outputs] == ["after.txt"]

    monkeypatch.setenv("FLOWPROV_INSTANCE", "b")
    assert fp.Run.filter().count() == 0 and fp.Artifact.filter().count() == 0
