"""Start-up and shut-down of the desktop app: QApplication + one qasync loop that also
runs the server, the plugins and the test manager.

Two rules from ../shared/reference/qt-webengine-notes.md keep Chromium from crashing:
the qasync loop runs exactly once per process (``run_until_complete``, never
``qasync.run``), and web pages are deleted before the profile, the profile with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plexichat_desktop.core import startup_gc
from plexichat_desktop.core.paths import AppPaths, resources_dir
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.gui.environment import (
    prepare_qt_environment,
    spare_feature_scan,
    webengine_problem,
)
from plexichat_desktop.runtime import Listener, Runtime, RuntimeOptions

if TYPE_CHECKING:  # Qt is imported when the GUI starts, after its environment is set
    from PySide6.QtCore import QObject, QSettings
    from PySide6.QtWidgets import QApplication, QWidget

    from plexichat_desktop.core.events import EventBus
    from plexichat_desktop.gui.browser import Pane
    from plexichat_desktop.gui.downloads import DownloadManager
    from plexichat_desktop.gui.permissions import PermissionGate
    from plexichat_desktop.server.listening import EarlyFiles

log = logging.getLogger(__name__)
# Extra work on the running app (``plexichat-desktop dev``): called with the runtime and the
# main window once both are up; returns what to await before they stop.
Attach = Callable[[Runtime, object], Awaitable[Callable[[], Awaitable[None]]]]


def run_gui(paths: AppPaths, settings: Settings, options: RuntimeOptions,
            no_webengine: bool = False, on_listening: Callable[[str], None] | None = None,
            attach: Attach | None = None) -> int:
    """Run the desktop app until its window closes or a signal arrives; the exit code.

    ``on_listening`` gets the server's URL as soon as its port is bound (before the window
    shows): a second launch finds the app there and asks it to come to the front."""
    options = replace(options, window=True)  # its test runs yield the CPU to the window
    # A signal before the loop's own handlers (set in _main) is remembered, not raised: a
    # KeyboardInterrupt inside the imports below, with the core importing in another
    # thread, could leave an import lock held and the process waiting for that thread.
    early_stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: early_stop.set())
    prepare_qt_environment()  # before the worker starts: it sets environment variables
    # PySide6's package before the worker starts too: its start-up (shiboken's signature
    # bootstrap) iterates over a dict that the worker's imports change, and aborted the
    # process with "dictionary changed size during iteration" (a CI run of dev's window).
    with contextlib.suppress(ImportError):
        import PySide6

        spare_feature_scan()
    # A worker thread prepares serving from now on while this thread imports Qt, shows the
    # window and starts Chromium; it imports the core once the first pages have loaded
    # (see _start_imports).
    imports = _start_imports(paths, settings, options)
    problem = "it was turned off with --no-webengine" if no_webengine else webengine_problem()
    if problem is None:
        import PySide6.QtWebEngineWidgets  # noqa: F401  (must precede the QApplication)
    import qasync
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication), "a QCoreApplication exists: the window needs more"
    app.setApplicationName("PlexiChat Desktop")
    app.setOrganizationName("PlexiChat")
    app.setDesktopFileName("plexichat-desktop")
    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "plexichat-desktop.svg")))
    app.setQuitOnLastWindowClosed(False)  # the loop ends when main() returns, not before
    from plexichat_desktop.gui.theme import apply_theme

    apply_theme(app)
    # Chromium's helper processes (zygote, GPU, network, renderer) take a good part of a
    # second to come up: a throwaway page starts them now, so that they come up while the
    # window is shown and the core is imported, and the window's first pages find them
    # running. Made before the loop: Chromium's start blocks the main thread for a moment,
    # and the core's import in a worker thread must not wait behind it.
    warm_up = _warm_up_webengine() if problem is None else None
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return loop.run_until_complete(_main(app, paths, settings, options, problem,
                                             on_listening, attach, warm_up, imports,
                                             early_stop))


@dataclass
class _Imports:
    """The worker thread's two jobs, and what lets its second one begin."""

    serving: Future[EarlyFiles]
    core: Future[None]
    pages_loaded: threading.Event


def _start_imports(paths: AppPaths, settings: Settings, options: RuntimeOptions) -> _Imports:
    """In a worker thread, one after the other: what the listener needs to serve the
    window's first pages (see _prepare_serving), then, once those pages have loaded (or
    CORE_HOLD seconds passed), the rest of the core (see _import_core)."""
    worker = ThreadPoolExecutor(1, thread_name_prefix="import core")
    pages_loaded = threading.Event()
    return _Imports(worker.submit(_prepare_serving, paths, settings, options),
                    worker.submit(_import_core, pages_loaded), pages_loaded)


def _prepare_serving(paths: AppPaths, settings: Settings, options: RuntimeOptions
                     ) -> EarlyFiles:
    """The web server's module (uvicorn, ~50 ms) and the files the listener may answer
    before the app exists: the window's first pages load from them while the rest of the
    core is imported (their data requests wait for the app)."""
    import plexichat_desktop.server.web_server  # noqa: F401
    from plexichat_desktop.runtime import early_files

    return early_files(paths, settings, options)


def _import_core(pages_loaded: threading.Event) -> None:
    """The core's modules (FastAPI, the plugin host, the stores: about half a second of
    CPU), imported in a worker thread once the window's first pages have loaded from
    their files: imported meanwhile, they took a core and the interpreter lock from
    Chromium and the main thread, and the pages loaded ~0.1 s later while their data
    came no sooner (gui_startup.py). PySide6's import hook costs them little: see
    spare_feature_scan."""
    from plexichat_desktop.runtime import import_core

    pages_loaded.wait(CORE_HOLD)
    import_core()


def _warm_up_webengine() -> QObject:
    from PySide6.QtWebEngineCore import QWebEnginePage

    page = QWebEnginePage()  # the default profile: the app's own one is made later
    page.setHtml("")
    return page


async def _main(app: QApplication, paths: AppPaths, settings: Settings, options: RuntimeOptions,
                webengine_missing: str | None, on_listening: Callable[[str], None] | None,
                attach: Attach | None = None, warm_up: QObject | None = None,
                imports: _Imports | None = None,
                early_stop: threading.Event | None = None) -> int:
    from plexichat_desktop.core.events import EventBus
    from plexichat_desktop.server.listening import PortInUseError

    closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, closed.set)
    if early_stop is not None and early_stop.is_set():
        closed.set()
    if imports is None:
        imports = _start_imports(paths, settings, options)
    try:
        listener = Listener(paths, settings)  # the port bound, its URL known
    except PortInUseError as exc:
        print(f"error: {exc.strerror}", file=sys.stderr)
        imports.pages_loaded.set()  # no page will load: the worker's imports end sooner
        if warm_up is not None:
            warm_up.deleteLater()
        return 1
    if on_listening is not None:
        on_listening(listener.url)
    if closed.is_set():  # stopped before anything was shown
        imports.pages_loaded.set()
        await listener.stop()
        if warm_up is not None:
            warm_up.deleteLater()
        return 0
    # The window comes first, with its restored tabs pointed at the bound port: Chromium
    # asks for the pages as soon as the listener serves their files, while the core is
    # imported and started; their data requests wait in the listener's gate for the app,
    # then for their plugin, which starts before the others; the others wait until those
    # pages have loaded.
    bus = EventBus()
    shell = DesktopShell(app, None, paths, closed, webengine_missing, listener=listener,
                         bus=bus)
    shell.on_first_pages = imports.pages_loaded.set  # the core's import may begin
    runtime: Runtime | None = None
    detach = None
    try:
        shell.show()
        if warm_up is not None:
            warm_up.deleteLater()  # its processes stay for the real pages
        # Until the server answers, the tabs are blank: the status bar says why.
        status = shell.window.statusBar()
        if not status.currentMessage():
            status.showMessage(STARTING_MESSAGE)
        try:
            runtime = await _start_core(paths, settings, options, listener, bus, shell,
                                        imports, closed)
        except Exception as exc:
            log.exception("PlexiChat Desktop could not start")
            # The pages shown from their files meanwhile get no data: their requests end
            # now (503) rather than wait behind the dialog.
            listener.gate.close()
            await shell.tell_start_failed(exc, paths)
            return 1
        finally:
            startup_gc.resume()  # paused by the CLI for the start
        if runtime is None:  # closed while the core was imported
            return 0
        if status.currentMessage() == STARTING_MESSAGE:  # not one said since
            status.clearMessage()
        if not closed.is_set():
            print(f"PlexiChat Desktop is serving at {runtime.url}", flush=True)
            if attach is not None:
                detach = await attach(runtime, shell.window)
        await closed.wait()
        log.info("closing the desktop window")
    finally:
        if runtime is not None:
            runtime.begin_stop()  # no plugin starts any more only to be torn down
        if detach is not None:
            await detach()
        await shell.shutdown()
        if runtime is not None:
            await runtime.stop()
        else:
            await listener.stop()
        await shell.finish()
    return 0


async def _start_core(paths: AppPaths, settings: Settings, options: RuntimeOptions,
                      listener: Listener, bus: EventBus, shell: DesktopShell,
                      imports: _Imports, closed: asyncio.Event) -> Runtime | None:
    """The listener serving (the window's first pages from their files) as soon as the
    worker thread has imported what it needs; once the thread has imported the core: the
    runtime made on the listener and the bus, attached to the shown window and started
    (its plugins in the background). None when the window closed first (the imports
    finish in their thread)."""
    if not await _unless_closed(imports.serving, closed):
        return None
    try:
        listener.gate.early = imports.serving.result()
    except Exception:
        # The listener's start below fails with the reason if its module is what failed.
        log.exception("the first pages wait for the app: finding their files failed")
    await listener.start()
    if not await _unless_closed(imports.core, closed):
        return None
    imports.core.result()
    runtime = Runtime(paths, settings, options, listener=listener, bus=bus)
    try:
        runtime.prepare()  # the plugins discovered (no plugin code runs)
        shell.attach(runtime)
        runtime.plugins.hold_others(shell.first_pages_loaded, FIRST_PAGES_HOLD)
        runtime.hold_tests(shell.first_pages_loaded, FIRST_PAGES_HOLD)
        await runtime.start(plugins_in_background=True)
    except BaseException:
        await runtime.stop()  # it owns the listener now
        raise
    return runtime


async def _unless_closed(work: Future[Any], closed: asyncio.Event) -> bool:
    """Wait for ``work`` (done in a thread) unless the window closes first: whether it
    ended first."""
    done = asyncio.wrap_future(work)
    closing = asyncio.ensure_future(closed.wait())
    await asyncio.wait([done, closing], return_when=asyncio.FIRST_COMPLETED)
    closing.cancel()
    return not closed.is_set()


# Seconds the core's import waits for the window's first pages to load from their files.
CORE_HOLD = 1.0
# Seconds the plugins nobody looks at may wait for the window's first pages to load.
FIRST_PAGES_HOLD = 10.0
STARTING_MESSAGE = "Starting the server and the plugins…"
# Milliseconds between the first pages' load and building the Tests panel.
PANEL_DELAY_MS = 100
# Seconds the window's clean-up waits for the test panel's tasks before the runtime stops
# (what outlives that ends once the runtime's test runner is closed: finish()).
PANEL_STOP_WAIT = 3.0


class DesktopShell:
    """Owns the Qt side: profile, bridge, main window; builds panes for tabs and windows."""

    def __init__(self, app: QApplication, runtime: Runtime | None, paths: AppPaths,
                 closed: asyncio.Event, webengine_missing: str | None,
                 listener: Listener | None = None, bus: EventBus | None = None):
        """With a prepared ``runtime`` (its port bound, its plugins discovered); or, to show
        the window before the core exists, with the ``listener`` whose port the runtime
        will serve on and the ``bus`` it will use, and :meth:`attach` later."""
        from PySide6.QtCore import QSettings

        from plexichat_desktop.gui.bridge import EventBridge
        from plexichat_desktop.gui.main_window import MainWindow

        self.app = app
        self.runtime = runtime
        self.closed = closed
        self.webengine_missing = webengine_missing
        self.first_pages_loaded = asyncio.Event()
        self._closing = False
        self._panel_due = False  # the first pages loaded (or waited long enough)
        # Called once the first pages have loaded, or the window closes first.
        self.on_first_pages: Callable[[], None] | None = None
        # Without QtWebEngine, pages to open in the browser once sign-in links can be made.
        self._external_waiting: list[str] = []
        self.profile = None
        self.interceptor = None
        server = runtime if runtime is not None else listener
        assert server is not None and server.port is not None, "a bound port is needed"
        self.url = server.url
        from plexichat_desktop.gui.theme import current_scheme, on_scheme_applied

        self.scheme = current_scheme(app)
        self._unhook_theme = on_scheme_applied(self._theme_changed)
        if webengine_missing is None:
            from plexichat_desktop.gui.web import (
                TokenInterceptor,
                create_profile,
                set_profile_theme,
            )

            self.interceptor = TokenInterceptor(server.port, server.token, app)
            self.profile = create_profile(app, self.interceptor, paths.data_dir / "webengine",
                                          paths.cache_dir / "webengine")
            set_profile_theme(self.profile, self.scheme)
        else:
            log.warning("plugin pages open in the system browser: %s", webengine_missing)
        events = runtime.bus if runtime is not None else bus
        assert events is not None, "the bus the runtime will use is needed"
        self.bridge = EventBridge(events)
        qsettings = QSettings(str(Path(paths.config_dir) / "gui.ini"), QSettings.Format.IniFormat)
        self.window = MainWindow(runtime, self.bridge, self.make_pane, qsettings, closed,
                                 url=self.url)
        self.downloads: DownloadManager | None = None
        self.permissions: PermissionGate | None = None
        if self.profile is not None:
            self._guard_pages(paths, qsettings, server.port, server.token)

    def attach(self, runtime: Runtime) -> None:
        """The runtime of a shell made before it (prepared: its plugins discovered)."""
        self.runtime = runtime
        self.window.attach(runtime)
        if self._panel_due:
            from PySide6.QtCore import QTimer

            # The first pages loaded before the core (from their files): their data comes
            # with the runtime's start, which the panel's ~50 ms of CPU would delay.
            QTimer.singleShot(PANEL_DELAY_MS, self.window, self._build_panel)
        from plexichat_desktop.gui.browser import open_in_system_browser

        # Pages asked for meanwhile without QtWebEngine: their sign-in links can be made now.
        for path in self._external_waiting:
            open_in_system_browser(runtime.browser_login_link(path))
        self._external_waiting.clear()

    async def tell_start_failed(self, exc: Exception, paths: AppPaths) -> None:
        """The window is up but the core could not start: say why (the log has the
        traceback) in a dialog until it or the app is closed; on a headless platform
        the status bar and the log only."""
        from PySide6.QtWidgets import QMessageBox

        from plexichat_desktop.core.logs import LOG_FILE_NAME
        from plexichat_desktop.gui.environment import HEADLESS_PLATFORMS

        self.window.statusBar().showMessage(f"Could not start: {exc}")
        if self.app.platformName() in HEADLESS_PLATFORMS:
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "PlexiChat Desktop could not start",
                          f"{type(exc).__name__}: {exc}", QMessageBox.StandardButton.Close,
                          self.window)
        box.setInformativeText(f"The details are in {paths.log_dir / LOG_FILE_NAME}.")
        # Closing the box closes the app; so do the window and a signal.
        box.finished.connect(lambda _result: self.closed.set())
        box.open()  # not exec(): a nested event loop inside a task can hang the exit
        await self.closed.wait()

    def _guard_pages(self, paths: AppPaths, qsettings: QSettings, port: int, token: str
                     ) -> None:
        """Downloads and permission requests of every page of the profile."""
        from plexichat_desktop.gui.downloads import DownloadManager
        from plexichat_desktop.gui.permissions import PermissionGate, PermissionStore, own_origins
        from plexichat_desktop.server.security import install_host

        assert self.profile is not None
        self.downloads = DownloadManager(self.profile, qsettings, self.window,
                                         parent=self.window)

        def plugin_name(pid: str) -> str:
            rec = self.runtime.plugins.by_id.get(pid) if self.runtime is not None else None
            return rec.name if rec is not None else pid

        self.permissions = PermissionGate(
            self.profile, own_origins(port, install_host(token)),
            PermissionStore(Path(paths.config_dir) / "permissions.json"),
            plugin_name, self.window, parent=self.window)
        self.window.permission_gate = self.permissions

    def make_pane(self, path: str, title: str, parent: QWidget | None) -> Pane:
        from plexichat_desktop.gui.browser import BrowserPane, FallbackPane, open_in_system_browser

        base = self.url
        if self.webengine_missing is not None:
            def external(p: str) -> None:
                # A one-time sign-in link: the token itself never goes into a browser.
                if self.runtime is not None:
                    open_in_system_browser(self.runtime.browser_login_link(p))
                else:  # opened by attach()
                    self._external_waiting.append(p)

            return FallbackPane(base, path, title, self.webengine_missing, external, parent)
        from PySide6.QtGui import QColor

        from plexichat_desktop.gui.web import PAGE_BACKGROUNDS, PluginPage, PluginView

        profile, interceptor = self.profile, self.interceptor
        assert profile is not None and interceptor is not None  # made when WebEngine is there

        def page_factory(view: QObject) -> PluginPage:
            page = PluginPage(profile, interceptor, self.window, view)
            if self.permissions is not None:
                self.permissions.watch(page)
            page.setBackgroundColor(QColor(PAGE_BACKGROUNDS[self.scheme]))
            return page

        return BrowserPane(base, path, title, lambda owner: PluginView(page_factory, owner),
                           parent)

    def _theme_changed(self, scheme: str) -> None:
        """The app switched theme: the pages switch with it, open ones at once."""
        self.scheme = scheme
        if self.profile is None:
            return
        from plexichat_desktop.gui.browser import BrowserPane
        from plexichat_desktop.gui.web import set_page_theme, set_profile_theme

        set_profile_theme(self.profile, scheme)
        window = self.window
        panes = [window.tabs.widget(i) for i in range(window.tabs.count())]
        panes += [w.pane for w in window.windows]
        for pane in panes:
            if isinstance(pane, BrowserPane):
                set_page_theme(pane.view.page(), scheme)

    def show(self) -> None:
        """Show the window with its restored tabs and windows; ``first_pages_loaded`` is
        set once each of their pages has loaded (at once when there is none)."""
        self.window.restore_state()
        self.window.show()
        from PySide6.QtCore import QTimer

        from plexichat_desktop.gui.browser import BrowserPane

        panes = [self.window.tabs.widget(i) for i in range(self.window.tabs.count())]
        panes += [w.pane for w in self.window.windows]
        loading = {id(p): p for p in panes if isinstance(p, BrowserPane)}
        for key, pane in loading.items():
            def loaded(_ok: object = None, key: int = key) -> None:
                if loading.pop(key, None) is not None and not loading:
                    self._first_pages_done()

            pane.view.loadFinished.connect(loaded)
            # A page closed before it loaded (a restored tab whose plugin turns out to be
            # off, replaced by the reason when the runtime is attached) holds nothing up.
            pane.destroyed.connect(loaded)
        if not loading:
            self._first_pages_done()
        # Pages that never finish loading do not keep the Tests panel away for long.
        QTimer.singleShot(int(FIRST_PAGES_HOLD * 1000), self.window, self._build_panel)

    def _release_first_pages(self) -> None:
        """What waits for the first pages (the held plugins and tests, the core's import)
        goes on."""
        self.first_pages_loaded.set()
        if self.on_first_pages is not None:
            self.on_first_pages()

    def _first_pages_done(self) -> None:
        if self.first_pages_loaded.is_set():
            return
        self._release_first_pages()
        from PySide6.QtCore import QTimer

        # A moment later, so that the first frames of the pages are painted first.
        QTimer.singleShot(PANEL_DELAY_MS, self.window, self._build_panel)

    def _build_panel(self) -> None:
        # Before the runtime is attached (a slow start), attach() builds it.
        self._panel_due = True
        if not self._closing and self.runtime is not None:
            self.window.build_dashboard()

    async def shutdown(self) -> None:
        """The bridge first (no event may reach a widget being deleted: plugins may still
        be starting in the background), then pages and views, then let Qt delete them."""
        self._unhook_theme()
        self._closing = True  # the Tests panel is not built only to be torn down
        self._release_first_pages()
        if self.window.isVisible():
            # At once: the user sees the window go while the rest is cleaned up (closing
            # saves the state and closes the tabs; nothing is deleted before the end).
            self.window.close()
        await self.bridge.close()
        if self.downloads is not None:
            self.downloads.cancel_all()
        await self._stop_panel(PANEL_STOP_WAIT)
        self.window.deleteLater()
        # Awaiting lets the qasync loop run Qt's deferred deletes; calling processEvents()
        # here instead would re-enter the loop from inside a task (seen to hang at exit).
        await asyncio.sleep(0.05)
        if self.profile is not None:
            # Deleted explicitly once its pages are gone: left to die with the
            # application, Chromium can hang or crash at process exit.
            self.profile.deleteLater()
            self.profile = None
            await asyncio.sleep(0.05)

    async def _stop_panel(self, timeout: float) -> bool:
        """Cancel the test panel's tasks until none is left (True), or ``timeout``.

        Once is not always enough: ``asyncio.wait_for`` (Python 3.11) returns a result
        that arrived together with the cancellation, and the panel's start-up collection
        then goes on to the next plugin. Cancelled again every 0.1 s, it stops at its next
        ``await`` instead of collecting every remaining plugin while the app waits."""
        if not self.window.dashboard_built:
            return True
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            stopping = asyncio.ensure_future(self.window.dashboard.shutdown())
            done, _ = await asyncio.wait([stopping], timeout=0.1)
            if done:
                return True
            stopping.cancel()  # cancels the gather, and with it each task, again
            if asyncio.get_running_loop().time() >= deadline:
                log.warning("the test panel's tasks did not end within %g s", timeout)
                return False

    async def finish(self) -> None:
        """After the runtime stopped (its test runner is closed): the test panel's last
        tasks, if any outlived shutdown(), have ended."""
        await self._stop_panel(5.0)
