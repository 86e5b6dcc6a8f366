"""GUI tests: pytest-qt, offscreen, QtWebEngine included.

One qasync loop for the whole session, never stopped (re-entering a qasync loop after a
web view existed segfaults: see ../shared/reference/qt-webengine-notes.md). Tests stay
synchronous and drive coroutines with ``arun``. Between GUI tests the loop is unset as the
running loop, so the asyncio tests of the other modules get their own loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# What the app would use offscreen, plus a fake microphone and camera: without a capture
# device Chromium answers getUserMedia with NotFoundError before any permission request.
FAKE_MEDIA = "--use-fake-device-for-media-stream"
os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", f"--log-level=3 --disable-gpu {FAKE_MEDIA}")

from plexichat_desktop.gui.environment import (  # noqa: E402
    prepare_qt_environment,
    spare_feature_scan,
)

prepare_qt_environment()

import pytest  # noqa: E402

try:
    import PySide6.QtWebEngineWidgets  # noqa: F401  (before the QApplication exists)
except ImportError as exc:  # pragma: no cover - the project depends on it
    raise RuntimeError(f"GUI tests need QtWebEngine: {exc}") from exc
spare_feature_scan()  # as the app does: the tests' later imports are not slowed
import qasync  # noqa: E402


@pytest.fixture(scope="session")
def qloop(qapp: Any) -> Iterator[qasync.QEventLoop]:
    qapp.setQuitOnLastWindowClosed(False)
    from plexichat_desktop.gui.theme import apply_theme

    apply_theme(qapp)  # the look the app gives itself
    loop = qasync.QEventLoop(qapp, already_running=True)
    # Plain threads for asyncio.to_thread: qasync's QThread pool would be destroyed with
    # its threads still running at interpreter exit, since this loop is never closed.
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="gui-tests")
    loop.set_default_executor(executor)
    yield loop
    executor.shutdown(wait=True)
    asyncio.events._set_running_loop(None)


@pytest.fixture
def arun(qloop: qasync.QEventLoop, qtbot: Any) -> Iterator[Callable[..., Any]]:
    asyncio.set_event_loop(qloop)
    asyncio.events._set_running_loop(qloop)

    def run(coro: Coroutine[Any, Any, Any], timeout: int = 30_000) -> Any:
        task = qloop.create_task(coro)
        qtbot.waitUntil(task.done, timeout=timeout)
        return task.result()

    yield run
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)


@pytest.fixture
def js(qtbot: Any) -> Callable[[Any, str], Any]:
    """Evaluate a JS expression in a view's page (see page_console.evaluate)."""
    from tests.gui.page_console import evaluate

    # Generous: on a loaded machine a page can take seconds to answer, which is no failure.
    def run(view: Any, expression: str, timeout: int = 20_000) -> Any:
        return evaluate(qtbot, view, expression, timeout)

    return run


@pytest.fixture
def opened_urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The system browser is outside this machine's tests: record what would open."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl",
                        staticmethod(lambda url: opened.append(QUrl(url).toString()) or True))
    return opened


@pytest.fixture
def runtime(home: Any, arun: Any, tmp_path: Any) -> Any:
    """The real core with the window tests' bundled plugins and the fixture plugins,
    server on a free port."""
    from plexichat_desktop.core.settings import Settings
    from plexichat_desktop.runtime import Runtime, RuntimeOptions
    from tests.conftest import FIXTURE_PLUGINS
    from tests.gui.shell_helpers import WINDOW_PLUGINS, bundled_only

    settings = Settings()
    settings.server.port = 0
    rt = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[
            FIXTURE_PLUGINS, bundled_only(tmp_path / "window-plugins", *WINDOW_PLUGINS)]))
    arun(rt.start())
    yield rt
    arun(rt.stop())



@pytest.fixture
def shell(qapp: Any, runtime: Any, home: Any, arun: Any) -> Any:
    from tests.gui.shell_helpers import make_shell

    made = make_shell(qapp, runtime, home)
    yield made
    arun(made.shutdown())


@pytest.fixture
def kit_runtime(home: Any, arun: Any) -> Any:
    """The real core with the desktop-window fixture plugins only (tests/fixtures/plugins/
    _desktop: exports, schedules, a degraded plugin), server on a free port."""
    from plexichat_desktop.core.settings import Settings
    from plexichat_desktop.runtime import Runtime, RuntimeOptions
    from tests.conftest import FIXTURE_PLUGINS

    settings = Settings()
    settings.server.port = 0
    rt = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False,
        extra_plugin_dirs=[FIXTURE_PLUGINS / "_desktop"]))
    arun(rt.start())
    yield rt
    arun(rt.stop())


@pytest.fixture
def download_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Where the window saves downloads in these tests (never the user's Downloads)."""
    from plexichat_desktop.gui.downloads import FOLDER_ENV

    folder = tmp_path / "downloads"
    monkeypatch.setenv(FOLDER_ENV, str(folder))
    return folder


@pytest.fixture
def kit_shell(qapp: Any, kit_runtime: Any, home: Any, arun: Any, download_dir: Any) -> Any:
    from tests.gui.shell_helpers import make_shell

    made = make_shell(qapp, kit_runtime, home)
    yield made
    arun(made.shutdown())


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without Qt's and Chromium's exit-time teardown. Each test already shut its
    views and profiles down in order; what is left at interpreter exit is QtWebEngine's
    global state, whose teardown was seen to hang the finished test process now and then
    (main thread in a futex after the summary). Everything pytest reports is written by
    now; the exit status is kept."""
    if "PySide6.QtWidgets" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        session = getattr(config, "_plexichat_session", None)
        os._exit(int(getattr(session, "exitstatus", 0)))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._plexichat_session = session  # type: ignore[attr-defined]
