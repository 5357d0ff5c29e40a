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
    runs = fp.Run.filter().all()
    assert len(runs) == 7 and {r.status for r in runs} == {"completed"}
    figure = fp.Artifact.filter(key__contains="figures/matrixplot").one()
    assert figure.transform.type == "notebook" and figure.created_by.handle == "testuser2"
    review = fp.Transform.get("1LCd8kco9lZU0000")
    assert [r.transform for r in figure.input_of] == [
        review
    ] and review.created_by.handle == "testuser1"
    cellranger = fp.Transform.filter(name="Cell Ranger").one()
    assert cellranger.version == "7.2.0" and cellranger.reference.startswith(
        "https://www.10xgenomics.com"
    )
    matrix = fp.Artifact.filter(key__startswith="perturbseq/filtered_feature_bc_matrix/")
    assert sorted(a.key.rsplit("/", 1)[1] for a in matrix) == [
        "barcodes.tsv.gz",
        "features.tsv.gz",
        "matrix.mtx.gz",
    ]
    # the whole story is one connected graph: the review's ancestry reaches both uploads
    from flowprov.demo import ancestry

    names = {t.name for _, t, _ in ancestry(review)}
    assert {
        "Upload GWS CRISPRa result",
        "chromium_10x_upload.py",
        "Cell Ranger",
        "GWS CRISPRa analysis",
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
    assert fp.Run.filter().count() == 7
