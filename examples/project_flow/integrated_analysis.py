"""Step 6 — integrated analysis (testuser2), a Prefect flow recorded by flowprov.

Reads the perturb-seq counts and the screen hits, draws two figures with matplotlib:
figures/umap_fig1_score-wgs-hits.png and figures/matrixplot_fig2_score-wgs-hits-per-cluster.png.
`@track()` records the flow run and each task run with the files they read and return.

    python integrated_analysis.py <storage root>      # Prefect starts a temporary local server
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import flowprov as fp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from flowprov.prefect import track  # noqa: E402
from prefect import flow, task  # noqa: E402


def read_counts(path: Path) -> pd.DataFrame:
    if path.suffix == ".h5ad":
        import anndata

        adata = anndata.read_h5ad(path)
        counts = pd.DataFrame(adata.X, index=adata.obs_names, columns=adata.var_names)
        counts.insert(0, "perturbation", adata.obs["perturbation"].values)
        return counts
    return pd.read_parquet(path)


# Tasks hand each other files, not in-memory objects: a path argument naming a file is a recorded
# input and a returned path a recorded output, so the figures' lineage reaches the counts and the
# hits. (A folder argument is never hashed as an input unless flowprov already knows that folder.)
@task
def embed(counts_path: Path, hits_path: Path, out: Path) -> Path:
    counts = read_counts(counts_path)
    hits = list(pd.read_parquet(hits_path)["id"])
    expr = counts.drop(columns="perturbation").astype(float)
    norm = np.log1p(expr.div(expr.sum(axis=1) + 1e-9, axis=0) * 1e4)
    u, s, _ = np.linalg.svd((norm - norm.mean()).values, full_matrices=False)
    # a PCA stand-in for UMAP on this tiny matrix
    cells = pd.DataFrame(u[:, :2] * s[:2], index=norm.index, columns=["dim1", "dim2"])
    hit_genes = [g for g in hits if g in norm.columns]
    cells["score"] = norm[hit_genes].mean(axis=1)
    cells["cluster"] = pd.qcut(cells["dim1"], 3, labels=["c0", "c1", "c2"]).astype(str)
    pd.concat([cells, norm[hit_genes]], axis=1).to_parquet(out)
    return out


@task
def umap_figure(cells_path: Path, out: Path) -> Path:
    cells = pd.read_parquet(cells_path)
    fig, ax = plt.subplots(figsize=(4, 4))
    sc = ax.scatter(cells["dim1"], cells["dim2"], c=cells["score"], cmap="viridis", s=18)
    fig.colorbar(sc, label="score of WGS hits")
    ax.set(title="cells, coloured by GWS hit score", xlabel="dim 1", ylabel="dim 2")
    fig.savefig(out, dpi=80)
    return out


@task
def matrixplot_figure(cells_path: Path, out: Path) -> Path:
    cells = pd.read_parquet(cells_path)
    genes = [c for c in cells.columns if c not in ("dim1", "dim2", "score", "cluster")]
    per_cluster = cells.groupby("cluster")[genes].mean()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.imshow(per_cluster.values, cmap="magma", aspect="auto")
    ax.set(xticks=range(len(genes)), yticks=range(len(per_cluster)), title="WGS hits per cluster")
    ax.set_xticklabels(genes, rotation=45)
    ax.set_yticklabels(per_cluster.index)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    return out


# the storage root: where the figures go
ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()


@track()
@flow(name="Perform single cell analysis, integrate with CRISPRa screen", version="1.0")
def integrated_analysis() -> list[Path]:
    counts_path = fp.Artifact.filter(description="perturbseq counts").one().cache()
    hits_path = fp.Artifact.filter(description="hits from schmidt22 crispra GWS").one().cache()
    figures = ROOT / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    cells = embed(counts_path, hits_path, ROOT / "analysis_cells.parquet")
    return [
        umap_figure(cells, figures / "umap_fig1_score-wgs-hits.png"),
        matrixplot_figure(cells, figures / "matrixplot_fig2_score-wgs-hits-per-cluster.png"),
    ]


if __name__ == "__main__":
    integrated_analysis()
