"""Desktop notifications: a tray message where the desktop has a tray, else the status bar."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QMainWindow, QSystemTrayIcon

log = logging.getLogger(__name__)


class Notifier:
    """Tells the person about things that happen while they look elsewhere.

    ``sent`` keeps every (title, text) pair, newest last, for the window's own log.
    """

    def __init__(self, window: QMainWindow, icon: QIcon,
                 bring_to_front: Callable[[], None] | None = None):
        self.window = window
        self.sent: list[tuple[str, str]] = []
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(icon, window)
            self.tray.setToolTip("PlexiChat Desktop")
            front = bring_to_front or window.activateWindow
            self.tray.activated.connect(lambda _reason: front())
            self.tray.show()

    def notify(self, title: str, text: str, error: bool = True) -> None:
        self.sent.append((title, text))
        log.warning("%s: %s", title, text) if error else log.info("%s: %s", title, text)
        if self.tray is not None and self.tray.supportsMessages():
            kind = (QSystemTrayIcon.MessageIcon.Warning if error
                    else QSystemTrayIcon.MessageIcon.Information)
            self.tray.showMessage(title, text, kind, 10_000)
        # The status bar always gets it too: a tray balloon is easy to miss.
        self.window.statusBar().showMessage(f"{title}: {text}", 15_000)

    def close(self) -> None:
        if self.tray is not None:
            self.tray.hide()
            self.tray.deleteLater()
            self.tray = None
