"""The plugin API: what a plugin author subclasses and what the host hands to a plugin.

A plugin is a folder with ``plugin.toml``, a Python package, ``web/`` and ``tests/``::

    my_plugin/
        plugin.toml            id, name, version, entry = "my_plugin:MyPlugin", pages ...
        my_plugin/__init__.py  class MyPlugin(Plugin)
        web/index.html         served at /plugins/<id>/
        tests/test_my_plugin.py

The host imports the entry class, creates it without arguments and calls
``setup(ctx)`` with a :class:`PluginContext`. Routes added through the context are served
under ``/plugins/<id>/api/``; files in ``web/`` under ``/plugins/<id>/``.

What is injected when, in order:

1. before the import: the manifest was validated and ``[requires_python]`` /
   ``[requires_system]`` checked (:mod:`~plexichat_desktop.plugins.requirements`);
2. the plugin's folder is appended to ``sys.path``, the entry module imported and the
   class created without arguments;
3. the context is built (settings merged and type-checked, ``missing``, ``jobs``, the
   host routes under ``/plugins/<id>/api/_host/``); if the class names a
   ``settings_model`` the settings are validated with it into ``ctx.config``;
4. ``instance.ctx = ctx``, then ``setup(ctx)`` (within ``[plugins] setup_timeout``: an
   async setup is stopped there; a synchronous one holds the app until it returns, and
   fails the plugin when it took longer, with a warning from one second on).

When the plugin is disabled, reloaded or the app quits, in this order: ``teardown()``;
``ctx.stopping`` is set (event streams end) and the services it provides are withdrawn;
the ``on_teardown`` callbacks run, last registered first; its schedules stop (a run in
progress is cancelled); unfinished jobs are cancelled; the tasks of ``create_task`` are
cancelled; all of them are awaited. Plugins that require it are stopped before it.

Anything a plugin raises (import, setup, a route handler, teardown) is caught by the
host: the plugin is marked failed with the traceback and the app keeps running. A
:class:`PluginProblem` raised while a route handles a request is not a failure but the
answer: its status with ``{"detail": "field: why", "field": ...}``.

Plugins can offer services to each other. A provider calls ``ctx.provide(name, factory)``
in its ``setup``; a consumer lists the provider under ``[requires]`` in its
``plugin.toml`` (so it starts after the provider and stops before it) and calls
``ctx.service(name)``, which returns ``factory(consumer_ctx)``: the provider sees who is
asking (id, manifest, declared permissions) and can hand out something tailored to it.
The bundled API integration layer offers ``"api"`` this way, a PlexiChat v1 client limited
to the API scopes the consumer declares (``ctx.api`` is the shorthand)::

    # plugin.toml of the consumer
    [requires]
    api_integration_layer = ">=1.0,<2"
    [permissions]
    api_scopes = ["messages:read", "files:write"]

    # its setup()
    async def setup(self, ctx):
        self.api = ctx.api
        conversations = await self.api.messages.conversations()
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from plexichat_desktop.core.events import EventBus, PluginEvent
from plexichat_desktop.core.logs import PLUGIN_LOGGER_PREFIX
from plexichat_desktop.plugins.faults import PLUGIN_FAULTS, plugin_route_class, without_exit
from plexichat_desktop.plugins.jobs import Job, JobManager
from plexichat_desktop.plugins.manifest import Manifest, Page
from plexichat_desktop.plugins.requirements import MissingRequirement
from plexichat_desktop.plugins.schedules import PluginSchedule, PluginScheduler
from plexichat_desktop.plugins.sse import event_stream

if TYPE_CHECKING:
    from fastapi import APIRouter
    from starlette.responses import StreamingResponse

log = logging.getLogger(__name__)

ServiceFactory = Callable[["PluginContext"], Any]
HOST_PREFIX = "/_host"


class ServiceUnavailable(LookupError):
    """A plugin asked for a service that is not offered, or not to it; the message says
    which plugin, which service and what to change."""


class PluginProblem(Exception):
    """Raise it in a route handler (or anything it awaits) to answer with a 4xx/5xx JSON
    body naming the input at fault, instead of the route's result::

        raise PluginProblem(422, "email", "is not an address")
        # -> 422 {"detail": "email: is not an address", "field": "email"}

        raise PluginProblem(409, "name", f"{name!r} exists", existing=other_id)
        # -> 409 {"detail": "name: 'x' exists", "field": "name", "existing": "..."}

    ``field`` is what the page marks: a body key, a query parameter or a dotted path
    (``variables.name``); with None the detail is the bare message and ``"field"`` is
    null. Keyword arguments are added to the body as they are (JSON values: when one is
    not, such as an exception, the answer is the detail and field alone and the plugin's
    log says why; ``detail`` cannot be one).

    The host's plugin router makes the answer (it is not logged as a failure), so a
    helper deep in the call can refuse without the route catching anything. Subclass it
    for a plugin's own kinds of problem (override :meth:`body` for another JSON body,
    e.g. another service's message passed on as it is). Raised by a job's work it is
    the job's refusal: the job fails with the detail as its ``error``, logged without a
    traceback. Raised elsewhere (a schedule, a task) it is an ordinary exception.
    Blocking work (SQLite, files) belongs in ``await asyncio.to_thread(fn, *args)``; a
    problem raised there reaches the route unchanged.
    """

    def __init__(self, status: int, field: str | None, message: str, **extra: Any):
        if not 400 <= status <= 599:
            raise ValueError(f"a problem's status is 4xx or 5xx, not {status}")
        if "detail" in extra:
            # The pages show the detail: an extra must not replace what the field says.
            raise TypeError("'detail' is the message, not an extra of a PluginProblem")
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.field = field
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``{"detail": str(self), "field": ..., **extra}``."""
        return {"detail": str(self), "field": self.field, **self.extra}


class ServiceRegistry:
    """The services plugins offer each other, by name; one registry per plugin manager.

    Plugin code does not use this class directly: providers call
    :meth:`PluginContext.provide`, consumers :meth:`PluginContext.service`.
    """

    def __init__(self) -> None:
        self._services: dict[str, tuple[str, ServiceFactory]] = {}

    def offer(self, name: str, provider_id: str, factory: ServiceFactory) -> None:
        """Register ``factory`` under ``name`` for ``provider_id``; a name has one provider."""
        current = self._services.get(name)
        if current is not None and current[0] != provider_id:
            raise ValueError(f"service '{name}' is already provided by plugin '{current[0]}'")
        self._services[name] = (provider_id, factory)

    def withdraw(self, provider_id: str) -> list[str]:
        """Remove every service of ``provider_id`` (it is stopping); the names removed."""
        names = [n for n, (pid, _) in self._services.items() if pid == provider_id]
        for name in names:
            del self._services[name]
        return names

    def provider_of(self, name: str) -> str | None:
        """The id of the plugin offering ``name``, or None."""
        entry = self._services.get(name)
        return entry[0] if entry else None

    def names(self) -> dict[str, str]:
        """{service name: provider plugin id}."""
        return {name: pid for name, (pid, _) in self._services.items()}

    def create(self, name: str, consumer: PluginContext) -> Any:
        """Build ``name`` for ``consumer``, checking that the consumer requires the provider."""
        entry = self._services.get(name)
        if entry is None:
            offered = ", ".join(sorted(self._services)) or "none"
            raise ServiceUnavailable(
                f"plugin '{consumer.plugin_id}' asked for service '{name}', which no active "
                f"plugin offers (offered now: {offered}); is its provider installed, "
                "enabled and listed under [requires]?")
        provider_id, factory = entry
        if provider_id != consumer.plugin_id and provider_id not in consumer.manifest.requires:
            raise ServiceUnavailable(
                f"plugin '{consumer.plugin_id}' asked for service '{name}' of plugin "
                f"'{provider_id}' without requiring it: add {provider_id} = \">=1.0\" (or "
                f"the range it needs) under [requires] in its plugin.toml, so it starts "
                f"after '{provider_id}' and stops before it")
        return factory(consumer)


class Plugin:
    """Base class of every plugin. Override :meth:`setup` and, if needed, :meth:`teardown`.

    Both may be plain methods or ``async def``. ``setup`` should return quickly (within
    the ``plugins.setup_timeout`` setting); start long work with ``ctx.create_task``.
    """

    ctx: PluginContext
    #: A :class:`~plexichat_desktop.plugins.settings.PluginSettings` model of the
    #: plugin's settings: the host validates ``ctx.settings`` with it before ``setup``
    #: (a bad value fails the plugin, naming the key) and hands the result as
    #: ``ctx.config``. None: no validation beyond the types of the manifest defaults.
    settings_model: ClassVar[type[BaseModel] | None] = None

    def setup(self, ctx: PluginContext) -> Awaitable[None] | None:
        """Called once when the plugin starts. Register routes, pages, jobs' starters and
        schedules here; start long-lived work with ``ctx.create_task``. An exception (or
        running past ``[plugins] setup_timeout``) fails the plugin with the reason shown
        to the user; what the context started so far is released. Setup runs on the
        app's event loop: a synchronous one holds the whole app (every page, every
        request) while it runs and can only be judged when it returns, so slow work
        (reading big files, waiting on the network) goes in an ``async def setup`` with
        ``await asyncio.to_thread(...)``, which the timeout does stop. Example::

            def setup(self, ctx):
                async def hello(who: str = "world") -> dict:
                    return {"message": f"{ctx.settings['greeting']}, {who}!"}

                ctx.add_route("/hello", hello)          # GET /plugins/<id>/api/hello
        """
        return None

    def teardown(self) -> Awaitable[None] | None:
        """Called once when the plugin stops, before the context releases anything (the
        plugin's tasks, jobs and schedules still exist here). Stop what ``setup`` started
        outside the context, e.g. close a client. Exceptions are logged, not raised."""
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
        server_url: the app's own server, e.g. ``http://127.0.0.1:8000/`` (known before
            ``setup`` runs, although requests are only answered once start-up is over);
            None when the plugin runs without the server (some tests).
        app_token: the app's own secret token (what the desktop window sends), for a
            plugin that calls the app's server on the user's behalf; None without one.
            Never put it in a page, a URL or a log.
        config: the plugin's settings validated with its ``Plugin.settings_model`` (set
            before ``setup``), or None when the plugin declares no model.
        jobs: the plugin's :class:`~plexichat_desktop.plugins.jobs.JobManager`:
            ``ctx.jobs.start(name, work, *args)`` runs long work with progress and
            cancel, streamed to the page and served under ``/plugins/<id>/api/_host/jobs``;
            unfinished jobs are cancelled when the plugin stops. A finished job also
            publishes ``job.finished`` on the bus.
        missing: the optional ``[requires_python]``/``[requires_system]`` entries this
            machine lacks (:class:`~plexichat_desktop.plugins.requirements.
            MissingRequirement`: ``requirement``, ``kind``, ``install``, ``reason``).
            Empty unless the plugin is ``degraded``. Check it before using an optional
            package, or use :meth:`has`.
        memory: a dict of the plugin's that lasts while the app runs: across reloads,
            disables and enables of the plugin, never written anywhere. For what must
            not outlive the app (a session the user did not ask to keep).
    """

    def __init__(
        self,
        manifest: Manifest,
        root: Path,
        data_root: Path,
        bus: EventBus,
        settings: Mapping[str, Any],
        services: ServiceRegistry | None = None,
        server_url: str | None = None,
        app_token: str | None = None,
        missing: list[MissingRequirement] | None = None,
        schedule_options: Mapping[str, Any] | None = None,
        memory: dict[str, Any] | None = None,
    ):
        self.plugin_id = manifest.id
        self.memory: dict[str, Any] = {} if memory is None else memory
        self.manifest = manifest
        self.root = root
        self.logger = logging.getLogger(PLUGIN_LOGGER_PREFIX + manifest.id)
        self.settings: Mapping[str, Any] = MappingProxyType(dict(settings))
        self.bus = bus
        # FastAPI is imported by the first context, not with this module: the CLI's
        # commands that read manifests or results import the module and never route.
        from fastapi import APIRouter

        self.router: APIRouter = APIRouter(route_class=plugin_route_class())
        self.stopping = asyncio.Event()
        self._data_dir = data_root / manifest.id
        self._pages: list[Page] = list(manifest.pages)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._teardown_callbacks: list[Callable[[], Any]] = []
        self.server_url = server_url
        self.app_token = app_token
        self._registry = services if services is not None else ServiceRegistry()
        self._services: dict[str, Any] = {}
        self.missing: tuple[MissingRequirement, ...] = tuple(missing or ())
        self.config: Any = None
        self.jobs = JobManager(self.plugin_id, self.logger, on_finished=self._job_finished)
        self._scheduler = PluginScheduler(
            self.plugin_id, data_root / ".schedules" / f"{self.plugin_id}.json", self.logger,
            **dict(schedule_options or {}))
        self._mount_host_routes()

    # -- requirements ----------------------------------------------------------------------
    @property
    def degraded(self) -> list[str]:
        """Why the plugin runs with features off (one reason per missing optional
        requirement, e.g. ``"missing semgrep>=1 (install: pip install 'semgrep>=1')"``);
        empty when nothing is missing. Also served to the plugin's page at
        ``GET /plugins/<id>/api/_host/status``."""
        return [m.reason for m in self.missing]

    def has(self, requirement: str) -> bool:
        """False when the optional requirement ``requirement`` (as written in the manifest,
        or just its name: ``"semgrep"``) is missing; True otherwise::

            if ctx.has("semgrep"):
                rules.append(run_semgrep)
        """
        wanted = _requirement_name(requirement)
        return not any(_requirement_name(m.requirement) == wanted for m in self.missing)

    # -- services between plugins --------------------------------------------------------
    def provide(self, name: str, factory: ServiceFactory) -> None:
        """Offer the service ``name`` to other plugins.

        ``factory(consumer_ctx)`` is called once per consumer, on its first
        ``ctx.service(name)``, with the consumer's context: use its ``plugin_id`` and
        ``manifest`` (e.g. ``manifest.permissions.api_scopes``) to limit what it may do, and
        ``consumer_ctx.on_teardown`` to release what you made for it. The service is
        withdrawn when this plugin stops; the host stops the plugins that require this one
        first. Raises ``ValueError`` when another plugin already provides ``name``.
        """
        self._registry.offer(name, self.plugin_id, factory)

    def service(self, name: str) -> Any:
        """The service ``name`` offered by another plugin, made for this plugin.

        The provider must be listed under ``[requires]`` in this plugin's ``plugin.toml``;
        the same object is returned on every call while this plugin runs. Raises
        :class:`ServiceUnavailable` (naming this plugin, the service and the fix) when
        nobody offers it or the provider is not required, and whatever the provider's
        factory raises (e.g. a permission error for scopes it does not know).
        """
        if name not in self._services:
            self._services[name] = self._registry.create(name, self)
        return self._services[name]

    @property
    def api(self) -> Any:
        """The PlexiChat v1 API client of the ``api_integration_layer`` plugin, limited to
        the scopes in ``[permissions] api_scopes``: the same as ``self.service("api")``.

        Needs ``api_integration_layer`` under ``[requires]``. A call outside the declared
        scopes raises a ``PermissionError`` naming the plugin, the scope and the call; see
        the plugin's README for the scope names and the client's methods.

        Typed as ``Any`` here because the host must not import a plugin; for your editor
        and type checker, name its type yourself::

            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from api_integration_layer.scoped import ScopedApi

            api: ScopedApi = ctx.api
            me = await api.auth.me()
        """
        return self.service("api")

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
        """Serve ``endpoint`` at ``/plugins/<id>/api<path>`` (FastAPI semantics).

        Paths under ``/_host/`` belong to the host (see :meth:`_mount_host_routes`) and
        raise ``ValueError``."""
        if not path.startswith("/"):
            path = "/" + path
        if path == HOST_PREFIX or path.startswith(HOST_PREFIX + "/"):
            raise ValueError(f"plugin '{self.plugin_id}': route {path!r} is under "
                             f"{HOST_PREFIX}/, which the host reserves for its own routes")
        self.router.add_api_route(path, endpoint, methods=methods or ["GET"], **kwargs)

    def _mount_host_routes(self) -> None:
        """Routes every plugin gets from the host, under ``/plugins/<id>/api/_host/``:

        * ``GET _host/status``: ``{"plugin_id", "degraded": [reason...], "missing":
          [{"requirement", "kind", "optional", "found", "install", "reason"}...]}`` for
          the page to say which features are off and how to get them.
        * ``GET _host/schedules``: ``{"schedules": [...]}``, see :meth:`schedule`.
        * ``GET _host/jobs``, ``GET _host/jobs/{id}``, ``POST _host/jobs/{id}/cancel``,
          ``GET _host/jobs/events`` (SSE): the plugin's jobs, see
          :mod:`plexichat_desktop.plugins.jobs`.
        """
        from starlette.routing import Mount

        from plexichat_desktop.plugins.host_routes import HostRoutes

        self.router.routes.append(Mount(HOST_PREFIX, app=HostRoutes(self)))

    def add_page(self, title: str, path: str = "", icon: str | None = None) -> Page:
        """Register a page besides those in the manifest, shown in tabs and windows.

        ``path`` and ``icon`` are relative to the plugin's ``web/`` folder (``""`` is
        ``web/index.html``); no ``..``, no URL. Example: ``ctx.add_page("Reports",
        "reports.html")`` shows ``/plugins/<id>/reports.html``."""
        page = Page(title=title, path=path, icon=icon)
        self._pages.append(page)
        return page

    @property
    def pages(self) -> list[Page]:
        return list(self._pages)

    # -- events ------------------------------------------------------------------------
    def publish(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Publish a :class:`~plexichat_desktop.core.events.PluginEvent` (topic
        ``plugin.event``) named ``name`` on the app's event bus. It reaches every bus
        subscriber: the desktop window, the app's ``/events`` stream (so any page of the
        app, not only this plugin's), other plugins subscribed to the bus. Keep ``data``
        small and JSON-serialisable; for a stream only your page follows, use an
        :class:`~plexichat_desktop.plugins.hub.EventHub` and :meth:`event_stream`.
        Example: ``ctx.publish("alert", {"metric": "cpu", "value": 93.5})``."""
        self.bus.publish(PluginEvent(plugin_id=self.plugin_id, name=name, data=data or {}))

    def event_stream(self, source: AsyncIterator[tuple[str, Any]]) -> StreamingResponse:
        """A Server-Sent Events response fed by ``source`` (``(name, data)`` pairs, or
        ``(name, data, id)`` triples for resumable streams); it ends when the plugin stops
        or the client goes away (``source`` is closed then). Pages follow it with
        ``plexichatLive.open(url)`` (``/_app/live/client.js``), which shares one connection
        between all pages. Example::

            async def stream():
                return ctx.event_stream(hub.events(first=[("state", state())]))

            ctx.add_route("/stream", stream)"""
        return event_stream(source, self.stopping)

    # -- background work -----------------------------------------------------------------
    # ``jobs`` (a :class:`~plexichat_desktop.plugins.jobs.JobManager`) runs long work the
    # user sees and may cancel: ``ctx.jobs.start(name, work, *args)``; see that module.

    def schedule(self, expression: str, work: Callable[[], Awaitable[Any]], name: str, *,
                 timezone: str | None = None, grace: timedelta | None = None
                 ) -> PluginSchedule:
        """Run ``await work()`` on ``expression`` (``"daily"``, ``"every_15_minutes"``,
        ``"0 9 * * 1-5"``...) for as long as the plugin runs; ``name`` (stable, unique in
        the plugin) keys its persisted last run.

        The host's schedule grammar, DST rules and misfire policy apply: a fire missed
        while the app was closed runs once as a catch-up when it is within ``grace``
        (default: the schedule's period, at most 24 h), a fire while the previous run
        still goes is skipped. ``timezone`` is an IANA name (default: the machine's).
        Cancelled, a run in progress included, when the plugin stops. Listed at
        ``GET /plugins/<id>/api/_host/schedules``. Raises ``ValueError`` for a bad
        expression (the message lists the accepted forms) or a duplicate name. Details:
        :mod:`plexichat_desktop.plugins.schedules`. Example::

            async def nightly_report() -> None:
                ctx.jobs.start("report", build_report)

            ctx.schedule("daily", nightly_report, "nightly report")
        """
        return self._scheduler.add(expression, work, name, timezone=timezone, grace=grace)

    def _job_finished(self, job: Job) -> None:
        self.publish("job.finished", {"id": job.id, "name": job.name, "state": str(job.state),
                                      "error": job.error})

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None
                    ) -> asyncio.Task[Any]:
        """Start background work owned by the plugin; cancelled when the plugin stops.
        An exception in it is logged with the plugin id and does not stop the app."""
        task = asyncio.get_running_loop().create_task(without_exit(coro, "the task"),
                                                      name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        if inspect.iscoroutine(coro):
            # Cancelled before its first step (the plugin stopped at once), the wrapper
            # never started the plugin's coroutine: closed, it warns of nothing.
            task.add_done_callback(lambda _task: coro.close())
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("background task %s failed", task.get_name(),
                              exc_info=task.exception())

    def on_teardown(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` (sync or async) when the plugin stops, after ``teardown()``;
        callbacks run last registered first, before schedules, jobs and tasks end. An
        exception is logged and the next callback still runs. Example:
        ``ctx.on_teardown(client.aclose)``."""
        self._teardown_callbacks.append(callback)

    async def _close(self) -> None:
        """Host side: release everything the context owns. Errors are logged, not raised."""
        self.stopping.set()
        # Withdrawn first: a consumer starting while this plugin stops must not get a
        # service whose provider is going away.
        self._registry.withdraw(self.plugin_id)
        for callback in reversed(self._teardown_callbacks):
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except PLUGIN_FAULTS:
                self.logger.exception("teardown callback %r failed", callback)
        self._teardown_callbacks.clear()
        await self._scheduler.close()
        await self.jobs.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._services.clear()


def _requirement_name(text: str) -> str:
    name = re.split(r"[\s\[<>=!~;@]", text.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


__all__ = ["Plugin", "PluginContext", "PluginProblem", "ServiceRegistry",
           "ServiceUnavailable"]
