"""Check an OpenLineage event the way a consumer would: against the OpenLineage JSON schema and
the schema of every facet it carries (offline, the copies in tests/fixtures/openlineage/), then
read back with openlineage-python's own models and written out again unchanged.

`validate_event(event)` raises `InvalidEvent` naming the event, the place and the reason.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import pkgutil
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import attr
import cattrs
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openlineage"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


class InvalidEvent(AssertionError):
    pass


def _format_checker() -> FormatChecker:
    checker = copy.deepcopy(Draft202012Validator.FORMAT_CHECKER)  # uuid, date-time (rfc3339)

    @checker.checks("uri", raises=ValueError)
    def is_uri(value: object) -> bool:  # jsonschema checks "uri" only with rfc3987 installed
        if not isinstance(value, str):
            return True
        parts = urlparse(value)
        return bool(parts.scheme) and " " not in value

    return checker


@cache
def schemas() -> dict[str, dict]:
    """Every fixture schema by its `$id`."""
    out = {}
    for path in sorted(FIXTURES.glob("*.json")):
        doc = json.loads(path.read_text())
        out[doc["$id"]] = doc
    return out


@cache
def _validator() -> Draft202012Validator:
    registry = Registry().with_resources(
        (uri, Resource.from_contents(doc)) for uri, doc in schemas().items()
    )
    return Draft202012Validator({}, registry=registry, format_checker=_format_checker())


def _check(instance: Any, schema: dict, where: str) -> None:
    validator = _validator().evolve(schema=schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        # an anyOf/allOf error says only "not valid": name the deepest cause under it
        causes = [best_match([e]) for e in errors[:5]]
        lines = [f"{where}/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in causes]
        raise InvalidEvent("; ".join(lines))


def _facet_places(event: dict):
    """(place, facets dict) for every facet map of a RunEvent."""
    run, job = event.get("run") or {}, event.get("job") or {}
    yield "run.facets", run.get("facets") or {}
    yield "job.facets", job.get("facets") or {}
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, ds in enumerate(event.get(side) or []):
            yield f"{side}[{i}].facets", ds.get("facets") or {}
            yield f"{side}[{i}].{extra}", ds.get(extra) or {}


def _check_facets(event: dict, label: str) -> None:
    known = schemas()
    for place, facets in _facet_places(event):
        for key, facet in facets.items():
            where = f"{label} {place}.{key}"
            url = facet.get("_schemaURL") if isinstance(facet, dict) else None
            if not url:
                raise InvalidEvent(f"{where}: no _schemaURL")
            doc_id, _, pointer = url.partition("#")
            if doc_id not in known:
                raise InvalidEvent(
                    f"{where}: _schemaURL {url} is not among the schemas in {FIXTURES} — "
                    "copy it from the OpenLineage repository (see its README)"
                )
            _check(facet, {"$ref": url}, where)
            # the key is the one the facet's schema names it by ("parent", "errorMessage", ...)
            names = known[doc_id].get("properties", {})
            if key not in names or names[key].get("$ref") != f"#{pointer}":
                raise InvalidEvent(
                    f"{where}: a facet of {doc_id.rsplit('/', 1)[-1]} must be keyed "
                    f"{sorted(k for k, v in names.items() if v.get('$ref') == f'#{pointer}')}"
                )


# -- reading back with the client's models ------------------------------------------------------


@cache
def facet_classes() -> dict[str, type]:
    """The client's facet class for each _schemaURL it writes."""
    import openlineage.client.generated as generated
    from openlineage.client.generated.base import BaseFacet

    out: dict[str, type] = {}
    for mod in pkgutil.iter_modules(generated.__path__):
        module = importlib.import_module(f"{generated.__name__}.{mod.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseFacet) and cls.__module__ == module.__name__:
                out[cls._get_schema()] = cls
    return out


_converter = cattrs.Converter()


def _structure_facets(facets: dict | None, label: str) -> dict:
    out = {}
    for key, facet in (facets or {}).items():
        cls = facet_classes().get(facet["_schemaURL"])
        if cls is None:
            raise InvalidEvent(f"{label}.{key}: the client has no model for {facet['_schemaURL']}")
        try:
            out[key] = _converter.structure(facet, cls)
        except Exception as e:  # cattrs' ClassValidationError, attrs validators
            raise InvalidEvent(
                f"{label}.{key}: the client's {cls.__name__} refuses it: {e!r}"
            ) from None
    return out


def read_back(event: dict):
    """The event as the client's own `event_v2.RunEvent` (its validators run)."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )

    return RunEvent(
        eventType=RunState(event["eventType"]) if "eventType" in event else None,
        eventTime=event["eventTime"],
        producer=event["producer"],
        run=Run(
            runId=event["run"]["runId"],
            facets=_structure_facets(event["run"].get("facets"), "run.facets"),
        ),
        job=Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets=_structure_facets(event["job"].get("facets"), "job.facets"),
        ),
        inputs=[
            InputDataset(
                namespace=d["namespace"],
                name=d["name"],
                facets=_structure_facets(d.get("facets"), f"inputs[{i}].facets"),
                inputFacets=_structure_facets(d.get("inputFacets"), f"inputs[{i}].inputFacets"),
            )
            for i, d in enumerate(event.get("inputs") or [])
        ],
        outputs=[
            OutputDataset(
                namespace=d["namespace"],
                name=d["name"],
                facets=_structure_facets(d.get("facets"), f"outputs[{i}].facets"),
                outputFacets=_structure_facets(d.get("outputFacets"), f"outputs[{i}].outputFacets"),
            )
            for i, d in enumerate(event.get("outputs") or [])
        ],
    )


def _without_empties(obj: Any) -> Any:
    """Drop None, {} and [] (the client's models default facets to {}, lists to [])."""
    if isinstance(obj, dict):
        kept = {k: _without_empties(v) for k, v in obj.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(obj, list):
        return [_without_empties(v) for v in obj]
    return obj


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}: {'missing after' if k in a else 'added by'} the round trip"
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{path}/{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}/{i}")
    return f"{path}: {a!r} became {b!r}"


def validate_event(event: dict) -> Any:
    """Validate one RunEvent (a dict parsed from JSON): the event against OpenLineage.json's
    RunEvent, each facet against the schema its `_schemaURL` names, then read back with the
    client's models and serialised again to the same JSON. Returns the client's RunEvent."""
    from openlineage.client.serde import Serde

    if not isinstance(event, dict):
        raise InvalidEvent(f"not a JSON object: {event!r:.200}")
    label = (
        f"{event.get('eventType')} {(event.get('job') or {}).get('name')!r} "
        f"run {(event.get('run') or {}).get('runId')}"
    )
    if event.get("schemaURL") != RUN_EVENT:
        raise InvalidEvent(f"{label}: schemaURL {event.get('schemaURL')!r}, expected {RUN_EVENT}")
    _check(event, {"$ref": RUN_EVENT}, label)
    _check_facets(event, label)
    try:
        model = read_back(event)
    except InvalidEvent as e:
        raise InvalidEvent(f"{label}: {e}") from None
    except Exception as e:  # the models' own validators (runId a UUID, eventTime with a time)
        raise InvalidEvent(f"{label}: the client's RunEvent refuses it: {e!r}") from None
    again = _without_empties(Serde.to_dict(model))
    original = _without_empties(event)
    if again != original:
        raise InvalidEvent(
            f"{label}: not the same after the client's models: "
            + _first_difference(original, again)
        )
    assert attr.has(type(model))
    return model


def read_ndjson(path: Path) -> list[dict]:
    """The events of a newline-delimited JSON file (the file transport, the export)."""
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
