"""`flowprov demo`: the project flow of the seed story, played for real on generated data.

Each step is a real script (run as a subprocess) or a real notebook (executed with nbclient) from
``examples/project_flow/``, run as the user the story names. Afterwards the story's questions
are answered from the store. Engine-specific steps (Cell Ranger as a Snakemake workflow, the
integrated analysis as a Prefect flow) are plain Python here until those plugins land.
"""

from __future__ import annotations

import os
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


def run_step(step: Step, inst, directory: Path) -> None:
    path = examples_dir() / step.file
    env = dict(os.environ)
    env.update(
        FLOWPROV_INSTANCE=INSTANCE,
        FLOWPROV_USER=step.user,
        FLOWPROV_DEMO_ROOT=inst.storage.root,
    )
    work = directory / "work"
    # Prefect's temporary server keeps its database here; its own chatter is not the demo's
    env.setdefault("PREFECT_HOME", str(directory / "prefect"))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if path.name == "Snakefile":
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(path),
            "--directory",
            inst.storage.root,
            "--cores",
            "1",
            "--quiet",
            "rules",
            "--logger",
            "flowprov",
            "--logger-flowprov-name",
            "Cell Ranger",
            "--logger-flowprov-version",
            "7.2.0",
            "--logger-flowprov-reference",
            CELLRANGER_DOCS,
        ]
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FlowprovError(f"demo step {step.file} failed:\n{proc.stderr[-3000:]}")
        return
    if path.suffix == ".py":
        proc = subprocess.run(
            [sys.executable, str(path), inst.storage.root],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise FlowprovError(f"demo step {step.file} failed:\n{proc.stderr[-3000:]}")
        return
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
    try:
        # the kernel's own start-up chatter (e.g. its TCP transport warning) is not the user's concern;
        # errors in cells still surface as CellExecutionError
        client.execute(env=env, stderr=subprocess.DEVNULL)
    except CellExecutionError as e:
        raise FlowprovError(f"demo notebook {step.file} failed:\n{str(e)[-3000:]}") from e


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
