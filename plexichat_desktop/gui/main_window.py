"""The main window: plugin list, tabs of plugin pages, standalone windows, status bar."""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QByteArray, QObject, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QDesktopServices,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QPainter,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from plexichat_desktop import __version__
from plexichat_desktop.gui.bridge import EventBridge
from plexichat_desktop.gui.browser import BrowserPane, Pane, ProblemPane
from plexichat_desktop.gui.notify import Notifier
from plexichat_desktop.gui.permissions import PermissionGate

if TYPE_CHECKING:
    # The panel is imported when it is built (see MainWindow.dashboard); the core (the
    # plugin host imports FastAPI) after the window is shown (see gui.app).
    from plexichat_desktop.gui.dashboard.panel import TestDashboard
    from plexichat_desktop.plugins.manager import PluginRecord
    from plexichat_desktop.runtime import Runtime

log = logging.getLogger(__name__)

# Degraded is amber: running (its pages open) but with something optional missing.
STATE_COLOURS = {"active": "#1f9d55", "degraded": "#e0a800", "failed": "#d64545",
                 "incompatible": "#c77c02", "disabled": "#8a94a6", "validated": "#3563e9",
                 "discovered": "#8a94a6"}
HOME_PATH = "/"
CLOSED_TABS_KEPT = 20  # what Ctrl+Shift+T can bring back, newest last
DEVTOOLS_KEY = "Ctrl+Shift+I"
# Not the platform's StandardKey.Back/Forward: on Linux those include Backspace and
# Shift+Backspace, which belong to the text a user is typing in a page.
BACK_KEYS = [QKeySequence("Alt+Left"), QKeySequence(Qt.Key.Key_Back)]
FORWARD_KEYS = [QKeySequence("Alt+Right"), QKeySequence(Qt.Key.Key_Forward)]
PaneFactory = Callable[[str, str, QWidget | None], Pane]


MAIN_MINIMUM = (640, 420)
WINDOW_MINIMUM = (420, 300)


def clamp_to_screen(widget: QWidget) -> None:
    """Keep a restored window on the screen it is on, and no larger than that screen:
    geometry saved at another scale or on a larger monitor comes back usable."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    area = screen.availableGeometry()
    frame = widget.frameGeometry()
    extra_w = max(0, frame.width() - widget.width())
    extra_h = max(0, frame.height() - widget.height())
    width = max(min(widget.width(), area.width() - extra_w), widget.minimumWidth())
    height = max(min(widget.height(), area.height() - extra_h), widget.minimumHeight())
    if (width, height) != (widget.width(), widget.height()):
        widget.resize(width, height)
    x = min(max(widget.x(), area.left()), max(area.left(), area.right() - width - extra_w))
    y = min(max(widget.y(), area.top()), max(area.top(), area.bottom() - height - extra_h))
    if (x, y) != (widget.x(), widget.y()):
        widget.move(x, y)


def state_icon(state: str) -> QIcon:
    pixmap = QPixmap(16, 16)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(STATE_COLOURS.get(state, "#8a94a6")))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(3, 3, 10, 10)
    painter.end()
    return QIcon(pixmap)


def pane_back(pane: Pane) -> None:
    """Back in the pane's history (a pane without a web view has none)."""
    if isinstance(pane, BrowserPane):
        pane.back()


def pane_forward(pane: Pane) -> None:
    if isinstance(pane, BrowserPane):
        pane.forward()


def toggle_devtools(pane: Pane) -> None:
    if isinstance(pane, BrowserPane):
        pane.set_devtools(pane.devtools is None)


class PluginWindow(QMainWindow):
    """A standalone window holding one pane; remembers its geometry per page."""

    def __init__(self, pane: Pane, settings: QSettings, on_closed: Callable[[PluginWindow], None]):
        super().__init__()
        self.pane = pane
        self._settings = settings
        self._on_closed = on_closed
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setMinimumSize(*WINDOW_MINIMUM)
        self.setCentralWidget(pane)
        window_action = getattr(pane, "window_action", None)
        if window_action is not None:
            window_action.setVisible(False)  # it already is in its own window
        self.setWindowTitle(f"{pane.title} — PlexiChat Desktop")
        pane.titleChanged.connect(lambda t: self.setWindowTitle(f"{t} — PlexiChat Desktop"))
        geometry = settings.value(self._key())
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1000, 720)
        clamp_to_screen(self)
        # The main window's menus do these for its tabs; a window of its own has none.
        # setShortcuts keeps every binding of a standard key (Close: Ctrl+F4 and Ctrl+W).
        for keys, slot in ((QKeySequence.keyBindings(QKeySequence.StandardKey.Refresh),
                            pane.reload),
                           (QKeySequence.keyBindings(QKeySequence.StandardKey.Close),
                            self.close),
                           (BACK_KEYS, lambda: pane_back(pane)),
                           (FORWARD_KEYS, lambda: pane_forward(pane)),
                           ([QKeySequence(DEVTOOLS_KEY)], lambda: toggle_devtools(pane))):
            action = QAction(self)
            action.setShortcuts(keys)
            action.triggered.connect(slot)
            self.addAction(action)

    def _key(self) -> str:
        return "windows/" + self.pane.home_path.strip("/").replace("/", "_") + "/geometry"

    def closeEvent(self, event: QCloseEvent) -> None:
        self._settings.setValue(self._key(), self.saveGeometry())
        self.pane.shutdown()
        self._on_closed(self)
        super().closeEvent(event)


class MainWindow(QMainWindow):
    """Plugin list on the left, a tab per opened page, a status bar with the server URL."""

    def __init__(self, runtime: Runtime | None, bridge: EventBridge, pane_factory: PaneFactory,
                 settings: QSettings, closed: asyncio.Event, url: str | None = None):
        """Without ``runtime`` the window can be shown while the core is still imported and
        made (``url``: the server's, whose port is already bound): restored tabs ask for
        their pages at once, the plugin list says the app is starting, and :meth:`attach`
        hands the runtime over."""
        super().__init__()
        self._runtime = runtime
        server_url = runtime.url if runtime is not None else url
        assert server_url is not None, "a window needs the server's URL"
        self.server_url: str = server_url
        self.bridge = bridge
        self.pane_factory = pane_factory
        self.settings = settings
        self.closed = closed
        self.windows: list[PluginWindow] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Plugins whose pages were opened before they started (restored tabs).
        self._awaiting: set[str] = set()
        # (path, start page, title, index) of the tabs the user closed, newest last.
        self._closed_tabs: list[tuple[str, str, str, int]] = []
        # Set by the shell when pages can ask for permissions (QtWebEngine is there).
        self.permission_gate: PermissionGate | None = None
        self.setWindowTitle("PlexiChat Desktop")
        self.setMinimumSize(*MAIN_MINIMUM)
        self.resize(1280, 820)
        clamp_to_screen(self)

        self.tabs = QTabWidget(self)
        self.tabs.setTabsClosable(True)
        self.tabs.setMovable(True)
        self.tabs.setDocumentMode(True)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self.tabs.tabBar().setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tabs.tabBar().customContextMenuRequested.connect(self._tab_menu)
        self.empty = QLabel(
            "<h3>No pages open</h3><p><b>Ctrl+T</b> shows the plugin list.<br>"
            "Double-click (or Enter on) a plugin on the left to open its page.<br>"
            "<b>Ctrl+Shift+T</b> reopens the tab closed last; <b>Ctrl+Shift+D</b> shows or "
            "hides the Tests panel.</p>", self)
        self.empty.setObjectName("emptyState")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setEnabled(False)  # the palette's secondary text colour
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.tabs)
        self.pages.addWidget(self.empty)
        self.setCentralWidget(self.pages)

        self.plugin_list = QListWidget(self)
        self.plugin_list.setObjectName("pluginList")
        self.plugin_list.itemActivated.connect(self._open_item)
        self.plugin_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.plugin_list.customContextMenuRequested.connect(self._plugin_menu)
        self.plugins_dock = QDockWidget("Plugins", self)
        self.plugins_dock.setObjectName("pluginsDock")
        self.plugins_dock.setWidget(self.plugin_list)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.plugins_dock)
        self.refresh_plugins()
        bridge.pluginStateChanged.connect(lambda *_: self.refresh_plugins())
        bridge.pluginStateChanged.connect(self._plugin_state_changed)
        bridge.pluginReloaded.connect(self._plugin_reloaded)
        bridge.focusRequested.connect(self.bring_to_front)

        # The dock is there from the start (the saved layout restores it, View > Tests
        # toggles it); the panel in it is built on first use, which the shell makes once
        # the first pages have loaded (see the dashboard property).
        self._dashboard: TestDashboard | None = None
        self._first_start = False  # no saved layout: the docks get first_start_layout()
        self.tests_dock = QDockWidget("Tests", self)
        self.tests_dock.setObjectName("testsDock")
        waiting = QLabel("Loading the tests…", self.tests_dock)
        waiting.setObjectName("testsLoading")
        waiting.setAlignment(Qt.AlignmentFlag.AlignCenter)
        waiting.setEnabled(False)  # the palette's secondary text colour
        self.tests_dock.setWidget(waiting)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.tests_dock)
        self.notifier = Notifier(self, self.windowIcon(), self.bring_to_front)

        self.url_label = QLabel(self)
        self.url_label.setText(f'<a href="copy">{self.server_url}</a>')
        self.url_label.setToolTip("Click to copy a sign-in link for a web browser "
                                  "(the address alone asks for the token)")
        self.url_label.linkActivated.connect(self._copy_url)
        self.tests_label = QLabel("No tests running", self)
        self.statusBar().addWidget(self.url_label)
        self.statusBar().addPermanentWidget(self.tests_label)
        self._build_menus()

    @property
    def runtime(self) -> Runtime:
        """The core (raises while the window is shown before it: see :meth:`attach`)."""
        if self._runtime is None:
            raise RuntimeError("the app is still starting: the window has no runtime yet")
        return self._runtime

    @property
    def attached(self) -> bool:
        return self._runtime is not None

    def attach(self, runtime: Runtime) -> None:
        """The core is made and its plugins discovered: the plugin list fills, and the
        pages opened meanwhile get what :meth:`make_pane` gives a plugin's page (their
        plugin starts first; a plugin that cannot run shows why)."""
        self._runtime = runtime
        self.refresh_plugins()
        panes = [self.tabs.widget(i) for i in range(self.tabs.count())]
        panes += [w.pane for w in self.windows]
        for pane in panes:
            if not isinstance(pane, Pane) or isinstance(pane, ProblemPane):
                continue
            rec = self.plugin_of(pane.home_path)
            if rec is None:
                continue
            if runtime.plugins.starting(rec):
                runtime.plugins.want(rec.id)
                self._awaiting.add(rec.id)
            elif not rec.running:
                self._replace_with_problem(pane)

    def _started(self) -> Runtime | None:
        """The runtime, or None after saying in the status bar that the app is starting."""
        if self._runtime is None:
            self.statusBar().showMessage("The app is still starting; try again in a moment.",
                                         5000)
        return self._runtime

    @property
    def dashboard(self) -> TestDashboard:
        """The Tests panel, built on first use (see :meth:`build_dashboard`)."""
        return self.build_dashboard()

    def build_dashboard(self) -> TestDashboard:
        """Build the Tests panel into its dock, once. The first page need not wait for it:
        its imports, widgets, store queries and tree cost the start about 50-60 ms of
        CPU (benchmarks/gui_startup.py, back to back), so the shell builds it once the
        first pages have loaded. A run going on by then shows its results as they
        arrive from then on, and all of them once it ends."""
        if self._dashboard is None:
            from plexichat_desktop.gui.dashboard.panel import TestDashboard

            panel = TestDashboard(self.runtime, self.bridge, self)
            panel.scheduledRunFailed.connect(self._scheduled_run_failed)
            panel.countsChanged.connect(self._counts_changed)
            waiting = self.tests_dock.widget()
            self.tests_dock.setWidget(panel)
            if waiting is not None:
                waiting.deleteLater()
            self._dashboard = panel
            if self._first_start:
                self.first_start_layout()
        return self._dashboard

    @property
    def dashboard_built(self) -> bool:
        return self._dashboard is not None

    # -- menus and shortcuts ----------------------------------------------------------------
    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        # The plugin list is one tab: Ctrl+T brings it back (or to the front), it does
        # not open copies of it.
        self._add(file_menu, "Show the plugin &list tab", "Ctrl+T",
                  lambda: self.open_page(HOME_PATH, "Plugins"))
        self._add(file_menu, "Move tab to own &window", "Ctrl+N", self.current_to_window)
        self._add(file_menu, "&Close tab", "Ctrl+W",
                  lambda: self.close_tab(self.tabs.currentIndex()))
        # As in browsers (it showed or hid the Tests panel: Ctrl+Shift+D now).
        self._add(file_menu, "&Reopen closed tab", "Ctrl+Shift+T", self.reopen_closed_tab)
        file_menu.addSeparator()
        self._add(file_menu, "Copy a browser sign-in &link", None,
                  lambda: self._copy_url(""))
        self._add(file_menu, "Sign &out all browsers", None, self.sign_out_browsers)
        file_menu.addSeparator()
        self._add(file_menu, "&Quit", "Ctrl+Q", self.close)
        view_menu = menu.addMenu("&View")
        self._add(view_menu, "&Reload", "F5", lambda: self._current(lambda p: p.reload()))
        self._add(view_menu, "&Back", BACK_KEYS, lambda: self._current(pane_back))
        self._add(view_menu, "&Forward", FORWARD_KEYS, lambda: self._current(pane_forward))
        self._add(view_menu, "&Developer tools", DEVTOOLS_KEY, self._toggle_devtools)
        self._add(view_menu, "Next tab", [QKeySequence("Ctrl+Tab"), QKeySequence("Ctrl+PgDown")],
                  lambda: self._cycle(1))
        self._add(view_menu, "Previous tab",
                  [QKeySequence("Ctrl+Shift+Tab"), QKeySequence("Ctrl+PgUp")],
                  lambda: self._cycle(-1))
        view_menu.addSeparator()
        view_menu.addAction(self.plugins_dock.toggleViewAction())
        tests_toggle = self.tests_dock.toggleViewAction()
        tests_toggle.setShortcut(QKeySequence("Ctrl+Shift+D"))
        view_menu.addAction(tests_toggle)
        self._add(view_menu, "Test dashboard (&web)", None,
                  lambda: self.open_page("/tests", "Tests"))
        help_menu = menu.addMenu("&Help")
        self._add(help_menu, "&About PlexiChat Desktop", None, self._about)

    def _add(self, menu: QMenu, text: str, shortcut: str | list[QKeySequence] | None,
             slot: Callable[[], Any]) -> QAction:
        action = menu.addAction(text)
        if isinstance(shortcut, list):
            action.setShortcuts(shortcut)
        elif shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _about(self) -> None:
        QMessageBox.about(self, "About PlexiChat Desktop",
                          f"<h3>PlexiChat Desktop {__version__}</h3>"
                          f"<p>A desktop host for web-UI plugins and their tests.</p>"
                          f"<p>Server: {self.server_url}</p>")

    def sign_out_browsers(self) -> int:
        """End every browser session of this server (the window itself keeps working: it
        never used one); says how many ended in the status bar."""
        runtime = self._started()
        if runtime is None:
            return 0
        ended = runtime.sign_out_browsers()
        self.statusBar().showMessage(
            f"Signed out {ended} browser session{'' if ended == 1 else 's'}; browsers "
            "need a new sign-in link.", 8000)
        return ended

    def _copy_url(self, _link: str) -> None:
        # The bare URL answers 401 in a browser: what a person can paste is a sign-in link.
        runtime = self._started()
        if runtime is None:
            return
        QGuiApplication.clipboard().setText(runtime.browser_login_link("/"))
        self.statusBar().showMessage(
            "Sign-in link copied: paste it into a browser within 5 minutes (it works once)",
            8000)

    def _current(self, fn: Callable[[Pane], Any]) -> None:
        pane = self.tabs.currentWidget()
        if isinstance(pane, Pane):
            fn(pane)

    def _toggle_devtools(self) -> None:
        self._current(toggle_devtools)

    def _cycle(self, step: int) -> None:
        if self.tabs.count():
            self.tabs.setCurrentIndex((self.tabs.currentIndex() + step) % self.tabs.count())

    def bring_to_front(self) -> None:
        log.info("bringing the window to the front (another launch asked for it)")
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.show()
        self.raise_()
        self.activateWindow()

    # -- plugins ------------------------------------------------------------------------------
    def refresh_plugins(self) -> None:
        current = self.plugin_list.currentItem()
        selected = current.data(Qt.ItemDataRole.UserRole) if current else None
        self.plugin_list.clear()
        if self._runtime is None:
            starting = QListWidgetItem("Starting…")
            starting.setFlags(Qt.ItemFlag.NoItemFlags)
            self.plugin_list.addItem(starting)
            return
        for rec in self._runtime.plugins.records:
            item = QListWidgetItem(state_icon(str(rec.state)), rec.name)
            item.setData(Qt.ItemDataRole.UserRole, rec.id)
            tip = f"{rec.id} {rec.manifest.version if rec.manifest else ''} — {rec.state}"
            if rec.running and rec.degraded:
                tip += " (running without:)\n" + "\n".join(f"• {r}" for r in rec.degraded)
            elif rec.reason and not rec.running:
                tip += f"\n{rec.reason}"
            if rec.running and not self.has_page(rec):
                tip += "\nNo page of its own (it serves other plugins): opens its details"
            item.setToolTip(tip)
            self.plugin_list.addItem(item)
            if rec.id == selected:
                self.plugin_list.setCurrentItem(item)

    def _record(self, item: QListWidgetItem | None) -> PluginRecord | None:
        if item is None or self._runtime is None:
            return None
        return self._runtime.plugins.by_id.get(item.data(Qt.ItemDataRole.UserRole))

    def default_path(self, rec: PluginRecord) -> str:
        pages = rec.pages()
        return pages[0]["url"] if pages else f"/plugins/{rec.id}/"

    @staticmethod
    def has_page(rec: PluginRecord) -> bool:
        """Whether the plugin shows a page (a service for other plugins may not)."""
        return bool(rec.pages()) or (rec.root / "web" / "index.html").is_file()

    def _open_item(self, item: QListWidgetItem) -> None:
        rec = self._record(item)
        if rec is None:
            return
        if rec.running and not self.has_page(rec):
            # Its tab was a 404 ("has no web/ folder"): what it is and does instead.
            self.show_details(rec)
            return
        self.open_page(self.default_path(rec), rec.name)

    def _plugin_menu(self, pos: Any) -> None:
        rec = self._record(self.plugin_list.itemAt(pos))
        if rec is None:
            return
        menu = QMenu(self)
        pageless = rec.running and not self.has_page(rec)
        menu.addAction("Open", lambda: self.open_page(self.default_path(rec), rec.name)
                       ).setEnabled(not pageless)
        menu.addAction("Open in own window",
                       lambda: self.open_window(self.default_path(rec), rec.name)
                       ).setEnabled(not pageless)
        menu.addSeparator()
        loop = asyncio.get_running_loop()
        if str(rec.state) == "disabled":
            menu.addAction("Enable", lambda: loop.create_task(self.runtime.plugins.enable(rec.id)))
        elif rec.running:
            menu.addAction("Disable",
                           lambda: loop.create_task(self.runtime.plugins.disable(rec.id)))
        menu.addAction("Details…", lambda: self.show_details(rec))
        menu.exec(self.plugin_list.mapToGlobal(pos))

    def show_details(self, rec: PluginRecord) -> QMessageBox:
        """State, reason, what a degraded plugin runs without, and its schedules (next
        run, last result; fetched from the plugin's ``_host/schedules`` as a page would)."""
        box = QMessageBox(self)
        box.setObjectName("pluginDetails")
        box.setWindowTitle(f"Plugin {rec.id}")
        box.setTextFormat(Qt.TextFormat.RichText)
        answers = self.permission_gate.store.of(rec.id) if self.permission_gate else {}
        box.setText(details_html(rec, None if rec.running else [], answers))
        if answers:
            forget = box.addButton("Forget its permissions", QMessageBox.ButtonRole.ResetRole)
            forget.setToolTip("Its pages ask again for the clipboard or the microphone")
            forget.clicked.connect(lambda: self.forget_permissions(rec))
            box.addButton(QMessageBox.StandardButton.Ok)
        box.setInformativeText(str(rec.root))
        if rec.detail:
            box.setDetailedText(rec.detail)
        box.setIcon(QMessageBox.Icon.Warning if str(rec.state) == "failed" or rec.degraded
                    else QMessageBox.Icon.Information)
        box.open()
        if rec.running:
            task = asyncio.get_running_loop().create_task(self._fill_schedules(box, rec))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return box

    async def _fill_schedules(self, box: QMessageBox, rec: PluginRecord) -> None:
        import httpx  # here: a quarter of a second of imports the first window can skip

        from plexichat_desktop.plugins.tls import shared_tls_context  # not before the window

        schedules: list[dict[str, Any]] | str
        try:
            async with httpx.AsyncClient(base_url=self.runtime.url, timeout=10,
                                         verify=shared_tls_context(), headers={
                    "Authorization": f"Bearer {self.runtime.token}"}) as client:
                answer = await client.get(f"/plugins/{rec.id}/api/_host/schedules")
                answer.raise_for_status()
                schedules = list(answer.json().get("schedules", []))
        except (httpx.HTTPError, ValueError) as exc:
            schedules = f"its schedules could not be read ({exc})"
        if shiboken6.isValid(box):  # closed while the answer came: nothing to fill
            gate = self.permission_gate
            box.setText(details_html(rec, schedules, gate.store.of(rec.id) if gate else {}))

    def forget_permissions(self, rec: PluginRecord) -> None:
        if self.permission_gate is not None:
            self.permission_gate.forget(rec.id)
            self.statusBar().showMessage(
                f"{rec.name} will ask again for the clipboard or the microphone", 8000)

    def _counts_changed(self, running: int, queued: int) -> None:
        parts = [f"{running} run{'s' if running != 1 else ''} going"] if running else []
        parts += [f"{queued} queued"] if queued else []
        self.tests_label.setText(" · ".join(parts) or "No tests running")

    def _scheduled_run_failed(self, run: dict[str, Any]) -> None:
        counts = run.get("counts") or {}
        bad = sum(counts.get(k, 0) for k in ("failed", "error", "timed_out", "crashed"))
        detail = f"{bad} of {counts.get('total', '?')} tests failed" if bad else (
            run.get("error") or str(run.get("status")))
        self.notifier.notify(f"Scheduled tests of {run['plugin_id']} failed",
                             f"Run #{run['id']}: {detail}")

    # -- tabs and windows ---------------------------------------------------------------------
    def open_page(self, path: str, title: str | None = None, focus: bool = True) -> Pane:
        """The tab showing ``path`` (brought to the front), else the tab that started there
        (brought to the front as it is; the plugin list's tab, which a click on a plugin
        took elsewhere, back on the list), else a new tab."""
        panes = [(i, p) for i in range(self.tabs.count())
                 if isinstance(p := self.tabs.widget(i), Pane)]
        found = next(((i, p) for i, p in panes if p.path == path), None) or next(
            ((i, p) for i, p in panes if p.home_path == path), None)
        if found is None:
            return self._new_tab(path, title or path, focus=focus)
        index, pane = found
        if path == HOME_PATH and pane.path != path and isinstance(pane, BrowserPane):
            pane.go_home()
        if focus:
            self.tabs.setCurrentIndex(index)
        return pane

    def _new_tab(self, path: str, title: str, index: int | None = None,
                 focus: bool = True, home: str | None = None) -> Pane:
        """A new tab for ``path`` (at ``index``, else last); ``home``: the page it started
        on when that was another (a restored or reopened plugin list's tab)."""
        pane = self.make_pane(path, title, self.tabs)
        if home is not None and isinstance(pane, BrowserPane):
            pane.home_path = home
        index = self.tabs.insertTab(self.tabs.count() if index is None else index, pane, title)
        pane.titleChanged.connect(lambda t, p=pane: self._retitle(p, t))
        if focus:
            self.tabs.setCurrentIndex(index)
        self._show_empty_state()
        return pane

    def _show_empty_state(self) -> None:
        self.pages.setCurrentWidget(self.tabs if self.tabs.count() else self.empty)

    def plugin_of(self, path: str) -> PluginRecord | None:
        """The plugin whose page ``path`` is (``/plugins/<id>/...``), if any."""
        parts = path.split("?", 1)[0].split("/")
        if len(parts) > 2 and parts[1] == "plugins" and self._runtime is not None:
            return self._runtime.plugins.by_id.get(parts[2])
        return None

    def make_pane(self, path: str, title: str, parent: QWidget | None) -> Pane:
        """The page, or, for a plugin that is not running, why not (its page would only
        answer 503)."""
        rec = self.plugin_of(path)
        if rec is not None and self.runtime.plugins.starting(rec):
            # Not started yet (plugins start in the background): the page's request waits
            # for it on the server, and it starts before the plugins nobody looks at.
            self.runtime.plugins.want(rec.id)
            self._awaiting.add(rec.id)
        elif rec is not None and not rec.running:
            problem = ProblemPane(self.server_url, path, title, rec.name, str(rec.state),
                                  rec.reason or "", parent)
            problem.detailsRequested.connect(lambda r=rec: self.show_details(r))
            problem.retryRequested.connect(lambda p=problem: self._retry(p))
            return problem
        pane = self.pane_factory(path, title, parent)
        pane.openInWindowRequested.connect(lambda _p, pn=pane: self.pane_to_window(pn))
        if rec is not None and rec.degraded:
            self.statusBar().showMessage(
                f"{rec.name} runs without: {'; '.join(rec.degraded)}", 15_000)
        return pane

    def _plugin_state_changed(self, plugin_id: str, _state: str, _reason: str) -> None:
        """A plugin that starts running replaces the panes that said it was not; one that
        failed to start replaces the pages opened while it was starting with the reason."""
        rec = self.runtime.plugins.by_id.get(plugin_id)
        if rec is None:
            return
        if plugin_id in self._awaiting and not self.runtime.plugins.starting(rec):
            self._awaiting.discard(plugin_id)
            if not rec.running:
                panes = [self.tabs.widget(i) for i in range(self.tabs.count())]
                panes += [w.pane for w in self.windows]
                for pane in panes:
                    if (isinstance(pane, Pane) and not isinstance(pane, ProblemPane)
                            and (of := self.plugin_of(pane.home_path)) is not None
                            and of.id == plugin_id):
                        self._replace_with_problem(pane)
        if not rec.running:
            return
        panes = [self.tabs.widget(i) for i in range(self.tabs.count())]
        panes += [w.pane for w in self.windows]
        for pane in panes:
            if isinstance(pane, ProblemPane) and (rec := self.plugin_of(pane.home_path)) \
                    and rec.id == plugin_id:
                self._retry(pane)

    def _plugin_reloaded(self, plugin_id: str, kind: str, state: str, reason: str) -> None:
        """Files of a plugin changed (``dev``): its open views reload; after a code
        reload that failed they show the failed-plugin pane with the reason instead,
        and the next good reload brings the pages back (``_plugin_state_changed``)."""
        panes = [self.tabs.widget(i) for i in range(self.tabs.count())]
        panes += [w.pane for w in self.windows]
        running = state in ("active", "degraded")
        for pane in panes:
            if not isinstance(pane, Pane):
                continue
            rec = self.plugin_of(pane.home_path)
            if rec is None or rec.id != plugin_id:
                # A tab that went to one of the plugin's pages from elsewhere (the plugin
                # list's, after a click) reloads too; it is not the plugin's to replace.
                if (showing := self.plugin_of(pane.path)) is not None and \
                        showing.id == plugin_id and isinstance(pane, BrowserPane):
                    pane.reload()
                continue
            if isinstance(pane, ProblemPane):
                if running:
                    self._retry(pane)
                else:
                    pane.set_reason(state, reason)
            elif running:
                pane.reload()
            else:
                self._replace_with_problem(pane)
        shown = "reloaded" if running else f"{state}: {reason}"
        self.statusBar().showMessage(f"{plugin_id} ({kind}) {shown}", 8000)

    def _replace_with_problem(self, pane: Pane) -> None:
        index = self.tabs.indexOf(pane)
        if index >= 0:
            # Built in its place, never through open_page: another tab may show the page
            # (the plugin list's tab after a click), and that one must stay as it is.
            current = self.tabs.currentIndex() == index
            self.close_tab(index, remember=False)
            self._new_tab(pane.home_path, pane.title, index, focus=current)
            return
        for window in self.windows:
            if window.pane is pane:
                window.close()
                self.open_window(pane.home_path, pane.title)

    def _retry(self, problem: ProblemPane) -> None:
        rec = self.plugin_of(problem.home_path)
        if rec is not None and not rec.running:
            problem.set_reason(str(rec.state), rec.reason or "")
            self.statusBar().showMessage(f"{rec.name} is still {rec.state}", 5000)
            return
        index = self.tabs.indexOf(problem)
        if index >= 0:
            current = self.tabs.currentIndex() == index  # a tab behind stays behind
            self.close_tab(index, remember=False)
            self._new_tab(problem.home_path, problem.title, index, focus=current)
            return
        for window in self.windows:
            if window.pane is problem:
                window.close()
                self.open_window(problem.home_path, problem.title)

    def open_tab(self, path: str, background: bool = False) -> Pane:
        """A link asked for a new tab (target=_blank, middle-click, window.open)."""
        return self.open_page(path, focus=not background)

    def open_external(self, url: QUrl, origin: QObject | None = None) -> bool:
        """A foreign link: the system browser, and the status bar of the window it was
        clicked in (``origin``'s: a page's own window, else this one) says where it went."""
        shown = url.toString()
        window = origin.window() if isinstance(origin, QWidget) else None
        bar = (window if isinstance(window, QMainWindow) else self).statusBar()
        if QDesktopServices.openUrl(url):
            bar.showMessage(f"Opened in your web browser: {shown}", 8000)
            return True
        QGuiApplication.clipboard().setText(shown)
        bar.showMessage(
            f"No web browser could open {shown}. The address is on the clipboard.", 20000)
        return False

    def _retitle(self, pane: Pane, title: str) -> None:
        index = self.tabs.indexOf(pane)
        if index >= 0:
            self.tabs.setTabText(index, title if len(title) <= 40 else title[:39] + "…")
            self.tabs.setTabToolTip(index, title)

    def close_tab(self, index: int, remember: bool = True) -> None:
        """Close the tab at ``index``; ``remember``: the user closed it (Ctrl+Shift+T can
        bring it back), not a move to a window or a tab rebuilt in its place."""
        pane = self.tabs.widget(index)
        if isinstance(pane, Pane):
            if remember:
                self._closed_tabs.append((pane.path, pane.home_path, pane.title, index))
                del self._closed_tabs[:-CLOSED_TABS_KEPT]
            self.tabs.removeTab(index)
            pane.shutdown()
            pane.deleteLater()
        self._show_empty_state()

    def reopen_closed_tab(self) -> None:
        """The tab closed last, where it was, on the page it showed (as browsers do)."""
        if not self._closed_tabs:
            self.statusBar().showMessage("No closed tab to reopen", 3000)
            return
        path, home, title, index = self._closed_tabs.pop()
        self._new_tab(path, title, index=min(index, self.tabs.count()), home=home)

    def _tab_menu(self, pos: Any) -> None:
        index = self.tabs.tabBar().tabAt(pos)
        pane = self.tabs.widget(index)
        if not isinstance(pane, Pane):
            return
        menu = QMenu(self)
        menu.addAction("Move to own window", lambda: self.tab_to_window(index))
        menu.addAction("Reload", pane.reload)
        menu.addAction("Close", lambda: self.close_tab(index))
        menu.exec(self.tabs.tabBar().mapToGlobal(pos))

    def current_to_window(self) -> None:
        if self.tabs.currentIndex() >= 0:
            self.tab_to_window(self.tabs.currentIndex())

    def tab_to_window(self, index: int) -> None:
        """The toolbar button, Ctrl+N and the tab menu all do this: the page moves out of
        its tab into a window of its own (or to the window already showing it)."""
        pane = self.tabs.widget(index)
        if isinstance(pane, Pane):
            self.open_window(pane.path, pane.title)
            self.close_tab(index, remember=False)

    def pane_to_window(self, pane: Pane) -> None:
        index = self.tabs.indexOf(pane)
        if index >= 0:
            self.tab_to_window(index)
        # else: it already is in a window of its own

    def window_for(self, path: str) -> PluginWindow | None:
        return next((w for w in self.windows if path in (w.pane.path, w.pane.home_path)),
                    None)

    def open_window(self, path: str, title: str | None = None) -> PluginWindow:
        existing = self.window_for(path)
        if existing is not None:
            # One window per page: asking again brings it up instead of a second copy.
            existing.setWindowState(existing.windowState() & ~Qt.WindowState.WindowMinimized)
            existing.show()
            existing.raise_()
            existing.activateWindow()
            return existing
        pane = self.make_pane(path, title or path, None)
        window = PluginWindow(pane, self.settings, self.windows.remove)
        self.windows.append(window)
        window.show()
        return window

    # -- state ----------------------------------------------------------------------------------
    def save_state(self) -> None:
        tabs = [self.tabs.widget(i) for i in range(self.tabs.count())]
        self.settings.setValue("main/geometry", self.saveGeometry())
        self.settings.setValue("main/state", self.saveState())
        # Where each tab is, and where it started (the plugin list's tab, taken to a
        # plugin's page by a click there, stays the list's tab).
        self.settings.setValue("main/tabs", json.dumps(
            [{"path": p.path, "home": p.home_path, "title": p.title}
             for p in tabs if isinstance(p, Pane)]))
        self.settings.setValue("main/current", self.tabs.currentIndex())
        self.settings.setValue("main/windows", json.dumps(
            [{"path": w.pane.path, "title": w.pane.title} for w in self.windows]))
        self.settings.sync()

    def restore_state(self) -> None:
        geometry = self.settings.value("main/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
            clamp_to_screen(self)
        state = self.settings.value("main/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        tabs = _json_list(self.settings.value("main/tabs"))
        for tab in tabs:
            # Each saved tab as its own (open_page joins tabs on one page: the list's tab,
            # gone to a page another tab showed too, was lost, and the current one moved).
            home = tab.get("home")
            self._new_tab(tab["path"], tab.get("title") or tab["path"], focus=False,
                          home=home if isinstance(home, str) and home.startswith("/") else None)
        if not tabs:
            self.open_page(HOME_PATH, "Plugins")
        current = self.settings.value("main/current", 0)
        self.tabs.setCurrentIndex(int(str(current)) if str(current).lstrip("-").isdigit() else 0)
        for window in _json_list(self.settings.value("main/windows")):
            self.open_window(window["path"], window.get("title"))
        if not isinstance(state, QByteArray):
            self._first_start = True
            QTimer.singleShot(0, self._first_start_layout_if_built)

    def _first_start_layout_if_built(self) -> None:
        if self._dashboard is not None:  # else building the panel lays the docks out
            self.first_start_layout()

    def first_start_layout(self) -> None:
        """The pages get most of the height, the test dock a third of it: as much as its
        panes need to show a few rows each, never more, and never over half (in a small
        window it scrolls rather than leave the page a strip)."""
        # The panel's content, and the dock's title bar and margins around the panel.
        around = max(0, self.tests_dock.height() - self.dashboard.height())
        needs = self.dashboard.content.minimumSizeHint().height() + around
        wanted = min(max(self.height() * 36 // 100, needs), self.height() // 2)
        self.resizeDocks([self.tests_dock], [wanted], Qt.Orientation.Vertical)
        self.resizeDocks([self.plugins_dock], [max(200, self.width() // 6)],
                         Qt.Orientation.Horizontal)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        # Made smaller, the window took the height from the page and left the test dock
        # as it was (a 374 px dock over a 179 px page at 800x600): never over half.
        dock = self.tests_dock
        shrunk = event.oldSize().height() > event.size().height() > 0
        below_or_above = self.dockWidgetArea(dock) in (Qt.DockWidgetArea.BottomDockWidgetArea,
                                                       Qt.DockWidgetArea.TopDockWidgetArea)
        # Only when the window got lower: a dock the user made taller stays so otherwise.
        if (shrunk and below_or_above and dock.isVisible() and not dock.isFloating()
                and dock.height() > self.height() // 2):
            self.resizeDocks([dock], [self.height() // 2], Qt.Orientation.Vertical)

    def closeEvent(self, event: QCloseEvent) -> None:
        # Standalone windows belong to this app instance: they close with it (and are
        # reopened next time), so nothing keeps running without its main window.
        self.save_state()
        self.notifier.close()
        for window in list(self.windows):
            window.close()
        while self.tabs.count():
            self.close_tab(0, remember=False)
        self.closed.set()
        super().closeEvent(event)


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%a %d %b %H:%M:%S") if ts else "—"


def last_result(schedule: dict[str, Any]) -> str:
    status = schedule.get("last_status")
    if schedule.get("running"):
        return "running now"
    if not status:
        return "not run yet"
    at = schedule.get("last_finished_at") or schedule.get("last_fire_at")
    text = f"{status} {when(at)}" if at else str(status)
    if schedule.get("last_error"):
        text += f": {schedule['last_error']}"
    extra = [f"{schedule[k]} {k}" for k in ("skipped", "missed") if schedule.get(k)]
    return text + (f" ({', '.join(extra)})" if extra else "")


def details_html(rec: PluginRecord, schedules: list[dict[str, Any]] | str | None,
                 permissions: dict[str, bool] | None = None) -> str:
    """The Details… text; ``schedules`` None while they load, a string when unreadable;
    ``permissions`` what the user answered for the plugin (``{"clipboard": True}``)."""
    def e(text: str) -> str:
        return html.escape(text, quote=False)  # text, not attributes: quotes stay readable

    parts = [f"<b>{e(rec.name)}</b> — {e(str(rec.state))}"]
    if rec.running and rec.degraded:
        parts.append("Running, without:<ul>"
                     + "".join(f"<li>{e(r)}</li>" for r in rec.degraded) + "</ul>")
    elif rec.reason:
        parts.append(e(rec.reason))
    if permissions:
        parts.append("Permissions: " + "; ".join(
            f"{kind} {'allowed' if granted else 'denied'}"
            for kind, granted in sorted(permissions.items())))
    if schedules is None:
        parts.append("<i>Reading its schedules…</i>")
    elif isinstance(schedules, str):
        parts.append(f"<i>{e(schedules)}</i>")
    elif schedules:
        rows = "".join(
            f"<tr><td>{e(str(s.get('name')))}</td><td><code>{e(str(s.get('expression')))}"
            f"</code></td><td>{e(when(s.get('next_fire_at')))}</td>"
            f"<td>{e(last_result(s))}</td></tr>" for s in schedules)
        parts.append("<b>Schedules</b><table cellspacing='6'><tr><th align='left'>Name</th>"
                     "<th align='left'>When</th><th align='left'>Next run</th>"
                     f"<th align='left'>Last result</th></tr>{rows}</table>")
    elif rec.running:
        parts.append("No schedules.")
    return "<br>".join(parts)


def _json_list(value: Any) -> list[dict[str, Any]]:
    try:
        data = json.loads(value) if isinstance(value, str) else []
    except ValueError:
        return []
    return [d for d in data if isinstance(d, dict) and isinstance(d.get("path"), str)
            and d["path"].startswith("/")] if isinstance(data, list) else []

