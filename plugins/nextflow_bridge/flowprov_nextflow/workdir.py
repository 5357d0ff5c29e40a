"""Task work directories in Nextflow's layout: `<work>/<2 hex>/<30 hex>/`.

Inputs are staged as symlinks (resolved here to their targets); outputs are the regular files the
task wrote; `.command.sh` is the task's script. Nextflow's own files (`.command.*`, `.exitcode`)
are neither.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from flowprov.errors import FileMissingError


@dataclass
class TaskDir:
    path: Path
    inputs: list[str] = field(default_factory=list)  # resolved targets of the staged symlinks
    outputs: list[str] = field(default_factory=list)
    script: str | None = None


_PREFIX, _REST = re.compile(r"^[0-9a-f]{2}$"), re.compile(r"^[0-9a-f]{30}$")


def full_hash(workdir: str | os.PathLike | None) -> str | None:
    """A task's full hash from its work directory (`.../work/19/beb69e…` → `19/beb69e…`, all
    32 hex digits), or None if the folder is not in Nextflow's layout."""
    if not workdir:
        return None
    parts = PurePath(str(workdir).rstrip("/")).parts
    if len(parts) >= 2 and _PREFIX.match(parts[-2]) and _REST.match(parts[-1]):
        return f"{parts[-2]}/{parts[-1]}"
    return None


def locate(
    hash_: str | None, workdir_col: str | None, workdir: Path | None, where: str
) -> Path | None:
    """The task's folder, from its `workdir` column or its `hash` (`a9/0da8f1` → work/a9/0da8f1…)."""
    if workdir_col and Path(workdir_col).is_dir():
        return Path(workdir_col)
    if workdir is None:
        return None
    if workdir_col:  # the run's path on the cluster; same layout under our --workdir
        parts = Path(workdir_col).parts[-2:]
        candidate = workdir.joinpath(*parts)
        if candidate.is_dir():
            return candidate
    if hash_:
        prefix, _, rest = hash_.partition("/")
        parent = workdir / prefix
        if parent.is_dir():
            matches = sorted(p for p in parent.iterdir() if p.name.startswith(rest) and p.is_dir())
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise FileMissingError(
                    f"{where}: hash {hash_} matches several work directories in {parent}"
                )
    raise FileMissingError(
        f"{where}: no work directory for task {hash_ or workdir_col} under {workdir} "
        "(pass the run's work folder with --workdir, or leave it out to ingest the trace only)"
    )


def _nextflow_file(name: str) -> bool:
    return name.startswith(".command.") or name in (".exitcode", ".command.sh")


def scan(path: Path) -> TaskDir:
    task = TaskDir(path)
    script = path / ".command.sh"
    if script.is_file():
        task.script = script.read_text(errors="replace")
    for dirpath, dirnames, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        for name in list(dirnames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full):  # a staged input folder
                task.inputs.append(os.path.realpath(full))
                dirnames.remove(name)
        for name in sorted(filenames):
            if rel == "." and _nextflow_file(name):
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                target = os.path.realpath(full)
                if os.path.exists(target):
                    task.inputs.append(target)
            elif os.path.isfile(full):
                task.outputs.append(full)
    return task
