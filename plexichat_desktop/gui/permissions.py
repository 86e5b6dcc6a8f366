"""What a page may use beyond the page itself: the clipboard and the microphone.

Only our own origin may have them (the app server on 127.0.0.1/localhost and this
install's ``.localhost`` name, on the server's port), and only after the user said yes
for that plugin: every plugin's pages share the one origin, so Chromium's own memory
(kept per origin) is turned off and the answers are kept per plugin instead, in
``permissions.json`` in the app's config folder. Any other origin, and any other kind of
permission (camera, screen, location, notifications...), is refused without a question.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtWebEngineCore import QWebEnginePage, QWebEnginePermission, QWebEngineProfile
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger(__name__)

Kind = QWebEnginePermission.PermissionType
# What may be asked for at all, by the name it is remembered under and how it is asked.
OFFERED: dict[Kind, tuple[str, str]] = {
    Kind.ClipboardReadWrite: ("clipboard", "read and write the clipboard"),
    Kind.MediaAudioCapture: ("microphone", "use the microphone"),
}
APP_PAGES = "app"  # the host's own pages (the plugin list, the test dashboard)


def own_origins(port: int, install_host: str) -> frozenset[str]:
    return frozenset(f"http://{host}:{port}" for host in ("127.0.0.1", "localhost",
                                                          install_host))


def origin_of(url: QUrl) -> str:
    port = url.port()
    return f"{url.scheme()}://{url.host()}" + (f":{port}" if port >= 0 else "")


def plugin_of_url(url: QUrl) -> str:
    """The plugin whose page ``url`` is (``/plugins/<id>/...``), else the app's pages."""
    parts = url.path().split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "plugins" and parts[2] else APP_PAGES


class PermissionStore:
    """``{plugin id: {"clipboard": "granted" | "denied"}}`` in a small JSON file."""

    def __init__(self, path: Path):
        self.path = path
        self._answers: dict[str, dict[str, str]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            log.warning("permissions in %s not read (%s): every plugin asks again", path, exc)
            data = {}
        if isinstance(data, dict):
            for plugin, answers in data.items():
                if isinstance(answers, dict):
                    self._answers[str(plugin)] = {str(k): str(v) for k, v in answers.items()
                                                  if v in ("granted", "denied")}

    def get(self, plugin: str, kind: str) -> bool | None:
        answer = self._answers.get(plugin, {}).get(kind)
        return None if answer is None else answer == "granted"

    def of(self, plugin: str) -> dict[str, bool]:
        return {k: v == "granted" for k, v in self._answers.get(plugin, {}).items()}

    def set(self, plugin: str, kind: str, granted: bool) -> None:
        self._answers.setdefault(plugin, {})[kind] = "granted" if granted else "denied"
        self._save()

    def forget(self, plugin: str) -> None:
        if self._answers.pop(plugin, None) is not None:
            self._save()

    def _save(self) -> None:
        # Written whole and renamed over the old file: a crash leaves one or the other.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".permissions-", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self._answers, out, indent=2, sort_keys=True)
        os.replace(tmp, self.path)


@dataclass
class Question:
    """One pending question: what to ask, and the requests waiting for its answer."""

    plugin: str
    kind: str
    text: str
    waiting: list[tuple[QWebEnginePage, QWebEnginePermission]] = field(default_factory=list)
    box: QMessageBox | None = None


# Shows ``question`` and calls ``answer(granted)`` later (or at once).
Asker = Callable[[Question, QWidget | None, Callable[[bool], None]], None]


def ask_with_message_box(question: Question, parent: QWidget | None,
                         answer: Callable[[bool], None]) -> None:
    box = QMessageBox(QMessageBox.Icon.Question, "Permission", question.text,
                      QMessageBox.StandardButton.NoButton, parent)
    box.setInformativeText("The answer is remembered for this plugin.")
    allow = box.addButton("Allow", QMessageBox.ButtonRole.AcceptRole)
    deny = box.addButton("Deny", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(deny)
    box.setEscapeButton(deny)
    box.setObjectName("permissionQuestion")
    question.box = box
    # Window-modal and not blocking: the page waits for its answer, the app does not.
    def done(_result: int) -> None:
        answer(box.clickedButton() is allow)
        box.deleteLater()

    box.finished.connect(done)
    box.open()


@dataclass(frozen=True)
class Decision:
    """What happened to one request, for the log and for tests."""

    origin: str
    plugin: str
    kind: str
    granted: bool
    how: str  # "refused" (not offered), "remembered" or "asked"


class PermissionGate(QObject):
    """Answers the permission requests of the pages it watches (``watch(page)``)."""

    decided = Signal(object)  # a Decision
    asked = Signal(object)    # a Question, when it is put to the user

    def __init__(self, profile: QWebEngineProfile, origins: frozenset[str],
                 store: PermissionStore, name_of: Callable[[str], str],
                 parent_window: QWidget | None = None, asker: Asker = ask_with_message_box,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.origins = origins
        self.store = store
        self._name_of = name_of
        self._parent_window = parent_window
        self._asker = asker
        self._pending: dict[tuple[str, str], Question] = {}
        # id(page) -> (the plugin it showed, the answers Chromium now holds for it)
        self._held: dict[int, tuple[str, list[QWebEnginePermission]]] = {}
        self.decisions: list[Decision] = []
        # Chromium would otherwise remember a grant for the origin, which every plugin
        # shares: one plugin's yes would be every plugin's.
        profile.setPersistentPermissionsPolicy(
            QWebEngineProfile.PersistentPermissionsPolicy.AskEveryTime)

    def watch(self, page: QWebEnginePage) -> None:
        page.permissionRequested.connect(lambda p, pg=page: self.request(pg, p))
        page.urlChanged.connect(lambda url, pg=page: self._moved(pg, url))
        key = id(page)
        page.destroyed.connect(lambda *_: self._held.pop(key, None))

    def _moved(self, page: QWebEnginePage, url: QUrl) -> None:
        """Chromium keeps an answer for the origin as long as the page lives, and every
        plugin shares the origin: a page that moves to another plugin's pages loses what
        the one before was answered (it asks again, and gets that plugin's answer)."""
        held = self._held.get(id(page))
        if held and held[0] != plugin_of_url(url):
            self._release(id(page))

    def _release(self, key: int) -> None:
        for permission in self._held.pop(key, ("", []))[1]:
            permission.reset()

    def forget(self, plugin: str) -> None:
        """The plugin's pages ask again, open ones included."""
        self.store.forget(plugin)
        for key in [k for k, (p, _) in self._held.items() if p == plugin]:
            self._release(key)
        log.info("permissions of %s forgotten: its pages will ask again", plugin)

    @property
    def open_questions(self) -> list[Question]:
        return list(self._pending.values())

    def request(self, page: QWebEnginePage, permission: QWebEnginePermission) -> None:
        # Our own copy: the one a slot gets may be a temporary of the signal, and an
        # answer can come long after the slot returned.
        permission = QWebEnginePermission(permission)
        origin = origin_of(permission.origin())
        offered = OFFERED.get(permission.permissionType())
        plugin = plugin_of_url(page.url())
        if origin not in self.origins or offered is None:
            permission.deny()
            kind = offered[0] if offered else str(permission.permissionType().name)
            self._record(Decision(origin, plugin, kind, False, "refused"))
            log.info("refused %s to %s (only our own pages may ask for the clipboard or "
                     "the microphone)", kind, origin)
            return
        kind, wants = offered
        remembered = self.store.get(plugin, kind)
        if remembered is not None:
            self._settle(page, plugin, permission, remembered)
            self._record(Decision(origin, plugin, kind, remembered, "remembered"))
            return
        question = self._pending.get((plugin, kind))
        if question is not None:  # already being asked (another tab of the same plugin)
            question.waiting.append((page, permission))
            return
        who = "PlexiChat Desktop's own page" if plugin == APP_PAGES else \
            f"The plugin “{self._name_of(plugin)}”"
        question = Question(plugin, kind, f"{who} wants to {wants}.", [(page, permission)])
        self._pending[(plugin, kind)] = question
        view = QWebEngineView.forPage(page)
        parent = view.window() if view is not None else self._parent_window
        self.asked.emit(question)
        self._asker(question, parent, lambda granted: self._answer(question, granted))

    def _answer(self, question: Question, granted: bool) -> None:
        self._pending.pop((question.plugin, question.kind), None)
        self.store.set(question.plugin, question.kind, granted)
        for page, permission in question.waiting:
            if shiboken6.isValid(page):  # else its tab was closed while the user thought
                self._settle(page, question.plugin, permission, granted)
            self._record(Decision(origin_of(permission.origin()), question.plugin,
                                  question.kind, granted, "asked"))
        log.info("%s %s to %s", "granted" if granted else "denied", question.kind,
                 question.plugin)

    def _settle(self, page: QWebEnginePage, plugin: str, permission: QWebEnginePermission,
                granted: bool) -> None:
        permission.grant() if granted else permission.deny()
        held = self._held.get(id(page))
        if held is None or held[0] != plugin:
            held = self._held[id(page)] = (plugin, [])
        held[1].append(permission)

    def _record(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self.decided.emit(decision)
