"""Instance-level settings every member shares, kept in the instance database's `instance_meta`
table under the key ``setting:<name>`` (the table's own keys — uid, schema_floor, min_flowprov,
moved_roots, search_index — never start with that prefix).

    from flowprov import instance_settings
    instance_settings.set(inst, "export.license", "CC-BY-4.0")
    instance_settings.get(inst, "export.license")   # "CC-BY-4.0"
    instance_settings.set(inst, "export.license", None)   # removed

Only the settings flowprov knows (KNOWN) are accepted: a typo would otherwise be kept silently and
never read.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from . import schema as S
from .errors import ValidationError

__all__ = ["KNOWN", "PREFIX", "get", "set", "all_settings"]

PREFIX = "setting:"

KNOWN: dict[str, str] = {
    "export.license": (
        "Default license of exported RO-Crates (a URL or SPDX id such as CC-BY-4.0); "
        "`flowprov export --license` overrides it."
    ),
    "openlineage.namespace": (
        "OpenLineage job namespace of this instance's runs (default: the instance's name)."
    ),
}

_MAX_VALUE = 10_000  # a setting is a short text; anything longer is a mistake


def _check_key(key: str) -> str:
    if key not in KNOWN:
        raise ValidationError(
            f"unknown instance setting {key!r}; known settings: {', '.join(sorted(KNOWN))}"
        )
    return PREFIX + key


def get(inst, key: str) -> str | None:
    """The value of a setting, or None when it is not set (read fresh from the database)."""
    from .db import read_connection

    name = _check_key(key)
    m = S.instance_meta
    with read_connection(inst.engine) as conn:
        return conn.execute(select(m.c.value).where(m.c.key == name)).scalar()


def all_settings(inst) -> dict[str, str]:
    """Every setting that is set, by name (known ones only)."""
    from .db import read_connection

    m = S.instance_meta
    with read_connection(inst.engine) as conn:
        rows = conn.execute(select(m.c.key, m.c.value).where(m.c.key.startswith(PREFIX))).all()
    found = {k[len(PREFIX) :]: v for k, v in rows}
    return {k: found[k] for k in sorted(found) if k in KNOWN}


def set(inst, key: str, value: str | None) -> None:  # noqa: A001 - the module's verb
    """Set a setting (None removes it). Needs the right to write the instance's records."""
    from . import rights
    from .db import db_error, safe_url, write_transaction
    from .db import write_meta as _write_meta

    name = _check_key(key)
    if value is not None:
        if not isinstance(value, str):
            raise ValidationError(f"instance setting {key!r}: value must be text, got {value!r}")
        value = value.strip()
        if not value:
            raise ValidationError(
                f"instance setting {key!r}: empty value; to remove it use None (--unset)"
            )
        if len(value) > _MAX_VALUE or "\n" in value:
            raise ValidationError(
                f"instance setting {key!r}: a value is one line of at most {_MAX_VALUE} characters"
            )
    inst.require_writable()
    rights.require(inst, rights.WRITE, f"change instance setting {key!r}")
    from sqlalchemy.exc import DBAPIError

    try:
        with write_transaction(inst.engine) as conn:
            if value is None:
                conn.execute(delete(S.instance_meta).where(S.instance_meta.c.key == name))
            else:
                _write_meta(conn, {name: value})
    except DBAPIError as e:
        raise db_error(e, f"database {safe_url(inst.engine.url)}") from e
    inst.__dict__.pop("meta", None)  # the cached description is stale now
