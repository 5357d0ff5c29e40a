"""The software each Nextflow task ran, from the files Nextflow leaves behind.

Sources, read as Nextflow writes them:

- the trace's `container` column: the image the task ran in (Nextflow fills it only when a
  container engine is enabled for the task).
- the task wrapper `.command.run` (BashWrapperBuilder): the `### container: '<image>'` header
  (Nextflow ≥ 24.04; `'null'` without a container), the launch command in `nxf_launch()` — `docker
  run`, `podman run`, `singularity exec`, `apptainer exec`, `sarus run`, `shifter --image`,
  `ch-run` — for the engine (and the image, when there is no header), the conda activation
  (`source $(conda info …)/bin/activate <prefix>`, `source activate <prefix>` before 20.01,
  `micromamba activate <prefix>`), `spack env activate -d <env>` and `nxf_module_load <name>
  [<version>]`.
- `versions.yml`, which nf-core modules write in every task directory: `"<PROCESS>": {tool:
  version}` — read with every value a string (YAML would make `1.10` the number 1.1).
- a conda prefix that exists here: its resolved packages (`conda-meta`), the complete set.
- the lineage store: TaskRun `container`, `conda`, `spack`, `architecture`; the WorkflowRun's
  `metadata.nextflow.version` (Nextflow's own version) and `metadata.containerEngine`.

Identity: the spec holds only what names the software, so the tasks of one process in one image
with the same tool versions share one environment record. Work-directory paths never enter it. A
conda or spack prefix Nextflow created is named after a hash of its definition (`env-<32 hex>`):
that name is kept (like Snakemake's `.snakemake/conda/<hash>`), not the folder it lies in; a
prefix the pipeline named itself is kept whole.

A `.command.run` or `versions.yml` that cannot be read as Nextflow/nf-core write them adds
nothing to the task's environment and one warning naming the file — never a guess.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flowprov.environments import conda_meta_packages
from flowprov.events import EnvironmentSpec, Package

COMMAND_RUN = ".command.run"
VERSIONS_YML = "versions.yml"

_HEADER_CONTAINER = re.compile(r"^### container: '(.*)'[ \t]*$", re.M)
_LAUNCH = re.compile(r"^nxf_launch\(\) \{[ \t]*\n(.*?)\n\}", re.M | re.S)
_CONDA = re.compile(
    r"^[ \t]*(?:"
    r"source \$\(conda info --json \| awk .*\)/bin/activate"  # Nextflow ≥ 20.01
    r"|source activate"  # Nextflow < 20.01
    r'|eval "\$\(micromamba shell hook --shell bash\)" && micromamba activate'
    r"|(?:conda|mamba) activate"
    r") (.+)$",
    re.M,
)
_SPACK = re.compile(r"^[ \t]*spack env activate -d (.+)$", re.M)
_MODULE = re.compile(r"^[ \t]*nxf_module_load ([^\s(){}]+)(?: ([^\s]*))?[ \t]*$", re.M)
_ENGINES = (
    ("docker", re.compile(r"(?:^|[\s;])(?:sudo\s+)?docker\s+run\s")),
    ("podman", re.compile(r"(?:^|[\s;])(?:sudo\s+)?podman\s+run\s")),
    ("singularity", re.compile(r"(?:^|[\s;])singularity\s+(?:exec|run)\s")),
    ("apptainer", re.compile(r"(?:^|[\s;])apptainer\s+(?:exec|run)\s")),
    ("sarus", re.compile(r"(?:^|[\s;])sarus\s+run\s")),
    ("shifter", re.compile(r"(?:^|[\s;])shifter\s+--image\s")),
    ("charliecloud", re.compile(r"(?:^|[\s;])ch-run\s")),
)
_CONTENT_NAMED = re.compile(r"^[\w.+-]*?-?[0-9a-f]{32}$")  # env-<hash>, <name>-<hash>
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


class SoftwareFileError(ValueError):
    """A .command.run or versions.yml not in the form Nextflow/nf-core write: why, in words."""


@dataclass(frozen=True)
class Wrapper:
    """What a task's `.command.run` says about its software."""

    container: str | None = None
    engine: str | None = None
    conda: str | None = None
    spack: str | None = None
    modules: tuple[tuple[str, str | None], ...] = ()


def _arg(text: str) -> str | None:
    """The first shell word of `text` (Nextflow escapes paths: `/a\\ b` is '/a b')."""
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    return words[0] if words else None


def _one(values: list[str], what: str, issues: list[str]) -> str | None:
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        issues.append(f"activates {len(distinct)} {what} environments ({', '.join(distinct)})")
        return None
    return distinct[0] if distinct else None


def launch_engine(command: str) -> tuple[str | None, str | None]:
    """(engine, image) of a task's launch command; (None, None) when it runs on the host. The image
    is read by the structure Nextflow's builders give the command, else left None."""
    engine = next((name for name, rx in _ENGINES if rx.search(command)), None)
    if engine is None:
        return None, None
    try:
        words = shlex.split(command)
    except ValueError:
        return engine, None
    image = None
    if engine in ("docker", "podman"):  # ... --name $NXF_BOXID <image> <command>
        i = _index(words, "--name")
        image = words[i + 2] if i is not None and i + 2 < len(words) else None
    elif engine == "shifter":  # shifter --image <image> <command>
        i = _index(words, "--image")
        image = words[i + 1] if i is not None and i + 1 < len(words) else None
    elif engine == "charliecloud":  # ch-run <options> <image> -- <command>
        i = _index(words, "--")
        image = words[i - 1] if i else None
    else:  # singularity/apptainer exec, sarus run: <options> <image> <shell> ...
        start = next((k for k, w in enumerate(words) if w in ("exec", "run")), None)
        shell = next(
            (
                k
                for k, w in enumerate(words)
                if start is not None and k > start + 1 and PurePosixPath(w).name in ("bash", "sh")
            ),
            None,
        )
        image = words[shell - 1] if shell is not None else None
    if image is not None and (image.startswith("-") or image.startswith("$")):
        image = None
    return engine, image


def _index(words: list[str], word: str) -> int | None:
    try:
        return words.index(word)
    except ValueError:
        return None


def parse_command_run(text: str) -> tuple[Wrapper, list[str]]:
    """A task wrapper's software settings, and what in it could not be read (in words). Raises
    SoftwareFileError when `text` is not a Nextflow task wrapper at all."""
    launch = _LAUNCH.search(text)
    if launch is None or "nxf_main" not in text:
        raise SoftwareFileError("not a Nextflow task wrapper (no nxf_launch/nxf_main functions)")
    issues: list[str] = []
    header = _HEADER_CONTAINER.search(text)
    container = header.group(1).strip() if header else None
    if container in ("", "null"):
        container = None
    engine, image = _launch_engine(launch.group(1).strip())
    if container is None:
        container = image
    elif image is not None and image != container:
        issues.append(f"its header names image {container} but it launches {image}")
    conda = spack = None
    modules: tuple = ()
    if "activate" in text:  # the patterns are tried only where they can match (a hot path)
        found = [a for m in _CONDA.finditer(text) if (a := _arg(m.group(1)))]
        conda = _one(found, "conda", issues)
        found = [a for m in _SPACK.finditer(text) if (a := _arg(m.group(1)))]
        spack = _one(found, "spack", issues)
    if "nxf_module_load " in text:
        pairs = ((m.group(1), m.group(2) or None) for m in _MODULE.finditer(text))
        modules = tuple(dict.fromkeys(pairs))
    return Wrapper(container, engine, conda, spack, modules), issues


_TASK_PATH = re.compile(r"/[0-9a-f]{2}/[0-9a-f]{30}(?=[/\s\"']|$)")


@functools.lru_cache(maxsize=256)
def _launch_engine_cached(command: str) -> tuple[str | None, str | None]:
    return launch_engine(command)


def _launch_engine(command: str) -> tuple[str | None, str | None]:
    """launch_engine, once per distinct command: the tasks of a process differ only in their
    folder's path, which names no software (shlex costs about 1 ms a line)."""
    return _launch_engine_cached(_TASK_PATH.sub("/<task>", command))


def read_command_run(task_dir: Path) -> tuple[Wrapper | None, list[str]]:
    """(the wrapper's settings, issues) of a task folder; (None, []) when it has no .command.run.
    Raises SoftwareFileError when the file is there but cannot be read as a task wrapper."""
    path = task_dir / COMMAND_RUN
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, []
    except OSError as e:
        raise SoftwareFileError(f"cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SoftwareFileError("not a text file") from None
    return parse_command_run(text)


def _same_process(key: str, process: str) -> bool:
    """nf-core writes `"${task.process}"` (the full path); modules before 2022 wrote the last
    part only (getProcessName)."""
    return key == process or key.rsplit(":", 1)[-1] == process.rsplit(":", 1)[-1]


def parse_versions(data: bytes, process: str) -> tuple[tuple[Package, ...], list[str]]:
    """The tools a task's versions.yml lists for `process`, and what else in it was left out.
    Raises SoftwareFileError when it is not `"<PROCESS>": {tool: version}`."""
    import yaml

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SoftwareFileError("not a text file") from None
    try:
        # every scalar a string: `samtools: 1.10` is version "1.10", not the number 1.1
        doc = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise SoftwareFileError(f"not valid YAML{at}") from None
    if not isinstance(doc, dict) or not doc:
        raise SoftwareFileError('not a mapping "PROCESS": {tool: version}')
    mine = [k for k in doc if _same_process(k, process)]
    if not mine:
        names = ", ".join(sorted(doc))[:200]
        raise SoftwareFileError(f"lists process {names}, not this task's {process}")
    issues = []
    others = [k for k in doc if k not in mine]
    if others:
        issues.append(f"also lists other processes ({', '.join(others)[:200]}), left out")
    out = []
    for key in mine:
        tools = doc[key]
        if not isinstance(tools, dict) or not tools:
            raise SoftwareFileError(f"{key!r} is not a mapping of tool: version")
        for tool, version in tools.items():
            if not isinstance(version, str):
                raise SoftwareFileError(f"{key}: {tool}: the version is not a single value")
            # an empty version: the module's version command printed nothing
            out.append(Package(name=tool, version=version.strip() or None, source="tool"))
    return tuple(out), issues


def read_versions(task_dir: Path) -> bytes | None:
    """The raw bytes of the task's own versions.yml (None if it wrote none). A versions.yml staged
    in as an input (a symlink) is another task's, not this one's."""
    path = task_dir / VERSIONS_YML
    try:
        if path.is_symlink():
            return None
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SoftwareFileError(f"cannot be read ({e.strerror or e})") from None


def local_path(value) -> str | None:
    """A local path from what Nextflow records (`file:///x` or `/x`); None for other URLs."""
    if not isinstance(value, str) or not value.strip():
        return None
    if value.startswith("file://"):
        return value[len("file://") :]
    return None if "://" in value else value


def _env_detail(kind: str, prefix: str) -> dict:
    """How a conda/spack environment is named in the spec: by its content-derived name when
    Nextflow made it (`<cacheDir>/env-<hash>`), else by its whole prefix."""
    name = PurePosixPath(prefix.rstrip("/")).name
    if _CONTENT_NAMED.match(name):
        return {f"{kind}_env": name}
    return {f"{kind}_prefix": prefix}


class Environments:
    """Builds each task's EnvironmentSpec, once per distinct set of facts (a 100,000-task trace
    has a handful), and collects what could not be read, per file."""

    def __init__(self, workdir: Path | None = None):
        self.workdir = workdir
        self._specs: dict[tuple, EnvironmentSpec | None] = {}
        self._by_container: dict[str | None, EnvironmentSpec | None] = {}
        self._conda: dict[str, tuple[Package, ...] | None] = {}
        self._tools: dict[tuple[str, bytes], tuple[tuple[Package, ...], str | None]] = {}
        self.problems: list[tuple[str, str, str]] = []  # (file, why, what is left out)

    # -- sources ---------------------------------------------------------------------------------
    def for_trace_task(
        self, process: str, container: str | None, task_dir: Path | None
    ) -> EnvironmentSpec | None:
        """A trace row's environment: its container column, and its work folder when known."""
        if task_dir is None:  # the trace alone: one lookup per row (a 100,000-row trace)
            try:
                return self._by_container[container]
            except KeyError:
                spec = self._by_container[container] = self.spec(Wrapper(container=container))
                return spec
        wrapper = self._wrapper(task_dir)
        tools = self._task_tools(task_dir, process)
        if wrapper is not None and container and wrapper.container != container:
            if wrapper.container is not None:
                self._problem(
                    task_dir / COMMAND_RUN,
                    f"runs image {wrapper.container}, the trace says {container}",
                    "recorded the image the wrapper ran",
                )
            else:
                wrapper = Wrapper(container, *_rest(wrapper))
        if wrapper is None:
            wrapper = Wrapper(container=container)
        return self.spec(wrapper, tools=tools)

    def for_lineage_task(
        self,
        task: dict,
        engine_version: str | None = None,
        container_engine: str | None = None,
        task_dir: Path | None = None,
        process: str | None = None,
    ) -> EnvironmentSpec | None:
        """A TaskRun record's environment (container, conda, spack, architecture), with the
        Nextflow version and container engine its WorkflowRun names; and, when its work folder
        is reachable here, what its .command.run and versions.yml add."""
        container = _str(task.get("container"))
        wrapper = Wrapper(
            container=container,
            engine=container_engine if container else None,
            conda=local_path(task.get("conda")) or _str(task.get("conda")),
            spack=local_path(task.get("spack")) or _str(task.get("spack")),
        )
        tools: tuple[Package, ...] = ()
        if task_dir is not None:
            ran = self._wrapper(task_dir)
            if ran is not None:  # the record's values first; what only the wrapper knows after
                wrapper = Wrapper(
                    wrapper.container or ran.container,
                    ran.engine or wrapper.engine,
                    wrapper.conda or ran.conda,
                    wrapper.spack or ran.spack,
                    ran.modules,
                )
            if process:
                tools = self._task_tools(task_dir, process)
        return self.spec(
            wrapper, tools=tools, os_=_str(task.get("architecture")), engine_version=engine_version
        )

    # -- the spec --------------------------------------------------------------------------------
    def spec(
        self,
        wrapper: Wrapper,
        *,
        tools: tuple[Package, ...] = (),
        os_: str | None = None,
        engine_version: str | None = None,
        ran: bool = False,
    ) -> EnvironmentSpec | None:
        """The environment of these facts (None when there are none). `ran`: the source says
        this software ran even without an image, prefix or tool list (Nextflow, for a pipeline
        run)."""
        key = (wrapper, tools, os_, engine_version, ran)
        if key in self._specs:
            return self._specs[key]
        spec = self._specs[key] = self._build(wrapper, tools, os_, engine_version, ran)
        return spec

    def _build(self, w: Wrapper, tools, os_, engine_version, ran) -> EnvironmentSpec | None:
        packages: list[Package] = list(tools)
        details: dict = {}
        conda = self._conda_packages(w.conda) if w.conda else None
        if w.conda:
            details.update(_env_detail("conda", w.conda))
            packages += conda or ()
        if w.spack:
            details.update(_env_detail("spack", w.spack))
        packages += [Package(name=n, version=v, source="module") for n, v in w.modules]
        ran = ran or bool(w.container or w.conda or w.spack or w.modules or tools)
        if engine_version:
            packages.append(Package(name="nextflow", version=engine_version, source="engine"))
        if not (w.container or details or packages or os_):
            return None  # nothing known: no environment, rather than an empty one
        digest = _DIGEST.search(w.container) if w.container else None
        return EnvironmentSpec(
            os=os_,
            packages=tuple(packages),
            container_image=w.container,
            container_digest=digest.group(1) if digest else None,
            container_engine=w.engine,
            # what ran: the image it ran in, the prefix it activated, the tools it measured
            deployed=True if ran else None,
            # the whole set only when a prefix's conda-meta says it and no image wraps it
            complete=bool(conda) and not (w.container or w.spack or w.modules),
            details=details or None,
        )

    # -- files -----------------------------------------------------------------------------------
    def _wrapper(self, task_dir: Path) -> Wrapper | None:
        try:
            wrapper, issues = read_command_run(task_dir)
        except SoftwareFileError as e:
            self._problem(
                task_dir / COMMAND_RUN, str(e), "its container/conda/spack settings not recorded"
            )
            return None
        for why in issues:
            self._problem(task_dir / COMMAND_RUN, why, "that setting not recorded")
        return wrapper

    def _task_tools(self, task_dir: Path, process: str) -> tuple[Package, ...]:
        path = task_dir / VERSIONS_YML
        try:
            data = read_versions(task_dir)
        except SoftwareFileError as e:
            self._problem(path, str(e), "its tool versions not recorded")
            return ()
        if data is None:
            return ()
        key = (process, data)
        if key not in self._tools:  # the tasks of a process mostly write the same bytes
            try:
                tools, issues = parse_versions(data, process)
                self._tools[key] = (tools, "; ".join(issues) or None)
            except SoftwareFileError as e:
                self._tools[key] = ((), str(e))
        tools, why = self._tools[key]
        if why:
            self._problem(path, why, "its tool versions not recorded" if not tools else "")
        return tools

    def _conda_packages(self, prefix: str) -> tuple[Package, ...] | None:
        if prefix not in self._conda:
            found = None
            for candidate in self._prefix_candidates(prefix):
                found = conda_meta_packages(candidate)
                if found is not None:
                    break
            self._conda[prefix] = tuple(found) if found is not None else None
        return self._conda[prefix]

    def _prefix_candidates(self, prefix: str) -> list[str]:
        """The prefix where the run made it; and, for one Nextflow made in its default cache
        (`<work>/conda/env-<hash>`), the same name under the work folder given here."""
        out = [prefix]
        p = PurePosixPath(prefix.rstrip("/"))
        if self.workdir is not None and p.parent.name == "conda" and _CONTENT_NAMED.match(p.name):
            out.append(os.fspath(self.workdir / "conda" / p.name))
        return out

    def _problem(self, path: Path, why: str, left_out: str) -> None:
        self.problems.append((os.fspath(path), why, left_out))

    def warnings(self, limit: int = 20) -> list[str]:
        """One line per file that could not be read (the first `limit`), then how many more."""
        lines = [
            f"{path}: {why}" + (f"; {left}" if left else "")
            for path, why, left in self.problems[:limit]
        ]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more such files")
        return lines


def _rest(w: Wrapper) -> tuple:
    return (w.engine, w.conda, w.spack, w.modules)


def _str(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


__all__ = [
    "Environments",
    "SoftwareFileError",
    "Wrapper",
    "launch_engine",
    "parse_command_run",
    "parse_versions",
    "read_command_run",
]
