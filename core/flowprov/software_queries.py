"""What the software records answer, in SQL: which environments there are and which runs used
them (`flowprov envs`), which environments hold a package, and what a package version made and
everything downstream of it (`flowprov impact --package`).

Counts and groupings are aggregated by the database (GROUP BY), never by loading every run into
Python: an environment used by 100,000 runs is one row with its count. Only what is shown — a
page of environments, the first runs of a list — is read row by row.

Package names match as pip compares them (case, and `-` `_` `.` alike: "PyYAML" is "pyyaml",
"scikit_learn" is "scikit-learn"); versions match exactly ("1.17" is not "1.17.0").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, func, select, true, union

from . import schema as S
from .errors import DoesNotExist, MultipleResultsFound, ValidationError

# how far an environment can be trusted, and how much of it is known, in words
DEPLOYED_WORDS = {True: "what ran", False: "declared, not deployed", None: "unknown"}
COMPLETE_WORDS = {True: "complete list", False: "partial"}
# sources whose packages are what a workflow named (a rule's tool, an image), not the hundreds of
# libraries a resolver pulled in: an environment's summary shows these
MAIN_SOURCES = ("tool", "container", "module", "spack", "wrapper")
_SMALL = 5  # an environment of at most this many packages is summarised by all of them


# -- package specs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PackageSpec:
    name: str
    version: str | None = None  # None: any version

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" if self.version is not None else self.name

    @property
    def normal(self) -> str:
        return normal_name(self.name)


def normal_name(name: str) -> str:
    """A package name as pip compares names (PEP 503): lower case, runs of - _ . as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


_SPEC = re.compile(r"^\s*(?P<name>[^=<>!~\s]+)\s*(?:==\s*(?P<version>\S+))?\s*$")


def parse_package(text: str, where: str = "--package") -> PackageSpec:
    """`samtools==1.17` (that version exactly) or `samtools` (any version)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text or ""):
        raise ValidationError(f"{where}: {text!r} holds control characters; give NAME[==VERSION]")
    m = _SPEC.match(text or "")
    if m is None or (m.group("version") is not None and "=" in m.group("version")):
        raise ValidationError(
            f"{where}: {text!r} is not NAME or NAME==VERSION (e.g. samtools==1.17; versions are "
            "matched exactly, so ranges and conda's NAME=VERSION are not accepted)"
        )
    name, version = m.group("name"), m.group("version")
    if len(name) > 255 or len(version or "") > 255:  # the columns' width: nothing longer is kept
        raise ValidationError(f"{where}: a package name or version is at most 255 characters")
    return PackageSpec(name, version)


def _normal_sql(col):
    """normal_name() in SQL, for the separators and case names differ by in practice."""
    return func.lower(func.replace(func.replace(col, "_", "-"), ".", "-"))


def matching_names(conn, spec: PackageSpec) -> list[str]:
    """The package names recorded that are `spec`'s name (as spelled in each record)."""
    p = S.packages
    same = _normal_sql(p.c.name) == spec.normal
    if conn.dialect.name == "sqlite":
        q = union(*(select(p.c.name).where(same, r) for r in _prefix_ranges(p.c.name, spec.normal)))
    else:
        q = select(p.c.name).where(same).distinct()
    return sorted({n for (n,) in conn.execute(q) if normal_name(n) == spec.normal})


def _prefix_ranges(col, normal: str) -> list:
    """A name whose normal form starts with `normal`'s first letters starts with one of their
    case variants: ranges of the (name, version) index under SQLite's bytewise collation, each
    searched on its own, so the lookup reads a sliver of the index instead of every package
    (PostgreSQL's collations need not order bytewise: it scans, which it does fast)."""
    from itertools import product

    head = re.match(r"[a-z0-9]{0,3}", normal).group()
    if not head:
        return [true()]
    variants = {"".join(v) for v in product(*({c, c.upper()} for c in head))}
    return [and_(col >= v, col < v[:-1] + chr(ord(v[-1]) + 1)) for v in sorted(variants)]


def _package_clause(names: list[str], spec: PackageSpec):
    p = S.packages
    clause = p.c.name.in_(names)
    if spec.version is not None:
        clause = and_(clause, p.c.version == spec.version)
    return clause


def environments_with(names: list[str], spec: PackageSpec):
    """SELECT the ids of environments holding the package (once each, however many sources list
    it)."""
    p = S.packages
    return select(p.c.environment_id).where(_package_clause(names, spec)).distinct()


def recorded_versions(conn, names: list[str]) -> list[str | None]:
    """Every version recorded for these package names, for a message when none matched."""
    p = S.packages
    rows = conn.execute(select(p.c.version).where(p.c.name.in_(names)).distinct())
    return sorted((v for (v,) in rows), key=lambda v: (v is None, _version_key(v or "")))


def _version_key(v: str) -> tuple:
    return tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in re.split(r"[.\-+_]", v))


# -- environments --------------------------------------------------------------------------------
def _run_stats(env_ids=None):
    """Per environment: how many runs used it, when it was last (and first) used."""
    r = S.runs
    q = select(
        r.c.environment_id.label("eid"),
        func.count().label("n_runs"),
        func.max(r.c.started_at).label("last_used"),
        func.min(r.c.started_at).label("first_used"),
    ).where(r.c.environment_id.is_not(None))
    if env_ids is not None:
        q = q.where(r.c.environment_id.in_(env_ids))
    return q.group_by(r.c.environment_id).subquery("rs")


def _environment_select(env_ids=None):
    e, a = S.environments, S.artifacts
    stats = _run_stats(env_ids)
    q = select(
        e.c.id,
        e.c.uid,
        e.c.hash,
        e.c.interpreter,
        e.c.os,
        e.c.container_image,
        e.c.container_digest,
        e.c.container_engine,
        e.c.deployed,
        e.c.complete,
        e.c.n_packages,
        e.c.details,
        e.c.created_at,
        a.c.uid.label("spec_file_uid"),
        a.c.key.label("spec_file_key"),
        func.coalesce(stats.c.n_runs, 0).label("n_runs"),
        stats.c.last_used,
        stats.c.first_used,
    ).select_from(
        e.outerjoin(stats, stats.c.eid == e.c.id).outerjoin(a, a.c.id == e.c.spec_file_id)
    )
    if env_ids is not None:
        q = q.where(e.c.id.in_(env_ids))
    return q, stats


def list_environments(
    conn, package: PackageSpec | None = None, limit: int | None = 50
) -> dict[str, Any]:
    """The environments (those holding `package`, if given), most recently used first, each with
    its run count, the transforms that ran in it, when it was last used, and a summary of its
    software. {"total": how many match, "environments": [...] (at most `limit`), and with a
    package: "package", "names" matched}."""
    out: dict[str, Any] = {}
    env_ids = None
    if package is not None:
        names = matching_names(conn, package)
        out.update(package=str(package), names=names)
        env_ids = environments_with(names, package)
    q, stats = _environment_select(env_ids)
    never = case((stats.c.last_used.is_(None), 1), else_=0)
    q = q.order_by(never, stats.c.last_used.desc(), S.environments.c.id.desc())
    if limit:
        q = q.limit(limit)
    rows = conn.execute(q).mappings().all()
    total = conn.execute(
        select(func.count())
        .select_from(S.environments)
        .where(S.environments.c.id.in_(env_ids) if env_ids is not None else true())
    ).scalar()
    ids = [r["id"] for r in rows]
    transforms = _transforms_of(conn, ids)
    main = _main_packages(conn, [r["id"] for r in rows if r["n_packages"]], rows)
    matched = _matched_packages(conn, ids, out["names"], package) if package is not None else {}
    envs = []
    for r in rows:
        env = _environment_dict(r)
        env["main_packages"] = main.get(r["id"], [])
        env["transforms"] = transforms.get(r["id"], [])
        if package is not None:
            env["matched_packages"] = matched.get(r["id"], [])
        envs.append(env)
    out.update(total=total, environments=envs)
    if package is not None and not total:
        out["versions_recorded"] = recorded_versions(conn, out["names"]) if out["names"] else []
    return out


def _environment_dict(r) -> dict[str, Any]:
    return {
        "uid": r["uid"],
        "hash": r["hash"],
        "interpreter": r["interpreter"],
        "os": r["os"],
        "container_image": r["container_image"],
        "container_digest": r["container_digest"],
        "container_engine": r["container_engine"],
        "spec_file": (
            {"uid": r["spec_file_uid"], "key": r["spec_file_key"]} if r["spec_file_uid"] else None
        ),
        "n_packages": r["n_packages"],
        "deployed": r["deployed"],
        "deployed_words": DEPLOYED_WORDS[r["deployed"]],
        "complete": bool(r["complete"]),
        "complete_words": COMPLETE_WORDS[bool(r["complete"])],
        "details": r["details"],
        "runs": r["n_runs"],
        "first_used": r["first_used"],
        "last_used": r["last_used"],
        "created_at": r["created_at"],
    }


def _chunks(ids, n: int = 5000):
    ids = sorted(ids)
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


def _transforms_of(conn, env_ids: list[int]) -> dict[int, list[dict]]:
    """Per environment: the transforms whose runs used it, with run counts, most runs first."""
    r, t = S.runs, S.transforms
    q = (
        select(
            r.c.environment_id,
            t.c.uid,
            t.c.name,
            t.c.type,
            t.c.version,
            func.count().label("runs"),
            func.max(r.c.started_at).label("last_used"),
        )
        .select_from(r.join(t, t.c.id == r.c.transform_id))
        .where(r.c.environment_id.in_(bindparam("ids", expanding=True)))
        .group_by(r.c.environment_id, t.c.id, t.c.uid, t.c.name, t.c.type, t.c.version)
    )
    out: dict[int, list[dict]] = {}
    for part in _chunks(env_ids):
        for row in conn.execute(q, {"ids": part}).mappings():
            d = {k: row[k] for k in ("uid", "name", "type", "version", "runs", "last_used")}
            out.setdefault(row["environment_id"], []).append(d)
    for lst in out.values():
        lst.sort(key=lambda d: (-d["runs"], d["name"], d["uid"]))
    return out


def _main_packages(conn, env_ids: list[int], rows) -> dict[int, list[dict]]:
    """Per environment: its main packages (MAIN_SOURCES), or all of a small environment's."""
    p = S.packages
    small = [r["id"] for r in rows if r["n_packages"] <= _SMALL]
    q = (
        select(p.c.environment_id, p.c.name, p.c.version, p.c.source)
        .where(p.c.environment_id.in_(bindparam("ids", expanding=True)))
        .where(
            p.c.source.in_(MAIN_SOURCES)
            | p.c.environment_id.in_(bindparam("small", expanding=True))
        )
        .order_by(p.c.environment_id, p.c.name, p.c.source)
    )
    out: dict[int, list[dict]] = {}
    for part in _chunks(env_ids):
        for row in conn.execute(q, {"ids": part, "small": small or [-1]}).mappings():
            lst = out.setdefault(row["environment_id"], [])
            d = {"name": row["name"], "version": row["version"], "source": row["source"]}
            # the same tool reported by two sources (conda and versions.yml) is one entry
            if not any(x["name"] == d["name"] and x["version"] == d["version"] for x in lst):
                lst.append(d)
    return out


def _matched_packages(conn, env_ids, names, spec) -> dict[int, list[dict]]:
    p = S.packages
    q = (
        select(p.c.environment_id, p.c.name, p.c.version, p.c.build, p.c.source, p.c.channel)
        .where(p.c.environment_id.in_(bindparam("ids", expanding=True)))
        .where(_package_clause(names, spec))
        .order_by(p.c.environment_id, p.c.source)
    )
    out: dict[int, list[dict]] = {}
    for part in _chunks(env_ids):
        for row in conn.execute(q, {"ids": part}).mappings():
            out.setdefault(row["environment_id"], []).append(
                {k: row[k] for k in ("name", "version", "build", "source", "channel")}
            )
    return out


def find_environment(conn, uid: str) -> int:
    """The id of the environment whose uid (or digest) starts with `uid`."""
    e = S.environments
    text = (uid or "").strip().lower()
    if len(text) < 4 or not re.fullmatch(r"[0-9a-f]+", text):
        raise ValidationError(
            f"{uid!r} is not an environment uid (hexadecimal, at least 4 characters; "
            "`flowprov envs` lists them)"
        )
    found = conn.execute(
        select(e.c.id, e.c.uid).where(func.substr(e.c.hash, 1, len(text)) == text).limit(3)
    ).all()
    if not found:
        raise DoesNotExist(f"no environment has uid {uid!r} (`flowprov envs` lists them)")
    if len(found) > 1:
        raise MultipleResultsFound(
            f"{uid!r} is the start of several environment uids: "
            f"{', '.join(u for _, u in found)}; give more characters"
        )
    return found[0][0]


def environment_detail(conn, uid: str, runs_limit: int | None = 20) -> dict[str, Any]:
    """One environment in full: every package (version, build, source, channel), its spec file,
    the transforms that ran in it (all, with counts) and its runs (the newest `runs_limit`)."""
    eid = find_environment(conn, uid)
    q, _ = _environment_select(select(S.environments.c.id).where(S.environments.c.id == eid))
    row = conn.execute(q).mappings().one()
    env = _environment_dict(row)
    p = S.packages
    env["packages"] = [
        dict(m)
        for m in conn.execute(
            select(p.c.name, p.c.version, p.c.build, p.c.source, p.c.channel)
            .where(p.c.environment_id == eid)
            .order_by(p.c.source, func.lower(p.c.name), p.c.version, p.c.build)
        ).mappings()
    ]
    env["transforms"] = _transforms_of(conn, [eid]).get(eid, [])
    r, t, u = S.runs, S.transforms, S.users
    runs = (
        select(
            r.c.uid,
            r.c.status,
            r.c.started_at,
            r.c.finished_at,
            r.c.engine,
            r.c.reference,
            t.c.uid.label("transform_uid"),
            t.c.name.label("transform"),
            t.c.type.label("transform_type"),
            u.c.handle.label("created_by"),
        )
        .select_from(
            r.join(t, t.c.id == r.c.transform_id).outerjoin(u, u.c.id == r.c.created_by_id)
        )
        .where(r.c.environment_id == eid)
        .order_by(r.c.started_at.desc(), r.c.id.desc())
    )
    if runs_limit:
        runs = runs.limit(runs_limit)
    env["run_list"] = [dict(m) for m in conn.execute(runs).mappings()]
    return env


# -- impact of a package ---------------------------------------------------------------------------
def package_impact(
    conn, spec: PackageSpec, depth: int | None = None, limit: int | None = None
) -> dict[str, Any]:
    """What runs whose environment holds `spec` made, and everything downstream of it.

    - "used": the runs whose environment holds the package, grouped by transform and package
      version, and counted by how sure it is that the package ran (`by_deployed`: in an
      environment "declared, not deployed" the host's software may have run instead);
    - "made": the artifacts those runs produced, with their producer-less copies (a published
      copy holds the same bytes);
    - "downstream": the runs reachable from them through what they produced (one recursive SQL
      walk from all of them at once, lineage/walk.py), at most `depth` steps, and the artifacts
      those runs produced (and their copies), apart from those already under "made".

    Each list holds at most `limit` items (None: all); the totals count everything. The affected
    runs' and artifacts' ids pass through Python (as the lineage graph's do); their rows only
    for the items listed."""
    from .lineage import walk as W

    names = matching_names(conn, spec)
    out: dict[str, Any] = {"package": str(spec), "name": spec.name, "version": spec.version}
    out["names"] = names
    out["versions_recorded"] = recorded_versions(conn, names) if names else []
    envs = _matched_environments(conn, names, spec)  # id → (deployed, versions)
    out["environments"] = len(envs)
    r = S.runs
    env_ids = environments_with(names, spec)
    used_sel = select(r.c.id).where(r.c.environment_id.in_(env_ids))
    used_rows = conn.execute(
        select(r.c.id, r.c.transform_id, r.c.environment_id).where(r.c.environment_id.in_(env_ids))
    ).all()
    used = {rid for rid, _, _ in used_rows}
    if any(eid not in envs for _, _, eid in used_rows):  # recorded since (PostgreSQL's
        envs = _matched_environments(conn, names, spec)  # statements each see the latest)
    by_deployed = dict.fromkeys(DEPLOYED_WORDS.values(), 0)
    groups: dict[tuple[int, str | None], list[int]] = {}  # (transform, version) → [runs, unsure]
    for _, tid, eid in used_rows:
        deployed, versions = envs[eid]
        by_deployed[DEPLOYED_WORDS[deployed]] += 1
        for v in versions:  # a run whose environment lists two versions counts under both
            g = groups.setdefault((tid, v), [0, 0])
            g[0] += 1
            g[1] += deployed is not True
    last: dict[tuple[int, str | None], Any] = {}
    for tid, eid, when in conn.execute(
        select(r.c.transform_id, r.c.environment_id, func.max(r.c.started_at))
        .where(r.c.environment_id.in_(env_ids))
        .group_by(r.c.transform_id, r.c.environment_id)
    ):
        for v in envs[eid][1]:
            last[(tid, v)] = max(when, last.get((tid, v), when))
    transforms = _transform_rows(conn, {tid for tid, _ in groups})
    by_transform = [
        {
            **transforms[tid],
            "package_version": v,
            "runs": n,
            "not_known_deployed": unsure,
            "last_used": last.get((tid, v)),
        }
        for (tid, v), (n, unsure) in groups.items()
    ]
    by_transform.sort(key=lambda d: (-d["runs"], d["name"], d["uid"], d["package_version"] or ""))
    out["used"] = {
        "total": len(used),
        "by_deployed": by_deployed,
        "by_transform": by_transform,
        "runs": _run_items(conn, _newest(conn, used_sel, limit)),
    }
    made = _made_by(conn, used_sel=used_sel)
    out["made"] = {"total": len(made), "artifacts": _artifact_items(conn, made, limit)}
    walked: dict[int, int | None] = {}
    down_tf: dict[int, int] = {}
    if used and depth != 0:
        w = W.walk_runs("downstream", W.seed_runs("downstream", None, used_sel), depth).subquery()
        q = select(w.c.run_id, w.c.depth, r.c.transform_id).join(r, r.c.id == w.c.run_id)
        for rid, dep, tid in conn.execute(q):
            if rid not in walked or (dep is not None and dep < (walked[rid] or 0)):
                walked[rid] = dep
            down_tf[rid] = tid
    down = {rid: dep for rid, dep in walked.items() if rid not in used}
    down_arts = _made_by(conn, run_ids=set(down)) - made
    counts: dict[int, int] = {}
    for rid in down:
        counts[down_tf[rid]] = counts.get(down_tf[rid], 0) + 1
    transforms = _transform_rows(conn, set(counts))
    by_tf = [{**transforms[tid], "runs": n} for tid, n in counts.items()]
    by_tf.sort(key=lambda d: (-d["runs"], d["name"], d["uid"]))
    order = sorted(down, key=lambda i: (down[i] or 0, i))  # nearest first, then as recorded
    out["downstream"] = {
        "depth": depth,
        "runs_total": len(down),
        "by_transform": by_tf,
        "runs": _run_items(conn, order[:limit] if limit else order, steps=down),
        "artifacts_total": len(down_arts),
        "artifacts": _artifact_items(conn, down_arts, limit),
    }
    return out


def _matched_environments(conn, names, spec) -> dict[int, tuple[bool | None, list[str | None]]]:
    """The environments holding the package: id → (deployed, the versions of it they list)."""
    p, e = S.packages, S.environments
    q = (
        select(e.c.id, e.c.deployed, p.c.version)
        .select_from(p.join(e, e.c.id == p.c.environment_id))
        .where(_package_clause(names, spec))
        .distinct()
    )
    out: dict[int, tuple[bool | None, list[str | None]]] = {}
    for eid, deployed, version in conn.execute(q):
        out.setdefault(eid, (deployed, []))[1].append(version)
    return out


def _transform_rows(conn, ids: set[int]) -> dict[int, dict]:
    t = S.transforms
    q = select(t.c.id, t.c.uid, t.c.name, t.c.type, t.c.version).where(
        t.c.id.in_(bindparam("ids", expanding=True))
    )
    out = {}
    for part in _chunks(ids):
        for m in conn.execute(q, {"ids": part}).mappings():
            out[m["id"]] = {k: m[k] for k in ("uid", "name", "type", "version")}
    return out


def _newest(conn, run_sel, limit: int | None) -> list[int]:
    """The ids of the newest `limit` (None: all) runs of a SELECT of run ids."""
    r = S.runs
    q = select(r.c.id).where(r.c.id.in_(run_sel)).order_by(r.c.started_at.desc(), r.c.id.desc())
    return [i for (i,) in conn.execute(q.limit(limit))]


def _made_by(conn, used_sel=None, run_ids: set[int] | None = None) -> set[int]:
    """The artifacts these runs (a SELECT of their ids, or the ids) produced, and the
    producer-less copies of their non-empty bytes elsewhere (walk.copies_of), in one statement
    (per chunk of ids)."""
    ro = S.run_outputs
    made, cp = S.artifacts.alias("made"), S.artifacts.alias("cp")
    # walk.copies_of without its first branch (the artifact itself), which would keep the
    # planner from the hash index
    copy = and_(
        cp.c.hash == case((made.c.size > 0, made.c.hash), else_=None),
        cp.c.run_id.is_(None),
        cp.c.id != made.c.id,
    )
    runs = used_sel if used_sel is not None else bindparam("ids", expanding=True)
    q = union(
        select(ro.c.artifact_id).where(ro.c.run_id.in_(runs)),
        select(cp.c.id)
        .select_from(ro.join(made, made.c.id == ro.c.artifact_id).join(cp, copy))
        .where(ro.c.run_id.in_(runs)),
    )
    if used_sel is not None:
        return {a for (a,) in conn.execute(q)}
    out: set[int] = set()
    for part in _chunks(run_ids or ()):
        out |= {a for (a,) in conn.execute(q, {"ids": part})}
    return out


def _run_items(conn, run_ids: list[int], steps=None) -> list[dict]:
    """Rows of these runs, in the order given."""
    r, t, u, e = S.runs, S.transforms, S.users, S.environments
    frm = (
        r.join(t, t.c.id == r.c.transform_id)
        .outerjoin(u, u.c.id == r.c.created_by_id)
        .outerjoin(e, e.c.id == r.c.environment_id)
    )
    q = (
        select(
            r.c.id,
            r.c.uid,
            r.c.status,
            r.c.started_at,
            r.c.finished_at,
            t.c.uid.label("transform_uid"),
            t.c.name.label("transform"),
            t.c.type.label("transform_type"),
            u.c.handle.label("created_by"),
            e.c.uid.label("environment"),
        )
        .select_from(frm)
        .where(r.c.id.in_(bindparam("ids", expanding=True)))
    )
    by_id = {}
    for part in _chunks(run_ids):
        by_id.update({m["id"]: m for m in conn.execute(q, {"ids": part}).mappings()})
    items = []
    for rid in (i for i in run_ids if i in by_id):
        d = {k: v for k, v in by_id[rid].items() if k != "id"}
        if steps is not None:
            d["step"] = steps.get(rid)
        items.append(d)
    return items


def _artifact_items(conn, artifact_ids: set[int], limit: int | None) -> list[dict]:
    a, u, r = S.artifacts, S.users, S.runs
    chosen = sorted(artifact_ids)[:limit] if limit else sorted(artifact_ids)
    q = (
        select(
            a.c.id,
            a.c.uid,
            a.c.key,
            a.c.file_name,
            a.c.description,
            a.c.size,
            a.c.hash,
            a.c.is_latest,
            r.c.uid.label("run"),
            u.c.handle.label("created_by"),
        )
        .select_from(a.outerjoin(u, u.c.id == a.c.created_by_id).outerjoin(r, r.c.id == a.c.run_id))
        .where(a.c.id.in_(bindparam("ids", expanding=True)))
    )
    by_id = {}
    for part in _chunks(chosen):
        by_id.update({m["id"]: m for m in conn.execute(q, {"ids": part}).mappings()})
    return [{k: v for k, v in by_id[i].items() if k != "id"} for i in chosen if i in by_id]


def json_ready(value: Any) -> Any:
    """A result of this module as JSON can hold it (times as ISO 8601 text, in UTC: SQLite
    gives them without a zone, PostgreSQL in the session's)."""
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_ready(v) for v in value]
    return value
