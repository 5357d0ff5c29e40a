"""Where the histories of two artifacts or two runs part (`flowprov diff A B`).

The walk goes upstream from A and B in step. Two artifacts are compared by content, then their
producing runs; two runs are compared directly. A pair of runs is one *step*: their transform
(name, type, version), the transform's source code (a unified diff when it differs), params
(added, removed, changed keys; nested dicts by dotted path), environment (interpreter, OS,
container, spec file, packages added / removed / changed by (source, name)) and inputs. Inputs
are paired by place (same storage and key), then by the same key or trailing path elsewhere (the
same workflow run in two folders), then by content (a renamed file), then — when one input is
left on each side — with each other; the rest are inputs of one side only. A pair whose content
differs shows both hashes and, for small text files whose recorded bytes can still be read, a
unified diff; the walk then compares the runs that made the two versions: the next step. Inputs
with equal content are not followed (nothing upstream of them can explain a difference), so a
branch ends at its first differences: a step whose inputs agree, a changed file no run made (a
source file), or `depth` steps. Identical parts are counted, not listed.

*Origins* (`Diff.origins`) are where the histories part: every difference not explained by a
differing input followed further upstream — changed code, params or environment, a changed
source file, an input of one side only, a step whose runs agree in everything recorded yet made
different bytes, or a branch cut by the depth limit. `identical` is true when there are none
(and the two artifacts hold equal content): the places of files alone (the same file in another
folder) and the key a transform is filed under are shown, not counted as differences; neither
are params that describe how an engine scheduled a run rather than what it computed
(`INCIDENTAL_PARAMS`: Snakemake's `reason`, Prefect's `upstream` task run ids).

Bytes for a text diff come only from a file (or the object-cache copy, or another place holding
the same content) whose bytes hash to the recorded version as they are read; otherwise the diff
says that version's bytes are not available. Nothing is written, no input is recorded.

Queries go level by level (all pairs of runs at one depth at once), so a diff costs a handful of
queries per step of depth, whatever the size of the lineages around it.

JSON (`Diff.to_dict()`, `flowprov diff --format json`); every key is always present (null or
empty when it does not apply):

- `format`: "flowprov-diff/1"; `kind`: "artifacts" | "runs"; `identical`: bool;
  `depth_limit`: int | null; `truncated`: bool (a differing branch was cut by the depth limit);
- `a`, `b`: the records compared — an artifact side or a run side (below);
- `start`: for artifacts, the file pair of A and B (below); null for runs;
- `steps`: list of step objects, numbered from 1 in walk order (breadth first);
- `origins`: list of {`step`: int | null (null: the start), `kind`, `summary`}, `kind` one of
  transform, code, params, environment, input, input-only-a, input-only-b, content (two
  artifacts no run made), producer (one version has a producing run, the other none), same-run
  (different outputs of one run), unexplained, depth-limit.

An artifact side: {`kind`: "artifact", `uid`, `key`, `storage`, `hash`, `hash_type`, `size`,
`run`: producing run uid | null}. A run side: {`kind`: "run", `uid`, `name`, `transform`,
`transform_uid`, `transform_type`, `version`, `status`, `started_at` (ISO 8601, UTC), `engine`,
`environment`: environment uid | null}.

A file pair: {`a`, `b`: artifact sides; `paired_by`: start | place | path | content | remaining
| spec_file;
`content`: same | different | unknown (hashes of different algorithms); `text_diff`: unified
diff | null; `text_diff_note`: why there is none | null; `producers`: {`a`, `b`: run uid | null,
`a_via_copy`, `b_via_copy`: bool — made elsewhere, same bytes}; `step`: the step comparing the
producers | null; `note`: str | null}.

A step: {`step`, `depth`, `via`: {`step`: int | null, `a_key`, `b_key`} | null (how the walk got
here: the differing pair of that step — null step: the start artifacts —, null when the two runs
are the start), `a`, `b`: run sides; `differences`: list of what differs among transform, code, params, environment, inputs;
`transform`: {`same`, `changed`: {field: {a, b}}, `notes`: [str]}; `code`: {`same`, `diff`,
`note`}; `params`: {`same`, `added`: {path: value}, `removed`: {path: value}, `changed`:
{path: {a, b}}, `ignored`: {path: {a, b}}}; `environment`: {`same`, `a`, `b` (environment
uids), `fields`: {field: {a, b}}, `packages`: {`added`: [package], `removed`: [package],
`changed`: [{source, name, a, b}], `same`: int}, `spec_file`: file pair | null, `notes`: [str]}
with a package {source, name, version, build, channel} and `a`/`b` of a change {version, build,
channel}; `inputs`: {`same`: int, `different`: [file pair], `only_a`: [artifact side],
`only_b`: [artifact side]}}.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from . import schema as S
from .errors import DoesNotExist, MultipleResultsFound, ValidationError

FORMAT = "flowprov-diff/1"
TEXT_DIFF_MAX = 64 * 1024  # bytes: larger files get their hashes compared, not their lines
# params an engine records about how it scheduled a run, not what the run computed: shown, not
# counted (Snakemake's reason differs between any two runs: "Missing output files" the first
# time, "Updated input files" the next; Prefect's upstream names task run ids, new every run)
INCIDENTAL_PARAMS: dict[str, tuple[str, ...]] = {
    "snakemake": ("reason",),
    "prefect": ("upstream",),
}
_CHUNK = 2000  # ids per IN (...) list
_SAME_BYTES_TRIED = 5  # other places holding a version's content, tried for its bytes


# -- the result model ------------------------------------------------------------------------
@dataclass
class Change:
    a: Any
    b: Any


@dataclass
class ArtifactSide:
    kind: str  # "artifact"
    uid: str
    key: str | None
    storage: str | None
    hash: str
    hash_type: str
    size: int | None
    run: str | None

    @property
    def label(self) -> str:
        """What a person calls the file: its key (or name), else its uid."""
        return self.key or self.uid


@dataclass
class RunSide:
    kind: str  # "run"
    uid: str
    name: str | None
    transform: str
    transform_uid: str
    transform_type: str
    version: str | None
    status: str
    started_at: str | None
    engine: str | None
    environment: str | None


@dataclass
class Producers:
    a: str | None = None
    b: str | None = None
    a_via_copy: bool = False
    b_via_copy: bool = False


@dataclass
class FilePair:
    a: ArtifactSide
    b: ArtifactSide
    paired_by: str
    content: str
    text_diff: str | None = None
    text_diff_note: str | None = None
    producers: Producers = field(default_factory=Producers)
    step: int | None = None
    note: str | None = None


@dataclass
class Via:
    step: int | None
    a_key: str | None
    b_key: str | None


@dataclass
class TransformDiff:
    same: bool
    changed: dict[str, Change] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class CodeDiff:
    same: bool
    diff: str | None = None
    note: str | None = None


@dataclass
class ParamsDiff:
    same: bool
    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, Change] = field(default_factory=dict)
    ignored: dict[str, Change] = field(default_factory=dict)


@dataclass
class PackageChange:
    source: str
    name: str
    a: dict[str, Any]
    b: dict[str, Any]


@dataclass
class PackagesDiff:
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[PackageChange] = field(default_factory=list)
    same: int = 0


@dataclass
class EnvironmentDiff:
    same: bool
    a: str | None = None
    b: str | None = None
    fields: dict[str, Change] = field(default_factory=dict)
    packages: PackagesDiff = field(default_factory=PackagesDiff)
    spec_file: FilePair | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class InputsDiff:
    same: int = 0
    different: list[FilePair] = field(default_factory=list)
    only_a: list[ArtifactSide] = field(default_factory=list)
    only_b: list[ArtifactSide] = field(default_factory=list)


@dataclass
class Step:
    step: int
    depth: int
    via: Via | None
    a: RunSide
    b: RunSide
    differences: list[str]
    transform: TransformDiff
    code: CodeDiff
    params: ParamsDiff
    environment: EnvironmentDiff
    inputs: InputsDiff


@dataclass
class Origin:
    step: int | None
    kind: str
    summary: str


@dataclass
class Diff:
    """Where the histories of `a` and `b` part; `identical` when they do not."""

    kind: str
    a: ArtifactSide | RunSide
    b: ArtifactSide | RunSide
    identical: bool
    start: FilePair | None
    steps: list[Step]
    origins: list[Origin]
    depth_limit: int | None
    truncated: bool
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        order = ("format", "kind", "identical", "depth_limit", "truncated", "a", "b", "start")
        return {k: d[k] for k in (*order, "steps", "origins")}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)


# -- the public entry ------------------------------------------------------------------------
def diff(a, b, depth: int | None = None) -> Diff:
    """Compare two artifacts or two runs (records, uids or unique uid prefixes): walk upstream
    from both in step until the first differences on each branch, at most `depth` steps."""
    from .db import read_connection
    from .instance import current
    from .records import Artifact, Run

    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 1):
        raise ValidationError(f"depth must be a whole number ≥ 1 or None (no limit), not {depth!r}")
    a, b = (resolve(x) if isinstance(x, str) else x for x in (a, b))
    for x in (a, b):
        if not isinstance(x, (Artifact, Run)):
            raise ValidationError(
                f"{type(x).__name__} {getattr(x, 'uid', '')}: diff compares two artifacts or two runs"
            )
        x._require_id()
    if type(a) is not type(b):
        raise ValidationError(
            f"{a.uid} is {'an artifact' if isinstance(a, Artifact) else 'a run'} and {b.uid} "
            f"{'an artifact' if isinstance(b, Artifact) else 'a run'}: diff compares two artifacts "
            "or two runs (for an artifact's producing run, see `flowprov show UID`)"
        )
    inst = current()
    with read_connection(inst.engine) as conn:
        walker = _Walker(conn, inst.storages(), depth)
        if isinstance(a, Artifact):
            return walker.artifacts(a.id, b.id)
        return walker.runs(a.id, b.id)


def resolve(uid: str):
    """The artifact or run whose uid is `uid` or starts with it (one query per table)."""
    from .records import MODELS, Artifact, Run

    uid = uid.strip()
    if not uid:
        raise ValidationError("an empty uid: give an artifact's or a run's uid (or its start)")
    found = []
    for model in (Artifact, Run):  # a whole uid first: it may also start longer ones
        found += [
            (model, u)
            for u in _scalars(select(model._table.c.uid).where(model._table.c.uid == uid))
        ]
    if not found:
        for model in (Artifact, Run):
            t = model._table
            q = select(t.c.uid).where(t.c.uid.startswith(uid, autoescape=True)).limit(2)
            found += [(model, u) for u in _scalars(q)]
    if len(found) > 1:
        raise MultipleResultsFound(
            f"{uid!r} is the start of several uids: {', '.join(u for _, u in found)}; "
            "give more characters"
        )
    if found:
        model, u = found[0]
        return model.filter(uid=u).one()
    for name, model in MODELS.items():  # a record of another kind: say which
        t = model._table
        if model in (Artifact, Run) or "uid" not in t.c:
            continue
        if _scalars(select(t.c.uid).where(t.c.uid.startswith(uid, autoescape=True)).limit(1)):
            article = "an" if name[0] in "AEIOU" else "a"
            raise ValidationError(
                f"{uid!r} is {article} {name}: diff compares two artifacts or two runs"
            )
    raise DoesNotExist(
        f"no artifact or run has uid {uid!r} (see `flowprov ls artifacts`, `ls runs`)"
    )


def _scalars(q) -> list:
    from .db import read_connection
    from .instance import current

    with read_connection(current().engine) as conn:
        return list(conn.execute(q).scalars())


# -- comparing -------------------------------------------------------------------------------
_A = S.artifacts
_ART_COLS = (
    _A.c.id,
    _A.c.uid,
    _A.c.key,
    _A.c.file_name,
    _A.c.storage_id,
    _A.c.hash,
    _A.c.hash_type,
    _A.c.size,
    _A.c.suffix,
    _A.c.n_objects,
    _A.c.managed,
    _A.c.removed,
    _A.c.run_id,
)
_ENV_FIELDS = (
    "interpreter",
    "os",
    "container_image",
    "container_digest",
    "container_engine",
    "deployed",
    "complete",
)


def _chunks(ids):
    ids = list(ids)
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _iso(v) -> str | None:
    if not isinstance(v, datetime):
        return None if v is None else str(v)
    v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return v.isoformat()


def _path_of(row) -> str:
    return row["key"] if row["key"] is not None else (row["file_name"] or row["hash"])


class _Walker:
    def __init__(self, conn, roots: dict, depth: int | None):
        self.conn = conn
        self.roots = roots
        self.depth = depth
        self.steps: list[Step] = []
        self.origins: list[Origin] = []
        self.truncated = False
        self._seen: dict[tuple[int, int], int] = {}
        self._envs: dict[tuple, EnvironmentDiff] = {}
        self._packages: dict[int, dict] = {}
        self._run_uids: dict[int, str] = {}
        self._producer_ids: dict[str, int | None] = {}  # artifact uid → its producing run's id
        self._pending_text: list = []  # (FilePair, row a, row b) awaiting their text diff
        from ._settings import settings

        self._cache_dir = settings.cache_dir

    # -- starts --------------------------------------------------------------------------
    def artifacts(self, a_id: int, b_id: int) -> Diff:
        rows = self._artifact_rows([a_id, b_id])
        ra, rb = rows[a_id], rows[b_id]
        self._producers([ra, rb])
        pair = self._file_pair(ra, rb, "start", need_text=a_id != b_id)
        self._text_diffs()
        # the start's producers are compared even when the contents agree: it is their
        # histories that are asked about
        self._walk(self._follow(pair, step=None, depth=0) if a_id != b_id else [])
        identical = pair.content == "same" and not self.origins
        return self._result("artifacts", pair.a, pair.b, identical, pair)

    def runs(self, a_id: int, b_id: int) -> Diff:
        self._walk([(a_id, b_id, None, None)] if a_id != b_id else [])
        rows = self._run_rows([a_id, b_id])
        sides = {i: self._run_side(rows[i]) for i in (a_id, b_id)}
        return self._result("runs", sides[a_id], sides[b_id], not self.origins, None)

    def _result(self, kind, a, b, identical, start) -> Diff:
        return Diff(
            kind=kind,
            a=a,
            b=b,
            identical=identical,
            start=start,
            steps=self.steps,
            origins=self.origins,
            depth_limit=self.depth,
            truncated=self.truncated,
        )

    # -- the walk, one depth at a time ---------------------------------------------------
    def _walk(self, level: list) -> None:
        """level: (run a id, run b id, Via | None, FilePair | None) pairs one step further up."""
        depth = 1
        while level:
            todo = []
            for ra, rb, via, pair in level:
                if (ra, rb) in self._seen:  # reached again (a diamond): compared once
                    if pair is not None:
                        pair.step = self._seen[(ra, rb)]
                    continue
                n = len(self.steps) + len(todo) + 1
                self._seen[(ra, rb)] = n
                if pair is not None:
                    pair.step = n
                # reached because the outputs differ (not a start, nor a start of equal content)
                todo.append((n, ra, rb, via, pair is not None and pair.content != "same"))
            if not todo:
                break
            ids = {i for _, ra, rb, _, _ in todo for i in (ra, rb)}
            runs = self._run_rows(ids)
            inputs = self._input_rows(ids)
            self._producers([r for rows in inputs.values() for r in rows])
            code = self._source_codes(
                {
                    t
                    for _, ra, rb, _, _ in todo
                    if runs[ra]["t_id"] != runs[rb]["t_id"]
                    and runs[ra]["t_hash"] != runs[rb]["t_hash"]
                    for t in (runs[ra]["t_id"], runs[rb]["t_id"])
                }
            )
            level = []
            for n, ra, rb, via, differs in todo:
                step = self._compare(n, depth, via, differs, runs[ra], runs[rb], inputs, code)
                self.steps.append(step)
                for p in step.inputs.different:
                    level += self._follow(p, n, depth)
            self._text_diffs()
            depth += 1

    def _follow(self, pair: FilePair, step: int | None, depth: int) -> list:
        """The next level's pair of runs for two versions whose content differs (or none, and
        the origin it is instead)."""
        start = step is None
        if pair.content == "same" and not start:
            return []
        pa, pb = self._producer_of(pair.a), self._producer_of(pair.b)
        what = "A and B" if start else pair.a.label
        if pa is None and pb is None:
            if pair.content != "same":
                self._origin(
                    step,
                    "content" if start else "input",
                    f"{what}: different content, and no run is recorded as making either "
                    "version (a source file, or made unrecorded)",
                )
            return []
        if pa is None or pb is None:
            side, other = ("B", "A") if pa is None else ("A", "B")
            self._origin(
                step,
                "producer",
                f"{what}: {'different content; ' if pair.content != 'same' else ''}only the "
                f"{side} version has a recorded producing run "
                f"({pair.producers.a or pair.producers.b}), the {other} version none",
            )
            return []
        if pa == pb:
            pair.note = "both were made by the same run"
            if pair.content != "same":
                self._origin(
                    step,
                    "same-run",
                    f"{what}: different outputs of the same run {pair.producers.a}",
                )
            return []
        if self.depth is not None and depth >= self.depth:
            self.truncated = True
            pair.note = "their producing runs were not compared: the depth limit was reached"
            self._origin(
                step,
                "depth-limit",
                f"{what}: different content; not followed further (--depth {self.depth}): "
                f"compare runs {pair.producers.a} and {pair.producers.b}",
            )
            return []
        return [(pa, pb, Via(step, pair.a.key, pair.b.key), pair)]

    def _origin(self, step: int | None, kind: str, summary: str) -> None:
        self.origins.append(Origin(step, kind, summary))

    # -- one step: two runs --------------------------------------------------------------
    def _compare(self, n, depth, via, outputs_differ, ra, rb, inputs, code) -> Step:
        a, b = self._run_side(ra), self._run_side(rb)
        transform = _transform_diff(ra, rb)
        code_diff = _code_diff(ra, rb, code)
        params = _params_diff(ra, rb)
        env = self._environment_diff(ra["environment_id"], rb["environment_id"])
        ins = self._inputs_diff(inputs.get(ra["id"], []), inputs.get(rb["id"], []))
        differences = [
            name
            for name, same in (
                ("transform", transform.same),
                ("code", code_diff.same),
                ("params", params.same),
                ("environment", env.same),
                ("inputs", not (ins.different or ins.only_a or ins.only_b)),
            )
            if not same
        ]
        step = Step(n, depth, via, a, b, differences, transform, code_diff, params, env, ins)
        self._step_origins(step, outputs_differ)
        return step

    def _step_origins(self, s: Step, outputs_differ: bool) -> None:
        n = s.step
        if not s.transform.same:
            changed = ", ".join(
                f"{k} {_short(c.a)} → {_short(c.b)}" for k, c in s.transform.changed.items()
            )
            self._origin(n, "transform", f"another transform: {changed}")
        if not s.code.same:
            self._origin(n, "code", f"the code of {s.a.transform} differs" + _paren(s.code.note))
        if not s.params.same:
            keys = [*s.params.changed, *s.params.added, *s.params.removed]
            self._origin(n, "params", f"params differ: {', '.join(keys)}")
        if not s.environment.same:
            self._origin(n, "environment", _env_summary(s.environment))
        for art in s.inputs.only_a:
            self._origin(n, "input-only-a", f"{art.label}: an input of A's run only")
        for art in s.inputs.only_b:
            self._origin(n, "input-only-b", f"{art.label}: an input of B's run only")
        if not s.differences and outputs_differ:
            self._origin(
                n,
                "unexplained",
                f"runs {s.a.uid} and {s.b.uid} agree in everything recorded (transform, code, "
                "params, environment, inputs) yet made different bytes: the step is not "
                "reproducible, or something flowprov does not record differed",
            )

    def _inputs_diff(self, a_rows: list, b_rows: list) -> InputsDiff:
        pairs, only_a, only_b = pair_inputs(a_rows, b_rows)
        out = InputsDiff()
        for ra, rb, how in pairs:
            if ra["id"] == rb["id"] or _same_content(ra, rb) == "same":
                out.same += 1
            else:
                out.different.append(self._file_pair(ra, rb, how))
        out.only_a = [self._artifact_side(r) for r in only_a]
        out.only_b = [self._artifact_side(r) for r in only_b]
        return out

    # -- files ---------------------------------------------------------------------------
    def _file_pair(self, ra, rb, how: str, need_text: bool = True) -> FilePair:
        content = "same" if ra["id"] == rb["id"] else _same_content(ra, rb)
        pair = FilePair(
            self._artifact_side(ra),
            self._artifact_side(rb),
            how,
            content,
            producers=Producers(
                self._run_uid(ra.get("_producer")),
                self._run_uid(rb.get("_producer")),
                bool(ra.get("_via_copy")),
                bool(rb.get("_via_copy")),
            ),
        )
        if content == "unknown":
            pair.note = (
                f"hashed with different algorithms ({ra['hash_type']}, {rb['hash_type']}): "
                "their contents cannot be compared by hash"
            )
        if content != "same" and need_text:
            self._pending_text.append((pair, ra, rb))  # filled in by _text_diffs, in a batch
        return pair

    def _artifact_side(self, row) -> ArtifactSide:
        root = self.roots.get(row["storage_id"])
        return ArtifactSide(
            kind="artifact",
            uid=row["uid"],
            key=row["key"] if row["key"] is not None else row["file_name"],
            storage=root.root if root is not None else None,
            hash=row["hash"],
            hash_type=row["hash_type"],
            size=row["size"],
            run=self._run_uid(row["run_id"]),
        )

    def _producer_of(self, side: ArtifactSide) -> int | None:
        return self._producer_ids.get(side.uid)

    def _text_diffs(self) -> None:
        """Fill in the text diffs of the file pairs made since the last call: every side's bytes
        from its own place first, then — one query for all the rest — from other places
        recorded with the same content."""
        pending, self._pending_text = self._pending_text, []
        fit = []
        for pair, ra, rb in pending:
            why_a, why_b = _unfit(ra), _unfit(rb)
            if why_a or why_b:
                pair.text_diff_note = _no_text(why_a, why_b)
            else:
                fit.append((pair, ra, rb))
        rows = {r["id"]: r for _, ra, rb in fit for r in (ra, rb)}
        got: dict[int, tuple[bytes | None, str | None]] = {
            i: self._own_bytes(r) for i, r in rows.items()
        }
        missing = [rows[i] for i, (data, _) in got.items() if data is None]
        for row, places in self._same_content_places(missing):
            for storage_id, key in places:
                data, _ = self._read_checked(row, storage_id, key)
                if data is not None:
                    got[row["id"]] = (data, None)
                    break
        for pair, ra, rb in fit:
            ta, why_a = _decoded(ra, *got[ra["id"]])
            tb, why_b = _decoded(rb, *got[rb["id"]])
            if ta is None or tb is None:
                pair.text_diff_note = _no_text(why_a, why_b)
                continue
            label_a = f"a/{ra['key'] or ra['file_name'] or ra['uid']} ({ra['uid']})"
            label_b = f"b/{rb['key'] or rb['file_name'] or rb['uid']} ({rb['uid']})"
            pair.text_diff = unified(ta, tb, label_a, label_b)

    def _own_bytes(self, row) -> tuple[bytes | None, str | None]:
        """The bytes of this version from its own place (or the object cache's copy), checked."""
        from .hashing import hash_stream
        from .storage import object_key

        if row["size"] == 0 and hash_stream([b""], row["hash_type"])[0] == row["hash"]:
            return b"", None  # nothing to read (and thousands of empty files share the hash)
        own = object_key(row["hash"], row["suffix"]) if row["managed"] else row["key"]
        why = None
        if own is not None:
            data, why = self._read_checked(row, row["storage_id"], own)
            if data is not None:
                return data, None
        if row["removed"]:
            why = f"its file was deleted by its engine ({row['removed']})"
        cached = self._cache_dir / "objects" / f"{row['hash']}{row['suffix']}"
        if cached.exists():
            data, _ = self._read_checked(row, None, str(cached))
            if data is not None:
                return data, None
        return None, f"the bytes of {row['uid']} are not available ({why or 'no copy found'})"

    def _same_content_places(self, rows: list[dict]) -> list[tuple[dict, list]]:
        """(row, [(storage_id, key)]): up to a few other places recorded with each row's
        content, in the order they were recorded."""
        from .storage import object_key

        by_hash = defaultdict(list)
        for r in rows:
            by_hash[(r["hash"], r["hash_type"])].append(r)
        out: dict = {}
        for chunk in _chunks({h for h, _ in by_hash}):
            q = (
                select(_A.c.id, _A.c.hash, _A.c.hash_type, _A.c.storage_id, _A.c.key)
                .add_columns(_A.c.managed, _A.c.suffix)
                .where(_A.c.hash.in_(chunk), _A.c.n_objects == 1)
                .order_by(_A.c.id)
            )
            for o in self.conn.execute(q):
                key = object_key(o.hash, o.suffix) if o.managed else o.key
                for r in by_hash.get((o.hash, o.hash_type), ()):
                    places = out.setdefault(r["id"], (r, []))[1]
                    if o.id != r["id"] and key is not None and len(places) < _SAME_BYTES_TRIED:
                        places.append((o.storage_id, key))
        return list(out.values())

    def _read_checked(self, row, storage_id, key) -> tuple[bytes | None, str | None]:
        """Read at most size + 1 bytes of a place (storage_id None: a local path) and keep them
        only if they are exactly the version's bytes."""
        from .hashing import hash_stream

        size = row["size"]
        try:
            if storage_id is None:
                with open(key, "rb") as f:
                    data = f.read(size + 1)
            else:
                root = self.roots.get(storage_id)
                if root is None:
                    return None, "its storage is not known here"
                with root.open(key, "rb") as f:
                    data = f.read(size + 1)
        except FileNotFoundError:
            return None, f"{key} is gone"
        except IsADirectoryError:
            return None, f"{key} is now a folder"
        except Exception as e:  # noqa: BLE001 - any storage failure: the bytes are unavailable
            return None, f"{key} could not be read: {e}"
        try:
            digest, n = hash_stream([data], row["hash_type"])
        except ValidationError:
            return None, f"recorded with {row['hash_type']}, which flowprov cannot compute"
        if n != size or digest != row["hash"]:
            return None, f"{key} now holds other bytes"
        return data, None

    # -- environments --------------------------------------------------------------------
    def _environment_diff(self, ea: int | None, eb: int | None) -> EnvironmentDiff:
        if (ea, eb) not in self._envs:
            self._envs[(ea, eb)] = self._compare_environments(ea, eb)
        return self._envs[(ea, eb)]

    def _compare_environments(self, ea, eb) -> EnvironmentDiff:
        E = S.environments
        rows = {}
        ids = [i for i in (ea, eb) if i is not None]
        if ids:
            rows = {
                r["id"]: r
                for r in self.conn.execute(select(E).where(E.c.id.in_(ids))).mappings().all()
            }
        uid_a = rows[ea]["uid"] if ea is not None else None
        uid_b = rows[eb]["uid"] if eb is not None else None
        if ea == eb:
            return EnvironmentDiff(True, uid_a, uid_b)
        if ea is None or eb is None:
            side = "A" if ea is None else "B"
            return EnvironmentDiff(
                False, uid_a, uid_b, notes=[f"no environment is recorded for {side}'s run"]
            )
        a, b = rows[ea], rows[eb]
        out = EnvironmentDiff(False, uid_a, uid_b)
        for f in _ENV_FIELDS:
            if a[f] != b[f]:
                out.fields[f] = Change(a[f], b[f])
        details = _dict_diff(a["details"] or {}, b["details"] or {})
        for path, c in details.changed.items():
            out.fields[f"details.{path}"] = c
        for path, v in details.added.items():
            out.fields[f"details.{path}"] = Change(None, v)
        for path, v in details.removed.items():
            out.fields[f"details.{path}"] = Change(v, None)
        spec_same = True
        if a["spec_file_id"] != b["spec_file_id"]:
            ids = [i for i in (a["spec_file_id"], b["spec_file_id"]) if i is not None]
            arts = self._artifact_rows(ids)
            if len(ids) == 2:
                pair = self._file_pair(arts[ids[0]], arts[ids[1]], "spec_file")
                if pair.content != "same":
                    out.spec_file, spec_same = pair, False
            else:
                spec_same = False
                only = "A" if b["spec_file_id"] is None else "B"
                out.notes.append(f"an environment file is recorded for {only} only")
        out.packages = self._packages_diff(ea, eb)
        for side, row in (("A", a), ("B", b)):
            if not row["complete"]:
                out.notes.append(
                    f"{side}'s package list is partial (only what its source reported): a "
                    "package missing from it may be unreported rather than absent"
                )
        p = out.packages
        out.same = not (out.fields or p.added or p.removed or p.changed) and spec_same
        if out.same:
            out.notes.append(
                "recorded as two environments, but this comparison finds no difference between them"
            )
        return out

    def _packages_diff(self, ea: int, eb: int) -> PackagesDiff:
        pa, pb = self._package_map(ea), self._package_map(eb)
        out = PackagesDiff()
        for k in sorted(set(pa) | set(pb)):
            if k not in pa:
                out.added += pb[k]
            elif k not in pb:
                out.removed += pa[k]
            elif [_pkg_version(p) for p in pa[k]] != [_pkg_version(p) for p in pb[k]]:
                a = _merged_versions(pa[k])
                b = _merged_versions(pb[k])
                out.changed.append(PackageChange(pa[k][0]["source"], pa[k][0]["name"], a, b))
            else:
                out.same += 1
        return out

    def _package_map(self, env_id: int) -> dict:
        if env_id not in self._packages:
            P = S.packages
            rows = self.conn.execute(
                select(P.c.source, P.c.name, P.c.version, P.c.build, P.c.channel).where(
                    P.c.environment_id == env_id
                )
            ).mappings()
            by_key = defaultdict(list)
            for r in rows:
                by_key[(r["source"], _canonical(r["name"]))].append(dict(r))
            for v in by_key.values():
                v.sort(key=lambda p: (p["version"] or "", p["build"] or "", p["channel"] or ""))
            self._packages[env_id] = dict(by_key)
        return self._packages[env_id]

    # -- reading rows --------------------------------------------------------------------
    def _artifact_rows(self, ids) -> dict[int, dict]:
        out = {}
        for chunk in _chunks(set(ids)):
            q = select(*_ART_COLS).where(_A.c.id.in_(chunk))
            out.update({r["id"]: dict(r) for r in self.conn.execute(q).mappings()})
        self._note_run_uids(r["run_id"] for r in out.values())
        return out

    def _input_rows(self, run_ids) -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = defaultdict(list)
        ri = S.run_inputs
        for chunk in _chunks(run_ids):
            q = (
                select(ri.c.run_id.label("_reader"), *_ART_COLS)
                .select_from(ri.join(_A, _A.c.id == ri.c.artifact_id))
                .where(ri.c.run_id.in_(chunk))
                .order_by(_A.c.id)
            )
            for r in self.conn.execute(q).mappings():
                out[r["_reader"]].append(dict(r))
        self._note_run_uids(r["run_id"] for rows in out.values() for r in rows)
        return out

    def _run_rows(self, ids) -> dict[int, dict]:
        r, t, e = S.runs, S.transforms, S.environments
        cols = (
            r.c.id,
            r.c.uid,
            r.c.name,
            r.c.status,
            r.c.started_at,
            r.c.params,
            r.c.engine,
            r.c.environment_id,
            t.c.id.label("t_id"),
            t.c.uid.label("t_uid"),
            t.c.name.label("t_name"),
            t.c.type.label("t_type"),
            t.c.version.label("t_version"),
            t.c.key.label("t_key"),
            t.c.hash.label("t_hash"),
            t.c.stem.label("t_stem"),
            e.c.uid.label("env_uid"),
        )
        frm = r.join(t, t.c.id == r.c.transform_id).outerjoin(e, e.c.id == r.c.environment_id)
        out = {}
        for chunk in _chunks(set(ids)):
            q = select(*cols).select_from(frm).where(r.c.id.in_(chunk))
            out.update({row["id"]: dict(row) for row in self.conn.execute(q).mappings()})
        self._run_uids.update({i: row["uid"] for i, row in out.items()})
        return out

    def _source_codes(self, transform_ids) -> dict[int, str | None]:
        t = S.transforms
        out = {}
        for chunk in _chunks(transform_ids):
            q = select(t.c.id, t.c.source_code).where(t.c.id.in_(chunk))
            out.update({row.id: row.source_code for row in self.conn.execute(q)})
        return out

    def _note_run_uids(self, ids) -> None:
        missing = {i for i in ids if i is not None and i not in self._run_uids}
        r = S.runs
        for chunk in _chunks(missing):
            q = select(r.c.id, r.c.uid).where(r.c.id.in_(chunk))
            self._run_uids.update({row.id: row.uid for row in self.conn.execute(q)})

    def _run_uid(self, run_id: int | None) -> str | None:
        if run_id is None:
            return None
        if run_id not in self._run_uids:
            self._note_run_uids([run_id])
        return self._run_uids.get(run_id)

    def _producers(self, rows: list[dict]) -> None:
        """Each row's producing run (`_producer`): its own, else — for a file no run made at its
        place, not empty — the run that first made the same bytes elsewhere (`_via_copy`), as
        the lineage walks join them."""
        orphans = defaultdict(list)
        for r in rows:
            if r["run_id"] is not None:
                r["_producer"] = r["run_id"]
            elif r["size"]:
                orphans[(r["hash"], r["hash_type"])].append(r)
        hashes = {h for h, _ in orphans}
        made: dict[tuple, int] = {}
        for chunk in _chunks(hashes):
            q = (
                select(_A.c.hash, _A.c.hash_type, _A.c.run_id)
                .where(_A.c.hash.in_(chunk), _A.c.run_id.is_not(None))
                .order_by(_A.c.id)
            )
            for row in self.conn.execute(q):
                made.setdefault((row.hash, row.hash_type), row.run_id)
        for k, rs in orphans.items():
            if k in made:
                for r in rs:
                    r["_producer"], r["_via_copy"] = made[k], True
        self._note_run_uids(r.get("_producer") for r in rows)
        for r in rows:
            self._producer_ids[r["uid"]] = r.get("_producer")

    def _run_side(self, row) -> RunSide:
        return RunSide(
            kind="run",
            uid=row["uid"],
            name=row["name"],
            transform=row["t_name"],
            transform_uid=row["t_uid"],
            transform_type=row["t_type"],
            version=row["t_version"],
            status=row["status"],
            started_at=_iso(row["started_at"]),
            engine=row["engine"],
            environment=row["env_uid"],
        )


# -- pure comparisons ------------------------------------------------------------------------
def _same_content(ra, rb) -> str:
    if ra["hash_type"] != rb["hash_type"]:
        return "unknown"
    return "same" if ra["hash"] == rb["hash"] else "different"


def pair_inputs(a_rows: list[dict], b_rows: list[dict]) -> tuple[list, list, list]:
    """(pairs (a, b, how), a's unpaired, b's unpaired). `how`: place (same storage and key or
    name), path (the same key or trailing path elsewhere, longest first), content (same hash,
    another name), remaining (the one input left on each side)."""
    pairs = []
    left_a, left_b = list(a_rows), list(b_rows)

    def take(group_a: dict, group_b: dict, how: str) -> None:
        nonlocal left_a, left_b
        used_a, used_b = set(), set()
        for k, rows_a in group_a.items():
            rows_b = group_b.get(k)
            if not rows_b:
                continue
            if how != "place" and (len(rows_a) != 1 or len(rows_b) != 1):
                continue  # ambiguous: left for a stricter rule, or unpaired
            # several versions of one place read: equal versions first, then in order
            rest_b = list(rows_b)
            for ra in rows_a:
                rb = next((x for x in rest_b if x["id"] == ra["id"]), None) or (
                    rest_b[0] if rest_b else None
                )
                if rb is None:
                    break
                rest_b.remove(rb)
                pairs.append((ra, rb, how))
                used_a.add(id(ra))
                used_b.add(id(rb))
        left_a = [r for r in left_a if id(r) not in used_a]
        left_b = [r for r in left_b if id(r) not in used_b]

    def group(rows, key) -> dict:
        out = defaultdict(list)
        for r in rows:
            k = key(r)
            if k is not None:
                out[k].append(r)
        return out

    def place(r):
        if r["key"] is not None:
            return (r["storage_id"], r["key"])
        return ("name", r["file_name"]) if r["file_name"] else None  # nameless: by content

    take(group(left_a, place), group(left_b, place), "place")
    longest = max((len(_path_of(r).split("/")) for r in left_a + left_b), default=0)
    for k in range(longest, 0, -1):
        if not (left_a and left_b):
            break

        def tail(r, k=k):
            parts = _path_of(r).split("/")
            return "/".join(parts[-k:]) if len(parts) >= k else None

        take(group(left_a, tail), group(left_b, tail), "path")
    take(
        group(left_a, lambda r: (r["hash"], r["hash_type"])),
        group(left_b, lambda r: (r["hash"], r["hash_type"])),
        "content",
    )
    if len(left_a) == 1 and len(left_b) == 1:
        pairs.append((left_a[0], left_b[0], "remaining"))
        left_a, left_b = [], []
    return pairs, left_a, left_b


def _transform_diff(ra, rb) -> TransformDiff:
    if ra["t_id"] == rb["t_id"]:
        return TransformDiff(True)
    out = TransformDiff(True)
    for f in ("name", "type", "version"):
        if ra[f"t_{f}"] != rb[f"t_{f}"]:
            out.changed[f] = Change(ra[f"t_{f}"], rb[f"t_{f}"])
    out.same = not out.changed
    if ra["t_stem"] == rb["t_stem"]:
        out.notes.append(f"two versions of one transform: {ra['t_uid']} and {rb['t_uid']}")
    elif ra["t_key"] != rb["t_key"] and out.same:
        out.notes.append(
            f"filed under different keys: {ra['t_key']} and {rb['t_key']} (not counted as a "
            "difference: the same code can live in two places)"
        )
    return out


def _code_diff(ra, rb, code: dict) -> CodeDiff:
    if ra["t_id"] == rb["t_id"]:
        return CodeDiff(True)
    if ra["t_hash"] is None and rb["t_hash"] is None:  # unknown, not known to differ: said so
        return CodeDiff(True, None, "no source code is recorded for either transform")
    if ra["t_hash"] == rb["t_hash"]:
        return CodeDiff(True)
    ca, cb = code.get(ra["t_id"]), code.get(rb["t_id"])
    if ca is None or cb is None:
        missing = "either" if ca is None and cb is None else ("A's" if ca is None else "B's")
        return CodeDiff(False, None, f"no source code is recorded for {missing} transform")
    if ca == cb:  # hashed from more than this text (a workflow's included files)
        return CodeDiff(False, None, "the same main source; the code hashed with it differs")
    diff = unified(ca, cb, f"a/{ra['t_name']} ({ra['t_uid']})", f"b/{rb['t_name']} ({rb['t_uid']})")
    return CodeDiff(False, diff, None)


def _params_diff(ra, rb) -> ParamsDiff:
    d = _dict_diff(ra["params"] or {}, rb["params"] or {})
    incidental = set(INCIDENTAL_PARAMS.get(ra["engine"] or "", ())) & set(
        INCIDENTAL_PARAMS.get(rb["engine"] or "", ())
    )

    def is_incidental(path: str) -> bool:
        return path.split(".", 1)[0] in incidental

    out = ParamsDiff(True)
    for path, c in d.changed.items():
        (out.ignored if is_incidental(path) else out.changed)[path] = c
    for path, v in d.added.items():
        if is_incidental(path):
            out.ignored[path] = Change(None, v)
        else:
            out.added[path] = v
    for path, v in d.removed.items():
        if is_incidental(path):
            out.ignored[path] = Change(v, None)
        else:
            out.removed[path] = v
    out.same = not (out.changed or out.added or out.removed)
    return out


def _dict_diff(a: dict, b: dict, prefix: str = "") -> ParamsDiff:
    """Added, removed and changed keys of two JSON objects; nested objects by dotted path."""
    out = ParamsDiff(True)
    if not isinstance(a, dict) or not isinstance(b, dict):
        if a != b:
            out.changed[prefix.rstrip(".") or "(value)"] = Change(a, b)
        return out
    for k in sorted(set(a) | set(b), key=str):
        path = f"{prefix}{k}"
        if k not in a:
            out.added[path] = b[k]
        elif k not in b:
            out.removed[path] = a[k]
        elif isinstance(a[k], dict) and isinstance(b[k], dict):
            sub = _dict_diff(a[k], b[k], f"{path}.")
            out.added.update(sub.added)
            out.removed.update(sub.removed)
            out.changed.update(sub.changed)
        elif a[k] != b[k] or type(a[k]) is not type(b[k]):
            out.changed[path] = Change(a[k], b[k])
    out.same = not (out.added or out.removed or out.changed)
    return out


def _unfit(row) -> str | None:
    """Why a version gets no text diff whatever its bytes (None: it may get one)."""
    if row["n_objects"] != 1 or row["hash_type"].endswith("-dir"):
        return "a folder"
    size = row["size"]
    if size is None or size > TEXT_DIFF_MAX:
        shown = "unknown size" if size is None else f"{size:,} bytes"
        return f"larger than {TEXT_DIFF_MAX // 1024} KiB ({shown})"
    return None


def _decoded(row, data: bytes | None, why: str | None) -> tuple[str | None, str | None]:
    if data is None:
        return None, why
    if b"\0" in data:
        return None, "binary content"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "not UTF-8 text"


def _no_text(why_a: str | None, why_b: str | None) -> str:
    if why_a and why_a == why_b:
        return f"no text diff — both: {why_a}"
    whys = [f"A: {why_a}" if why_a else None, f"B: {why_b}" if why_b else None]
    return "no text diff — " + "; ".join(w for w in whys if w)


def _canonical(name: str) -> str:
    """Package names as their registries compare them (PyYAML = pyyaml, typing_extensions =
    typing-extensions)."""
    return name.lower().replace("_", "-").replace(".", "-")


def _pkg_version(p: dict) -> tuple:
    return (p["version"], p["build"], p["channel"])


def _merged_versions(pkgs: list[dict]) -> dict[str, Any]:
    """{version, build, channel} of a package (several, joined, in the rare environment that
    holds two of one name)."""

    def join(f):
        vals = [p[f] for p in pkgs]
        return vals[0] if len(set(vals)) == 1 else ", ".join(str(v) for v in vals)

    return {"version": join("version"), "build": join("build"), "channel": join("channel")}


def _env_summary(e: EnvironmentDiff) -> str:
    parts = []
    for f, c in e.fields.items():
        parts.append(f"{f} {_short(c.a)} → {_short(c.b)}")
    p = e.packages
    for c in p.changed[:3]:
        parts.append(f"{c.name} {c.a['version']} → {c.b['version']}")
    if len(p.changed) > 3:
        parts.append(f"{len(p.changed) - 3} more packages changed")
    if p.added:
        parts.append(f"{len(p.added)} package(s) added")
    if p.removed:
        parts.append(f"{len(p.removed)} package(s) removed")
    if e.spec_file is not None:
        parts.append(f"environment file {e.spec_file.a.label} differs")
    parts += [n for n in e.notes if n.startswith(("no environment", "an environment file"))]
    return "the environment differs: " + ("; ".join(parts) or "see the step")


def _short(v, n: int = 60) -> str:
    s = "—" if v is None else (v if isinstance(v, str) else json.dumps(v, default=str))
    return s if len(s) <= n else s[: n - 1] + "…"


def _paren(s: str | None) -> str:
    return f" ({s})" if s else ""


def unified(a: str, b: str, label_a: str, label_b: str) -> str:
    """A unified diff of two texts, as `diff -u` writes it (a last line without its newline is
    marked so)."""
    out = []
    for line in difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True), label_a, label_b
    ):
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)
