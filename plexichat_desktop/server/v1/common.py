"""Conventions shared by every v1 endpoint: ids, timestamps, pagination, errors.

* ids are UUID4 strings; an unknown or malformed id is simply "not found" (404);
* timestamps are stored as UNIX seconds and sent as ISO-8601 UTC strings;
* lists are ``{<items>: [...], "total", "limit", "offset", "has_more"}``;
* errors are ``{"detail": ...}`` via :class:`fastapi.HTTPException`.
"""

from __future__ import annotations

import time
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict


def new_id() -> str:
    """A fresh UUID4 string, the id format of every v1 resource."""
    return str(uuid.uuid4())


def now() -> float:
    """The current time as UNIX seconds (what the store keeps)."""
    return time.time()


def iso(ts: float | None) -> str | None:
    """UNIX seconds -> ISO-8601 UTC with milliseconds (``2025-01-31T12:00:00.000+00:00``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def page(name: str, items: list[Any], total: int, limit: int, offset: int,
         **extra: Any) -> dict[str, Any]:
    """The one list shape of the API."""
    return {name: items, "total": total, "limit": limit, "offset": offset,
            "has_more": offset + len(items) < total, **extra}


def done(message: str, **extra: Any) -> dict[str, Any]:
    """The body of an action that has no resource to return (delete, join, logout...)."""
    return {"success": True, "message": message, **extra}


def not_found(what: str, ident: str) -> HTTPException:
    """404 naming the kind of thing and the id the caller asked for."""
    return HTTPException(404, f"{what} '{ident}' not found")


def forbidden(detail: str) -> HTTPException:
    return HTTPException(403, detail)


def or_404(row: dict[str, Any] | None, what: str, ident: str) -> dict[str, Any]:
    """``row``, or 404 (:func:`not_found`) when there is none."""
    if row is None:
        raise not_found(what, ident)
    return row


def owned(row: dict[str, Any] | None, me: str, what: str, ident: str, refusal: str,
          owner: str = "owner_id") -> dict[str, Any]:
    """``row`` when its ``owner`` column is ``me``: 404 when the caller cannot see it (None),
    403 with ``refusal`` when they can but someone else owns it."""
    row = or_404(row, what, ident)
    if row[owner] != me:
        raise forbidden(refusal)
    return row


def conflict(detail: str) -> HTTPException:
    return HTTPException(409, detail)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with its wildcards escaped (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def limit_query(default: int, maximum: int) -> Any:
    """``Annotated`` metadata of a ``limit`` query parameter (its default goes after ``=``)."""
    return Query(ge=1, le=maximum, description=f"Page size (1-{maximum}, default {default}).")


Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip.")]


class Body(BaseModel):
    """Base of request bodies: unknown fields are an error (422), not silently dropped.

    Strings are kept exactly as sent (no stripping): message content and passwords are
    data, and code blocks keep their indentation.
    """

    model_config = ConfigDict(extra="forbid")


def unseen(char: str) -> bool:
    """A control or format character (a NUL, a line break, a zero-width space, a
    direction mark): nothing a reader sees as text."""
    return unicodedata.category(char) in ("Cc", "Cf")


def person_name(value: str | None) -> str | None:
    """A name people read (display, first, last), stripped; control and format characters
    (a line break, a NUL, a right-to-left override) are refused. All spaces is no name."""
    if value is None:
        return None
    if any(unseen(c) for c in value):
        raise ValueError("no control or format characters (line breaks, direction marks)")
    return value.strip()


PersonName = Annotated[str | None, AfterValidator(person_name)]


def invalid(field: str, message: str, value: Any = None, where: str = "body"
            ) -> RequestValidationError:
    """A 422 in FastAPI's own shape (``detail`` = list of ``{loc, msg, type}``), for checks
    that need more than the request model (settings-dependent rules, cross-field rules)."""
    return RequestValidationError([{"type": "value_error", "loc": (where, field),
                                    "msg": message, "input": value}])


def sent_fields(body: BaseModel, not_null: tuple[str, ...]) -> dict[str, Any]:
    """The fields of an update body the client sent (the others stay as they are); 422 for
    one of ``not_null`` sent as null."""
    changes = body.model_dump(exclude_unset=True)
    for key in not_null:
        if key in changes and changes[key] is None:
            raise invalid(key, f"{key} cannot be null")
    return changes


