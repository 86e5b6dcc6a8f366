"""JSON that the server can always answer about: no NaN, no Infinity, no 1e400.

Python's ``json`` reads ``NaN``, ``Infinity`` and overflowing numbers such as ``1e400`` as
floats that JSON cannot express; FastAPI's default validation handler then fails to
serialise its own 422 (an unauthenticated 500 with a long traceback). Two layers close it:

* :class:`StrictJsonBodies`, an ASGI wrapper in front of the host app (and so of the v1 app
  mounted in it), parses every JSON request body strictly and answers 422 naming the field
  that holds a non-finite number, or saying the body nests too deeply / holds a number too
  long, before any route sees it;
* :func:`validation_error_response`, the ``RequestValidationError`` handler of both apps:
  the same ``{"detail": [{"loc", "msg", "type"}]}`` as FastAPI's, built so that it can
  never fail to serialise (inputs and contexts that are not plain JSON are left out).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Bodies up to this size are checked; larger JSON bodies are refused (413) by the v1 guard,
# and the host's own routes take only small bodies.
CHECK_LIMIT = 1 << 20
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# A refused body is read and dropped up to this much (so the client sees the answer)...
DRAIN_LIMIT = 64 << 20
# ... unless it pauses this long.
DRAIN_IDLE_S = 5.0
# The host's own routes take small JSON bodies; these prefixes set their own limits (the
# v1 guard) or may take large bodies (plugin routes).
OWN_LIMIT_PREFIXES = ("/api/v1/", "/plugins/")


class NonFiniteNumber(ValueError):
    """A JSON number that has no finite float value (NaN, Infinity, 1e400)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class _Bad:
    """Marks where a non-finite number sat, so its path can be reported."""

    def __init__(self, text: str):
        self.text = text


def _find_bad(value: Any, path: list[str | int]) -> tuple[list[str | int], str] | None:
    # Iterative: a structure json.loads could build is never deeper than its recursion limit,
    # but this walk must not be the thing that overflows the stack.
    stack: list[tuple[Any, list[str | int]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, _Bad):
            return where, item.text
        if isinstance(item, dict):
            stack.extend((v, [*where, k]) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((v, [*where, i]) for i, v in reversed(list(enumerate(item))))
    return None


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses non-finite numbers.

    Raises :class:`NonFiniteNumber` (with ``.path`` set), ``json.JSONDecodeError`` for
    malformed JSON, ``RecursionError`` for nesting too deep, and ``ValueError`` for an
    integer too long to convert.
    """
    bad: list[_Bad] = []

    def parse_float(literal: str) -> float | _Bad:
        number = float(literal)
        if math.isfinite(number):
            return number
        bad.append(_Bad(literal))
        return bad[-1]

    def parse_constant(literal: str) -> _Bad:
        bad.append(_Bad(literal))
        return bad[-1]

    value = json.loads(text, parse_float=parse_float, parse_constant=parse_constant)
    # The walk that finds the field is paid for only when there is something to find.
    found = _find_bad(value, []) if bad else None
    if found is not None:
        exc = NonFiniteNumber(found[1])
        exc.path = found[0]  # type: ignore[attr-defined]
        raise exc
    return value


def body_problem(body: bytes) -> dict[str, Any] | None:
    """The 422 error item for ``body`` when it is JSON the app cannot take, else None.
    Malformed JSON is left to FastAPI (its own 422 names the position)."""
    try:
        loads_strict(body)
    except NonFiniteNumber as exc:
        path = getattr(exc, "path", [])
        where = ".".join(str(p) for p in path) or "body"
        return {"loc": ["body", *path], "type": "finite_number",
                "msg": f"{where}: {exc.text} is not a finite number; JSON numbers here "
                       f"must be finite (no NaN, Infinity or out-of-range values)"}
    except RecursionError:
        return {"loc": ["body"], "type": "json_too_deep",
                "msg": "body: the JSON nests too deeply"}
    except json.JSONDecodeError:
        return None
    except ValueError as exc:  # e.g. an integer literal of more than 4300 digits
        return {"loc": ["body"], "type": "json_invalid", "msg": f"body: {exc}"}
    return None


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-type":
            ctype = value.split(b";", 1)[0].strip().lower()
            return ctype == b"application/json" or ctype.endswith(b"+json")
    return False


async def _send_422(send: Send, items: list[dict[str, Any]]) -> None:
    body = json.dumps({"detail": items}).encode()
    await send({"type": "http.response.start", "status": 422, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class StrictJsonBodies:
    """Checks JSON request bodies (up to :data:`CHECK_LIMIT`) before the app sees them and
    replays them unchanged; see the module docstring."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") not in BODY_METHODS
                or not _is_json(scope)):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > CHECK_LIMIT:
            if scope.get("path", "").startswith(OWN_LIMIT_PREFIXES):
                await self.app(scope, receive, send)  # the v1 guard answers 413 itself
            else:
                await refuse_at_once(send, receive, 413, f"request body too large: at most "
                                                         f"{CHECK_LIMIT} bytes of JSON here")
            return
        buffered: list[Message] = []
        size = 0
        complete = False
        while size <= CHECK_LIMIT:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                return  # the client went away (or was timed out) before its body came
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break
        if complete and size <= CHECK_LIMIT and buffered[-1]["type"] == "http.request":
            problem = body_problem(b"".join(m.get("body", b"") for m in buffered))
            if problem is not None:
                log.info("refused a JSON body of %s %s: %s", scope.get("method"),
                         scope.get("path"), problem["msg"][:200])
                await _send_422(send, [problem])
                return

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def refuse_at_once(send: Send, receive: Receive, status: int, detail: str) -> None:
    """Answer from the headers alone, before the body is read: the whole response goes
    out now (its Content-Length is complete), then the declared body is drained so that a
    client still sending it sees the answer instead of a reset. Draining stops at
    ``DRAIN_LIMIT`` bytes or when the client pauses ``DRAIN_IDLE_S``; the connection is
    closed after it."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": True})
    try:
        async with asyncio.timeout(DRAIN_IDLE_S) as deadline:
            drained = 0
            while drained <= DRAIN_LIMIT:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
                drained += len(message.get("body", b""))
                deadline.reschedule(asyncio.get_running_loop().time() + DRAIN_IDLE_S)
    except TimeoutError:
        pass
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _plain(value: Any) -> bool:
    # Encoded as the response will be: a lone surrogate ("\\ud800" in the request's JSON)
    # is valid JSON text but no UTF-8, and would fail the 422 itself with a 500.
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return False
    return True


def _utf8(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates) replaced by '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


# Field names whose values a refusal never sends back: a 422 for a too-long master
# password showed the password in the answer (and in whatever logs answers). Long words
# count anywhere in a name ("newpassword", "X-Auth-Token", "apiKey"); short ones only as a
# part of it (api_key, newPin, X-OTP), so that "keyword" or "mapping" keep their echo.
# "current" and "new" are a password change's two fields, "uri" an otpauth:// URI (it
# carries the TOTP secret).
_SECRET_WORDS = ("password", "passphrase", "passwd", "secret", "token", "credential",
                 "apikey", "authorization", "cookie", "signature")
_SECRET_PARTS = frozenset({"pwd", "key", "keys", "otp", "totp", "pin", "code", "codes", "auth",
                           "master", "current", "new", "uri"})
# Parts of snake_case, kebab-case, camelCase and CAPS names: "apiKey" -> api, Key;
# "XMLKey" -> XML, Key.
_NAME_PARTS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
HIDDEN = "<hidden>"


def _secret(name: object) -> bool:
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_WORDS):
        return True
    return any(part.lower() in _SECRET_PARTS for part in _NAME_PARTS.split(name) if part)


def _hidden(value: Any) -> Any:
    """``value`` with the values of secret-named keys replaced, at any depth."""
    if isinstance(value, dict):
        return {k: HIDDEN if _secret(k) else _hidden(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hidden(v) for v in value]
    return value


def safe_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """The validation errors as JSON-safe dicts: ``loc``, ``msg``, ``type`` always;
    ``input`` and ``ctx`` only when they are plain JSON, and ``input`` never for a field
    named like a secret (nor a secret-named key inside it)."""
    out: list[dict[str, Any]] = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        item: dict[str, Any] = {"loc": [p if isinstance(p, int) else _utf8(str(p))
                                        for p in loc],
                                "msg": _utf8(str(error.get("msg", ""))),
                                "type": str(error.get("type", "value_error"))}
        for key in ("input", "ctx"):
            if key in error and _plain(error[key]):
                item[key] = error[key]
        if "input" in item:
            item["input"] = HIDDEN if any(map(_secret, loc)) else _hidden(item["input"])
        out.append(item)
    return out


async def validation_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The ``RequestValidationError`` handler of the host and the v1 app: always a 422."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": safe_errors(exc)}, status_code=422)
