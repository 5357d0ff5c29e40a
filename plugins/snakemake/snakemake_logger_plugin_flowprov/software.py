"""The software a Snakemake job ran with, as an EnvironmentSpec (issue 14).

Read from what the rule declares (`conda:`, `container:`, `envmodules:`, `wrapper:`, and the
workflow-level `container:`, which Snakemake copies into each rule) and from Snakemake's own
deployment objects, never re-derived: the job (found through `dag._jobid`) gives its expanded
conda spec and image URL; the DAG's `conda_envs` give the Env whose `address` is the prefix
Snakemake created (`.snakemake/conda/<hash>`), read with `conda_meta_packages`; its
`container_imgs` give the Image whose `path` is the pulled `.simg` file.

Whether it is what ran depends on --software-deployment-method (sdm): Snakemake deploys conda
envs, images and modules only when told to, and otherwise runs the rule with the host's software.
So a part is `deployed` only when its method is on (and, for conda, its prefix exists); declared
but not deployed, it is recorded and marked so. The conda prefix and image file locations are the
job's `runtime`, not its environment: Snakemake's prefix hash includes the absolute path of
`.snakemake/conda`, so the same software in two work folders would otherwise be two
environments.

A spec is built once per (rule, conda spec, image URL) and reused: 500 jobs of one rule are one
dictionary look-up each after the first. Nothing here may break the workflow: a failure records
the job without an environment and warns once (through the caller's `warn`).
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

_DIGEST_IN_REF = re.compile(r"@(sha256:[0-9a-fA-F]{64})\b")
_MODULE_VERSION = re.compile(r"^\d[\w.+-]*$")  # "1.17", "2.31.0-gcc12": a modulefile's version
# a workflow-level `conda:` directive: unindented, in a Snakefile (Snakemake keeps no record of
# it unless conda deployment is on)
_GLOBAL_CONDA = re.compile(r"^conda\s*:\s*(.+?)\s*(?:#.*)?$", re.M)

# the names Snakemake gives its deployment methods on the command line
_METHODS = {"CONDA": "conda", "APPTAINER": "apptainer", "ENV_MODULES": "env-modules"}
HOST_RAN = (
    "no software declared: the host's tools ran (whatever was on PATH); their versions are "
    "not known"
)


def deployment_methods(wf) -> set[str]:
    """The --software-deployment-method values the workflow runs with ("conda", "apptainer",
    "env-modules")."""
    methods = getattr(getattr(wf, "deployment_settings", None), "deployment_method", None) or ()
    return {_METHODS.get(getattr(m, "name", str(m)), str(m).lower()) for m in methods}


def module_package(name: str):
    """An environment module as a Package: "samtools/1.17" is the modulefile 1.17 of samtools
    (the name/version layout module systems use); a name without a version part ("samtools",
    "bio/samtools") loads the default version, which is not known here."""
    from flowprov.events import Package

    head, _, last = name.rpartition("/")
    if head and _MODULE_VERSION.match(last):
        return Package(name=head, version=last, source="module")
    return Package(name=name, source="module")


def wrapper_package(wrapper: str):
    """ "v3.3.0/bio/samtools/sort" → the wrapper bio/samtools/sort at version v3.3.0 (the wrapper
    repository's tag or branch as written); a URL is its own name, its version unknown."""
    from flowprov.events import Package

    if not re.match(r"^(https?:|file:|git\+file:)", wrapper) and "/" in wrapper:
        ref, path = wrapper.split("/", 1)
        return Package(name=path, version=ref, source="wrapper")
    return Package(name=wrapper, source="wrapper")


def _local_path(source_file) -> str | None:
    """The local file behind a Snakemake SourceFile (an env file in the workflow's folder, or a
    `file:` URL); None for remote ones and files inside a git object store."""
    from snakemake.sourcecache import LocalGitFile, LocalSourceFile

    if isinstance(source_file, LocalSourceFile) and not isinstance(source_file, LocalGitFile):
        path = source_file.get_path_or_uri(secret_free=True)
        return os.path.abspath(path) if os.path.isfile(path) else None
    if isinstance(source_file, (str, Path)) and os.path.isfile(source_file):
        return os.path.abspath(source_file)
    return None


def _uri(source_file) -> str:
    get = getattr(source_file, "get_path_or_uri", None)
    return str(get(secret_free=True)) if get else str(source_file)


class Software:
    """Environments of a workflow's jobs and of the workflow run itself."""

    def __init__(self, wf, *, roots, user, snakemake_version: str, warn):
        self.wf = wf
        self.roots = roots
        self.user = user
        self.version = snakemake_version
        self.warn = warn
        self.methods = deployment_methods(wf)
        # (rule, conda spec, image URL) → (spec, events to send before its first use, runtime)
        self.cache: dict = {}
        self._jobs: dict[int, object] = {}
        self._jobs_seen = 0
        self._workflow_conda: tuple[str, str | None] | None = None  # (as written, local path)
        self._workflow_conda_deployed = False
        self._unsettled = False  # the spec being built depends on what Snakemake has yet to do

    # -- the workflow run ----------------------------------------------------------------------
    def workflow_environment(self, files, at):
        """(EnvironmentSpec of the Snakemake process, events to send before it): its interpreter
        with every installed distribution; with a workflow-level `conda:`, that file too (and,
        deployed, the packages Snakemake injected into its own process from that env)."""
        try:
            return self._workflow_environment(files, at)
        except Exception as e:  # noqa: BLE001 - recorded without it
            self.warn(f"could not read the workflow's software environment: {e!r}")
            return None, []

    def _workflow_environment(self, files, at):
        from flowprov.environments import conda_meta_packages, python_environment
        from flowprov.events import EnvironmentSpec

        base = python_environment()
        self._workflow_conda = self._declared_workflow_conda(files)
        if self._workflow_conda is None:
            return base, []
        written, path = self._workflow_conda
        events, spec_file = self._register(path, at)
        details = dict(base.details or {})
        packages = tuple(base.packages)
        complete = base.complete
        injected = list(getattr(self.wf, "injected_conda_envs", None) or ())
        if "conda" in self.methods and injected:
            prefixes = [getattr(getattr(i, "env", None), "path", None) for i in injected]
            self._workflow_conda_deployed = True
            found = [conda_meta_packages(p) if p else None for p in prefixes]
            packages += tuple(p for pk in found if pk for p in pk)
            complete = complete and all(pk is not None for pk in found)
            details["workflow_conda"] = {
                "file": written,
                "deployed": True,
                "how": "Snakemake added the env's bin folder to its PATH, after the host's",
            }
        else:
            details["workflow_conda"] = {
                "file": written,
                "deployed": False,
                "how": "declared, but not deployed: Snakemake ran without "
                "--software-deployment-method conda",
            }
        spec = EnvironmentSpec(
            interpreter=base.interpreter,
            os=base.os,
            packages=packages,
            spec_file=spec_file,
            deployed=True,  # the interpreter is what ran; the env file's part is in details
            complete=complete,
            details=details,
        )
        return spec, events

    def _declared_workflow_conda(self, files) -> tuple[str, str | None] | None:
        for f in files:
            try:
                text = Path(f).read_text(errors="replace")
            except OSError:
                continue
            m = _GLOBAL_CONDA.search(text)
            if m is None:
                continue
            try:
                value = ast.literal_eval(m.group(1))
            except (ValueError, SyntaxError):
                return m.group(1), None  # an expression: recorded as written
            if not isinstance(value, str):
                return m.group(1), None
            path = value if os.path.isabs(value) else os.path.join(os.path.dirname(f), value)
            return value, (os.path.abspath(path) if os.path.isfile(path) else None)
        return None

    # -- jobs ----------------------------------------------------------------------------------
    def job_environment(self, jobid: int, rule_name: str, wildcards, at):
        """(the job's EnvironmentSpec or None, events to send before its run, runtime or None).
        None for a rule that runs nothing (a target rule like `all`)."""
        try:
            return self._job_environment(jobid, rule_name, wildcards, at)
        except Exception as e:  # noqa: BLE001 - the job is recorded without it
            self.warn(f"could not read the software environment of rule {rule_name}: {e!r}")
            return None, [], None

    def _job_environment(self, jobid, rule_name, wildcards, at):
        job = self._job(jobid)
        rule = job.rule if job is not None else self.wf.get_rule(rule_name)
        if getattr(rule, "norun", False):
            return None, [], None
        if job is not None:
            conda_spec, image = job.conda_env_spec, job.container_img_url
        else:  # the job is not in the DAG's table (yet): the rule's own, expanded here
            conda_spec = (
                rule.expand_conda_env(wildcards or {})
                if rule.conda_env is not None and not callable(rule.conda_env)
                else None
            )
            image = (
                rule.expand_container_img(wildcards or {})
                if isinstance(rule.container_img, str)
                else None
            )
        key = (rule.name, conda_spec, image)
        cached = self.cache.get(key)
        if cached is None:
            self._unsettled = False
            try:
                cached = list(self._build(rule, conda_spec, image, at))
            except Exception as e:  # noqa: BLE001 - once per rule, not once per job
                self.warn(f"could not read the software environment of rule {rule.name}: {e!r}")
                cached = [None, [], None]
            if not self._unsettled:
                self.cache[key] = cached
        spec, events, runtime = cached
        cached[1] = []  # the spec file is registered once, before the first run naming it
        return spec, events, runtime

    def _job(self, jobid: int):
        """Snakemake's Job object of a job id (its DAG's id table, inverted; refreshed when a
        checkpoint adds jobs)."""
        job = self._jobs.get(jobid)
        if job is None:
            table = getattr(getattr(self.wf, "dag", None), "_jobid", None)
            if table and len(table) != self._jobs_seen:  # it only grows: rebuilt when it did
                self._jobs_seen = len(table)
                self._jobs = {i: j for j, i in list(table.items())}
                job = self._jobs.get(jobid)
        return job

    def _build(self, rule, conda_spec, image, at):
        from flowprov.environments import interpreter, os_name
        from flowprov.events import EnvironmentSpec, Package

        packages = [Package(name="snakemake", version=self.version, source="engine")]
        details: dict = {}
        parts: dict[str, bool | None] = {}  # conda/container/envmodules → deployed?
        events: list = []
        runtime: dict = {}
        spec_file = None
        host_os = True
        conda_complete = False
        container = dict(container_image=None, container_digest=None, container_engine=None)

        if conda_spec is not None:
            events, spec_file, conda_packages, parts["conda"] = self._conda(
                conda_spec, image, at, details, runtime
            )
            if conda_packages is not None:
                packages += conda_packages
                conda_complete = True
        if image:
            parts["container"] = self._container(image, container, details, runtime)
            host_os = not parts["container"]  # the image's OS, not known here, ran the job
        modules = getattr(rule, "env_modules", None)
        if modules is not None:
            names = [str(n) for n in getattr(modules, "names", ())]
            details["envmodules"] = names
            parts["envmodules"] = "env-modules" in self.methods
            if parts["envmodules"]:  # as packages only when loaded: else the host's tools ran
                packages += [module_package(n) for n in names]
        if getattr(rule, "wrapper", None):
            packages.append(wrapper_package(str(rule.wrapper)))
            details["wrapper"] = str(rule.wrapper)
        if self._workflow_conda_deployed and self._workflow_conda:
            # its bin folder is on the PATH of every job's shell, after the host's
            details["workflow_conda"] = self._workflow_conda[0]

        run_block = (
            getattr(rule, "run_func", None) is not None
            and not getattr(rule, "shellcmd", None)
            and not any(getattr(rule, k, None) for k in ("script", "notebook", "wrapper", "cwl"))
        )
        if run_block:
            details["run"] = (
                "a run: block: its Python ran in Snakemake's own interpreter; a declared "
                "environment applies only to the shell() commands it calls"
            )
        if not parts:
            details["software"] = HOST_RAN
            deployed = None
        else:
            values = set(parts.values())
            deployed = values.pop() if len(values) == 1 else None
            details["deployed"] = parts
            off = [k for k, v in parts.items() if v is False]
            if off:
                methods = {"conda": "conda", "container": "apptainer", "envmodules": "env-modules"}
                details["not_deployed"] = (
                    f"declared ({', '.join(off)}) but not deployed: Snakemake ran without "
                    f"--software-deployment-method {' '.join(methods[k] for k in off)}, so the "
                    "host's software ran instead"
                )
        complete = bool(
            conda_complete
            and parts.get("conda")
            and not parts.get("container")
            and not parts.get("envmodules")
        )
        spec = EnvironmentSpec(
            interpreter=interpreter() if run_block else None,
            os=os_name() if host_os else None,
            packages=tuple(packages),
            spec_file=spec_file,
            deployed=deployed,
            complete=complete,
            details=details,
            **container,
        )
        return spec, events, runtime or None

    def _register(self, path: str | None, at):
        """The ArtifactRegistered event of an environment file, recorded where it is, and its
        ref; ([], None) without a local file."""
        if path is None:
            return [], None
        from flowprov.artifacts import in_place_event, ref_of

        event = in_place_event(path, roots=self.roots, created_by=self.user, at=at)
        return [event], ref_of(event)

    def _conda(self, conda_spec, image, at, details, runtime):
        """A rule's `conda:`: (events, spec_file, resolved packages or None, deployed)."""
        from flowprov.environments import conda_meta_packages

        kind = type(conda_spec).__name__
        events, spec_file = [], None
        if kind == "CondaEnvFileSpec":
            local = _local_path(conda_spec.file)
            events, spec_file = self._register(local, at)
            if local is None:
                details["conda_env_file"] = _uri(conda_spec.file)  # remote: by its URL
        elif kind == "CondaEnvNameSpec":
            details["conda_env_name"] = str(conda_spec.name)
        elif kind == "CondaEnvDirSpec":
            details["conda_env"] = "an existing environment, given by its prefix"
        else:
            details["conda_env"] = _uri(conda_spec)
        if "conda" not in self.methods:
            return events, spec_file, None, False

        env = self.wf.dag.conda_envs.get((conda_spec, image))
        if env is None:  # not one Snakemake set up for this job (e.g. a non-local job)
            return events, spec_file, None, None
        if env.is_containerized:
            details["conda_env"] = "inside the container image (containerized)"
            return events, spec_file, None, True
        if kind == "CondaEnvNameSpec":
            prefix = self._named_prefix(str(conda_spec.name))
            if prefix is None:
                self._unsettled = True  # conda's answer may come later: not cached
        else:
            prefix = os.path.abspath(str(env.address))
        if prefix is None or not os.path.isdir(prefix):
            if prefix is not None:
                runtime["conda_prefix"] = prefix
            details["conda_packages"] = "the environment's prefix was not found"
            return events, spec_file, None, None
        runtime["conda_prefix"] = prefix
        packages = conda_meta_packages(prefix)
        if packages is None:
            details["conda_packages"] = "the prefix has no conda-meta: packages not known"
        return events, spec_file, packages, True

    def _named_prefix(self, name: str) -> str | None:
        """The prefix of a named conda env, from the `conda info --json` Snakemake ran itself
        (its Conda objects keep the answer; no conda call from here). None until Snakemake has
        asked, or when conda lists no env of that name."""
        from snakemake.deployment.conda import Conda

        instances = dict(Conda.instances)
        host = instances.pop(None, None)  # the host's conda first, then those in images
        for conda in (host, *instances.values()):
            info = getattr(conda, "info", None) or {}
            for prefix in info.get("envs") or ():
                if os.path.basename(str(prefix).rstrip("/")) == name:
                    return str(prefix)
        return None

    def _container(self, image: str, out: dict, details, runtime) -> bool:
        """A rule's `container:` (its own or the workflow's): the reference, its digest when the
        reference pins one or the pulled image file is here, the engine. Returns deployed."""
        out["container_image"] = image
        pinned = _DIGEST_IN_REF.search(image)
        if pinned:
            out["container_digest"] = pinned.group(1).lower()
        if "apptainer" not in self.methods:
            return False
        from snakemake.deployment.singularity import Singularity

        out["container_engine"] = getattr(Singularity.instance, "binary", None) or "apptainer"
        img = self.wf.dag.container_imgs.get(image)
        path = getattr(img, "path", None)
        if not path or not os.path.isfile(path):
            details["container_file"] = "the image file was not found"
            return True
        runtime["container_image_path"] = os.path.abspath(path)
        if not pinned:
            from flowprov.hashing import hash_file

            # the file Snakemake pulled (or the local image it ran): its content is the image
            out["container_digest"] = "blake3:" + hash_file(path, "blake3").hash
        return True
