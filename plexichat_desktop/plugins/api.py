"""The plugin API: what a plugin author subclasses and what the host hands to a plugin.

A plugin is a folder with ``plugin.toml``, a Python package, ``web/`` and ``tests/``::

    my_plugin/
        plugin.toml            id, name, version, entry = "my_plugin:MyPlugin", pages ...
        my_plugin/__init__.py  class MyPlugin(Plugin)
        web/index.html         served at /plugins/<id>/
        tests/test_my_plugin.py

The host imports the entry class, creates it without arguments and calls
``setup(ctx)`` with a :class:`PluginContext`. Routes added through the context are served
under ``/plugins/<id>/api/``; files in ``web/`` under ``/plugins/<id>/``. When the plugin
is disabled or the app quits, ``teardown()`` is called, then everything the context
started (tasks, callbacks registered with ``on_teardown``) is cleaned up.

Anything a plugin raises (import, setup, a route handler, teardown) is caught by the
host: the plugin is marked failed with the traceback and the app keeps running.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from plexichat_desktop.core.events import EventBus, PluginEvent
from plexichat_desktop.core.logs import PLUGIN_LOGGER_PREFIX
from plexichat_desktop.plugins.manifest import Manifest, Page
from plexichat_desktop.plugins.sse import event_stream

log = logging.getLogger(__name__)


class Plugin:
    """Base class of every plugin. Override :meth:`setup` and, if needed, :meth:`teardown`.

    Both may be plain methods or ``async def``. ``setup`` should return quickly (within
    the ``plugins.setup_timeout`` setting); start long work with ``ctx.create_task``.
    """

    ctx: PluginContext

    def setup(self, ctx: PluginContext) -> Awaitable[None] | None:
        """Called once when the plugin starts. Register routes and pages here."""
        return None

    def teardown(self) -> Awaitable[None] | None:
        """Called once when the plugin stops. Tasks from ``ctx.create_task`` are
        cancelled after this returns."""
        return None


class PluginContext:
    """Everything the host offers to one plugin.

    Attributes:
        plugin_id: the plugin's id from its manifest.
        manifest: the validated manifest.
        root: the plugin folder (the one holding ``plugin.toml``).
        logger: a logger whose records carry the plugin id.
        settings: read-only settings: manifest ``[settings]`` defaults overridden by the
            user's ``[plugin.<id>]`` table in settings.toml.
        bus: the application's event bus.
        router: a FastAPI ``APIRouter`` mounted at ``/plugins/<id>/api/``.
        stopping: an ``asyncio.Event`` set when the plugin is being stopped; long-lived
            responses (event streams) end when it is set.
    """

    def __init__(
        self,
        manifest: Manifest,
        root: Path,
        data_root: Path,
        bus: EventBus,
        settings: Mapping[str, Any],
    ):
        self.plugin_id = manifest.id
        self.manifest = manifest
        self.root = root
        self.logger = logging.getLogger(PLUGIN_LOGGER_PREFIX + manifest.id)
        self.settings: Mapping[str, Any] = MappingProxyType(dict(settings))
        self.bus = bus
        self.router = APIRouter()
        self.stopping = asyncio.Event()
        self._data_dir = data_root / manifest.id
        self._pages: list[Page] = list(manifest.pages)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._teardown_callbacks: list[Callable[[], Any]] = []

    # -- files -------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """A folder of the plugin's own for data that must survive restarts (created)."""
        self._data_dir.mkdir(parents=True, exist_ok=True)
        return self._data_dir

    @property
    def web_dir(self) -> Path:
        """The plugin's static files, served at ``/plugins/<id>/``."""
        return self.root / "web"

    @property
    def base_url(self) -> str:
        """The server path of the plugin's pages, e.g. ``/plugins/hello/``."""
        return f"/plugins/{self.plugin_id}/"

    @property
    def api_url(self) -> str:
        """The server path of the plugin's routes, e.g. ``/plugins/hello/api/``."""
        return f"/plugins/{self.plugin_id}/api/"

    # -- routes and pages ----------------------------------------------------------------
    def add_route(
        self, path: str, endpoint: Callable[..., Any], methods: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Serve ``endpoint`` at ``/plugins/<id>/api<path>`` (FastAPI semantics)."""
        if not path.startswith("/"):
            path = "/" + path
        self.router.add_api_route(path, endpoint, methods=methods or ["GET"], **kwargs)

    def add_page(self, title: str, path: str = "", icon: str | None = None) -> Page:
        """Register a page (besides those in the manifest) shown in tabs and windows."""
        page = Page(title=title, path=path, icon=icon)
        self._pages.append(page)
        return page

    @property
    def pages(self) -> list[Page]:
        return list(self._pages)

    # -- events ------------------------------------------------------------------------
    def publish(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Publish a :class:`PluginEvent` named ``name`` on the bus."""
        self.bus.publish(PluginEvent(plugin_id=self.plugin_id, name=name, data=data or {}))

    def event_stream(self, source: AsyncIterator[tuple[str, Any]]) -> StreamingResponse:
        """A Server-Sent Events response fed by ``source`` (``(name, data)`` pairs);
        it ends when the plugin stops."""
        return event_stream(source, self.stopping)

    # -- background work -----------------------------------------------------------------
    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None
                    ) -> asyncio.Task[Any]:
        """Start background work owned by the plugin; cancelled when the plugin stops.
        An exception in it is logged with the plugin id and does not stop the app."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("background task %s failed", task.get_name(),
                              exc_info=task.exception())

    def on_teardown(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` (sync or async) when the plugin stops, in reverse order."""
        self._teardown_callbacks.append(callback)

    async def _close(self) -> None:
        """Host side: release everything the context owns. Errors are logged, not raised."""
        self.stopping.set()
        for callback in reversed(self._teardown_callbacks):
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.logger.exception("teardown callback %r failed", callback)
        self._teardown_callbacks.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["Plugin", "PluginContext"]
