"""Errors that become 4xx JSON answers naming the field."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class ApiError(Exception):
    """A refusal with its HTTP status and the request field it concerns."""

    def __init__(self, status: int, field: str | None, message: str, **extra: Any):
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.field = field
        self.extra = extra

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"detail": str(self), **self.extra}
        if self.field:
            body["field"] = self.field
        return JSONResponse(body, status_code=self.status)
