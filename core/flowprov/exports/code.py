"""The code of a transform as a file of a crate: its language and file name.

A transform's `source_code` is what its engine or flowprov recorded: a Snakemake rule's text, a
Nextflow process's script, a script's or a notebook's code (a notebook's code cells, joined), a
Prefect task's or flow's function, a Snakemake pipeline's Snakefile. The language follows the
transform's type and engine, else the suffix of its key; nothing is guessed beyond that (a file
whose language is not known is written without programmingLanguage).
"""

from __future__ import annotations

import os
import re

# language id → (@id, name, properties) of its ComputerLanguage entity; Snakemake and Nextflow
# are Workflow RO-Crate's own ids (as the rocrate library writes them)
LANGUAGES = {
    "snakemake": (
        "https://w3id.org/workflowhub/workflow-ro-crate#snakemake",
        "Snakemake",
        {"identifier": "https://doi.org/10.1093/bioinformatics/bts480"},
        "https://snakemake.readthedocs.io",
    ),
    "nextflow": (
        "https://w3id.org/workflowhub/workflow-ro-crate#nextflow",
        "Nextflow",
        {"identifier": "https://www.nextflow.io/"},
        "https://www.nextflow.io/",
    ),
    "python": ("https://www.python.org/", "Python", {}, "https://www.python.org/"),
    "r": ("https://www.r-project.org/", "R", {}, "https://www.r-project.org/"),
    "bash": (
        "https://www.gnu.org/software/bash/",
        "Bash",
        {},
        "https://www.gnu.org/software/bash/",
    ),
    "julia": ("https://julialang.org/", "Julia", {}, "https://julialang.org/"),
}
SUFFIX = {"snakemake": ".smk", "nextflow": ".nf", "python": ".py", "r": ".R", "bash": ".sh"}
SUFFIX["julia"] = ".jl"
_BY_SUFFIX = {".py": "python", ".r": "r", ".sh": "bash", ".jl": "julia", ".ipynb": "python"}
_BY_SUFFIX.update({".smk": "snakemake", ".nf": "nextflow"})
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def language(t, engine: str | None) -> str | None:
    """The language id of a transform's recorded code, when it can be told."""
    if t.type == "rule" or (t.type == "pipeline" and engine == "snakemake"):
        return "snakemake"
    if t.type == "process" or (t.type == "pipeline" and engine == "nextflow"):
        return "nextflow"
    if engine == "prefect" or t.type in ("flow", "task", "function"):
        return "python"
    for text in (t.key, t.name):
        ext = os.path.splitext(text or "")[1].lower()
        if ext in _BY_SUFFIX:
            return _BY_SUFFIX[ext]
    return None


def file_name(t, lang: str | None) -> str:
    """code/<transform uid>/<name>: the key's last part for scripts (a notebook's code as .py),
    'Snakefile' for a Snakemake pipeline, else the transform's name with its language's suffix."""
    if t.type == "pipeline" and lang == "snakemake":
        base = "Snakefile"
    else:
        last = re.split(r"[/:\\]", t.key or "")[-1] or t.name
        stem, ext = os.path.splitext(last)
        if ext.lower() == ".ipynb" or t.type == "notebook":
            ext = ".py"  # the notebook's code cells, not the notebook
        if not ext or ext.lower() not in _BY_SUFFIX:
            stem, ext = last, SUFFIX.get(lang or "", ".txt")
        base = f"{stem}{ext}"
    return f"code/{t.uid}/{_SAFE.sub('_', base).strip('._') or 'code'}"
