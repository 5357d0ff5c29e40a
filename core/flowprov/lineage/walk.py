"""Graph walks in the database: recursive CTEs over run_inputs / run_outputs.

The data graph is bipartite — an artifact is *used* by runs and *generated* by runs — so a walk
steps from run to run: upstream, from a run through its inputs to the runs that produced them;
downstream, from a run through its outputs to the runs that read them. Each walk is one SQL
statement whatever the graph's size (no query per node), and works the same on SQLite and
PostgreSQL.

Equal content at two places is followed too ("same content as"): a file with no producer of its
own at its place (a published copy, an upload of a pipeline's result, a staged input) joins the
runs that produced the same bytes elsewhere. Only then — a file whose own place names its
producer is not re-attributed to whoever else wrote those bytes — and never for empty content
(every empty log and flag file shares one hash; equal emptiness proves nothing).

Cycles (impossible in honest data, possible in bad data: a run recorded as reading its own
output) cannot hang a walk: without a depth limit the CTE is a UNION over run ids only, so it
stops when no new run appears; with a depth limit it stops at the limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from sqlalchemy import Integer, Select, and_, bindparam, case, literal, or_, select, union_all

from .. import schema as S

DIRECTIONS = ("upstream", "downstream", "both")


def check_direction(direction: str) -> None:
    from ..errors import ValidationError

    if direction not in DIRECTIONS:
        raise ValidationError(
            f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}"
        )


def check_depth(depth: int | None) -> None:
    from ..errors import ValidationError

    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise ValidationError(f"depth must be a whole number ≥ 0 or None (no limit), not {depth!r}")


def copy_source(read, made):
    """Join condition: artifact `made` (a producer's output) is where the bytes of artifact `read`
    come from — the same version, or the same content elsewhere when `read` has no producer of
    its own at its place and is not empty."""
    # the hash to look up is NULL unless `read` qualifies, so an index probe never walks the
    # thousands of rows sharing, say, the empty file's hash
    joinable = case((and_(read.c.run_id.is_(None), read.c.size > 0), read.c.hash), else_=None)
    return or_(made.c.id == read.c.id, made.c.hash == joinable)


def copies_of(made, read):
    """copy_source(read, made) written for a walk that knows `made` and looks for `read` (the
    same condition — equal hashes have equal sizes — but searchable by `read`'s indexes)."""
    joinable = case((made.c.size > 0, made.c.hash), else_=None)
    return or_(read.c.id == made.c.id, and_(read.c.hash == joinable, read.c.run_id.is_(None)))


def seed_runs(direction: str, artifact_ids: Select | None, run_ids: Select | None) -> Select | None:
    """The runs one step away from the start: the producers (upstream) or the readers (downstream)
    of the start artifacts, and the runs one step away from the start runs."""
    ri, ro = S.run_inputs.alias("si"), S.run_outputs.alias("so")
    parts = []
    if artifact_ids is not None:
        start, other = S.artifacts.alias("sa1"), S.artifacts.alias("sa2")
        if direction == "upstream":  # producers of the start artifacts' bytes
            frm = start.join(other, copy_source(start, other)).join(
                ro, ro.c.artifact_id == other.c.id
            )
            parts.append(select(ro.c.run_id).select_from(frm).where(start.c.id.in_(artifact_ids)))
        else:  # readers of the start artifacts, and of their producer-less copies
            frm = start.join(other, copies_of(start, other)).join(
                ri, ri.c.artifact_id == other.c.id
            )
            parts.append(select(ri.c.run_id).select_from(frm).where(start.c.id.in_(artifact_ids)))
    if run_ids is not None:
        src = select(S.runs.c.id.label("run_id")).where(S.runs.c.id.in_(run_ids)).subquery("sr")
        parts.append(_step(direction, src, select_depth=False))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else union_all(*parts).subquery().select()


def walk_runs(direction: str, seeds: Select, depth: int | None) -> Select:
    """SELECT run_id, depth of every run reachable from the seed runs (which are at depth 1),
    stepping `direction` ("upstream" or "downstream"), at most `depth` steps (None: no limit).

    A run reached at several depths appears once per depth (depth-limited walks only); callers
    take the minimum."""
    seed_ids = seeds.subquery("seed")
    if depth is None:
        cte = select(seed_ids.c[0].label("run_id")).cte("walk", recursive=True)
        cte = cte.union(_step(direction, cte, select_depth=False))
        return select(cte.c.run_id, literal(None).label("depth"))
    cte = select(seed_ids.c[0].label("run_id"), literal(1).label("depth")).cte(
        "walk", recursive=True
    )
    step = _step(direction, cte, select_depth=True).where(cte.c.depth < depth)
    cte = cte.union(step)
    return select(cte.c.run_id, cte.c.depth)


def _step(direction: str, src, select_depth: bool) -> Select:
    """The runs one step from the runs in `src` (a CTE or subquery with a run_id column)."""
    ri, ro = S.run_inputs.alias("wi"), S.run_outputs.alias("wo")
    a1, a2 = S.artifacts.alias("wa1"), S.artifacts.alias("wa2")
    if direction == "upstream":  # run → its inputs → the runs that produced their bytes
        cols = [ro.c.run_id]
        frm = (
            src.join(ri, ri.c.run_id == src.c.run_id)
            .join(a1, a1.c.id == ri.c.artifact_id)
            .join(a2, copy_source(a1, a2))
            .join(ro, ro.c.artifact_id == a2.c.id)
        )
    else:  # run → its outputs (and their producer-less copies) → the runs that read them
        cols = [ri.c.run_id]
        frm = (
            src.join(ro, ro.c.run_id == src.c.run_id)
            .join(a1, a1.c.id == ro.c.artifact_id)
            .join(a2, copies_of(a1, a2))
            .join(ri, ri.c.artifact_id == a2.c.id)
        )
    if select_depth:
        cols.append(src.c.depth + 1)
    return select(*cols).select_from(frm)


def walk_transforms(direction: str, start_id: int, depth: int | None) -> Select:
    """SELECT transform_id, depth of the transforms upstream (whose runs produced what this one's
    runs read) or downstream of a transform; the start itself at depth 0."""
    r1, r2 = S.runs.alias("r1"), S.runs.alias("r2")
    ri, ro = S.run_inputs.alias("ti"), S.run_outputs.alias("to")
    read, made = S.artifacts.alias("ta1"), S.artifacts.alias("ta2")
    base_cols = [literal(start_id).label("transform_id")]
    if depth is not None:
        base_cols.append(literal(0).label("depth"))
    cte = select(*base_cols).cte("twalk", recursive=True)
    if direction == "upstream":
        frm = (
            cte.join(r1, r1.c.transform_id == cte.c.transform_id)
            .join(ri, ri.c.run_id == r1.c.id)
            .join(read, read.c.id == ri.c.artifact_id)
            .join(made, copy_source(read, made))
            .join(ro, ro.c.artifact_id == made.c.id)
            .join(r2, r2.c.id == ro.c.run_id)
        )
    else:
        frm = (
            cte.join(r1, r1.c.transform_id == cte.c.transform_id)
            .join(ro, ro.c.run_id == r1.c.id)
            .join(made, made.c.id == ro.c.artifact_id)
            .join(read, copies_of(made, read))
            .join(ri, ri.c.artifact_id == read.c.id)
            .join(r2, r2.c.id == ri.c.run_id)
        )
    cols = [r2.c.transform_id]
    if depth is not None:
        cols.append(cte.c.depth + 1)
    step = select(*cols).select_from(frm)
    if depth is not None:
        step = step.where(cte.c.depth < depth)
    cte = cte.union(step)
    return select(cte.c.transform_id, cte.c.depth if depth is not None else literal(None))


def transform_edges(transform_ids: Select) -> Select:
    """SELECT DISTINCT (producer transform, consumer transform) pairs among the given transforms:
    a consumer's runs read an artifact a producer's runs made."""
    r1, r2 = S.runs.alias("p"), S.runs.alias("c")
    ri, ro = S.run_inputs, S.run_outputs
    read, made = S.artifacts.alias("ea1"), S.artifacts.alias("ea2")
    return (
        select(r1.c.transform_id.label("producer"), r2.c.transform_id.label("consumer"))
        .select_from(
            ro.join(r1, r1.c.id == ro.c.run_id)
            .join(made, made.c.id == ro.c.artifact_id)
            .join(read, copies_of(made, read))
            .join(ri, ri.c.artifact_id == read.c.id)
            .join(r2, r2.c.id == ri.c.run_id)
        )
        .where(r1.c.transform_id.in_(transform_ids), r2.c.transform_id.in_(transform_ids))
        .where(r1.c.transform_id != r2.c.transform_id)
        .distinct()
    )


def run_ancestors(run_ids: Select) -> Select:
    """SELECT id of the given runs' enclosing runs, to the top (a job's workflow run, a task's flow
    run, a nested flow's outer flow), in one recursive statement."""
    r = S.runs.alias("anc")
    cte = (
        select(S.runs.c.parent_id.label("id"))
        .where(S.runs.c.id.in_(run_ids), S.runs.c.parent_id.is_not(None))
        .cte("parents", recursive=True)
    )
    cte = cte.union(select(r.c.parent_id).where(r.c.id == cte.c.id, r.c.parent_id.is_not(None)))
    return select(cte.c.id)


@cache
def run_walk_statement(direction: str, start: str, limited: bool) -> Select:
    """A prebuilt walk (building SQLAlchemy statements costs more than running them on a small
    graph): start ids in the expanding parameter `start` — artifact ids (start="a") or run ids
    (start="r") — and the limit in `depth` when limited."""
    start_sel = select(S.artifacts.c.id if start == "a" else S.runs.c.id).where(
        (S.artifacts.c.id if start == "a" else S.runs.c.id).in_(bindparam("start", expanding=True))
    )
    seeds = seed_runs(
        direction, start_sel if start == "a" else None, start_sel if start == "r" else None
    )
    if not limited:
        return walk_runs(direction, seeds, None)
    return walk_runs(direction, seeds, bindparam("depth", type_=Integer))


def chunks(ids: Iterable[int], n: int = 5000):
    """Id lists in chunks small enough for any database's bound-parameter limit."""
    ids = list(ids)
    for i in range(0, len(ids), n):
        yield ids[i : i + n]
