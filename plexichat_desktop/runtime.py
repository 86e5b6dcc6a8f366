"""The headless core, composed: settings, event bus, plugins and the web server.

``plexichat-desktop serve`` runs it on a plain asyncio loop; the desktop GUI runs the same
object inside its qasync loop and is just one more subscriber of the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plexichat_desktop import __version__
from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.core.waiting import first_set, wait_ended

# The rest of the core (FastAPI, uvicorn, the plugin host, the test manager: about half a
# second of imports) is imported when a Runtime is made, not with this module: the desktop
# app starts Chromium first, so that its processes come up while these imports run.
if TYPE_CHECKING:
    from plexichat_desktop.core.events import EventBus
    from plexichat_desktop.scheduling.service import SchedulerService
    from plexichat_desktop.server.listening import AppGate, EarlyFiles
    from plexichat_desktop.server.security import ServerIdentity
    from plexichat_desktop.server.v1 import ApiV1
    from plexichat_desktop.server.web_server import WebServer
    from plexichat_desktop.testing.manager import TestManager

log = logging.getLogger(__name__)
HOST = "127.0.0.1"  # the server's address (server/web_server.py binds it)


@dataclass
class RuntimeOptions:
    safe_mode: bool = False
    include_installed: bool = True
    bundled: bool = True
    extra_plugin_dirs: list = field(default_factory=list)
    # A desktop window shows this runtime: test runs yield the CPU to it.
    window: bool = False


# What a Runtime imports (see import_core).
CORE_MODULES = (
    "plexichat_desktop.core.events", "plexichat_desktop.plugins.manager",
    "plexichat_desktop.server.event_log", "plexichat_desktop.server.v1",
    "plexichat_desktop.server.app", "plexichat_desktop.testing.store",
)
# The test manager's and scheduler's (see Runtime.start): imported once the app answers,
# when it serves through a listener.
TEST_SIDE_MODULES = ("plexichat_desktop.testing.manager", "plexichat_desktop.scheduling.service")


def import_core() -> None:
    """Import what a :class:`Runtime` needs. ``serve`` does it in a worker thread once it
    listens, so that its loop answers /healthz meanwhile (the imports take the GIL in
    turns with it, a few milliseconds at a time, instead of holding the loop for their
    whole duration)."""
    _import_all(CORE_MODULES)


def _import_all(names: tuple[str, ...]) -> None:
    import importlib

    for name in names:
        importlib.import_module(name)


def _plugin_sources(options: RuntimeOptions) -> dict[str, Any]:
    """Where a runtime with ``options`` finds its plugins (the plugin manager's arguments)."""
    from plexichat_desktop.core.paths import bundled_plugins_dir, extra_plugin_dirs

    return {"bundled_dir": bundled_plugins_dir() if options.bundled else None,
            "extra_dirs": [*extra_plugin_dirs(), *options.extra_plugin_dirs],
            "include_installed": options.include_installed}


def early_files(paths: AppPaths, settings: Settings, options: RuntimeOptions) -> EarlyFiles:
    """What a listener may answer before the app exists (the desktop window's first
    pages): the web folders of the plugins a runtime with ``options`` would find and not
    find turned off, and the app's shared assets. Of each plugin only its manifest's id is
    read: a plugin that then cannot start has its page replaced by the reason (the window
    does it when the runtime is attached, or when the plugin fails)."""
    from plexichat_desktop.core.paths import resources_dir
    from plexichat_desktop.plugins.discovery import discover, read_disabled, web_folders
    from plexichat_desktop.server.listening import EarlyFiles

    sources = _plugin_sources(options)
    candidates = discover(sources["bundled_dir"], paths.user_plugins_dir,
                          sources["extra_dirs"], sources["include_installed"])
    safe = options.safe_mode or settings.plugins.safe_mode
    folders = web_folders(candidates, read_disabled(paths.plugin_states_file),
                          only_bundled=settings.plugins.essential if safe else None)
    return EarlyFiles({f"/plugins/{pid}/": web for pid, web in folders.items()},
                      {"/_app/": resources_dir() / "web"})


@dataclass
class _TestSide:
    tests: TestManager
    scheduler: SchedulerService


class Listener:
    """``serve``'s server, listening before the rest of the core is imported.

    Made with only what must precede an answer: the app folders made private, the token,
    the browser-session identity and the port bound (a taken port raises
    ``PortInUseError`` here, before anything else starts). :meth:`start` serves an
    :class:`~plexichat_desktop.server.listening.AppGate`; a :class:`Runtime` made with this
    listener installs its app there. Until then /healthz answers with ``ready: false``,
    ``plugins_started: false`` and the plugin states known so far, and other requests wait
    for the app."""

    def __init__(self, paths: AppPaths, settings: Settings):
        from plexichat_desktop.core.permissions import secure_app_dirs
        from plexichat_desktop.server.listening import AppGate, bind_socket
        from plexichat_desktop.server.security import ServerIdentity
        from plexichat_desktop.server.token import load_or_create_token

        secure_app_dirs(paths.roots)  # first, as in Runtime: the token is created private
        self.token = load_or_create_token(paths.token_file)
        self.identity: ServerIdentity = ServerIdentity(
            self.token, settings.server.browser_session_hours * 3600)
        self._socket = bind_socket(settings.server.port)
        self.port: int = self._socket.getsockname()[1]
        self.identity.port = self.port
        self.started_at = time.time()
        self._settings = settings.server
        # Set by the runtime once it has discovered the plugins.
        self.plugin_states: Callable[[], dict[str, int]] = dict
        self.gate: AppGate = AppGate(self.identity, self._health)
        # Made by start(): uvicorn is imported then, not before the window is shown.
        self.server: WebServer | None = None
        self.serving = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def _health(self) -> dict[str, Any]:
        # The same keys as the app's /healthz, which says ``ready: true``.
        return {"status": "ok", "version": __version__,
                "uptime": time.time() - self.started_at, "plugins": self.plugin_states(),
                "plugins_started": False, "ready": False}

    async def start(self) -> str:
        """Serve the gate; the URL."""
        from plexichat_desktop.server.web_server import WebServer

        if self.server is None:
            self.server = WebServer.configured(self.gate, self._settings, self._socket)
        await self.server.start()
        self.serving = True
        return self.url

    async def stop(self) -> None:
        """Stop serving (requests still waiting for the app get 503); the port is closed
        also when it was never served."""
        self.gate.close()
        if self.server is not None:
            await self.server.stop()
        else:
            self._socket.close()
        self.serving = False


class Runtime:
    """Start and stop the whole core in the running loop, in a fixed order."""

    def __init__(self, paths: AppPaths, settings: Settings,
                 options: RuntimeOptions | None = None, listener: Listener | None = None,
                 bus: EventBus | None = None):
        """With ``listener`` (already serving, or not), the runtime uses its token, identity
        and port and installs its app in the listener's gate instead of binding and serving
        on its own. ``bus``: one made earlier (the window subscribes to it before the
        runtime exists); a new one otherwise."""
        from plexichat_desktop.core.events import EventBus
        from plexichat_desktop.core.permissions import secure_app_dirs
        from plexichat_desktop.plugins.manager import PluginManager
        from plexichat_desktop.server.event_log import EventLog
        from plexichat_desktop.server.security import ServerIdentity
        from plexichat_desktop.server.token import load_or_create_token
        from plexichat_desktop.testing.store import ResultStore

        opts = options or RuntimeOptions()
        self.options = opts
        self._listener = listener
        if listener is None:
            # First: everything below is created private, and older files are tightened.
            secure_app_dirs(paths.roots)
        self.paths = paths
        self.settings = settings
        self.bus = bus if bus is not None else EventBus()
        self.token = listener.token if listener is not None else load_or_create_token(
            paths.token_file)
        self.plugins = PluginManager(paths=paths, settings=settings, bus=self.bus,
                                     safe_mode=opts.safe_mode, **_plugin_sources(opts))
        self.plugins.app_token = self.token
        self.stopping = asyncio.Event()
        self.identity = listener.identity if listener is not None else ServerIdentity(
            self.token, settings.server.browser_session_hours * 3600)
        self.server: WebServer | None = None
        # Opened now: a store that cannot be opened stops the start before the app
        # answers (the test manager's start would fail on it later).
        self.store = ResultStore(paths.data_dir / "tests.sqlite3")
        # The test manager and scheduler: made when first used (see _test_side), started
        # by start(); the /tests routes wait for that.
        self._tests: _TestSide | None = None
        self.tests_started = asyncio.Event()
        self._tests_wanted = asyncio.Event()
        self._tests_hold: tuple[asyncio.Event, float] | None = None
        self._tests_starting: asyncio.Task[None] | None = None
        self.event_log = EventLog(self.bus, ("tests.", "schedules."))
        # The embedded PlexiChat v1 API: its own store and background work (webhooks, metrics).
        self.api_v1 = self._open_api_v1() if settings.api.enabled else None
        self._plugins_starting: asyncio.Task[None] | None = None
        # What the server can build after it answers (see create_app's ``later``).
        self._later: list[Callable[[], None]] = []
        self._socket: socket.socket | None = None  # bound by prepare(), served by start()
        self.port: int | None = None

    @property
    def tests(self) -> TestManager:
        """The test manager (made on first use; running once :attr:`tests_started` is set)."""
        return self._test_side().tests

    @property
    def scheduler(self) -> SchedulerService:
        """The test scheduler (made on first use; running once :attr:`tests_started` is set)."""
        return self._test_side().scheduler

    def _test_side(self) -> _TestSide:
        if self._tests is None:
            from plexichat_desktop.scheduling.service import SchedulerService
            from plexichat_desktop.testing.manager import TestManager

            settings = self.settings.tests
            tests = TestManager(self.plugins, self.store, self.bus,
                                self.paths.cache_dir / "runs", settings,
                                window=self.options.window)
            scheduler = SchedulerService(self.store, tests, self.bus,
                                         catch_up_spread=settings.catch_up_spread,
                                         at=settings.daily_time)
            self._tests = _TestSide(tests, scheduler)
        return self._tests

    def hold_tests(self, until: asyncio.Event, timeout: float) -> None:
        """Through a listener, start the test side once ``until`` is set (the window's
        first pages have loaded), ``timeout`` seconds have passed, or something needs
        it (:meth:`tests_ready`), whichever comes first, instead of right after the app
        answers: the first pages do not share the CPU with it."""
        self._tests_hold = (until, timeout)

    async def tests_ready(self) -> None:
        """Wait until the test manager and the scheduler run, asking for them to start
        now if they are held back (see :meth:`hold_tests`)."""
        self._tests_wanted.set()
        await self.tests_started.wait()

    async def _start_tests(self) -> None:
        try:
            if self._tests is None:
                await asyncio.to_thread(_import_all, TEST_SIDE_MODULES)
            side = self._test_side()
            await side.tests.start()
            await side.scheduler.start()
        finally:
            # Set also on failure: requests waiting for it go on, and get the error.
            self.tests_started.set()

    async def _start_tests_later(self) -> None:
        if self._tests_hold is not None:
            until, timeout = self._tests_hold
            await first_set(until, self._tests_wanted, timeout=timeout)
            self._tests_hold = None  # past the hold: stop() lets the start finish
        try:
            await self._start_tests()
        except Exception:
            log.exception("the test manager could not start: tests do not run in this "
                          "session")

    def _open_api_v1(self) -> ApiV1 | None:
        from plexichat_desktop.core.sqlite import SchemaVersionError
        from plexichat_desktop.server.v1 import ApiV1

        # Optional: a v1 database the app cannot open must not keep the app from starting.
        try:
            api = ApiV1(self.paths, self.settings.api)
        except (SchemaVersionError, OSError, sqlite3.Error) as exc:
            log.error("the PlexiChat v1 API is off for this session: %s", exc)
            return None
        api.is_owner = self.identity.is_owner
        return api

    def browser_login_link(self, next_path: str = "/") -> str:
        """A link that signs a browser in once: a one-time code (valid five minutes),
        never the token. For "copy a login link" and for opening pages in the system
        browser."""
        if self.port is None:
            raise RuntimeError("the runtime is not started")
        return self.identity.login_link(next_path)

    def sign_out_browsers(self) -> int:
        """End every browser session ("Sign out all browsers"); how many were active."""
        ended = self.identity.sessions.revoke_all()
        log.info("signed out %d browser session(s)", ended)
        return ended

    @property
    def url(self) -> str:
        """The server's URL: known from :meth:`prepare` on (the port is bound then, so a
        window can point its tabs at it while the server starts)."""
        if self.port is None:
            raise RuntimeError("the runtime is not started")
        return f"http://{HOST}:{self.port}/"

    def prepare(self) -> str:
        """Bind the port and discover the plugins (no plugin code runs); the URL.

        The desktop window calls this before :meth:`start`, so it can show itself and its
        restored tabs (their requests wait in the socket's backlog, then for their
        plugins) while the server and the plugins start. Raises ``PortInUseError`` if the
        port is taken. Idempotent; :meth:`start` calls it when nobody did."""
        if self.port is None:
            if self._listener is not None:
                self.port = self._listener.port
            else:
                from plexichat_desktop.server.listening import bind_socket

                self._socket = bind_socket(self.settings.server.port)
                self.port = self._socket.getsockname()[1]
            self.identity.port = self.port
            self.plugins.server_url = self.url
            self.plugins.discover()
            if self._listener is not None:
                self._listener.plugin_states = self._plugin_states
        return self.url

    def _plugin_states(self) -> dict[str, int]:
        states: dict[str, int] = {}
        for rec in self.plugins.records:
            states[str(rec.state)] = states.get(str(rec.state), 0) + 1
        return states

    async def start(self, plugins_in_background: bool = False) -> str:
        """Bind the port, start plugins, then serve. Returns the server URL.

        With ``plugins_in_background`` the server answers first and the plugins start
        right after, in the background (what ``serve`` and the window do: the first page
        does not wait for every plugin's imports); a request for a plugin still starting
        waits for it, and goes first; the routes the app defers (the /tests API, its
        dashboards, the app's own pages) are built once the plugins have started.
        Without it (a test's core), each of those is built by the first request that may
        need it. Raises ``PortInUseError`` before any plugin code runs if the port is
        taken.
        """
        from plexichat_desktop.core.events import ServerStarted
        from plexichat_desktop.core.paths import resources_dir
        from plexichat_desktop.server.app import create_app
        from plexichat_desktop.server.web_server import WebServer

        self.prepare()
        listener = self._listener
        self.bus.bind(asyncio.get_running_loop())
        self.event_log.start()
        app = create_app(self.plugins, self.bus, self.identity, resources_dir(),
                         self.stopping, self, self.event_log, api_v1=self.api_v1,
                         # Built after the plugins started in the background; a core
                         # started otherwise (tests' cores) builds each part when a
                         # request first needs it, or never.
                         later=self._later)
        if listener is not None:
            if not listener.serving:
                await listener.start()
            self.server = listener.server
            assert self.server is not None
        else:
            assert self._socket is not None
            self.server = WebServer.configured(app, self.settings.server, self._socket)
        if not plugins_in_background:
            await self.plugins.start()
        # Through a listener (serve, the window) the app answers before the test manager
        # and the scheduler exist: their imports and start were ~20-25 ms of the time to
        # "ready"; the /tests routes (and the Tests panel) wait for tests_ready().
        if listener is None:
            await self._start_tests()
        if self.api_v1 is not None:
            await self.api_v1.start()
        if listener is not None:
            listener.gate.install(app)
        else:
            await self.server.start()
        self.bus.publish(ServerStarted(url=self.server.url))
        if plugins_in_background:
            self._plugins_starting = asyncio.get_running_loop().create_task(
                self._start_plugins(), name="start plugins")
        if listener is not None:
            self._tests_starting = asyncio.get_running_loop().create_task(
                self._start_tests_later(), name="start the test manager")
        if not plugins_in_background:
            self._log_started()
        return self.server.url

    async def _start_plugins(self) -> None:
        started = time.perf_counter()
        await self.plugins.start()
        if self.plugins.start_aborted:
            # Stopping: the deferred routes (a second or more of FastAPI route building
            # under load) would be built only for a server about to stop.
            return
        self._log_started(f" (plugins started in {time.perf_counter() - started:.2f} s)")
        self._finish_later()

    def _finish_later(self) -> None:
        """Build what the server left for later; a request needing it would build it."""
        while self._later:
            work = self._later.pop(0)
            try:
                work()
            except Exception:
                log.exception("building the server's deferred routes failed; the first "
                              "request that needs them tries again")

    def _log_started(self, extra: str = "") -> None:
        assert self.server is not None
        log.info("PlexiChat Desktop %s serving %s with %d of %d plugin(s) active%s",
                 __version__, self.server.url, len(self.plugins.active()),
                 len(self.plugins.records), extra)

    def begin_stop(self) -> None:
        """The app is about to stop: start no further plugin (the one being set up
        finishes). Called as soon as the window closes, before the window's own
        clean-up, so that no plugin starts only to be torn down."""
        self.plugins.abort_start()

    async def stop(self) -> None:
        """Stop in order: end live streams, test runs, plugins, then the server."""
        from plexichat_desktop.core.events import ServerStopping

        self.bus.publish(ServerStopping())
        self.stopping.set()
        if self._plugins_starting is not None:
            # Let the plugin being set up finish (tearing down half a setup is worse), but
            # start no other; one still importing is left to its thread (see PluginManager).
            self.plugins.abort_start()
            with contextlib.suppress(Exception):
                await self._plugins_starting
            self._plugins_starting = None
        if self._tests_starting is not None:
            # Still held back: nothing of it started. Otherwise its start is short (and
            # half a start is worse to stop): let it finish.
            if self._tests_hold is not None:
                self._tests_starting.cancel()
            await wait_ended(self._tests_starting)
            self._tests_starting = None
        tests = self._tests
        if tests is not None:
            await tests.scheduler.stop()
            await tests.tests.stop()
        self.tests_started.set()  # nothing waits for a test side that will not come
        await self.plugins.stop()
        if self._listener is not None:
            await self._listener.stop()  # also when the app never got installed
            self.server = None
        elif self.server is not None:
            await self.server.stop()
            self.server = None
        elif self._socket is not None:  # prepared, never served
            self._socket.close()
        self._socket, self.port = None, None
        if self.api_v1 is not None:
            await self.api_v1.stop()
        await self.event_log.stop()
        self.store.close()
        log.info("PlexiChat Desktop stopped")


async def start_until_signal(runtime: Runtime, stop: asyncio.Event) -> str | None:
    """Start ``runtime`` with SIGINT/SIGTERM setting ``stop``; the URL, or None after
    telling the user why it could not start (the port was taken)."""
    from plexichat_desktop.server.listening import PortInUseError

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await runtime.start(plugins_in_background=True)
    except PortInUseError as exc:
        print(f"error: {exc.strerror}", file=sys.stderr)
        await runtime.stop()
        return None


async def listen_then_start(paths: AppPaths, settings: Settings, options: RuntimeOptions,
                            stop: asyncio.Event,
                            on_listening: Callable[[Listener], None]) -> Runtime | None:
    """``serve``'s start: listen first, then import, build and start the core, with
    SIGINT/SIGTERM setting ``stop``.

    ``on_listening`` is called once the port answers (/healthz, with ``ready: false``;
    other requests wait for the app). Returns the started runtime (its plugins starting in
    the background), or None after telling the user why it could not start (the port was
    taken); nothing but the listener was made then."""
    from plexichat_desktop.server.listening import PortInUseError

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        listener = Listener(paths, settings)
    except PortInUseError as exc:
        print(f"error: {exc.strerror}", file=sys.stderr)
        return None
    await listener.start()
    try:
        on_listening(listener)
        await asyncio.to_thread(import_core)
        runtime = Runtime(paths, settings, options, listener=listener)
    except BaseException:
        await listener.stop()
        raise
    try:
        await runtime.start(plugins_in_background=True)
    except BaseException:
        await runtime.stop()
        raise
    return runtime
