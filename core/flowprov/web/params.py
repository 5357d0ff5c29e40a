"""Query parameters read strictly: a bad value is a 400 naming the parameter and why."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from .respond import BadRequest

MAX_TEXT = 500


def text_param(request: Request, name: str, max_len: int = MAX_TEXT) -> str | None:
    v = request.query_params.get(name)
    if v is None or v.strip() == "":
        return None
    if len(v) > max_len:
        raise BadRequest(f"{name} is longer than {max_len} characters")
    return v.strip()


def int_param(
    request: Request, name: str, default: int, lo: int | None = None, hi: int | None = None
) -> int:
    v = request.query_params.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {v[:40]!r}") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise BadRequest(f"{name} must be between {lo} and {hi}, not {n}")
    return n


def choice_param(request: Request, name: str, choices, default: str | None = None) -> str | None:
    v = request.query_params.get(name)
    if v is None or v == "":
        return default
    if v not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(sorted(choices))}, not {v[:40]!r}")
    return v


def date_param(request: Request, name: str) -> datetime | None:
    """A date or date-time (ISO 8601); naive values are UTC."""
    v = request.query_params.get(name)
    if v is None or v == "":
        return None
    try:
        d = datetime.fromisoformat(v)
    except ValueError:
        raise BadRequest(f"{name} must be a date like 2026-12-01, not {v[:40]!r}") from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def paging(request: Request, default_size: int = 50, max_size: int = 500) -> tuple[int, int]:
    """(page ≥ 1, page size)."""
    return (
        int_param(request, "page", 1, 1, 1_000_000),
        int_param(request, "size", default_size, 1, max_size),
    )
