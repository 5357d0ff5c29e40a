"""The main job: `flowprov demo` plays the project flow for real and answers its questions."""

import flowprov as fp


def test_demo_plays_the_project_flow(run_flowprov, fp_env, monkeypatch):
    out = run_flowprov("demo", "--dir", str(fp_env / "demo")).stdout
    for i in range(1, 8):
        assert f"✓ {i}." in out
    assert "Transform.search('GWS CRIPSRa analysis').first() → 'GWS CRISPRa analysis'" in out
    assert "which user? testuser1 (Test User1)" in out
    assert "Notebooks created by testuser1: Project flow (1LCd8kco9lZU0000)" in out

    monkeypatch.setenv("FLOWPROV_INSTANCE", "flowprov-demo")
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

    # the figure's lineage page and picture, the review notebook's input highlighted
    import shutil

    figure_lineage = figure.lineage()
    assert {"perturbseq_R1_001.fastq.gz", "schmidt22_crispra_gws_IFNG.parquet"} <= {
        (n.record["key"] or "").rsplit("/", 1)[-1] for n in figure_lineage.artifacts
    }
    if shutil.which("dot"):
        page = fp_env / "demo" / f"lineage_{figure.uid}.html"
        assert str(page) in out and page.exists()
        assert (fp_env / "demo" / f"lineage_{figure.uid}.svg").read_text().count(
            "#ffedd5"
        ) == 2  # the figure and the review run

    # a second demo in the same folder replaces the first
    run_flowprov("demo", "--dir", str(fp_env / "demo"))
    from flowprov import instance

    instance.reset_cache()
    assert fp.Run.filter().count() == len(runs)
