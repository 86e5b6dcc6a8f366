"""A browser pane: toolbar, the plugin's web view and an optional developer-tools view.
Used as a tab of the main window and as the body of a standalone plugin window."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QIcon,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:  # QtWebEngine is imported only where it is used: it may be missing
    from PySide6.QtWebEngineWidgets import QWebEngineView


def house_icon(colour: QColor) -> QIcon:
    """A house: Qt's standard "home" pixmap is a folder (the home directory)."""
    icon = QIcon.fromTheme("go-home")
    if not icon.isNull():
        return icon
    pixmap = QPixmap(32, 32)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(colour, 2.6)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    roof = QPainterPath()
    roof.moveTo(4, 16)
    roof.lineTo(16, 5)
    roof.lineTo(28, 16)
    painter.drawPath(roof)
    body = QPainterPath()
    body.moveTo(8, 13)
    body.lineTo(8, 27)
    body.lineTo(24, 27)
    body.lineTo(24, 13)
    painter.drawPath(body)
    painter.drawRect(14, 19, 4, 8)
    painter.end()
    return QIcon(pixmap)


class Pane(QWidget):
    """What a tab or window holds. ``path`` is the server path it shows (``/plugins/x/``)."""

    titleChanged = Signal(str)
    openInWindowRequested = Signal(str)

    def __init__(self, base_url: str, path: str, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.base_url = base_url.rstrip("/")
        self.home_path = path
        self.title = title

    @property
    def path(self) -> str:
        return self.home_path

    def url(self, path: str | None = None) -> QUrl:
        return QUrl(self.base_url + (path or self.home_path))

    def reload(self) -> None: ...

    def shutdown(self) -> None:
        """Release the web page before the profile goes (no-op without a web view)."""


class BrowserPane(Pane):
    """The web pane: back, forward, reload, home, developer tools, open in window."""

    def __init__(self, base_url: str, path: str, title: str,
                 view_factory: Callable[[QWidget], QWebEngineView],
                 parent: QWidget | None = None):
        super().__init__(base_url, path, title, parent)
        self.view = view_factory(self)
        self.devtools: QWebEngineView | None = None
        style = self.style()
        self.toolbar = QToolBar(self)
        self.toolbar.setIconSize(self.toolbar.iconSize() * 0.8)
        self.toolbar.setMovable(False)
        actions = [
            (QStyle.StandardPixmap.SP_ArrowBack, "Back (Alt+Left)", self.back),
            (QStyle.StandardPixmap.SP_ArrowForward, "Forward (Alt+Right)", self.forward),
            (QStyle.StandardPixmap.SP_BrowserReload, "Reload (F5)", self.reload),
            (None, "Back to this tab's first page", self.go_home),
        ]
        for icon, tip, slot in actions:
            shown = style.standardIcon(icon) if icon is not None else house_icon(
                self.palette().color(self.palette().ColorRole.ButtonText))
            action = self.toolbar.addAction(shown, tip.split(" (")[0])
            action.setToolTip(tip)
            action.triggered.connect(slot)
        self.toolbar.addSeparator()
        self.address = QLabel(self)
        self.address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.address.setObjectName("address")
        self.toolbar.addWidget(self.address)
        spacer = QWidget(self)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, spacer.sizePolicy().verticalPolicy())
        self.toolbar.addWidget(spacer)
        self.window_action = self.toolbar.addAction(
            style.standardIcon(QStyle.StandardPixmap.SP_TitleBarNormalButton), "Own window")
        self.window_action.setToolTip("Move this page to its own window (Ctrl+N)")
        self.window_action.triggered.connect(
            lambda: self.openInWindowRequested.emit(self.path))
        self.devtools_action = self.toolbar.addAction(QIcon.fromTheme("tools-report-bug"),
                                                      "Developer tools")
        self.devtools_action.setCheckable(True)
        self.devtools_action.setToolTip("Developer tools (Ctrl+Shift+I)")
        self.devtools_action.toggled.connect(self.set_devtools)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.splitter)
        self.view.titleChanged.connect(self._title_changed)
        self.view.urlChanged.connect(self._url_changed)
        self.view.page().loadingChanged.connect(self._loading_changed)
        self.view.load(self.url())

    # Through the history: triggerAction(WebAction.Back) (what QWebEngineView.back() calls)
    # left these pages where they were (PySide6 6.11 offscreen, history with two entries).
    def back(self) -> None:
        self.view.page().history().back()

    def forward(self) -> None:
        self.view.page().history().forward()

    @property
    def path(self) -> str:
        url = self.view.url()
        if url.isValid() and url.path():
            query = f"?{url.query()}" if url.query() else ""
            return url.path() + query
        return self.home_path

    def _title_changed(self, title: str) -> None:
        # Chromium shows the URL as the title until the page sets one.
        if title and not title.startswith(("http://", "127.0.0.1")):
            self.title = title
            self.titleChanged.emit(title)

    def _url_changed(self, url: QUrl) -> None:
        self.address.setText(url.path())

    def _loading_changed(self, info: Any) -> None:
        from PySide6.QtWebEngineCore import QWebEngineLoadingInfo

        if info.status() != QWebEngineLoadingInfo.LoadStatus.LoadFailedStatus:
            return
        url = info.url()
        # A navigation we refused (foreign origin) also "fails": only our own pages that
        # could not be fetched get the explanation. An HTTP error status (a 503 of a
        # plugin that is not running, a 404) is no fetch failure: the server's own page
        # says what is wrong, and Chromium's text for it is a template ("$1 is unable...").
        if not url.toString().startswith(self.base_url + "/") or info.errorCode() == -3 \
                or info.errorDomain() == QWebEngineLoadingInfo.ErrorDomain.HttpStatusCodeDomain:
            return
        self.view.setHtml(
            "<body style='font-family:sans-serif;padding:2em'><h2>Page not loaded</h2>"
            f"<p>{html.escape(url.toString())} could not be fetched "
            f"({html.escape(info.errorString())}). Is PlexiChat Desktop's server still "
            "running?</p><p>Press F5 to try again.</p></body>", url)

    def reload(self) -> None:
        self.view.reload()

    def go_home(self) -> None:
        self.view.load(self.url())

    def set_devtools(self, on: bool) -> None:
        from PySide6.QtWebEngineWidgets import QWebEngineView

        if on and self.devtools is None:
            self.devtools = QWebEngineView(self)
            self.view.page().setDevToolsPage(self.devtools.page())
            self.splitter.addWidget(self.devtools)
            self.splitter.setSizes([2, 1])
        elif not on and self.devtools is not None:
            # Qt takes nullptr (no developer tools); PySide6's stubs do not allow None.
            self.view.page().setDevToolsPage(None)  # type: ignore[arg-type]
            self.devtools.setParent(None)
            self.devtools.deleteLater()
            self.devtools = None
        if self.devtools_action.isChecked() != on:
            self.devtools_action.setChecked(on)

    def shutdown(self) -> None:
        self.set_devtools(False)
        self.view.stop()
        page = self.view.page()
        # Qt takes nullptr (the view lets go of its page); PySide6's stubs do not allow None.
        self.view.setPage(None)  # type: ignore[arg-type]
        page.deleteLater()


REASON_WIDTH = 720  # px at most of a problem pane's reason, centred


class ProblemPane(Pane):
    """A plugin page that cannot load because its plugin is not running: the reason (as
    the plugin list's tooltip and Details… give it), Details… and Try again."""

    detailsRequested = Signal()
    retryRequested = Signal()

    def __init__(self, base_url: str, path: str, title: str, name: str, state: str,
                 reason: str, parent: QWidget | None = None):
        super().__init__(base_url, path, title, parent)
        self.setObjectName("pluginProblem")
        layout = QVBoxLayout(self)
        layout.setAlignment(Qt.AlignmentFlag.AlignCenter)
        heading = QLabel(f"<h2>{html.escape(name)} is not running</h2>", self)
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.reason = QLabel(self)
        self.reason.setObjectName("problemReason")
        self.reason.setWordWrap(True)
        self.reason.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.set_reason(state, reason)
        self.details_button = QPushButton("Details…", self)
        self.details_button.clicked.connect(self.detailsRequested)
        self.retry_button = QPushButton("Try again", self)
        self.retry_button.setToolTip("Open the page if the plugin runs now (F5)")
        self.retry_button.clicked.connect(self.retryRequested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.details_button)
        buttons.addWidget(self.retry_button)
        buttons.addStretch(1)
        layout.addWidget(heading)
        layout.addWidget(self.reason, alignment=Qt.AlignmentFlag.AlignCenter)
        layout.addLayout(buttons)

    def set_reason(self, state: str, reason: str) -> None:
        self.reason.setText(f"Its page {self.home_path} cannot open: the plugin is {state}"
                            + (f".\n\n{reason}" if reason else "."))
        self._fit_reason()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_reason()

    def _fit_reason(self) -> None:
        # Centred, a wrapped label gets the height of its size hint, not of its text at
        # its width: the reason (why the plugin is not running) was cut after a line.
        width = max(200, min(REASON_WIDTH, self.width() - 48))
        self.reason.setFixedSize(width, max(1, self.reason.heightForWidth(width)))

    def reload(self) -> None:
        self.retryRequested.emit()


class FallbackPane(Pane):
    """Without QtWebEngine the page opens in the system browser; the tab says so."""

    def __init__(self, base_url: str, path: str, title: str, reason: str,
                 open_external: Callable[[str], None], parent: QWidget | None = None):
        super().__init__(base_url, path, title, parent)
        self._open_external = open_external
        layout = QVBoxLayout(self)
        layout.setAlignment(Qt.AlignmentFlag.AlignCenter)
        message = QLabel(f"<h3>{title}</h3><p>This page opened in your web browser because "
                         f"{reason}.</p>", self)
        message.setWordWrap(True)
        message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        again = QPushButton("Open in the browser again", self)
        again.clicked.connect(self.reload)
        layout.addWidget(message)
        layout.addWidget(again, alignment=Qt.AlignmentFlag.AlignCenter)
        self.reload()

    def reload(self) -> None:
        self._open_external(self.home_path)


def open_in_system_browser(url: str) -> None:
    QDesktopServices.openUrl(QUrl(url))
