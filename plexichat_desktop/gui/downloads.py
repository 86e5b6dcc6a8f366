"""Downloads started by a page (an export link, a ``blob:`` behind ``<a download>``).

Chromium asks the profile (``downloadRequested``) and cancels the download unless the
handler accepts it before returning, so the save dialog is modal. Where the file goes:

* ``PLEXICHAT_DESKTOP_DOWNLOAD_DIR`` names a folder: there, no dialog;
* a headless platform (offscreen, as in tests): the folder last used, else the
  desktop's Downloads folder, no dialog;
* otherwise a save dialog, opened in the folder last used (remembered in the window's
  settings) with the page's file name.

The page chooses the name: it is cut to a bare file name (Chromium's own answer keeps
``../`` in the folder it proposes) and made unique in the folder. Progress and the
outcome (saved where, cancelled, failed and why) show in the status bar of the window
the page is in.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QStandardPaths, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWebEngineCore import QWebEngineDownloadRequest, QWebEngineProfile
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QFileDialog, QMainWindow, QWidget

from plexichat_desktop.gui.environment import HEADLESS_PLATFORMS

log = logging.getLogger(__name__)

FOLDER_ENV = "PLEXICHAT_DESKTOP_DOWNLOAD_DIR"
FOLDER_KEY = "downloads/folder"
FALLBACK_NAME = "download"
MAX_NAME_BYTES = 200  # under every common file system's 255, room left for " (12)"
# Windows refuses these names whatever the extension; a file made here may be copied there.
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
            *(f"LPT{i}" for i in range(1, 10))}
UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
State = QWebEngineDownloadRequest.DownloadState


def safe_file_name(suggested: str) -> str:
    """A bare file name from what a page suggested: no folder parts, no characters that
    some file system refuses, no leading dots (hidden or ``..``), not over-long."""
    name = unicodedata.normalize("NFC", suggested or "")
    name = re.split(r"[/\\]", name)[-1]  # what follows the last folder separator
    name = UNSAFE_CHARS.sub("_", name)
    name = name.strip().lstrip(".").rstrip(". ")
    stem, dot, ext = name.rpartition(".")
    if (stem if dot else name).upper() in RESERVED:
        name = "_" + name
    if not name.strip("_"):
        name = FALLBACK_NAME
    while len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        keep_ext = bool(dot and stem and 0 < len(ext) <= 16)  # shorten the stem, not ".csv"
        name = f"{stem[:-1]}.{ext}" if keep_ext else name[:-1]
    return name


def unique_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name (1)``, ``name (2)``... when that file exists."""
    target = folder / name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    number = 1
    while target.exists():
        target = folder / (f"{stem} ({number})" + (f".{ext}" if ext else ""))
        number += 1
    return target


def headless() -> bool:
    return QGuiApplication.platformName() in HEADLESS_PLATFORMS


@dataclass
class DownloadOutcome:
    """How one download ended: ``state`` is completed, cancelled or failed."""

    name: str
    path: Path | None
    state: str
    error: str = ""
    url: str = ""


def describe_size(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} bytes"


# (folder it opens in, the proposed name) -> the chosen path, or None: cancelled.
Chooser = Callable[[QWidget, Path, str], Path | None]


def ask_where(parent: QWidget, folder: Path, name: str) -> Path | None:
    path, _filter = QFileDialog.getSaveFileName(parent, "Save download", str(folder / name))
    return Path(path) if path else None


class DownloadManager(QObject):
    """Handles every download of ``profile``; ``finished`` carries a
    :class:`DownloadOutcome` once each one has ended."""

    finished = Signal(object)

    def __init__(self, profile: QWebEngineProfile, settings: QSettings, window: QMainWindow,
                 *, folder: Path | None = None, ask: bool | None = None,
                 chooser: Chooser = ask_where, parent: QObject | None = None):
        super().__init__(parent)
        self._settings = settings
        self._window = window
        env = os.environ.get(FOLDER_ENV)
        self.folder = folder or (Path(env).expanduser() if env else None)
        self.ask = (self.folder is None and not headless()) if ask is None else ask
        self._chooser = chooser
        self._active: dict[int, QWebEngineDownloadRequest] = {}
        self.outcomes: list[DownloadOutcome] = []
        profile.downloadRequested.connect(self._requested)

    def default_folder(self) -> Path:
        remembered = self._settings.value(FOLDER_KEY)
        if isinstance(remembered, str) and remembered and Path(remembered).is_dir():
            return Path(remembered)
        standard = QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.DownloadLocation)
        return Path(standard or Path.home())

    def _window_of(self, download: QWebEngineDownloadRequest) -> QMainWindow:
        # A download from a standalone window reports there, not in the main window.
        page = download.page()
        view = QWebEngineView.forPage(page) if page is not None else None
        top = view.window() if view is not None else None
        return top if isinstance(top, QMainWindow) else self._window

    def _say(self, download: QWebEngineDownloadRequest, text: str, ms: int = 0) -> None:
        self._window_of(download).statusBar().showMessage(text, ms)

    def _requested(self, download: QWebEngineDownloadRequest) -> None:
        name = safe_file_name(download.suggestedFileName() or download.downloadFileName())
        if self.ask:
            start = self.folder or self.default_folder()
            chosen = self._chooser(self._window_of(download), start, name)
            if chosen is None:
                download.cancel()
                self._end(download, DownloadOutcome(name, None, "cancelled",
                                                    url=download.url().toString()),
                          f"Download of {name} cancelled")
                return
            # The dialog already asked before replacing a file the user picked.
            target = chosen.parent / safe_file_name(chosen.name)
            self._settings.setValue(FOLDER_KEY, str(target.parent))
        else:
            folder = self.folder or self.default_folder()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                download.cancel()
                self._end(download, DownloadOutcome(name, None, "failed", str(exc),
                                                    download.url().toString()),
                          f"Download of {name} failed: cannot use {folder}: {exc}")
                return
            target = unique_path(folder, name)
        download.setDownloadDirectory(str(target.parent))
        download.setDownloadFileName(target.name)
        self._active[download.id()] = download
        download.receivedBytesChanged.connect(lambda d=download: self._progress(d))
        download.isFinishedChanged.connect(lambda d=download: self._finished(d))
        download.accept()
        log.info("downloading %s to %s", download.url().toString()[:200], target)
        self._say(download, f"Downloading {target.name}…")

    def _progress(self, download: QWebEngineDownloadRequest) -> None:
        got, total = download.receivedBytes(), download.totalBytes()
        name = download.downloadFileName()
        if total > 0:
            self._say(download, f"Downloading {name}: {got * 100 // total} % "
                                f"({describe_size(got)} of {describe_size(total)})")
        else:
            self._say(download, f"Downloading {name}: {describe_size(got)}")

    def _finished(self, download: QWebEngineDownloadRequest) -> None:
        if not download.isFinished():
            return
        self._active.pop(download.id(), None)
        name = download.downloadFileName()
        path = Path(download.downloadDirectory()) / name
        url = download.url().toString()
        state = download.state()
        if state == State.DownloadCompleted:
            self._end(download, DownloadOutcome(name, path, "completed", url=url),
                      f"Saved {name} ({describe_size(download.receivedBytes())}) to "
                      f"{path.parent}")
        elif state == State.DownloadCancelled:
            self._end(download, DownloadOutcome(name, None, "cancelled", url=url),
                      f"Download of {name} cancelled")
        else:
            reason = download.interruptReasonString()
            self._end(download, DownloadOutcome(name, None, "failed", reason, url),
                      f"Download of {name} failed: {reason}")

    def _end(self, download: QWebEngineDownloadRequest, outcome: DownloadOutcome,
             message: str) -> None:
        (log.info if outcome.state == "completed" else log.warning)("%s", message)
        self._say(download, message, 15_000)
        self.outcomes.append(outcome)
        self.finished.emit(outcome)

    def cancel_all(self) -> None:
        """Downloads still running when the app closes end here, said as cancelled."""
        for download in list(self._active.values()):
            download.cancel()
