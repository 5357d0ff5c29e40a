"""Step 1 — app upload (testuser1): a genome-wide CRISPRa screen result arrives from the wet lab.

In a lab this is a file dropped into an upload app; here we generate a small stand-in for the
schmidt22 IFN-γ screen (gene, guide counts, a log-fold-change score) and register it.
"""

import sys
from pathlib import Path

import flowprov as fp
import numpy as np
import pandas as pd

out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
rng = np.random.default_rng(22)
genes = [f"GENE{i:04d}" for i in range(2000)] + [
    "IFNG",
    "CD28",
    "IL2",
    "VAV1",
    "LCP2",
    "TBX21",
    "IL1R1",
]
score = rng.normal(0, 1, len(genes))
score[-7:] = [6.2, 4.8, 4.1, 3.9, 3.7, 3.5, 3.3]  # the known positive regulators stand out
screen = pd.DataFrame(
    {"id": genes, "neg|lfc": -score, "pos|lfc": score, "pos|score": np.exp(-np.abs(score))}
)
path = out_dir / "schmidt22_crispra_gws_IFNG.parquet"
screen.to_parquet(path)

transform = fp.Transform(name="Upload GWS CRISPRa result", type="upload")
with fp.Run(transform=transform):
    fp.Artifact(path, description="Raw data of schmidt22 crispra GWS").save()
