"""The `count` rule of the stand-in "Cell Ranger" Snakefile (run by Snakemake's `script:`).

HONEST STAND-IN: this is not Cell Ranger. It counts reads per (cell barcode, gene) in the
generated fastq files and writes Cell Ranger's output layout (filtered_feature_bc_matrix/ with
barcodes.tsv.gz, features.tsv.gz, matrix.mtx.gz). Snakemake's flowprov logger records the rule's
job as a run with these inputs and outputs; this script does not talk to flowprov.
"""

import gzip
from collections import Counter

snakemake = globals()["snakemake"]  # provided by Snakemake's script directive

counts: Counter = Counter()
with gzip.open(snakemake.input.r1, "rt") as f1, gzip.open(snakemake.input.r2, "rt") as f2:
    for i, (l1, l2) in enumerate(zip(f1, f2, strict=True)):
        if i % 4 == 0:
            gene = l2.split("gene=")[1].strip()
        elif i % 4 == 1:
            counts[(l1[:16], gene)] += 1
cells = sorted({c for c, _ in counts})
genes = sorted({g for _, g in counts})
with gzip.open(snakemake.output.barcodes, "wt") as f:
    f.writelines(f"{c}-1\n" for c in cells)
with gzip.open(snakemake.output.features, "wt") as f:
    f.writelines(f"ENSG{i:011d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
with gzip.open(snakemake.output.matrix, "wt") as f:
    f.write("%%MatrixMarket matrix coordinate integer general\n")
    f.write(f"{len(genes)} {len(cells)} {len(counts)}\n")
    for (c, g), n in sorted(counts.items()):
        f.write(f"{genes.index(g) + 1} {cells.index(c) + 1} {n}\n")
