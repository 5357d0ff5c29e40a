"""The `flowprov` command line, run as a real subprocess."""

import flowprov as fp
from flowprov.migrations import SCHEMA_HEAD

from tests.conftest import write


def test_init_login_info_ls_show_search_delete(run_flowprov, fp_env, db_url):
    db = ["--db", db_url] if db_url else []
    out = run_flowprov("init", "--storage", "./mydata", *db).stdout
    root = (fp_env / "mydata").resolve()
    assert "created flowprov instance" in out and "/mydata" in out
    expected_db = "postgresql+psycopg://flowprov@127.0.0.1:" if db_url else "sqlite:///"
    assert f"storage:  {root}" in out and f"database: {expected_db}" in out
    assert "connected to existing" in run_flowprov("init", "--storage", "./mydata", *db).stdout

    out = run_flowprov("login", "testuser1", "--name", "Test User1").stdout
    assert "logged in as testuser1 (Test User1)" in out
    info = run_flowprov("info").stdout
    assert "instance:  mydata" in info and f"storage:   {root}" in info
    assert "user:      testuser1 (Test User1)" in info and f"schema {SCHEMA_HEAD}" in info

    # records made through the API are what the CLI shows
    t = fp.Transform(
        name="GWS CRISPRa analysis", key="hit-identification.ipynb", type="notebook"
    ).save()
    with fp.Run(transform=t) as run:
        a = fp.Artifact(
            write(fp_env / "hits.parquet", b"hits"), description="hits from schmidt22 crispra GWS"
        ).save()

    ls = run_flowprov("ls", "artifacts").stdout
    assert a.uid in ls and "hits from schmidt22 crispra GWS" in ls and "artifacts (1)" in ls
    assert t.uid in run_flowprov("ls", "transforms").stdout
    assert run.uid in run_flowprov("ls", "runs").stdout
    assert "testuser1" in run_flowprov("ls", "users").stdout
    assert str(root) in run_flowprov("ls", "storages").stdout
    filtered = run_flowprov("ls", "artifacts", "--filter", "description__contains=hits").stdout
    assert a.uid in filtered
    assert (
        "artifacts (0)"
        in run_flowprov("ls", "artifacts", "--filter", "key__startswith=figures/").stdout
    )

    shown = run_flowprov("show", a.uid[:8]).stdout
    assert f"Artifact {a.uid}" in shown and "created by run" in shown and run.uid in shown
    assert "GWS CRISPRa analysis" in shown and str(root) in shown
    shown_run = run_flowprov("show", run.uid).stdout
    assert "outputs (1)" in shown_run and a.uid in shown_run

    found = run_flowprov("search", "GWS CRIPSRa analysis").stdout
    first_hit = next(
        line for line in found.splitlines() if "Transform" in line or "Artifact" in line
    )
    assert "Transform" in first_hit and t.uid in first_hit

    assert "Artifact" in run_flowprov("view").stdout

    refused = run_flowprov("delete", check=False)
    assert (
        refused.returncode == 1
        and "flowprov error" in refused.stderr
        and "--force" in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    out = run_flowprov("delete", "--force").stdout
    assert "deleted instance mydata" in out and "1 managed files" in out
    assert not (root / ".flowprov").exists()


def test_errors_are_one_clear_line(run_flowprov, fp_env):
    p = run_flowprov("ls", "artifacts", check=False)
    assert (
        p.returncode == 1
        and "no flowprov instance is set up" in p.stderr
        and "Traceback" not in p.stderr
    )
    run_flowprov("init", "--storage", str(fp_env / "d"))
    p = run_flowprov("ls", "artifacts", "--filter", "colour=red", check=False)
    assert p.returncode == 1 and "Artifact has no field 'colour'" in p.stderr
    p = run_flowprov("show", "doesnotexist", check=False)
    assert p.returncode == 1 and "no record has uid" in p.stderr
    p = run_flowprov(
        "init", "--storage", str(fp_env / "e"), "--db", "postgresql://u@127.0.0.1:9/x", check=False
    )
    assert p.returncode == 1 and "cannot reach database" in p.stderr
    p = run_flowprov("ls", "cats", check=False)
    assert p.returncode == 2  # usage error from click


def test_ls_fast_path_matches_full_path(run_flowprov, fp_env):
    """The SQLite fast path (no SQLAlchemy import) shows the same records as the full path."""
    run_flowprov("init", "--storage", str(fp_env / "d"))
    for i in range(60):
        write(fp_env / "f" / f"{i}.txt", f"file {i}")
    fp.save([fp.Artifact(p) for p in sorted((fp_env / "f").iterdir())])
    fast = run_flowprov("ls", "artifacts").stdout
    full = run_flowprov("ls", "artifacts", "--filter", "id__gt=0").stdout
    assert "newest 50 of 60" in fast and "newest 50 of 60" in full
    uids = [a.uid for a in fp.Artifact.filter().order_by("-id")[:50]]
    for u in uids:
        assert u in fast and u in full


def test_ls_imports_no_other_command_module_and_the_rest_load_when_asked(run_flowprov, fp_env):
    """The commands of cli_*.py and the engine plugins load when one of them (or the list) is
    asked for: `flowprov ls` pays for none of them, and nothing goes missing."""
    run_flowprov("init", "--storage", str(fp_env / "data"))
    p = run_flowprov("ls", "artifacts", env={"PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    assert "flowprov.config" in imported and "flowprov.views" in imported  # the log is read right
    assert not {m for m in imported if m.startswith(("flowprov.cli_diff", "flowprov.cli_lineage"))}
    assert "Where the histories of two artifacts" in run_flowprov("diff", "--help").stdout
    assert "nextflow" in run_flowprov("nextflow", "--help").stdout  # an engine plugin's group
    listed = run_flowprov("--help").stdout
    assert all(f"  {c} " in listed for c in ("diff", "envs", "lineage", "nextflow", "status"))
