"""Step 5 — post-processing (testuser2): the count matrix becomes "perturbseq counts".

Writes AnnData (.h5ad) when anndata is installed; otherwise a documented alternative, a parquet
table of cells x genes with the perturbation per cell.
"""

import gzip
import sys
from pathlib import Path

import flowprov as fp
import numpy as np
import pandas as pd

fp.track()
root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")


def load(key_end: str):
    return fp.Artifact.filter(key__endswith=f"filtered_feature_bc_matrix/{key_end}").one().cache()


with gzip.open(load("barcodes.tsv.gz"), "rt") as f:
    cells = [line.strip() for line in f]
with gzip.open(load("features.tsv.gz"), "rt") as f:
    genes = [line.split("\t")[1] for line in f]
X = np.zeros((len(cells), len(genes)), dtype=np.int32)
with gzip.open(load("matrix.mtx.gz"), "rt") as f:
    next(f), next(f)
    for line in f:
        g, c, n = map(int, line.split())
        X[c - 1, g - 1] = n
counts = pd.DataFrame(X, index=cells, columns=genes)
rng = np.random.default_rng(5)
counts.insert(0, "perturbation", rng.choice(["IFNG", "CD28", "IL2", "VAV1", "NT"], len(cells)))
try:
    import anndata

    adata = anndata.AnnData(counts.drop(columns="perturbation").astype(np.float32))
    adata.obs["perturbation"] = counts["perturbation"].values
    path = root / "schmidt22_perturbseq.h5ad"
    adata.write_h5ad(path)
except ImportError:
    path = root / "schmidt22_perturbseq.parquet"
    counts.to_parquet(path)
fp.Artifact(path, description="perturbseq counts").save()
fp.finish()
