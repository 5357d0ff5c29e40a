"""`flowprov demo`: the project flow of the seed story, played for real on generated data.

Each step is a real script, Snakemake workflow or Prefect flow (run as a subprocess) or a real
notebook (executed with nbclient) from ``examples/project_flow/``, run as the user the story
names, in <demo folder>/work with every path absolute; its output goes to <demo folder>/logs.
Afterwards the story's questions are answered from the store.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import FlowprovError

MARKER = ".flowprov-demo"
INSTANCE = "flowprov-demo"


@dataclass(frozen=True)
class Step:
    title: str
    user: str
    file: str


STEPS = (
    Step("App upload of the CRISPRa screen result", "testuser1", "upload_crispra_result.py"),
    Step("Hit identification in a notebook", "testuser2", "hit-identification.ipynb"),
    Step("Sequencer upload of fastq files", "testuser1", "chromium_10x_upload.py"),
    Step("Cell Ranger 7.2.0 (stand-in counting), Snakemake", "testuser2", "cellranger/Snakefile"),
    Step("Post-processing to perturbseq counts", "testuser2", "postprocess_cellranger.py"),
    Step("Integrated analysis, figures, a Prefect flow", "testuser2", "integrated_analysis.py"),
    Step("Review of the matrixplot figure", "testuser1", "project-flow.ipynb"),
)
USERS = {"testuser1": "Test User1", "testuser2": "Test User2"}
CELLRANGER_DOCS = "https://www.10xgenomics.com/support/software/cell-ranger/latest"


def examples_dir() -> Path:
    """examples/project_flow of a checkout (editable install) or of the installed wheel."""
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[2] / "examples" / "project_flow",
        here.parent / "_examples" / "project_flow",
    ):
        if (candidate / "upload_crispra_result.py").is_file():
            return candidate
    raise FlowprovError("cannot find the project-flow example files (examples/project_flow)")


def prepare(directory: Path):
    """A fresh demo folder and instance (a previous demo in the same folder is replaced)."""
    from . import instance as inst_mod

    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()) and not (directory / MARKER).exists():
        raise FlowprovError(
            f"{directory} exists and is not a flowprov demo folder: choose another --dir"
        )
    if (directory / MARKER).exists():
        shutil.rmtree(directory)
    from . import config as C

    if C.instance_file(INSTANCE).is_file():
        C.forget_instance(INSTANCE)
    (directory / "work").mkdir(parents=True)
    (directory / MARKER).write_text("made by `flowprov demo`; safe to delete\n")
    inst, _ = inst_mod.init(directory / "mydata", name=INSTANCE)
    from .events import UserSeen

    inst.store.apply([UserSeen(handle=h, name=n) for h, n in USERS.items()])
    return inst


def run_step(step: Step, inst, directory: Path, number: int) -> None:
    """Run one step as its user; its whole output goes to <directory>/logs. A failure is one
    FlowprovError naming the step and its cause first, then the path of the full log."""
    directory = directory.resolve()  # the steps run in another working directory
    path = examples_dir() / step.file
    log = directory / "logs" / f"{number}-{step.file.rsplit('.', 1)[0].replace('/', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = _step_env(step, inst, directory)
    work = directory / "work"
    if path.suffix == ".ipynb":
        _run_notebook(step, path, work, env, log, number)
        return
    if path.name == "Snakefile":
        cmd = [sys.executable, "-m", "snakemake", "-s", str(path), "--directory", inst.storage.root]
        cmd += ["--cores", "1", "--quiet", "rules", "--logger", "flowprov"]
        cmd += ["--logger-flowprov-name", "Cell Ranger", "--logger-flowprov-version", "7.2.0"]
        cmd += ["--logger-flowprov-reference", CELLRANGER_DOCS]
        # the workflow's config: recorded as the Cell Ranger run's params
        cmd += ["--config", "chemistry=SC3Pv3", "expect_cells=3000"]
    else:
        cmd = [sys.executable, str(path), inst.storage.root]
    with log.open("w") as out:
        out.write(f"$ {' '.join(cmd)}\n(in {work}, as {step.user})\n\n")
        out.flush()
        code = subprocess.run(
            cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    if code != 0:
        text = log.read_text(errors="replace")
        raise FlowprovError(_failure(step, number, f"exit code {code}", _causes(text), log))


def _step_env(step: Step, inst, directory: Path) -> dict:
    env = dict(os.environ)
    env.update(
        FLOWPROV_INSTANCE=INSTANCE,
        FLOWPROV_USER=step.user,
        FLOWPROV_DEMO_ROOT=inst.storage.root,
    )
    # Prefect's temporary local server keeps its database in the demo folder (an absolute path:
    # the steps run in work/); a user's own Prefect server or profile is not the demo's
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE"):
        env.pop(name, None)
    home = directory / "prefect"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FlowprovError(f"cannot create Prefect's home {home}: {e.strerror or e}") from None
    env["PREFECT_HOME"] = str(home)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    return env


def _run_notebook(step: Step, path: Path, work: Path, env: dict, log: Path, number: int) -> None:
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError as e:
        raise FlowprovError("the demo's notebooks need: pip install 'flowprov[notebook]'") from e
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    env["JPY_SESSION_NAME"] = str(path)  # what Jupyter Server tells a kernel about its notebook
    with log.open("w") as out:
        out.write(f"notebook {path}\n(kernel in {work}, as {step.user})\n\n")
        out.flush()
        try:
            # the kernel's own output (start-up chatter) goes to the log; a failing cell raises
            client.execute(env=env, stdout=out, stderr=subprocess.STDOUT)
        except CellExecutionError as e:
            out.write(f"\n{e}\n")
            cause = f"{e.ename}: {e.evalue}"
        else:
            return
    raise FlowprovError(_failure(step, number, "a cell raised", [cause], log))


# an error a program reports without a traceback (Snakemake: "MissingInputException in rule …",
# "Error in rule …"), at the start of a line
_ERROR_LINE = re.compile(r"^(?:[\w.]*(?:Error|Exception)\b|Error in rule )")


# the line ending a Python traceback: the exception's (dotted) name, alone or before ": message"
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?::\s|:?$)")


def _causes(output: str) -> list[str]:
    """What went wrong, from a step's output, in order (the first is the cause, later ones its
    consequences): the exception line ending each Python traceback; else each error line with
    the lines of its paragraph; else the last lines of the output.

    Another thread may write in the middle of a traceback (Prefect's temporary server logs its
    own failure while the flow's traceback is printed): an unindented line that is not an
    exception's does not end the traceback."""
    lines = output.splitlines()
    found, in_traceback = [], False
    for line in lines:
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
        elif in_traceback and line.strip() and not line[0].isspace():
            if _EXCEPTION_LINE.match(line):
                found.append(line.strip())
                in_traceback = False
    if found:
        return found
    for i, line in enumerate(lines):
        if _ERROR_LINE.match(line):
            paragraph = []
            for more in lines[i:]:
                if not more.strip() or (paragraph and _ERROR_LINE.match(more)):
                    break
                paragraph.append(more.strip())
            found.append(" ".join(paragraph))
    return found or [x.strip() for x in lines if x.strip()][-3:]


def _failure(step: Step, number: int, how: str, causes: list[str], log: Path) -> str:
    def short(s: str) -> str:
        return s if len(s) <= 400 else s[:399] + "…"

    lines = [
        f"demo step {number}/{len(STEPS)} failed: {step.title} "
        f"({step.file}, as {step.user}; {how})",
        f"  cause: {short(causes[0])}" if causes else "  no error message in its output",
    ]
    # the last consequence that is not the cause again (a server retrying may repeat it last)
    then = [c for c in causes[1:] if c != causes[0]]
    lines += [f"  then:  {short(c)}" for c in then[-1:]]
    lines.append(f"  full log: {log}")
    return "\n".join(lines)


def answers() -> dict:
    """The story's questions, each answered in one call."""
    from .records import Artifact, Transform, User
    from .views import view

    figure = Artifact.filter(key__contains="figures/matrixplot").one()
    notebook = Transform.search("GWS CRIPSRa analysis").first()
    first = Artifact.filter().first()
    users = User.lookup()
    return {
        "figure": figure,
        "figure_transform": figure.transform,
        "figure_read_by": list(figure.input_of),
        "ancestry": ancestry(figure.transform),
        "searched_transform": notebook,
        "artifacts_of_notebook": list(Artifact.filter(transform=notebook)),
        "first_artifact": first,
        "first_transform": first.transform,
        "first_user": first.created_by,
        "transforms_by_testuser1": list(Transform.filter(created_by=users.testuser1)),
        "notebooks_by_testuser1": list(
            Transform.filter(created_by=users.testuser1, type="notebook")
        ),
        "recent": view(),
    }


def draw_lineage(a: dict, directory: Path) -> list[Path]:
    """The figure's upstream lineage with the review run's inputs highlighted: HTML and SVG where
    Graphviz is installed, Mermaid text (no program needed) otherwise."""
    from .lineage import title_of

    review = a["figure_read_by"][-1] if a["figure_read_by"] else None
    g = a["figure"].lineage("upstream", highlight_run=review)
    title = title_of(a["figure"], "upstream")
    base = directory.resolve() / f"lineage_{a['figure'].uid}"
    if shutil.which("dot") is None:
        return [g.save(base.with_suffix(".mmd"), title=title)]
    return [g.save(base.with_suffix(suffix), title=title) for suffix in (".html", ".svg")]


def ancestry(transform) -> list[tuple[int, object, bool]]:
    """(depth, transform, shown before) of the transform and its upstream transforms, depth first:
    a tree where each transform lists the transforms whose outputs it read (one recursive query,
    Transform.parents_graph, laid out by Graph.tree)."""
    from .records import Transform

    g = transform.parents_graph()
    records = {t.uid: t for t in Transform.filter(uid__in=[n.uid for n in g.transforms])}
    return [(depth, records[g.nodes[i].uid], repeat) for depth, i, repeat in g.tree()]
