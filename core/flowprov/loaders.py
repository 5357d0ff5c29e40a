"""`Artifact.load()`: a parsed Python object for the suffixes labs use most."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ValidationError


def _pd():
    import pandas as pd

    return pd


def load_path(path: Path, suffix: str, **kwargs):
    s = suffix.lower()
    if s == ".parquet":
        return _pd().read_parquet(path, **kwargs)
    if s in (".csv", ".csv.gz"):
        return _pd().read_csv(path, **kwargs)
    if s in (".tsv", ".tsv.gz", ".tab", ".txt.gz"):
        return _pd().read_csv(path, sep="\t", **kwargs)
    if s == ".json":
        return json.loads(path.read_text())
    if s in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(path.read_text())
    if s in (".txt", ".md", ".log"):
        return path.read_text()
    if s == ".h5ad":
        try:
            import anndata
        except ImportError as e:
            raise ValidationError("loading .h5ad needs anndata: pip install anndata") from e
        return anndata.read_h5ad(path, **kwargs)
    if s in (".png", ".jpg", ".jpeg", ".svg"):
        try:
            from IPython.display import SVG, Image

            return SVG(filename=str(path)) if s == ".svg" else Image(filename=str(path))
        except ImportError:
            return path.read_bytes()
    raise ValidationError(
        f"flowprov cannot load {suffix or 'folders'!r} into an object: use .cache() for a path "
        "or .open() for a file object"
    )
