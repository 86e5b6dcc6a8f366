"""Serving plugins: ``/plugins/<id>/api/...`` goes to the plugin's router, everything
else under ``/plugins/<id>/`` to the static files of its ``web/`` folder.

A request for a plugin that is not active gets an answer naming the plugin and why it is
not running, never a blank 404. An exception escaping a plugin's route handler becomes a
500 JSON answer naming the plugin; it is logged with the plugin id and the app stays up.
A :class:`~plexichat_desktop.plugins.api.PluginProblem` is the plugin's own answer
instead: its status and body, not logged as a failure.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from plexichat_desktop.plugins.api import PluginProblem
from plexichat_desktop.plugins.faults import PLUGIN_FAULTS
from plexichat_desktop.plugins.manager import PluginManager
from plexichat_desktop.server.listening import register_mime_types
from plexichat_desktop.server.security import Message, Receive, Scope, Send

log = logging.getLogger(__name__)
register_mime_types()  # Debian images may lack /etc/mime.types

START_WAIT = 60.0  # seconds a request waits for plugins still starting in the background
_PLUGIN_PATH = re.compile(r"^/(?P<id>[a-z][a-z0-9_]{1,63})(?P<rest>/.*)?$")


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _problem_answer(pid: str, problem: PluginProblem) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of ``problem``; when its body cannot be JSON (an extra
    that is an exception, NaN, a ``body()`` that fails) the detail and field alone, so
    the page still reads what went wrong and nothing of the extras' internals shows."""
    status = getattr(problem, "status", 500)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 500  # a subclass that set its own (or none)
    try:
        body = problem.body()
        json.dumps(body, allow_nan=False)
        return status, body
    except Exception as exc:
        logging.getLogger(f"plexichat.plugin.{pid}").error(
            "%s's answer is not JSON (%s); answered with its detail and field only",
            type(problem).__name__, type(exc).__name__, exc_info=exc)
    field = getattr(problem, "field", None)
    field = field if isinstance(field, str) else None
    return status, {"detail": str(problem), "field": field}


class PluginDispatcher:
    """Mounted at ``/plugins``; finds the plugin for each request at request time, so
    plugins enabled or disabled while the app runs are served or refused at once."""

    def __init__(self, manager: PluginManager):
        self.manager = manager
        self._static: dict[str, tuple[int, StaticFiles]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root_path = scope.get("root_path", "")
        path = scope["path"][len(root_path):] if scope["path"].startswith(root_path) else ""
        match = _PLUGIN_PATH.match(path)
        if match is None:
            raise HTTPException(404, "no such plugin path")
        pid, rest = match["id"], match["rest"] or ""
        rec = self.manager.by_id.get(pid)
        if rec is None:
            raise HTTPException(404, f"no plugin with id '{pid}'")
        if self.manager.starting(rec):
            # The app answers before its plugins are up (they start in the background):
            # a page asked for meanwhile waits for its plugin (which goes first) instead
            # of failing.
            await self.manager.wait_started(rec, START_WAIT)
        if not rec.running or rec.context is None:  # active, or degraded
            raise HTTPException(
                503, f"plugin '{pid}' is {rec.state}" + (f": {rec.reason}" if rec.reason else ""))
        if rest == "":
            # /plugins/<id> -> /plugins/<id>/ so relative links in index.html resolve.
            await self._redirect(scope, send, f"{root_path}/{pid}/")
            return
        child = dict(scope)
        if rest == "/api" or rest.startswith("/api/"):
            child["root_path"] = f"{root_path}/{pid}/api"
            await self._call_routes(pid, rec.context.router, child, receive, send)
        else:
            child["root_path"] = f"{root_path}/{pid}"
            await self._call_static(pid, rec.context.web_dir, child, receive, send)

    async def _call_routes(self, pid: str, app: Any, scope: Scope, receive: Receive,
                           send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await app(scope, receive, tracking_send)
        except HTTPException:
            raise
        except PluginProblem as exc:
            if not started and scope["type"] == "http":
                await send_json(send, *_problem_answer(pid, exc))
                return
            # A stream already under way (or a websocket) cannot change its answer.
            logging.getLogger(f"plexichat.plugin.{pid}").warning(
                "route %s %s raised %s after answering", scope.get("method", "WS"),
                scope.get("path", ""), exc)
        except PLUGIN_FAULTS as exc:
            if type(exc).__name__ in ("RequestValidationError", "WebSocketRequestValidationError",
                                      "ResponseValidationError") and not started:
                raise  # FastAPI's own handlers turn these into 422 / 500 answers
            method, path = scope.get("method", "WS"), scope.get("path", "")
            logging.getLogger(f"plexichat.plugin.{pid}").error(
                "route %s %s raised %s", method, path, type(exc).__name__, exc_info=exc)
            if not started and scope["type"] == "http":
                await send_json(send, 500, {
                    "detail": f"plugin '{pid}' failed while handling {method} {path}: "
                              f"{type(exc).__name__}: {exc}",
                    "plugin": pid,
                })

    async def _call_static(self, pid: str, web_dir: Any, scope: Scope, receive: Receive,
                           send: Send) -> None:
        if scope["type"] != "http":
            raise HTTPException(404)
        rel = scope["path"][len(scope["root_path"]):]
        if "\\" in rel or "\x00" in rel or ".." in rel.split("/"):
            raise HTTPException(404, "not found")
        if not web_dir.is_dir():
            raise HTTPException(404, f"plugin '{pid}' has no web/ folder")
        rec = self.manager.by_id[pid]
        cached = self._static.get(pid)
        if cached is None or cached[0] != id(rec.context):
            cached = (id(rec.context), StaticFiles(directory=web_dir, html=True,
                                                   follow_symlink=False))
            self._static[pid] = cached

        async def caching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Revalidate every time (ETag / Last-Modified make that cheap), so an
                # edited plugin page shows at the next reload.
                message["headers"] = [*message.get("headers", []),
                                      (b"cache-control", b"no-cache")]
            await send(message)

        await cached[1](scope, receive, caching_send)

    async def _redirect(self, scope: Scope, send: Send, location: str) -> None:
        await send({"type": "http.response.start", "status": 307,
                    "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

