"""The lineage page: the interactive graph of `flowprov lineage --format html` (the same
renderer), every node linked to its record's page, with upstream / downstream / depth controls.
Its JSON twin is the graph as data: nodes, edges, start, enclosing runs, environments.

The page runs one inline script, the graph's own. The app's policy allows no script, so this
answer sets its own Content-Security-Policy naming exactly that script by its sha256 hash — taken
from the served page after checking that it is the script flowprov ships, and the only one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import asdict
from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from .params import choice_param, int_param
from .respond import TEMPLATES, BadRequest, NotFound, page, wants_json

MAX_DEPTH = 100
MAX_DRAWN = 2000  # nodes (after collapsing) a page draws; above, it says so and offers a depth

_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
CSP = (
    "default-src 'self'; script-src {hash}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

# the controls' look (the page has its own style sheet, not the app's)
HEAD = """
<style>
  .page-controls { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; font-size: 12.5px; }
  .page-controls a { color: #1d4ed8; text-decoration: none; }
  .page-controls a:hover { text-decoration: underline; }
  .page-controls a.home { font-weight: 700; color: #0f172a; }
  .page-controls .choice a { padding: 1px 6px; border: 1px solid #e2e8f0; border-radius: 4px; }
  .page-controls .choice a.active { background: #1d4ed8; color: #fff; border-color: #1d4ed8; }
  .page-controls form { display: inline-flex; gap: 4px; align-items: center; margin: 0; }
  .page-controls input[type=number] { width: 4.5em; font: inherit; }
  .page-controls button { font: inherit; }
  aside a.open-page { display: inline-block; margin: 0 0 8px; color: #1d4ed8; font-weight: 600; }
</style>"""


@cache
def shipped_script() -> str:
    """The text of the one script of the lineage page, as flowprov ships it."""
    text = files("flowprov.lineage").joinpath("page.html").read_text(encoding="utf-8")
    (script,) = _SCRIPT.findall(text)
    return script


def script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def csp_for(html: str) -> str:
    """The page's policy: its one script allowed by hash. A page holding any other script (the
    store's text never makes one: everything in it is escaped) is refused, not allowed."""
    scripts = _SCRIPT.findall(html)
    if scripts != [shipped_script()] or html.count("<script") != 2:
        raise RuntimeError("the lineage page holds a script flowprov did not ship")
    return CSP.format(hash=script_hash(scripts[0]))


def _record(uid: str):
    """The artifact, run or transform with exactly this uid: (record, kind)."""
    from ..records import Artifact, Run, Transform
    from .pages_records import MAX_UID

    if len(uid) > MAX_UID:
        raise NotFound(f"no record has a uid of {len(uid)} characters")
    for model, kind in ((Artifact, "artifact"), (Run, "run"), (Transform, "transform")):
        rec = model.filter(uid=uid).one_or_none()
        if rec is not None:
            return rec, kind
    raise NotFound(f"no artifact, run or transform has uid {uid!r}")


def _direction(request: Request) -> tuple[bool, bool]:
    up = choice_param(request, "upstream", ("0", "1"))
    down = choice_param(request, "downstream", ("0", "1"))
    if up is None and down is None:
        return True, False  # where it came from, as `flowprov lineage`
    up, down = up == "1", down == "1"
    if not up and not down:
        raise BadRequest("upstream=0 and downstream=0 leave nothing to draw: set one of them to 1")
    return up, down


def graph_data(g, page_url) -> dict:
    """The Graph as JSON-safe data, each node with the URL of its record's page."""

    def node(n, kind: str | None) -> dict:
        return {**asdict(n), "page": page_url(kind, n.uid) if kind else None}

    def box(b) -> dict:  # an enclosing run ("r<id>") or pipeline transform ("t<id>")
        return node(b, "run" if b.id.startswith("r") else "transform")

    return {
        "nodes": [
            node(n, n.kind if n.kind in ("artifact", "run", "transform") else None)
            for n in g.nodes.values()
        ],
        "edges": [asdict(e) for e in g.edges],
        "start": g.start,
        "groups": [box(b) for b in g.groups.values()],
        "environments": {uid: asdict(e) for uid, e in g.environments.items()},
    }


def lineage_page(request: Request):
    from ..lineage import title_of
    from ..lineage.render import COLLAPSE, drawable, to_html
    from .pages_records import page_url

    rec, kind = _record(request.path_params["uid"])
    up, down = _direction(request)
    depth = int_param(request, "depth", None, 0, MAX_DEPTH)
    as_json = wants_json(request)
    direction = "both" if up and down else ("upstream" if up else "downstream")
    title = title_of(rec, direction)
    data = {
        "kind": kind,
        "uid": rec.uid,
        "title": title,
        "page": page_url(kind, rec.uid),
        "direction": direction,
        "upstream": up,
        "downstream": down,
        "depth": depth,
        "max_depth": MAX_DEPTH,
        "max_drawn": MAX_DRAWN,
        "too_large": None,
    }
    if kind == "transform":  # the lineage of all its runs: a rule of 200,000 jobs is no page
        n_runs = rec.runs.count()
        if n_runs > MAX_DRAWN:
            data.update(
                counts={"run": n_runs},
                drawn=None,
                graph=None,
                too_large=f"{n_runs:,} runs of this transform: too many to draw in a page "
                "(open the lineage of one of its runs)",
            )
            return page(request, "lineage.html", data)
    g = rec.lineage(direction, depth)
    drawn = drawable(g, False, COLLAPSE)
    n_drawn = len(drawn.nodes) + len([b for b in drawn.groups if b not in drawn.nodes])
    data.update(
        counts={
            k: sum(1 for n in g.nodes.values() if n.kind == k)
            for k in ("artifact", "run", "transform")
        },
        drawn=n_drawn,
        graph=graph_data(g, page_url),
    )
    if n_drawn > MAX_DRAWN:
        data["too_large"] = (
            f"{n_drawn:,} nodes: too many to draw in a page (at most {MAX_DRAWN:,}); choose a "
            "smaller depth"
        )
    if as_json or data["too_large"]:
        return page(request, "lineage.html", data)
    controls = TEMPLATES.get_template("_macros_records.html").module.lineage_controls(data)
    html = to_html(g, COLLAPSE, title, page_url=page_url, controls=str(controls), head=HEAD)
    return HTMLResponse(html, headers={"content-security-policy": csp_for(html)})


ROUTES = [Route("/lineage/{uid}", lineage_page, methods=["GET"])]
