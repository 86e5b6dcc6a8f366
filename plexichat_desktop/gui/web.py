"""Web views done the Anki way: one profile of our own, one page per view, the token
added by an interceptor (never visible to page JavaScript or in URLs), and navigation
outside our origin sent to the system browser."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWebEngineCore import (
    QWebEnginePage,
    QWebEngineProfile,
    QWebEngineScript,
    QWebEngineUrlRequestInfo,
    QWebEngineUrlRequestInterceptor,
)
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QWidget

from plexichat_desktop.server.security import uses_own_auth

log = logging.getLogger(__name__)
js_log = logging.getLogger("plexichat_desktop.gui.js")


class TokenInterceptor(QWebEngineUrlRequestInterceptor):
    """Adds ``Authorization: Bearer`` to requests for our server, and only to those:
    scheme, host and port must all match. Not under ``/api/v1``: that API takes the
    page's own Bearer token (from its login), which the app token must not replace."""

    def __init__(self, port: int, token: str, parent: QObject | None = None):
        super().__init__(parent)
        self.port = port
        self._header = f"Bearer {token}".encode()

    def is_ours(self, url: QUrl) -> bool:
        return (url.scheme() == "http" and url.host() in ("127.0.0.1", "localhost")
                and url.port() == self.port)

    def interceptRequest(self, info: QWebEngineUrlRequestInfo) -> None:
        url = info.requestUrl()
        if self.is_ours(url) and not uses_own_auth(url.path()):
            info.setHttpHeader(b"Authorization", self._header)


def create_profile(parent: QObject, interceptor: TokenInterceptor, storage: Path,
                   cache: Path) -> QWebEngineProfile:
    """The one profile for our pages. Parented to the application so that it outlives
    every page (deleting it first crashes Chromium at exit)."""
    profile = QWebEngineProfile("plexichat-desktop", parent)
    profile.setPersistentStoragePath(str(storage))
    profile.setCachePath(str(cache))
    profile.setUrlRequestInterceptor(interceptor)
    return profile


THEME_SCRIPT = "plexichat-theme"
PAGE_BACKGROUNDS = {"light": "#f6f7f9", "dark": "#15181e"}  # app.css's --bg


def theme_source(scheme: str) -> str:
    # Our pages' CSS reads data-theme before prefers-color-scheme, so the pages follow the
    # app's theme even where Chromium cannot know it (an override, offscreen, no desktop).
    # At document creation <html> does not exist yet: set it the moment it is inserted,
    # which is before the first paint.
    return ("(() => { const set = () => document.documentElement && "
            f"(document.documentElement.dataset.theme = {scheme!r}); "
            "if (!set()) new MutationObserver((_, watch) => { if (set()) watch.disconnect(); })"
            ".observe(document, {childList: true}); })();")


def set_profile_theme(profile: QWebEngineProfile, scheme: str) -> None:
    """Every page loaded from now on starts in ``scheme``."""
    scripts = profile.scripts()
    for old in scripts.find(THEME_SCRIPT):
        scripts.remove(old)
    script = QWebEngineScript()
    script.setName(THEME_SCRIPT)
    script.setInjectionPoint(QWebEngineScript.InjectionPoint.DocumentCreation)
    script.setWorldId(QWebEngineScript.ScriptWorldId.MainWorld)
    script.setRunsOnSubFrames(True)
    script.setSourceCode(theme_source(scheme))
    scripts.insert(script)


def set_page_theme(page: QWebEnginePage, scheme: str) -> None:
    """A page already open switches now (and shows no white flash while loading)."""
    page.setBackgroundColor(QColor(PAGE_BACKGROUNDS.get(scheme, PAGE_BACKGROUNDS["light"])))
    page.runJavaScript(theme_source(scheme), QWebEngineScript.ScriptWorldId.MainWorld)


class LinkHandler(Protocol):
    """Where links that leave a page go: the window that shows it."""

    def open_tab(self, path: str, background: bool) -> object: ...

    def open_external(self, url: QUrl, origin: QObject | None = None) -> bool:
        """Open a foreign link; ``origin``, the view it came from, says which window tells
        where it went."""
        ...


EXTERNAL_SCHEMES = ("http", "https", "mailto")


def path_of(url: QUrl) -> str:
    return url.path() + (f"?{url.query()}" if url.query() else "")


def route_link(url: QUrl, interceptor: TokenInterceptor, links: LinkHandler | None,
               background: bool, origin: QObject | None = None) -> None:
    """A link meant for a new tab: ours opens as a tab, a foreign web or mail link in the
    system browser, anything else (file:, javascript:, custom schemes) nowhere."""
    if links is None:
        return
    if interceptor.is_ours(url):
        links.open_tab(path_of(url), background)
    elif url.scheme() in EXTERNAL_SCHEMES:
        links.open_external(url, origin)
    else:
        log.info("link to %s not opened: not a web address", url.toString())


class PluginPage(QWebEnginePage):
    """A page that stays on our origin; everything else opens in the system browser."""

    def __init__(self, profile: QWebEngineProfile, interceptor: TokenInterceptor,
                 links: LinkHandler | None = None, parent: QObject | None = None):
        super().__init__(profile, parent)
        self._interceptor = interceptor
        self._links = links
        self.external_urls: list[QUrl] = []

    # Qt calls these with a QUrl; PySide6's stubs widen every QUrl parameter to QUrl | str.
    def acceptNavigationRequest(self, url: QUrl,  # type: ignore[override]
                                nav_type: QWebEnginePage.NavigationType,
                                is_main_frame: bool) -> bool:
        if self._interceptor.is_ours(url) or url.scheme() in ("data", "about", "blob"):
            return True
        if is_main_frame and url.scheme() in EXTERNAL_SCHEMES:
            self.external_urls.append(url)
            if self._links is not None:
                self._links.open_external(url, self.parent())  # the view showing it
            else:
                QDesktopServices.openUrl(url)
        log.info("navigation to %s kept out of the app view", url.toString())
        return False

    def createWindow(self, window_type: QWebEnginePage.WebWindowType) -> QWebEnginePage:
        # target=_blank, middle-click, Ctrl+click and window.open() ask for a new page
        # before its URL is known: a catcher page takes the first navigation and routes it.
        background = window_type == QWebEnginePage.WebWindowType.WebBrowserBackgroundTab
        return _NewWindowCatcher(self.profile(), self._interceptor, self._links, background,
                                 self)

    def javaScriptConsoleMessage(self, level: QWebEnginePage.JavaScriptConsoleMessageLevel,
                                 message: str, line: int, source: str) -> None:
        if level == QWebEnginePage.JavaScriptConsoleMessageLevel.ErrorMessageLevel:
            js_log.warning("%s:%d: %s", source, line, message)
        else:
            js_log.debug("%s:%d: %s", source, line, message)


class _NewWindowCatcher(QWebEnginePage):
    """Never shown: refuses its first navigation and hands the URL to a tab or the
    system browser, then goes away."""

    def __init__(self, profile: QWebEngineProfile, interceptor: TokenInterceptor,
                 links: LinkHandler | None, background: bool, parent: QObject):
        super().__init__(profile, parent)
        self._interceptor = interceptor
        self._links = links
        self._background = background
        self._done = False

    # Qt calls these with a QUrl; PySide6's stubs widen every QUrl parameter to QUrl | str.
    def acceptNavigationRequest(self, url: QUrl,  # type: ignore[override]
                                nav_type: QWebEnginePage.NavigationType,
                                is_main_frame: bool) -> bool:
        if not self._done and is_main_frame and url.scheme() != "about":
            self._done = True
            opener = self.parent()  # the page whose link this was, in its view
            route_link(url, self._interceptor, self._links, self._background,
                       opener.parent() if opener is not None else None)
            self.deleteLater()
        return False


class PluginView(QWebEngineView):
    """A view that owns its page (pages die with their view, before the profile)."""

    def __init__(self, page_factory: Callable[[QObject], PluginPage],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setPage(page_factory(self))
