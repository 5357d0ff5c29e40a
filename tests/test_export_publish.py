"""Exports fit to publish: instance settings (the crate's default license), places written with no
path of this machine, people pseudonymised, and each transform's code in the crate."""

# ruff: noqa: F811 - the story fixture imported from test_export is redefined as an argument
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from flowprov import instance_settings
from flowprov.errors import ValidationError
from flowprov.exports import export
from rocrate.rocrate import ROCrate

from tests.test_export import Story, story  # noqa: F401


# -- instance settings -------------------------------------------------------------------------
def test_instance_settings_set_get_unset(instance):
    assert instance_settings.get(instance, "export.license") is None
    instance_settings.set(instance, "export.license", "CC-BY-4.0")
    instance_settings.set(instance, "openlineage.namespace", "lab-a")
    assert instance_settings.get(instance, "export.license") == "CC-BY-4.0"
    assert instance_settings.all_settings(instance) == {
        "export.license": "CC-BY-4.0",
        "openlineage.namespace": "lab-a",
    }
    # beside the instance's own description, which is untouched
    assert instance.meta.get("uid") == instance.uid
    instance_settings.set(instance, "export.license", "MIT")
    assert instance_settings.get(instance, "export.license") == "MIT"
    instance_settings.set(instance, "export.license", None)
    assert instance_settings.get(instance, "export.license") is None
    with pytest.raises(ValidationError, match="known settings: export.license, openlineage"):
        instance_settings.set(instance, "export.licence", "MIT")
    with pytest.raises(ValidationError, match="known settings"):
        instance_settings.get(instance, "nope")
    with pytest.raises(ValidationError, match="empty value"):
        instance_settings.set(instance, "export.license", "  ")
    assert instance_settings.all_settings(instance) == {"openlineage.namespace": "lab-a"}


def test_instance_set_get_cli_and_the_license_note(story: Story, run_flowprov, tmp_path):
    out = run_flowprov("export", story.fig.uid, "--format", "ro-crate", "-o", str(tmp_path / "a"))
    assert "not a valid Workflow RO-Crate" in out.stdout
    assert "--license" in out.stdout and "flowprov instance set export.license" in out.stdout
    assert (
        "license"
        not in json.loads((tmp_path / "a" / "ro-crate-metadata.json").read_text())["@graph"][1]
    )

    assert run_flowprov("instance", "get", "export.license", check=False).returncode == 1
    run_flowprov("instance", "set", "export.license", "CC-BY-4.0")
    assert run_flowprov("instance", "get", "export.license").stdout.strip() == "CC-BY-4.0"
    assert "CC-BY-4.0" in run_flowprov("instance", "get").stdout
    out = run_flowprov("export", story.fig.uid, "--format", "ro-crate", "-o", str(tmp_path / "b"))
    assert "not a valid" not in out.stdout
    root = ROCrate(tmp_path / "b").root_dataset
    assert root["license"] == "CC-BY-4.0"
    # --license wins over the instance's default
    run_flowprov(
        "export",
        story.fig.uid,
        "--format",
        "ro-crate",
        "-o",
        str(tmp_path / "c"),
        "--license",
        "MIT",
    )
    assert ROCrate(tmp_path / "c").root_dataset["license"] == "MIT"
    run_flowprov("instance", "set", "export.license", "--unset")
    assert run_flowprov("instance", "get", "export.license", check=False).returncode == 1
    bad = run_flowprov("instance", "set", "export.licence", "MIT", check=False)
    assert bad.returncode != 0 and "known settings" in (bad.stdout + bad.stderr)


# -- no path of this machine -------------------------------------------------------------------
def machine_paths(instance, fp_env: Path, tmp_path: Path) -> set[str]:
    return {
        str(tmp_path),
        str(fp_env),
        os.path.expanduser("~"),
        os.getcwd(),
        str(Path(instance.storage.root)),
    } - {"/"}


def all_texts(path: Path) -> dict[str, str]:
    """Every file of an export (a file, a crate folder or a zip) as text."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n).decode("utf-8", "replace") for n in zf.namelist()}
    if path.is_file():
        return {path.name: path.read_text(errors="replace")}
    return {
        str(p.relative_to(path)): p.read_text(errors="replace")
        for p in path.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("places", ["relative", "storage"])
def test_exports_name_no_path_of_this_machine(story: Story, instance, fp_env, tmp_path, places):
    out = tmp_path / "out"
    written = [
        export(story.fig, out / "crate", "ro-crate", direction="both", places=places),
        export(
            story.fig,
            out / "crate.zip",
            "ro-crate",
            direction="both",
            places=places,
            with_data=True,
        ),
        export(story.fig, out / "fig.prov.json", "prov-json", direction="both", places=places),
        export(story.fig, out / "fig.provn", "prov-n", direction="both", places=places),
    ]
    paths = machine_paths(instance, fp_env, tmp_path)
    n = 0
    for w in written:
        for name, text in all_texts(w).items():
            n += 1
            for p in paths:
                assert p not in text, f"{p} in {w.name}/{name}"
    assert n >= 6  # metadata + PROV file of each crate, copied data, the PROV exports
    # the places are there, in their portable form
    crate = ROCrate(out / "crate")
    ids = {e.id for e in crate.data_entities}
    raw_id = next(e.id for e in crate.data_entities if e.get("identifier") == story.raw.uid)
    assert raw_id == f"urn:flowprov:storage:{story.raw.storage.uid}/screens/screen.csv"
    assert any(i.startswith("urn:flowprov:storage:") and i.endswith("/") is False for i in ids)
    assert story.raw.storage.uid in crate.root_dataset["description"]
    # today's choice keeps them (and says where they are on this machine)
    absolute = export(story.fig, out / "abs", "ro-crate", direction="both")
    assert str(instance.storage.root) in all_texts(absolute)["ro-crate-metadata.json"]


def test_pseudonymised_people(story: Story, instance, tmp_path):
    out = tmp_path / "out"
    written = [
        export(story.fig, out / "crate", "ro-crate", direction="both", people="pseudonymised"),
        export(story.fig, out / "a.json", "prov-json", direction="both", people="pseudonymised"),
        export(story.fig, out / "a.provn", "prov-n", direction="both", people="pseudonymised"),
    ]
    users = {r.created_by for r in (story.upload, story.score, story.plot, story.crash)}
    secrets = set()
    for u in users:
        secrets |= {u.handle, u.uid} | ({u.name} if u.name else set())
    assert {"alice", "bob"} <= secrets
    for w in written:
        for name, text in all_texts(w).items():
            for s in secrets:
                assert s not in text, f"{s!r} in {w.name}/{name}"
    crate = ROCrate(out / "crate")
    people = crate.get_by_type("Person")
    assert len(people) == 2 and all(p["name"].startswith("person-") for p in people)
    # stable: the same person has the same pseudonym in another export
    again = export(story.fig, out / "again", "ro-crate", direction="both", people="pseudonymised")
    assert {p.id for p in ROCrate(again).get_by_type("Person")} == {p.id for p in people}
    plot = next(
        a for a in crate.get_by_type("CreateAction") if a.get("identifier") == story.plot.uid
    )
    score = next(
        a for a in crate.get_by_type("CreateAction") if a.get("identifier") == story.score.uid
    )
    assert plot["agent"].id != score["agent"].id  # bob and alice stay two people


# -- code in the crate -------------------------------------------------------------------------
def test_transform_code_is_in_the_crate_with_its_language(instance, fp_env, tmp_path):
    import flowprov as fp

    def step(name, type_, key, code, inputs=(), engine=None, parent=None):
        t = fp.Transform(name=name, type=type_, key=key, source_code=code).save()
        with fp.Run(transform=t, engine=engine, parent=parent) as r:
            for a in inputs:
                a.cache()
            out = fp_env / "work" / f"{name}.txt"
            out.parent.mkdir(exist_ok=True)
            out.write_text(name)
            art = fp.Artifact(out, key=f"out/{name}.txt").save()
        return r, art

    _, a = step("prep.py", "script", "prep.py", "print('prep')\n")
    _, b = step("model.R", "script", "analysis/model.R", "x <- 1\n", [a])
    _, c = step("explore", "notebook", "nb/explore.ipynb", "import pandas\n", [b])
    flow = fp.Run(transform=fp.Transform(name="f", type="flow"), engine="prefect").save()
    _, d = step("clean", "task", "flows.py:clean", "def clean(): ...\n", [c], "prefect", flow)
    flow.finish()
    path = export(d, tmp_path / "crate", "ro-crate", license="CC-BY-4.0")
    crate = ROCrate(path)
    code = {
        e.id: e
        for e in crate.get_by_type("SoftwareSourceCode")
        if "ComputationalWorkflow" not in e.type
    }
    langs = {Path(i).name: (e["programmingLanguage"] or {}).get("name") for i, e in code.items()}
    assert langs == {
        "prep.py": "Python",
        "model.R": "R",
        "explore.py": "Python",
        "clean.py": "Python",
    }
    for i, e in code.items():
        assert (path / i).read_text() == {
            "prep.py": "print('prep')\n",
            "model.R": "x <- 1\n",
            "explore.py": "import pandas\n",
            "clean.py": "def clean(): ...\n",
        }[Path(i).name]
        assert e["targetProduct"]["@type"] == "SoftwareApplication" or e["targetProduct"].type
