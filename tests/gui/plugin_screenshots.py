"""What the plugins' ``docs/screenshot.py`` scripts share: the app on a temporary home
with the plugins to show, a user signed in on the API integration layer, and a page
opened in QtWebEngine offscreen (as the desktop window opens it, in the theme asked for)
whose shots are saved only once the page is idle and showed no problem.

A script is a pytest test run with the GUI fixtures, from the repository root::

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/<id>/docs/screenshot.py -q -n 0 -p no:cacheprovider

and looks like::

    def test_screenshot(qapp, qtbot, home, arun, tmp_path):
        with docs_app(home, arun, tmp_path, plugins=("my_plugin",)) as rt:
            sign_in(rt, arun)
            with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "MP_SCREENSHOT_THEME"
                            ) as shots:
                shots.open("/plugins/my_plugin/", size=(1400, 900))
                qtbot.waitUntil(lambda: shots.count("#rows tr") == 3)
                shots.save("my-plugin")        # docs/my-plugin.png, -dark.png when dark

``<THEME_ENV>=dark`` takes the dark variants; ``PLEXICHAT_SCREENSHOT_DIR`` writes the
PNGs there instead of the plugin's ``docs/`` (to look at them without touching the
committed ones).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from plexichat_desktop.core.settings import ApiSettings, Settings
from plexichat_desktop.gui.web import PluginView
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.page_console import PageBrowser, page_browser

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
API_LAYER = PLUGINS / "api_integration_layer"
if str(API_LAYER) not in sys.path:
    sys.path.append(str(API_LAYER))  # its testing helpers: FAST_API, PASSWORD


@contextmanager
def docs_app(home: Any, arun: Callable[..., Any], tmp_path: Path, *,
             plugins: tuple[str, ...] | None = None,
             api: Mapping[str, Any] | bool = True,
             plugin_settings: Mapping[str, Any] | None = None) -> Iterator[Runtime]:
    """The app on ``home``, started and stopped around the block.

    ``plugins``: only these bundled plugin folders (the API layer is added), else every
    bundled plugin. ``api``: the embedded v1 server with the layer's fast test settings
    (True), those overridden by a mapping, or as configured (False). ``plugin_settings``:
    the ``[plugin.<id>]`` tables.
    """
    from api_integration_layer.testing import FAST_API

    settings = Settings()
    settings.server.port = 0
    if api is not False:
        settings.api = ApiSettings(**{**FAST_API, **(api if isinstance(api, Mapping) else {})})
    if plugin_settings:
        settings.plugin = dict(plugin_settings)
    if plugins is None:
        options = RuntimeOptions(bundled=True, include_installed=False)
    else:
        holder = tmp_path / "plugins"
        holder.mkdir()
        for name in dict.fromkeys(("api_integration_layer", *plugins)):
            (holder / name).symlink_to(PLUGINS / name, target_is_directory=True)
        options = RuntimeOptions(bundled=False, include_installed=False,
                                 extra_plugin_dirs=[holder])
    runtime = Runtime(home, settings, options)
    arun(runtime.start())
    try:
        yield runtime
    finally:
        arun(runtime.stop())


def sign_in(runtime: Runtime, arun: Callable[..., Any], username: str = "ann",
            **profile: Any) -> Any:
    """Register ``username`` on the embedded server and sign the API layer in as them;
    ``profile`` goes to the registration (``display_name=...``). The layer's plugin."""
    from api_integration_layer.testing import PASSWORD

    layer = runtime.plugins.by_id["api_integration_layer"].instance
    arun(layer.client.auth.register(username, f"{username}@example.org", PASSWORD,
                                    **profile))
    arun(layer.client.auth.login(username, PASSWORD))
    return layer


class PageShots:
    """One page (or a few) of a running app, and its shots. The helpers act on the view
    opened last unless given another."""

    def __init__(self, browser: PageBrowser, qtbot: Any, folder: Path, suffix: str):
        self.browser = browser
        self.qtbot = qtbot
        self.folder = folder
        self.suffix = suffix
        self.view: PluginView | None = None

    def open(self, path: str, size: tuple[int, int] = (1280, 860)) -> PluginView:
        """Load ``path`` of the app's server and wait until the page is idle."""
        self.view = self.browser.open(path, size=size)
        self.browser.wait_idle(self.view)
        return self.view

    def _view(self, view: PluginView | None) -> PluginView:
        chosen = view or self.view
        assert chosen is not None, "open a page first"
        return chosen

    def idle(self, view: PluginView | None = None) -> None:
        """Wait until the page has no request or animation under way."""
        self.browser.wait_idle(self._view(view))

    def js(self, expression: str, view: PluginView | None = None,
           timeout: int = 10_000) -> Any:
        """The JSON value of ``expression`` in the page."""
        return self.browser.js(self._view(view), expression, timeout)

    def count(self, selector: str, view: PluginView | None = None) -> int:
        return int(self.js(f"document.querySelectorAll({selector!r}).length", view))

    def text(self, element_id: str, view: PluginView | None = None) -> str:
        return str(self.js(f"document.getElementById({element_id!r}).textContent", view))

    def click(self, element_id: str, view: PluginView | None = None) -> None:
        self.js(f"document.getElementById({element_id!r}).click() || 1", view)

    def set_value(self, element_id: str, value: str, view: PluginView | None = None) -> None:
        self.js(f"(document.getElementById({element_id!r}).value = {value!r}) && 1", view)

    def check(self, view: PluginView | None = None) -> None:
        """Fail on anything the page showed in DevTools (console errors, CSP, failed
        loads, uncaught errors)."""
        report = self.browser.report(self._view(view))
        assert not report.problems, report.problems

    def save(self, name: str, view: PluginView | None = None, settle: int = 300,
             folder: Path | None = None) -> Path:
        """``<folder>/<name>[-<theme>].png`` once the page is idle, ``settle`` ms more
        passed (transitions) and it showed no problem."""
        chosen = self._view(view)
        self.idle(chosen)
        self.qtbot.wait(settle)
        self.check(chosen)
        path = (folder or self.folder) / f"{name}{self.suffix}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert chosen.grab().save(str(path)), f"could not write {path}"
        return path


def shots_folder(docs: Path) -> Path:
    """Where shots meant for ``docs`` go: ``$PLEXICHAT_SCREENSHOT_DIR`` when set."""
    return Path(os.environ.get("PLEXICHAT_SCREENSHOT_DIR") or docs)


@contextmanager
def page_shots(qapp: Any, qtbot: Any, runtime: Runtime, tmp_path: Path,
               arun: Callable[..., Any], docs: Path, theme_env: str | None = None,
               theme: str | None = None) -> Iterator[PageShots]:
    """A :class:`PageShots` on ``runtime`` saving into ``docs`` (or
    ``$PLEXICHAT_SCREENSHOT_DIR``), in the theme ``$<theme_env>`` names (light by
    default; its shots other than light are named ``<name>-<theme>.png``) or, for a shot
    made in one theme only, ``theme`` (the name as given). Leave the block before the
    app stops: the views close first."""
    chosen = theme or (os.environ.get(theme_env, "light") if theme_env else "light")
    suffix = "" if theme or chosen == "light" else f"-{chosen}"
    with page_browser(qapp, qtbot, runtime, tmp_path, arun, theme=chosen) as browser:
        yield PageShots(browser, qtbot, shots_folder(docs), suffix)
