"""Step 4 — the scRNA-seq pipeline "Cell Ranger" 7.2.0 (testuser2).

HONEST STAND-IN: this is not Cell Ranger. It counts reads per (cell barcode, gene) from the
generated fastq files and writes Cell Ranger's output layout (filtered_feature_bc_matrix/ with
barcodes.tsv.gz, features.tsv.gz, matrix.mtx.gz). It is recorded as a pipeline Transform named
"Cell Ranger", version 7.2.0, referencing its documentation, as the project-flow story does.
"""

import gzip
import sys
from collections import Counter
from pathlib import Path

import flowprov as fp

root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
transform = fp.Transform(
    name="Cell Ranger",
    type="pipeline",
    version="7.2.0",
    reference="https://www.10xgenomics.com/support/software/cell-ranger/latest",
    reference_type="docs",
)
with fp.Run(transform=transform, params={"chemistry": "SC3Pv3", "expect_cells": 60}):
    r1 = fp.Artifact.filter(key="fastq/perturbseq_R1_001.fastq.gz").one()
    r2 = fp.Artifact.filter(key="fastq/perturbseq_R2_001.fastq.gz").one()
    counts: Counter = Counter()
    with gzip.open(r1.cache(), "rt") as f1, gzip.open(r2.cache(), "rt") as f2:
        for i, (l1, l2) in enumerate(zip(f1, f2, strict=True)):
            if i % 4 == 0:
                gene = l2.split("gene=")[1].strip()
            elif i % 4 == 1:
                counts[(l1[:16], gene)] += 1
    cells = sorted({c for c, _ in counts})
    genes = sorted({g for _, g in counts})
    out = root / "perturbseq" / "filtered_feature_bc_matrix"
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "barcodes.tsv.gz", "wt") as f:
        f.writelines(f"{c}-1\n" for c in cells)
    with gzip.open(out / "features.tsv.gz", "wt") as f:
        f.writelines(f"ENSG{i:011d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
    with gzip.open(out / "matrix.mtx.gz", "wt") as f:
        f.write("%%MatrixMarket matrix coordinate integer general\n")
        f.write(f"{len(genes)} {len(cells)} {len(counts)}\n")
        for (c, g), n in sorted(counts.items()):
            f.write(f"{genes.index(g) + 1} {cells.index(c) + 1} {n}\n")
    # one Artifact per file, as Cell Ranger's outputs are used one by one downstream
    fp.save([fp.Artifact(p) for p in sorted(out.iterdir())])
