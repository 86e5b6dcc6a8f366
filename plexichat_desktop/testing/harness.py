"""The pytest plugin for plugin authors' tests: the app with your plugin, and the same rules
under plain pytest (an IDE) as under ``plexichat-desktop test``.

Load it from the plugin's ``pytest.ini`` (``plugins new`` writes it)::

    [pytest]
    testpaths = tests
    pythonpath = .
    addopts = -p plexichat_desktop.testing.harness --import-mode=importlib

pytest reads that file both when the test manager runs the suite (it passes the plugin's
config with ``-c``) and when an IDE or a terminal runs ``pytest`` on any of its test files,
and ``-p`` loads the plugin even with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set (the manager
sets it). What it gives:

- the fixture ``plexichat_app``: the app started on a temporary home with the plugin under
  test (the one whose folder holds the test file) and the plugins it needs, as a
  :class:`PlexiChatApp` (HTTP clients with the token, a v1 user where the plugin declares
  ``api_scopes``), stopped cleanly afterwards;
- the fixture ``plexichat_settings``: override it to change settings (``{"plugin":
  {"<id>": {...}}}`` and any ``settings.toml`` section);
- one app for a whole test module, since starting one costs more CPU than most tests:
  ``plexichat_shared_app`` (the module's ``plexichat_module_app``, set up with
  ``plexichat_module_settings``, after the module's ``plexichat_reset`` hook), and for
  async tests that share an object living on an event loop, ``module_loop`` with
  :class:`SharedCore` (see "one event loop per test module" below);
- the compatibility rules of the test manager (shared with its reporter, not copied): a
  plain ``async def`` test runs without a marker, a returned ``{"success": False, ...}``
  fails with its message;
- the per-test timeout of ``plugin.toml`` ``[tests] timeout`` when pytest runs without the
  test manager (the manager enforces it itself, with the stacks of a hung test).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import inspect
import itertools
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pytest

from plexichat_desktop.plugins.tls import shared_tls_context
from plexichat_desktop.testing.protocol import FD_ENV

if TYPE_CHECKING:
    # Imported where used: every forked test session loads this plugin, and httpx and the
    # manifest's pydantic models would add hundreds of ms to a one-test rerun that needs
    # neither (the app's own imports are paid by the tests that start it).
    import httpx

    from plexichat_desktop.core.events import Event
    from plexichat_desktop.core.paths import AppPaths
    from plexichat_desktop.plugins.manifest import Manifest

T = TypeVar("T")
REPORTER = "plexichat_desktop.testing.reporter"
START_LIMIT = 120.0     # seconds the app may take to start or stop in a fixture
# The v1 API tuned for tests: cheap password hashing and no sign-up/login rate limits.
FAST_API: dict[str, Any] = {"scrypt_cost": 4, "register_rate_limit": 0,
                            "login_rate_limit": 0, "performance_interval": 3600.0}
API_PROVIDER = "api_integration_layer"  # offers ctx.api to plugins with api_scopes
USER_PASSWORD = "Harness-Passw0rd-Long"
_users = itertools.count(1)


# -- finding the plugin under test -------------------------------------------------------
def plugin_root_of(path: Path) -> Path | None:
    """The plugin folder holding ``path``: the nearest folder upwards with a plugin.toml."""
    for folder in [path, *path.parents] if path.is_dir() else path.parents:
        if (folder / "plugin.toml").is_file():
            return folder
    return None


_manifests: dict[Path, Manifest | None] = {}


def _manifest(root: Path) -> Manifest | None:
    if root not in _manifests:
        from plexichat_desktop.plugins.manifest import load_manifest

        try:
            _manifests[root] = load_manifest(root / "plugin.toml")[0]
        except Exception:  # a broken manifest is the app's to report, with the reason
            _manifests[root] = None
    return _manifests[root]


# -- the app -----------------------------------------------------------------------------
@dataclass
class V1User:
    """A registered, logged-in user of the app's PlexiChat v1 API."""

    username: str
    password: str
    user_id: str
    access_token: str
    client: httpx.Client  # base URL .../api/v1/, the user's bearer token


@dataclass
class PlexiChatApp:
    """The running app of a test (see :func:`plexichat_app`).

    ``client`` talks to the plugin (base URL ``/plugins/<id>/``: ``client.get("api/x")``
    is the route ``ctx.add_route("/x", ...)``, ``client.get("")`` its page); ``host``
    to the app's own API (``/api/plugins``, ``/tests/...``); both send the token. The app
    runs in a thread of its own with its own event loop: call into plugin objects with
    :meth:`call`, never directly from an ``async`` test's loop."""

    plugin_id: str
    root: Path
    paths: AppPaths
    url: str
    token: str
    runtime: Any
    client: httpx.Client
    host: httpx.Client
    user: V1User | None = None
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _restart: Callable[[], Any] | None = field(default=None, repr=False)

    @property
    def plugin_url(self) -> str:
        """``http://127.0.0.1:<port>/plugins/<id>/``."""
        return f"{self.url}plugins/{self.plugin_id}/"

    @property
    def headers(self) -> dict[str, str]:
        """The header that authorises requests to the app."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def record(self) -> Any:
        """The plugin's record in the app (state, reason, detail, manifest)."""
        return self.runtime.plugins.by_id[self.plugin_id]

    @property
    def plugin(self) -> Any:
        """The running instance of the plugin's class."""
        return self.record.instance

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` like ``client``, for async tests (close it, e.g. with
        ``async with``)."""
        import httpx

        options: dict[str, Any] = {"base_url": self.plugin_url, "headers": self.headers,
                                   "timeout": 30.0, **kwargs}
        if "verify" not in options and "cert" not in options:  # cert= would change it
            options["verify"] = shared_tls_context(options.get("trust_env", True))
        return httpx.AsyncClient(**options)

    def call(self, work: Callable[[], T | Awaitable[T]] | Awaitable[T],
             timeout: float = 60.0) -> T:
        """Run ``work`` (a coroutine, or a function, whose awaitable result is awaited) on
        the app's loop and return its result; plugin objects live there."""
        assert self._loop is not None

        async def run() -> Any:
            result = work() if callable(work) else work
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def reload(self) -> str:
        """Reload the plugin from disk (as a save under ``dev`` does); its new state."""
        rec = self.call(self.runtime.plugins.reload(self.plugin_id))
        return str(rec.state)

    def restart(self) -> None:
        """Stop the app and start it again on the same home and port (what survives a
        restart: stored sessions, files, settings); ``runtime`` is the new one after."""
        assert self._restart is not None
        self.runtime = self._restart()

    def events(self, *types: type[Event]) -> EventRecorder:
        """Start recording bus events of ``types`` (all when none are given)."""
        return EventRecorder(self, types)


class EventRecorder:
    """Bus events seen since it was made (see :meth:`PlexiChatApp.events`)."""

    def __init__(self, app: PlexiChatApp, types: tuple[type[Event], ...]):
        self._app = app
        self._seen: list[Event] = []
        self._changed = threading.Condition()

        async def subscribe() -> Any:
            bus = app.runtime.bus
            return bus.subscribe(types, name="harness recorder", maxsize=10_000)

        self._sub = app.call(subscribe())
        assert app._loop is not None
        self._task = asyncio.run_coroutine_threadsafe(self._pump(), app._loop)

    async def _pump(self) -> None:
        async for event in self._sub:
            with self._changed:
                self._seen.append(event)
                self._changed.notify_all()

    @property
    def seen(self) -> list[Event]:
        with self._changed:
            return list(self._seen)

    def wait_for(self, match: Callable[[Event], bool], timeout: float = 30.0) -> Event:
        """The first recorded event for which ``match`` is true, waiting up to
        ``timeout`` seconds for it; ``TimeoutError`` otherwise."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((e for e in self._seen if match(e)), None), timeout)
        if found is None:
            raise TimeoutError(f"no matching event within {timeout:g} s; seen: "
                               f"{[e.topic for e in self._seen]}")
        return found

    def close(self) -> None:
        self._task.cancel()
        self._app.call(lambda: self._sub.close())


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _needed_plugins(root: Path, manifest: Manifest | None) -> list[Path]:
    """The plugin under test and the plugins it needs, and what those need in turn
    (``requires``, and the API layer for a plugin that declares ``api_scopes``), found
    next to it, or where the app finds plugins, in its order: the bundled ones, the
    user's plugins folder, the folders ``PLEXICHAT_DESKTOP_PLUGINS_PATH`` names."""
    from plexichat_desktop.core.paths import AppPaths, bundled_plugins_dir, extra_plugin_dirs
    from plexichat_desktop.plugins.discovery import Source, scan_folder

    def needs(manifest: Manifest | None) -> list[str]:
        if manifest is None:
            return []
        wanted = list(manifest.requires)
        if (manifest.permissions.api_scopes and API_PROVIDER not in wanted
                and manifest.id != API_PROVIDER):
            wanted.append(API_PROVIDER)
        return wanted

    found = [root]
    places = [root.parent, bundled_plugins_dir(), AppPaths.from_env().user_plugins_dir,
              *extra_plugin_dirs()]

    def locate(plugin_id: str) -> Path | None:
        for place in places:
            if (place / plugin_id / "plugin.toml").is_file():
                return place / plugin_id
        for place in places:  # a folder named otherwise than its plugin's id
            for candidate in scan_folder(place, Source.USER):
                if candidate.root != root.resolve() and getattr(
                        _manifest(candidate.root), "id", None) == plugin_id:
                    return candidate.root
        return None

    queue, seen = needs(manifest), {manifest.id if manifest is not None else root.name}
    while queue:  # a plugin's requirements may have requirements of their own
        plugin_id = queue.pop(0)
        if plugin_id in seen:
            continue
        seen.add(plugin_id)
        location = locate(plugin_id)
        if location is not None:
            found.append(location.resolve())
            queue.extend(needs(_manifest(location)))
    return found


@contextlib.contextmanager
def _without_plugin_path() -> Iterator[None]:
    # Only the plugins of the test load: not the developer's own from this variable.
    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV

    saved = os.environ.pop(PLUGINS_PATH_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[PLUGINS_PATH_ENV] = saved


@contextlib.contextmanager
def start_app(root: Path, home: Path, overrides: dict[str, Any] | None = None
              ) -> Iterator[PlexiChatApp]:
    """Start the app on ``home`` with the plugin at ``root`` (and the plugins it needs),
    yield a :class:`PlexiChatApp`, stop it. What the ``plexichat_app`` fixture uses; call
    it directly for a second app in one test."""
    import httpx

    from plexichat_desktop.core.paths import AppPaths
    from plexichat_desktop.core.settings import Settings
    from plexichat_desktop.runtime import Runtime, RuntimeOptions

    root = root.resolve()
    manifest = _manifest(root)
    plugin_id = manifest.id if manifest is not None else root.name
    holder = Path(tempfile.mkdtemp(prefix="plugins-", dir=home.parent))
    for folder in _needed_plugins(root, manifest):
        # By id: two needed plugins may sit in folders of one name ("plugin") elsewhere.
        found = _manifest(folder)
        (holder / (found.id if found is not None else folder.name)).symlink_to(
            folder, target_is_directory=True)
    paths = AppPaths(home / "config", home / "data", home / "cache", home / "logs")
    settings = Settings.model_validate(_deep_merge(
        {"server": {"port": 0}, "api": FAST_API}, overrides or {}))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="plexichat app", daemon=True)
    thread.start()

    async def start() -> Any:
        with _without_plugin_path():
            runtime = Runtime(paths, settings, RuntimeOptions(
                bundled=False, include_installed=False, extra_plugin_dirs=[holder]))
        await runtime.start()
        return runtime

    runtime = None

    def restart() -> Any:
        nonlocal runtime
        assert runtime is not None and runtime.server is not None
        settings.server.port = runtime.server.port
        old, runtime = runtime, None
        asyncio.run_coroutine_threadsafe(old.stop(), loop).result(START_LIMIT)
        runtime = asyncio.run_coroutine_threadsafe(start(), loop).result(START_LIMIT)
        return runtime

    clients: list[httpx.Client] = []
    try:
        runtime = asyncio.run_coroutine_threadsafe(start(), loop).result(START_LIMIT)
        url = runtime.url
        headers = {"Authorization": f"Bearer {runtime.token}"}
        client = httpx.Client(base_url=f"{url}plugins/{plugin_id}/", headers=headers,
                              timeout=30.0, verify=shared_tls_context())
        host = httpx.Client(base_url=url, headers=headers, timeout=30.0,
                            verify=shared_tls_context())
        clients += [client, host]
        app = PlexiChatApp(plugin_id, root, paths, url, runtime.token, runtime, client, host,
                           _loop=loop, _restart=restart)
        rec = runtime.plugins.by_id.get(plugin_id)
        if rec is None or not rec.running:
            state = "not found" if rec is None else f"{rec.state}: {rec.reason}"
            detail = f"\n{rec.detail}" if rec is not None and rec.detail else ""
            pytest.fail(f"plugin {plugin_id} did not start in the test app ({state}){detail}",
                        pytrace=False)
        if (manifest is not None and manifest.permissions.api_scopes
                and plugin_id != API_PROVIDER):
            app.user = v1_user(app, clients)
        yield app
    finally:
        for c in clients:
            c.close()
        if runtime is not None:
            asyncio.run_coroutine_threadsafe(runtime.stop(), loop).result(START_LIMIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_LIMIT)
        loop.close()
        for link in holder.iterdir():
            link.unlink()
        holder.rmdir()


def v1_user(app: PlexiChatApp, clients: list[httpx.Client], name: str | None = None
            ) -> V1User:
    """Register and log in a user of the v1 API, and sign the API layer in as them, so
    that the plugin's ``ctx.api`` acts for that user. Its v1 client is appended to
    ``clients`` (close them when done); ``name`` defaults to a fresh harness name."""
    import httpx

    name = name or f"harness{os.getpid() % 10_000}u{next(_users)}"
    v1 = httpx.Client(base_url=f"{app.url}api/v1/", timeout=30.0, verify=shared_tls_context())
    clients.append(v1)
    created = v1.post("auth/register", json={
        "username": name, "email": f"{name}@example.org", "password": USER_PASSWORD,
        "terms_accepted": True})
    created.raise_for_status()
    login = v1.post("auth/login", json={"username": name, "password": USER_PASSWORD})
    login.raise_for_status()
    body = login.json()
    v1.headers["Authorization"] = f"Bearer {body['access_token']}"
    # "Keep me logged in", as a user who stays signed in across restarts of the app.
    layer = app.host.post(f"plugins/{API_PROVIDER}/api/login",
                          json={"username": name, "password": USER_PASSWORD,
                                "remember_me": True})
    layer.raise_for_status()
    return V1User(name, USER_PASSWORD, str(body["user_id"]), body["access_token"], v1)


@pytest.fixture
def plexichat_settings() -> dict[str, Any]:
    """Settings for ``plexichat_app``, as in settings.toml: override this fixture, e.g.
    ``return {"plugin": {"my_plugin": {"interval": 0.1}}}``."""
    return {}


def _tested_plugin(request: pytest.FixtureRequest) -> Path:
    root = plugin_root_of(Path(str(request.path)))
    if root is None:
        pytest.fail(f"{request.path} is not inside a plugin folder (no plugin.toml above "
                    "it)", pytrace=False)
    return root


@pytest.fixture
def plexichat_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  plexichat_settings: dict[str, Any]) -> Iterator[PlexiChatApp]:
    """The app, started on a fresh temporary home with the plugin under test (the one
    whose folder holds the test file) and the plugins it needs; a :class:`PlexiChatApp`
    with HTTP clients that send the token, and ``user`` (a logged-in v1 user, also what
    ``ctx.api`` acts as) when the plugin declares ``api_scopes``. Stopped after the
    test. A plugin that does not start fails the test with its reason."""
    root = _tested_plugin(request)
    home = tmp_path_factory.mktemp("plexichat-home")
    with start_app(root, home, plexichat_settings) as app:
        yield app


# -- one app for a module's tests -----------------------------------------------------------
@pytest.fixture(scope="module")
def plexichat_module_settings() -> dict[str, Any]:
    """Settings for ``plexichat_module_app``, as ``plexichat_settings`` for
    ``plexichat_app``: override this module-scoped fixture to change them."""
    return {}


@pytest.fixture(scope="module")
def plexichat_module_app(request: pytest.FixtureRequest,
                         tmp_path_factory: pytest.TempPathFactory,
                         plexichat_module_settings: dict[str, Any]) -> Iterator[PlexiChatApp]:
    """What ``plexichat_app`` gives, started once for the tests of a module (and stopped
    after them): a core start costs more CPU than most tests. Its tests see each other's
    data (and the same ``user``); ask for ``plexichat_shared_app`` to have the module's
    ``plexichat_reset`` run before each test."""
    root = _tested_plugin(request)
    home = tmp_path_factory.mktemp("plexichat-module-home")
    with start_app(root, home, plexichat_module_settings) as app:
        yield app


@pytest.fixture
def plexichat_reset() -> Callable[[PlexiChatApp], Any] | None:
    """The per-test reset of ``plexichat_shared_app``: override it with a function of the
    app (e.g. one that empties the plugin's tables with :meth:`PlexiChatApp.call`),
    called before each test that asks for ``plexichat_shared_app``; None: nothing."""
    return None


@pytest.fixture
def plexichat_shared_app(plexichat_module_app: PlexiChatApp,
                         plexichat_reset: Callable[[PlexiChatApp], Any] | None
                         ) -> PlexiChatApp:
    """The module's app (``plexichat_module_app``) for one test, after the module's
    ``plexichat_reset``."""
    if plexichat_reset is not None:
        plexichat_reset(plexichat_module_app)
    return plexichat_module_app


# -- one event loop per test module --------------------------------------------------------
# For async tests that share something living on an event loop (a core started with
# ``Runtime.start()`` in the test's own loop, as api_integration_layer.testing's servers
# are): an async test run by the test manager's reporter or pytest-asyncio gets a fresh
# loop of its own, on which the shared object would not answer (and whose end would stop
# it). With this module loaded as a pytest plugin (``-p plexichat_desktop.testing.harness``
# in pytest.ini), or with ``module_loop`` and ``pytest_pyfunc_call`` imported into a
# conftest::
#
#     from plexichat_desktop.testing.harness import module_loop, pytest_pyfunc_call
#
# every async test that (directly or through its fixtures) asks for ``module_loop`` runs
# on that one loop. Such tests carry no ``asyncio`` mark (pytest-asyncio would run them on
# its loop). :class:`SharedCore` starts the shared object with the first test that needs
# it and stops it after the module.


def event_loop_for_tests() -> Iterator[asyncio.AbstractEventLoop]:
    """A new event loop, closed cleanly after: the body of ``module_loop`` and of a
    longer-lived fixture of that name (a suite whose modules share one core)."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@pytest.fixture(scope="module")
def module_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The event loop of the module's async tests that ask for it, and of their cores."""
    yield from event_loop_for_tests()


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """Whichever hook calls the test (the harness's reporter, pytest's own) gets a plain
    function that runs it on ``module_loop``."""
    loop = pyfuncitem.funcargs.get("module_loop")
    test = pyfuncitem.obj
    if not isinstance(loop, asyncio.AbstractEventLoop) or not inspect.iscoroutinefunction(
            test):
        return (yield)

    def on_module_loop(**kwargs: Any) -> Any:
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(test(**kwargs))
        finally:
            asyncio.set_event_loop(None)

    pyfuncitem.obj = on_module_loop
    try:
        return (yield)
    finally:
        pyfuncitem.obj = test


S = TypeVar("S")


class SharedCore(Generic[S]):
    """What ``start()`` (an async context manager, e.g. a core) enters, entered by the
    first test that calls :meth:`get` and left by :meth:`close` (from a module fixture,
    on ``module_loop``)::

        @pytest.fixture(scope="module")
        def shared_core(module_loop):
            shared = SharedCore(lambda: my_core(...))
            yield shared
            module_loop.run_until_complete(shared.close())
    """

    def __init__(self, start: Callable[[], AbstractAsyncContextManager[S]]):
        self._start = start
        self.server: S | None = None
        self._context: AbstractAsyncContextManager[S] | None = None

    async def get(self) -> S:
        """The shared object, started now if no test has yet."""
        if self.server is None:
            context = self._start()
            self.server = await context.__aenter__()
            self._context = context
        return self.server

    async def close(self) -> None:
        """Stop it (if a test started it); the next :meth:`get` starts a new one."""
        if self._context is not None:
            context, self._context, self.server = self._context, None, None
            await context.__aexit__(None, None, None)


# -- the rules shared with the test manager ------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    # The reporter carries the compatibility rules; the manager loads it with -p, plain
    # pytest gets it here, so both run the same code.
    if not config.pluginmanager.has_plugin(REPORTER):
        config.pluginmanager.import_plugin(REPORTER)


def _timeout_for(item: pytest.Item) -> float | None:
    if os.environ.get(FD_ENV):
        return None  # under the test manager, which enforces it with the stacks
    root = plugin_root_of(Path(str(item.path)))
    manifest = _manifest(root) if root is not None else None
    return manifest.tests.timeout if manifest is not None else None


class TestTimeout(Exception):
    """A test ran past its plugin's ``[tests] timeout``."""

    __test__ = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """The plugin's per-test timeout (set-up, call and teardown together) under plain
    pytest: SIGALRM interrupts the test, which fails with where it was; where there is no
    SIGALRM (or not on the main thread) the stacks are dumped and the process exits."""
    timeout = _timeout_for(item)
    if timeout is None:
        return (yield)
    alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if alarm:
        def expired(signum: int, frame: Any) -> None:
            raise TestTimeout(f"{item.nodeid} ran longer than its timeout of {timeout:g} s "
                              "(plugin.toml [tests] timeout)")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    else:
        faulthandler.dump_traceback_later(timeout, exit=True, file=sys.stderr)
    try:
        return (yield)
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        else:
            faulthandler.cancel_dump_traceback_later()
