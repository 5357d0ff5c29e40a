"""Step 3 — sequencer upload (testuser1): fastq files of a 10x Chromium perturb-seq run.

Generated here: a few hundred reads whose read 1 carries a cell barcode + UMI and read 2 a
transcript fragment, enough for the stand-in counting step that follows.
"""

import gzip
import sys
from pathlib import Path

import flowprov as fp
import numpy as np

fp.track()
root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
fastq_dir = root / "fastq"
fastq_dir.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(10)
bases = np.array(list("ACGT"))
barcodes = ["".join(rng.choice(bases, 16)) for _ in range(60)]
genes = ["IFNG", "CD28", "IL2", "VAV1", "LCP2", "TBX21", "IL1R1", "ACTB", "GAPDH", "CD3E"]
with (
    gzip.open(fastq_dir / "perturbseq_R1_001.fastq.gz", "wt") as r1,
    gzip.open(fastq_dir / "perturbseq_R2_001.fastq.gz", "wt") as r2,
):
    for i in range(3000):
        bc = barcodes[rng.integers(len(barcodes))]
        umi = "".join(rng.choice(bases, 12))
        gene = genes[min(int(rng.exponential(2.5)), len(genes) - 1)]
        r1.write(f"@read{i}\n{bc}{umi}\n+\n{'F' * 28}\n")
        r2.write(f"@read{i} gene={gene}\n{''.join(rng.choice(bases, 50))}\n+\n{'F' * 50}\n")
# the files are already inside the storage root: they are registered in place, not copied
fp.save([fp.Artifact(p) for p in sorted(fastq_dir.glob("*.fastq.gz"))])
fp.finish()
