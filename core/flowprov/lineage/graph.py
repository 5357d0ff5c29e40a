"""The lineage graph as data: nodes (artifacts, runs, transforms) and edges, built from a handful
of SQL statements (see walk.py) whatever the graph's size.

Node ids are ``a<id>``, ``r<id>``, ``t<id>`` (database ids: stable within an instance, short in
pictures); every node also carries its uid and a JSON-safe copy of its record for display.
Edges: ``used`` (artifact → run), ``generated`` (run → artifact), ``run_of`` (run → its
transform), ``parent`` (transform → transform: the consumer read what the producer made),
``same_content`` (artifact → artifact: a producer-less copy holds the bytes a run made at the
source's place — see walk.copy_source). A run's enclosing run (a Snakemake job's
workflow run, a Prefect task's flow run) is kept as ``Node.group``, not as an edge, so pictures
draw it as a box around its members.

The software environments of the graph's runs are kept once each in ``Graph.environments`` (by
environment uid, with their packages), and a run's record names its environment by uid: 10,000
runs in one environment carry one copy of its package list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, literal, select, union_all

from .. import fast_sql
from .. import schema as S
from . import walk as W


@dataclass
class Node:
    id: str
    kind: str  # "artifact" | "run" | "transform" | "group" (collapsed artifacts)
    uid: str
    label: str
    record: dict[str, Any]
    depth: int | None = None  # steps (runs) from the start; None when the walk had no limit
    group: str | None = None  # id of the enclosing run's node ("r<id>"), if any
    status: str | None = None  # runs: completed / failed / running / ...
    highlight: bool = False


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # "used" | "generated" | "run_of" | "parent" | "same_content"


@dataclass
class EnvironmentInfo:
    """A software environment as the graph shows it (see flowprov.events.EnvironmentSpec)."""

    uid: str
    hash: str
    interpreter: str | None
    os: str | None
    container_image: str | None
    container_digest: str | None
    container_engine: str | None
    deployed: bool | None  # True: what ran; False: declared, not deployed; None: unknown
    complete: bool  # packages is the whole resolved set
    n_packages: int
    details: dict[str, Any] | None
    # the environment file: {"uid", "key", "name", "node"}; node is its artifact's node id when the
    # artifact is in the graph, else None
    spec_file: dict[str, Any] | None
    # (name, version, build, source, channel), sorted as Package.sort_key sorts them
    packages: list[tuple[str, str | None, str | None, str, str | None]] = field(
        default_factory=list
    )


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    start: list[str] = field(default_factory=list)  # node ids the walk started from
    direction: str = "upstream"
    depth: int | None = None
    groups: dict[str, Node] = field(default_factory=dict)  # enclosing runs, by node id
    # the software environments of the runs and enclosing runs, by uid (a run's record names its
    # environment's uid as "environment")
    environments: dict[str, EnvironmentInfo] = field(default_factory=dict)

    # -- as records ----------------------------------------------------------------------------
    def _of(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]

    @property
    def artifacts(self) -> list[Node]:
        return self._of("artifact")

    @property
    def runs(self) -> list[Node]:
        return self._of("run")

    @property
    def transforms(self) -> list[Node]:
        return self._of("transform")

    def uids(self, kind: str | None = None) -> set[str]:
        return {n.uid for n in self.nodes.values() if kind is None or n.kind == kind}

    def node(self, uid: str) -> Node:
        for n in self.nodes.values():
            if n.uid == uid:
                return n
        raise KeyError(uid)

    def environment_of(self, node_id: str) -> EnvironmentInfo | None:
        """The software environment of a run (or enclosing run) node, if one was recorded."""
        n = self.nodes.get(node_id) or self.groups.get(node_id)
        uid = n.record.get("environment") if n is not None and n.kind != "artifact" else None
        return self.environments.get(uid) if uid else None

    def predecessors(self, node_id: str) -> list[str]:
        return [e.source for e in self.edges if e.target == node_id]

    def tree(self, order=None) -> list[tuple[int, str, bool]]:
        """(depth, node id, shown before) depth first from the start, each node followed by the
        nodes feeding it (edge sources), sorted by `order(node id)` (default: database id). A node
        reached again is listed once more, marked, and not expanded: cycles end."""
        feeds: dict[str, list[str]] = {}
        for e in self.edges:
            feeds.setdefault(e.target, []).append(e.source)
        order = order or (lambda i: int(i[1:]))
        out: list[tuple[int, str, bool]] = []
        seen: set[str] = set()

        def visit(node_id: str, depth: int) -> None:
            repeat = node_id in seen
            out.append((depth, node_id, repeat))
            if repeat:
                return
            seen.add(node_id)
            for source in sorted(feeds.get(node_id, []), key=order):
                visit(source, depth + 1)

        if self.start:
            visit(self.start[0], 0)
        return out

    def __repr__(self) -> str:
        k = {kind: len(self._of(kind)) for kind in ("artifact", "run", "transform")}
        return (
            f"Graph({self.direction}, {k['artifact']} artifacts, {k['run']} runs, "
            f"{k['transform']} transforms, {len(self.edges)} edges)"
        )

    # -- pictures and text (render.py) -----------------------------------------------------------
    def to_dot(self, **kw) -> str:
        from .render import to_dot

        return to_dot(self, **kw)

    def to_mermaid(self, **kw) -> str:
        from .render import to_mermaid

        return to_mermaid(self, **kw)

    def to_svg(self, **kw) -> str:
        from .render import render_graphviz

        return render_graphviz(self, "svg", **kw).decode()

    def to_html(self, **kw) -> str:
        from .render import to_html

        return to_html(self, **kw)

    def save(self, path, format: str | None = None, **kw):
        """Write a picture (html, svg, png, mermaid, dot) or the graph as json; format from the
        suffix unless given. Keywords: collapse_over, title, transforms (draw transform nodes)."""
        from .render import save

        return save(self, path, format, **kw)

    def _repr_svg_(self) -> str:  # Jupyter shows a Graph as its picture
        return self.to_svg()


# -- building ----------------------------------------------------------------------------------


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _json(v: Any) -> Any:
    if type(v) in _PLAIN:  # most values (a walk builds a few hundred)
        return v
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="seconds")
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json(x) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def _short_time(v) -> str:
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="minutes")[:16]  # strftime's %Y-%m-%d %H:%M, faster
    return str(v or "")[:16]


def _rows(conn, statement, ids) -> list:
    """Rows of a prebuilt statement with an expanding `ids` parameter, in chunks."""
    out = []
    for part in W.chunks(sorted(ids)):
        out += fast_sql.execute(conn, statement, {"ids": part}).mappings().all()
    return out


_ARTIFACT_FIELDS = (
    "uid",
    "key",
    "file_name",
    "description",
    "suffix",
    "size",
    "hash",
    "hash_type",
    "n_objects",
    "is_latest",
    "created_at",
)
_TRANSFORM_FIELDS = (
    "uid",
    "name",
    "key",
    "type",
    "version",
    "reference",
    "is_latest",
    "created_at",
)


def artifact_node(row) -> Node:
    tail = (row["key"] or "").rsplit("/", 1)[-1] or row["file_name"]
    name = row["description"] or tail or row["uid"]
    if tail and row["description"]:
        name = f"{row['description']}\n{tail}"
    # columns of plain values (strings, numbers, booleans) but for the one date
    record = {k: row[k] for k in _ARTIFACT_FIELDS}
    record["created_at"] = _json(record["created_at"])
    record["created_by"] = row["handle"]
    record["storage"] = row["root"]
    return Node(f"a{row['id']}", "artifact", row["uid"], name, record)


def name_artifacts(g: Graph) -> None:
    """Labels that tell the graph's artifacts apart: as much of the key as needed (A/C.fastq and
    B/C.fastq, not C.fastq twice), and the version (v2) of a place that has held several."""
    from ..uids import ARTIFACT_STEM, suffix_index

    parts = {
        n.id: n.record["key"].split("/")
        for n in g.nodes.values()
        if n.kind == "artifact" and n.record.get("key")
    }
    depth = dict.fromkeys(parts, 1)
    while True:
        labels = {i: "/".join(p[-depth[i] :]) for i, p in parts.items()}
        keys_of: dict[str, set[str]] = {}
        for i, label in labels.items():
            keys_of.setdefault(label, set()).add("/".join(parts[i]))
        grow = [i for i, p in parts.items() if len(keys_of[labels[i]]) > 1 and depth[i] < len(p)]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    for n in g.nodes.values():
        if n.kind != "artifact":
            continue
        rec = n.record
        name = "/".join(parts[n.id][-depth[n.id] :]) if n.id in parts else None
        name = name or rec.get("file_name")
        index = suffix_index(n.uid[ARTIFACT_STEM:])
        if index > 0 or rec.get("is_latest") is False:  # the place has held other bytes
            name = f"{name or n.uid} (v{index + 1}{'' if rec.get('is_latest') else ', older'})"
        if name is None:
            continue
        n.label = f"{rec['description']}\n{name}" if rec.get("description") else name


def run_node(row) -> Node:
    version = f" {row['t_version']}" if row["t_version"] else ""
    label = f"{row['t_name']}{version}\n{row['t_type']} · {row['handle'] or '?'} · {_short_time(row['started_at'])}"
    record = {
        "uid": row["uid"],
        "transform": f"{row['t_name']} ({row['t_type']}{version}, {row['t_uid']})",
        "status": row["status"],
        "created_by": row["handle"],
        "started_at": _json(row["started_at"]),
        "finished_at": _json(row["finished_at"]),
        "params": row["params"],  # decoded JSON: plain values already
        "engine": row["engine"],
        "reference": row["reference"],
        "error": (row["error"] or "")[-2000:] or None,
    }
    group = f"r{row['parent_id']}" if row["parent_id"] is not None else None
    return Node(
        f"r{row['id']}", "run", row["uid"], label, record, group=group, status=row["status"]
    )


def transform_node(row) -> Node:
    version = f" {row['version']}" if row["version"] else ""
    record = {k: row[k] for k in _TRANSFORM_FIELDS}
    record["created_at"] = _json(record["created_at"])
    record["created_by"] = row["handle"]
    group = f"t{row['parent_id']}" if row["parent_id"] is not None else None
    return Node(
        f"t{row['id']}",
        "transform",
        row["uid"],
        f"{row['name']}{version}\n{row['type']}",
        record,
        group=group,
    )


@cache
def _artifact_query():
    a, u, s = S.artifacts, S.users, S.storages
    ids = bindparam("ids", expanding=True)
    return (
        select(a, u.c.handle, s.c.root)
        .select_from(a.outerjoin(u, u.c.id == a.c.created_by_id).join(s, s.c.id == a.c.storage_id))
        .where(a.c.id.in_(ids))
    )


@cache
def _run_query():
    r, t, u = S.runs, S.transforms, S.users
    ids = bindparam("ids", expanding=True)
    return (
        select(
            *(c for c in r.c if c.name != "runtime"),  # not shown
            u.c.handle,
            t.c.uid.label("t_uid"),
            t.c.name.label("t_name"),
            t.c.type.label("t_type"),
            t.c.version.label("t_version"),
        )
        .select_from(
            r.join(t, t.c.id == r.c.transform_id).outerjoin(u, u.c.id == r.c.created_by_id)
        )
        .where(r.c.id.in_(ids))
    )


@cache
def _transform_query():
    t, u = S.transforms, S.users
    ids = bindparam("ids", expanding=True)
    return (
        select(
            t.c.id,
            t.c.uid,
            t.c.name,
            t.c.key,
            t.c.type,
            t.c.version,
            t.c.reference,
            t.c.is_latest,
            t.c.created_at,
            t.c.parent_id,
            u.c.handle,
        )
        .select_from(t.outerjoin(u, u.c.id == t.c.created_by_id))
        .where(t.c.id.in_(ids))
    )


def build(
    conn,
    *,
    artifact_ids: list[int] = (),
    run_ids: list[int] = (),
    direction: str = "upstream",
    depth: int | None = None,
    highlight_run: int | None = None,
) -> Graph:
    """The lineage graph around start artifacts and/or runs."""
    W.check_direction(direction)
    W.check_depth(depth)
    g = Graph(direction=direction, depth=depth)
    a_start, r_start = set(artifact_ids), set(run_ids)
    run_depth: dict[int, int | None] = {rid: 0 for rid in r_start}
    used: set[tuple[int, int]] = set()  # (artifact, run)
    made: set[tuple[int, int]] = set()  # (run, artifact)
    same: set[tuple[int, int]] = set()  # (source artifact, producer-less copy)
    directions = ("upstream", "downstream") if direction == "both" else (direction,)
    for d in directions:
        walked: dict[int, int | None] = {}
        for kind, start in (("a", a_start), ("r", r_start)):
            if not start or depth == 0:
                continue
            stmt = W.run_walk_statement(d, kind, depth is not None)
            for part in W.chunks(sorted(start)):
                for rid, dep in fast_sql.execute(conn, stmt, {"start": part, "depth": depth}):
                    if rid not in walked or (dep is not None and dep < (walked[rid] or 0)):
                        walked[rid] = dep
        runs = set(walked) | r_start
        ins, outs = _links(conn, runs)
        if d == "upstream":
            # every input of a run in the graph is part of its lineage; of a run's outputs, only
            # those on a path to the start (start artifacts, inputs of graph runs, and the
            # sources of their producer-less copies) are
            keep = a_start | {a for a, r in ins}
            made_ids = {a for _, a in outs}
            pairs = {(s_, c) for s_, c in _pairs(conn, _sources_query(), keep) if s_ in made_ids}
            same |= pairs
            keep |= {s_ for s_, _ in pairs}
            used |= set(ins)
            made |= {(r, a) for r, a in outs if a in keep or r in r_start}
        else:
            keep = a_start | {a for r, a in outs}
            # copies of what the graph's runs made (a published file), read or not
            pairs = set(_pairs(conn, _copies_query(), keep))
            same |= pairs
            keep |= {c for _, c in pairs}
            made |= set(outs)
            used |= {(a, r) for a, r in ins if a in keep or r in r_start}
        for rid, dep in walked.items():
            if rid not in run_depth or (dep is not None and (run_depth[rid] or 0) > dep):
                run_depth[rid] = dep
    if highlight_run is not None:
        ins, _ = _links(conn, {highlight_run})
        graph_artifacts = a_start | {a for a, _ in used} | {a for _, a in made}
        mine = {(a, r) for a, r in ins if a in graph_artifacts}
        if mine:
            used |= mine
            run_depth.setdefault(highlight_run, None)
    artifact_set = a_start | {a for a, _ in used} | {a for _, a in made}
    artifact_set |= {c for s_, c in same if s_ in artifact_set}  # copies nobody read (yet)
    same = {(s_, c) for s_, c in same if s_ in artifact_set}
    run_set = set(run_depth)
    for row in _rows(conn, _artifact_query(), artifact_set):
        g.nodes[f"a{row['id']}"] = artifact_node(row)
    run_of: dict[str, int] = {}  # the transforms the runs ran: run → transform ("run_of")
    env_of: dict[str, int] = {}  # run (and enclosing run) node → its environment's id
    for row in _rows(conn, _run_query(), run_set):
        n = run_node(row)
        n.depth = run_depth.get(row["id"])
        g.nodes[n.id] = n
        run_of[n.id] = row["transform_id"]
        if row["environment_id"] is not None:
            env_of[n.id] = row["environment_id"]
    for row in _rows(conn, _transform_query(), set(run_of.values())):
        n = transform_node(row)
        g.nodes[n.id] = n
    # enclosing runs of the graph's runs (one recursive statement), drawn as boxes
    parents = {int(n.group[1:]) for n in g.runs if n.group}
    if parents:
        anc = set()
        for part in W.chunks(sorted(parents)):
            anc |= {r for (r,) in fast_sql.execute(conn, _ancestors_query(), {"ids": part})}
        for row in _rows(conn, _run_query(), parents | anc):
            n = run_node(row)
            n.kind = "group"
            g.groups[n.id] = n
            if row["environment_id"] is not None:
                env_of[n.id] = row["environment_id"]
    g.edges = (
        [Edge(f"a{a}", f"r{r}", "used") for a, r in sorted(used)]
        + [Edge(f"r{r}", f"a{a}", "generated") for r, a in sorted(made)]
        + [Edge(f"a{s_}", f"a{c}", "same_content") for s_, c in sorted(same)]
        + [Edge(r, f"t{t}", "run_of") for r, t in sorted(run_of.items())]
    )
    g.start = [f"a{a}" for a in sorted(a_start)] + [f"r{r}" for r in sorted(r_start)]
    _attach_environments(conn, g, env_of)
    if depth is None:  # an unlimited walk does not count steps in SQL; count them here
        _count_steps(g)
    name_artifacts(g)
    if highlight_run is not None and f"r{highlight_run}" in g.nodes:
        g.nodes[f"r{highlight_run}"].highlight = True
        for a, r in used:
            if r == highlight_run:
                g.nodes[f"a{a}"].highlight = True
    return g


@cache
def _environment_query():
    e, a = S.environments, S.artifacts
    ids = bindparam("ids", expanding=True)
    return (
        select(
            *(c for c in e.c if c.name not in ("created_by_id", "created_at")),
            a.c.uid.label("spec_uid"),
            a.c.key.label("spec_key"),
            a.c.file_name.label("spec_file_name"),
        )
        .select_from(e.outerjoin(a, a.c.id == e.c.spec_file_id))
        .where(e.c.id.in_(ids))
    )


@cache
def _packages_query():
    p = S.packages
    ids = bindparam("ids", expanding=True)
    return select(
        p.c.environment_id, p.c.name, p.c.version, p.c.build, p.c.source, p.c.channel
    ).where(p.c.environment_id.in_(ids))


_PACKAGES: dict[str, tuple] = {}  # environment hash → its packages, sorted (most recent last)


def _remember_packages(digest: str | None, packages: tuple) -> None:
    if not digest:
        return
    _PACKAGES.pop(digest, None)
    _PACKAGES[digest] = packages
    while len(_PACKAGES) > 256:
        del _PACKAGES[next(iter(_PACKAGES))]


def _package_order(p: tuple) -> tuple:  # Package.sort_key, on (name, version, build, source, _)
    return (p[3], p[0].lower(), p[1] or "", p[2] or "")


def _attach_environments(conn, g: Graph, env_of: dict[str, int]) -> None:
    """Read the environments of the graph's runs (one statement for them, one for their packages,
    chunked) into g.environments, and name each run's environment in its record."""
    if not env_of:
        return
    uid_of: dict[int, str] = {}
    for row in _rows(conn, _environment_query(), set(env_of.values())):
        spec = None
        if row["spec_file_id"] is not None:
            node = f"a{row['spec_file_id']}"
            spec = {
                "uid": row["spec_uid"],  # None if the artifact is gone
                "key": row["spec_key"],
                "name": row["spec_key"] or row["spec_file_name"] or row["spec_uid"],
                "node": node if node in g.nodes else None,
            }
        g.environments[row["uid"]] = EnvironmentInfo(
            uid=row["uid"],
            hash=row["hash"],
            interpreter=row["interpreter"],
            os=row["os"],
            container_image=row["container_image"],
            container_digest=row["container_digest"],
            container_engine=row["container_engine"],
            deployed=row["deployed"],
            complete=bool(row["complete"]),
            n_packages=row["n_packages"],
            details=_json(row["details"]) if isinstance(row["details"], dict) else None,
            spec_file=spec,
        )
        uid_of[row["id"]] = row["uid"]
    # an environment's packages are part of what its hash is of (written once, with it): known
    # by hash, they are not read again
    known = {uid: _PACKAGES.get(g.environments[uid].hash) for uid in uid_of.values()}
    unread = {eid: uid for eid, uid in uid_of.items() if known[uid] is None}
    read: dict[str, list] = {uid: [] for uid in unread.values()}
    for part in W.chunks(sorted(unread)):
        for eid, *package in fast_sql.execute(conn, _packages_query(), {"ids": part}):
            read[unread[eid]].append(tuple(package))
    for uid, packages in read.items():
        packages.sort(key=_package_order)
        known[uid] = tuple(packages)
        _remember_packages(g.environments[uid].hash, known[uid])
    for uid, packages in known.items():
        g.environments[uid].packages[:] = packages
    for node_id, eid in env_of.items():
        for n in (g.nodes.get(node_id), g.groups.get(node_id)):  # a box's run can be both
            if n is not None and eid in uid_of:
                n.record["environment"] = uid_of[eid]


@cache
def _links_query():
    ri, ro = S.run_inputs, S.run_outputs
    ids = bindparam("ids", expanding=True)
    return union_all(
        select(literal("i"), ri.c.run_id, ri.c.artifact_id).where(ri.c.run_id.in_(ids)),
        select(literal("o"), ro.c.run_id, ro.c.artifact_id).where(ro.c.run_id.in_(ids)),
    )


def _pairs_query(given: str):
    """(source, copy) pairs of equal non-empty content where the copy has no producer at its own
    place (walk.copy_source), for `given` ("source" or "copy") artifact ids."""
    src, cp = S.artifacts.alias("src"), S.artifacts.alias("cp")
    ids = bindparam("ids", expanding=True)
    return (
        select(src.c.id, cp.c.id)
        .select_from(src.join(cp, and_(cp.c.hash == src.c.hash, cp.c.id != src.c.id)))
        .where(cp.c.run_id.is_(None), src.c.size > 0, cp.c.size > 0)
        .where((src.c.id if given == "source" else cp.c.id).in_(ids))
    )


@cache
def _sources_query():
    return _pairs_query("copy")


@cache
def _copies_query():
    return _pairs_query("source")


def _pairs(conn, statement, ids) -> list[tuple[int, int]]:
    out = []
    for part in W.chunks(sorted(ids)):
        out += [tuple(r) for r in fast_sql.execute(conn, statement, {"ids": part})]
    return out


@cache
def _ancestors_query():
    return W.run_ancestors(
        select(S.runs.c.id).where(S.runs.c.id.in_(bindparam("ids", expanding=True)))
    )


def _count_steps(g: Graph) -> None:
    """Each run's distance in runs from the start (breadth first over the graph's edges)."""
    nbrs: dict[str, list[str]] = {}
    for e in g.edges:
        if e.kind in ("used", "generated", "same_content"):
            nbrs.setdefault(e.source, []).append(e.target)
            nbrs.setdefault(e.target, []).append(e.source)
    dist = dict.fromkeys(g.start, 0)
    frontier = list(g.start)
    while frontier:
        nxt = []
        for n in frontier:
            for m in nbrs.get(n, ()):
                if m not in dist:
                    dist[m] = dist[n] + (1 if m.startswith("r") else 0)
                    nxt.append(m)
        frontier = nxt
    for n in g.runs:
        n.depth = dist.get(n.id)


def _links(conn, runs: set[int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(artifact, run) input pairs and (run, artifact) output pairs of the given runs."""
    ins, outs = [], []
    for part in W.chunks(sorted(runs)):
        for side, r, a in fast_sql.execute(conn, _links_query(), {"ids": part}):
            (ins.append((a, r)) if side == "i" else outs.append((r, a)))
    return ins, outs


def build_transforms(
    conn, transform_id: int, direction: str = "upstream", depth: int | None = None
) -> Graph:
    """The graph of transforms feeding (upstream) or fed by (downstream) one transform."""
    W.check_direction(direction)
    W.check_depth(depth)
    g = Graph(direction=direction, depth=depth)
    found: dict[int, int | None] = {transform_id: 0}
    for d in ("upstream", "downstream") if direction == "both" else (direction,):
        for tid, dep in conn.execute(W.walk_transforms(d, transform_id, depth)):
            if tid not in found or (dep is not None and (found[tid] or 0) > dep):
                found[tid] = dep
    for row in _rows(conn, _transform_query(), found):
        n = transform_node(row)
        n.depth = found[row["id"]]
        g.nodes[n.id] = n
    # engine-internal transforms (rules, processes, tasks) are drawn inside their pipeline/flow
    outer = {int(n.group[1:]) for n in g.transforms if n.group} - set(found)
    for row in _rows(conn, _transform_query(), outer):
        n = transform_node(row)
        n.kind = "group"
        g.groups[n.id] = n
    ids = select(S.transforms.c.id).where(S.transforms.c.id.in_(list(found)))
    g.edges = [Edge(f"t{p}", f"t{c}", "parent") for p, c in conn.execute(W.transform_edges(ids))]
    g.start = [f"t{transform_id}"]
    return g
