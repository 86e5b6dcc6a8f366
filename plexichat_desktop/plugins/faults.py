"""What plugin code may raise that the host turns into that plugin's failure.

``Exception`` and ``SystemExit``: a plugin that calls ``sys.exit()`` while it is imported,
set up, serving a route or running a job, a schedule or a background task fails on its
own, with the reason logged under its name; left alone, the exception ended the whole app
(exit code 0 for ``SystemExit(0)``, without a word). ``KeyboardInterrupt`` and
cancellation still pass: they are the user's Ctrl+C and the app's own stopping.

Where plugin code runs in an asyncio task of its own (``ctx.create_task``, the body of a
streaming response, the source of ``ctx.event_stream``, an async-generator endpoint), no
``except`` around it can help: asyncio hands ``SystemExit`` from any task straight to the
event loop. There it is turned into a ``RuntimeError`` inside that task
(:func:`without_exit`, :func:`plugin_route_class`). Not covered: tasks a plugin starts
with ``asyncio.create_task`` itself, and the routes of a router it includes with
``include_router`` (those keep their own route class).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

PLUGIN_FAULTS: tuple[type[BaseException], ...] = (Exception, SystemExit)

T = TypeVar("T")


class PluginExit(RuntimeError):
    """Plugin code called ``sys.exit()`` where the host could not catch it otherwise."""


def _exited(exc: SystemExit, where: str) -> PluginExit:
    return PluginExit(f"{where} called sys.exit({exc.code!r}); the app goes on")


async def without_exit(work: Awaitable[T], where: str = "the task") -> T:
    """``await work``, its ``SystemExit`` raised as :class:`PluginExit` instead."""
    try:
        return await work
    except SystemExit as exc:
        raise _exited(exc, where) from exc


async def _stream_without_exit(body: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        async for chunk in body:
            yield chunk
    except SystemExit as exc:
        raise _exited(exc, "the response's stream") from exc


@functools.cache
def plugin_route_class() -> type[Any]:
    """The route class of plugin routers: a streaming response's body (run by Starlette
    in a task of its own) cannot end the app with ``sys.exit()``."""
    from fastapi.routing import APIRoute
    from starlette.requests import Request
    from starlette.responses import Response

    class PluginRoute(APIRoute):
        def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
            if inspect.isasyncgenfunction(endpoint):
                # FastAPI runs a generator endpoint (SSE, JSON lines) in a task of its own.
                original = endpoint

                @functools.wraps(original)
                async def endpoint(*args: Any, **kw: Any) -> AsyncIterator[Any]:
                    async for item in _stream_without_exit(original(*args, **kw)):
                        yield item

            super().__init__(path, endpoint, **kwargs)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                response = await handler(request)
                body = getattr(response, "body_iterator", None)
                if body is not None:
                    response.body_iterator = _stream_without_exit(body)  # type: ignore[attr-defined]
                return response

            return guarded

    return PluginRoute
