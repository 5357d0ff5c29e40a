"""Which notebook file is this kernel running? Asked by `fp.track()` inside a Jupyter kernel.

A kernel is never told its notebook by the Jupyter protocol. What can be known, in order:

1. VS Code puts the path in the kernel's namespace (`__vsc_ipynb_file__`).
2. A headless runner — `jupyter nbconvert --execute`, `jupyter execute`, `papermill` — started
   this kernel: the notebook is on its command line (the kernel's parent process).
3. Jupyter Server sets `JPY_SESSION_NAME` (ipykernel copies it to `__session__`) — unless the
   variable was merely inherited from the parent (`!jupyter nbconvert ...` run from another
   notebook passes the outer notebook's name down).
4. nbclient or papermill called from Python say nothing: the kernel's working directory (nbclient
   users set it to the notebook's folder) is searched for the one notebook holding the cell that
   is running now.

A candidate from 2 or 4 must contain the cell being executed (the one calling `track()`), so a
stale output notebook or a neighbour is never taken for the running one; when two files are
equally likely, or none, `NotebookNotFound` says so, naming what it saw — never a guess.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ValidationError

# runners whose command line names the notebook they execute: program name → kind
_RUNNERS = {
    "jupyter-nbconvert": "nbconvert",
    "jupyter-execute": "execute",
    "papermill": "papermill",
}
_MODULES = {"nbconvert": "nbconvert", "papermill": "papermill", "nbclient.cli": "execute"}
# each runner's options whose next argument is a value, not a notebook to run (`--opt=value`
# needs no entry); papermill's -p/-r take two (NAME VALUE)
_JUPYTER_APP = ("--config", "--log-level")
_VALUE_OPTIONS = {
    "nbconvert": {
        *_JUPYTER_APP,
        *("--output", "--output-dir", "--to", "--template", "--template-file", "--theme"),
        *("--writer", "--post", "--nbformat", "--reveal-prefix", "--sanitize_html"),
    },
    "execute": {*_JUPYTER_APP, "--output", "--timeout", "--startup_timeout", "--kernel_name"},
    "papermill": {
        *("--parameters_file", "-f", "--parameters_yaml", "-y", "--parameters_base64", "-b"),
        *("--engine", "--autosave-cell-every", "--kernel", "-k", "--language", "--cwd"),
        *("--stdout-file", "--stderr-file", "--log-level", "--start-timeout"),
        "--execution-timeout",
    },
}
_TWO_VALUES = {"-p", "--parameters", "-r", "--parameters_raw"}


class NotebookNotFound(ValidationError):
    """The kernel's notebook file cannot be known for sure."""


def find_notebook(ip) -> tuple[Path, str]:
    """(the notebook file this kernel runs, how it was found). Raises NotebookNotFound."""
    ns = getattr(ip, "user_ns", {}) or {}
    cell = current_cell(ip)
    vscode = ns.get("__vsc_ipynb_file__")
    if vscode and Path(vscode).is_file():
        return Path(vscode).resolve(), "VS Code"

    parent = _Process(os.getppid())
    runner, listed = parent.runner_notebooks()
    if listed:
        found = _only_one(listed, cell, f"`{runner}`'s command line")
        if found is not None:
            return found, f"`{runner}`'s command line"

    session = os.environ.get("JPY_SESSION_NAME") or ns.get("__session__")
    if session and str(session).endswith(".ipynb") and Path(session).is_file():
        if parent.environ().get("JPY_SESSION_NAME") != session:  # set for us, not inherited
            return Path(session).resolve(), "JPY_SESSION_NAME"

    here = Path.cwd()
    nearby = sorted(p.resolve() for p in here.glob("*.ipynb") if p.is_file())
    if cell is not None and nearby:
        found = _only_one(nearby, cell, f"the kernel's working directory {here}")
        if found is not None:
            return found, f"its code, in the kernel's working directory {here}"
    raise NotebookNotFound(
        "fp.track() cannot tell which notebook this kernel is running: no notebook path from "
        "Jupyter (JPY_SESSION_NAME) or VS Code, no notebook runner (nbconvert, jupyter execute, "
        f"papermill) naming it in the parent process, and no notebook in {here} that holds the "
        "cell being run. Pass the notebook's file: fp.track(path=...)"
    )


def _only_one(candidates: list[Path], cell: str | None, where: str) -> Path | None:
    """The one candidate that holds `cell` (papermill outputs stand for their input), None when
    none does; two or more is an error — flowprov will not pick one."""
    if cell is None:  # nothing to check against: only an unambiguous list is taken
        if len(candidates) == 1:
            return candidates[0]
        raise NotebookNotFound(_ambiguous(candidates, where))
    matches: list[Path] = []
    for path in candidates:
        source = _source_of(path)
        if source is not None and source not in matches and holds_cell(source, cell):
            matches.append(source)
    if len(matches) > 1:
        raise NotebookNotFound(_ambiguous(matches, where))
    return matches[0] if matches else None


def _ambiguous(paths: list[Path], where: str) -> str:
    names = ", ".join(str(p) for p in paths)
    return (
        f"fp.track() cannot tell which notebook this kernel is running: {names} (found in "
        f"{where}) all hold the cell being run. Pass the notebook's file: fp.track(path=...)"
    )


def current_cell(ip) -> str | None:
    """The source of the cell being executed now (the one that called track())."""
    kernel = getattr(ip, "kernel", None)
    try:
        code = kernel.get_parent()["content"]["code"]  # the execute_request being handled
        if isinstance(code, str) and code.strip():
            return code
    except Exception:  # noqa: BLE001 - older or foreign kernels: fall back to the history
        pass
    history = getattr(getattr(ip, "history_manager", None), "input_hist_raw", None) or []
    return history[-1] if history and history[-1].strip() else None


def code_cells(path: Path) -> list[str]:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    cells = []
    for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
        if cell.get("cell_type") == "code":
            src = cell.get("source", "")
            cells.append("".join(src) if isinstance(src, list) else str(src))
    return cells


def holds_cell(path: Path, cell: str) -> bool:
    want = cell.strip()
    return any(c.strip() == want for c in code_cells(path))


def _source_of(path: Path) -> Path | None:
    """The notebook whose code `path` holds: itself, or — for a papermill output (papermill
    writes it as it runs, next to whatever else is there) — its input, None if that is not here."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("papermill")
    except (OSError, ValueError, AttributeError):
        return path
    if not isinstance(meta, dict) or not meta.get("output_path"):
        return path
    if _resolve(str(meta["output_path"]), path) != path:
        return path  # a notebook made by papermill once, since copied or renamed: a source now
    source = _resolve(str(meta.get("input_path") or ""), path)
    return source if source is not None and source != path else None


def _resolve(typed: str, near: Path) -> Path | None:
    """A path as papermill kept it (as typed, relative to where papermill ran)."""
    if not typed.endswith(".ipynb"):
        return None
    for base in (Path.cwd(), near.parent):
        p = base / typed  # an absolute `typed` ignores base
        if p.is_file():
            return p.resolve()
    return None


class _Process:
    """Another process's command line, working directory and environment (Linux /proc)."""

    def __init__(self, pid: int):
        self.proc = Path(f"/proc/{pid}")

    def argv(self) -> list[str]:
        try:
            raw = (self.proc / "cmdline").read_bytes()
        except OSError:
            return []
        return [os.fsdecode(a) for a in raw.split(b"\0") if a]

    def cwd(self) -> Path | None:
        try:
            return Path(os.readlink(self.proc / "cwd"))
        except OSError:
            return None

    def environ(self) -> dict[str, str]:
        """The environment the process started with."""
        try:
            raw = (self.proc / "environ").read_bytes()
        except OSError:
            return {}
        pairs = (os.fsdecode(e).partition("=") for e in raw.split(b"\0") if b"=" in e)
        return {k: v for k, _, v in pairs}

    def runner_notebooks(self) -> tuple[str | None, list[Path]]:
        """(runner, the notebooks named on its command line) if this is a notebook runner."""
        argv = self.argv()
        runner, rest = _runner(argv)
        cwd = self.cwd()
        if runner is None or cwd is None:
            return None, []
        found = []
        for arg in _positional(rest, runner)[: 1 if runner == "papermill" else None]:
            p = Path(arg)
            if p.suffix != ".ipynb" and runner == "execute":
                p = p.with_suffix(".ipynb")  # `jupyter execute analysis` runs analysis.ipynb
            p = p if p.is_absolute() else cwd / p
            if p.suffix == ".ipynb" and p.is_file() and p.resolve() not in found:
                found.append(p.resolve())
        if runner in ("nbconvert", "execute"):  # these run a notebook in its own folder
            found = [p for p in found if p.parent == Path.cwd().resolve()]
        return runner, found


def _runner(argv: list[str]) -> tuple[str | None, list[str]]:
    for i, arg in enumerate(argv[:3]):
        name = Path(arg).name.removesuffix(".exe").removesuffix(".py")
        if name in _RUNNERS:
            return _RUNNERS[name], argv[i + 1 :]
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] in _MODULES:
            return _MODULES[argv[i + 1]], argv[i + 2 :]
        if name == "jupyter" and i + 1 < len(argv) and argv[i + 1] in ("nbconvert", "execute"):
            return argv[i + 1], argv[i + 2 :]  # Windows: `jupyter` starts the subcommand
    return None, []


def _positional(args: list[str], runner: str) -> list[str]:
    """The arguments that are not options or option values (papermill: INPUT OUTPUT)."""
    found, skip, takes_value = [], 0, _VALUE_OPTIONS[runner]
    for arg in args:
        if skip:
            skip -= 1
        elif arg.startswith("-"):
            if "=" not in arg:
                two = runner == "papermill" and arg in _TWO_VALUES
                skip = 2 if two else 1 if arg in takes_value else 0
        else:
            found.append(arg)
    return found
