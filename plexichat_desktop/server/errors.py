"""The error answer documented in OpenAPI, shared by the core routes and the /tests API.

Its own module so that the core routes can document their errors without importing the
/tests API (which is built after the server answers: see ``app.DeferredRoutes``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """Every error answer. ``detail`` is a message that starts with the field it concerns,
    or, when the request does not match this document, FastAPI's list of validation
    errors (each with its ``loc``)."""

    detail: str | list[dict[str, Any]]


_ERRORS = {
    400: "The body is not JSON.",
    404: "An unknown plugin, test, run or schedule (detail names the field).",
    409: "The run is already over.",
    422: "A field is missing, of the wrong type, or not a valid value (detail names it).",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error codes a route answers with."""
    return {code: {"model": ErrorBody, "description": _ERRORS[code]} for code in codes}
