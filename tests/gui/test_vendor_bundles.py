"""The vendored JS bundles (resources/web/vendor/, built from web-src/) work in a page.

Served by the real server at /_app/vendor/, loaded by a plugin page in QtWebEngine
offscreen under the server's CSP (no eval): a Vega-Lite chart becomes SVG with its marks,
CodeMirror editors take typed text, two Yjs-bound editors stay in sync, and nothing is
logged as an error or refused by the CSP. The committed bundles match package-lock.json,
and rebuilding them gives the same bytes (when web-src/node_modules exists; CI has no npm).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.conftest import FIXTURES, REPO
from tests.gui.page_console import PageBrowser, page_browser

VENDOR = REPO / "resources" / "web" / "vendor"
WEB_SRC = REPO / "web-src"
BUNDLES = ("charts", "editor")
SCREENSHOTS = os.environ.get("PLEXICHAT_SCREENSHOT_DIR")
DEMO = "/plugins/vendor_demo/index.html"


@pytest.fixture
def demo_runtime(home: Any, arun: Any) -> Iterator[Runtime]:
    """The real core with only the demo plugin (a page, no routes)."""
    settings = Settings()
    settings.server.port = 0
    rt = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False,
        extra_plugin_dirs=[FIXTURES / "vendor_pages"]))
    arun(rt.start())
    yield rt
    arun(rt.stop())


def banner(name: str) -> str:
    with (VENDOR / f"{name}.js").open(encoding="utf-8") as f:
        first = f.readline()
    assert first.startswith("/*! PlexiChat Desktop vendor bundle"), first[:200]
    return first


def locked_versions() -> dict[str, str]:
    lock = json.loads((WEB_SRC / "package-lock.json").read_text(encoding="utf-8"))
    return {path.rsplit("node_modules/", 1)[1]: meta["version"]
            for path, meta in lock["packages"].items() if path.startswith("node_modules/")}


def test_banners_and_licences_name_the_locked_versions() -> None:
    """Without npm: every package a bundle names (banner and licence list) is the version
    package-lock.json pins, and every one has its licence text next to the bundle."""
    locked = locked_versions()
    for name in BUNDLES:
        named = re.findall(r"(@?[a-z0-9][\w./-]*) (\d+\.\d+\.\d+)", banner(name))
        assert named, banner(name)
        for package, version in named:
            if package == "esbuild":
                continue
            assert locked.get(package) == version, (name, package, version)
        assert f"esbuild {locked['esbuild']}" in banner(name)

        licences = (VENDOR / f"{name}.LICENSES.txt").read_text(encoding="utf-8")
        listed = re.findall(r"^  (@?[^\s@]+(?:/[^\s@]+)?)@(\S+)  ", licences, re.MULTILINE)
        assert len(listed) > 3, licences[:500]
        for package, version in listed:
            assert locked.get(package) == version or \
                version in {v for p, v in locked.items() if p.endswith("/" + package)}, \
                (name, package, version)
            assert f"\n{package}@{version}  " in licences, f"no licence text for {package}"
        for package, _ in named:
            if package != "esbuild":
                assert any(p == package for p, _ in listed), (name, package)


def node_modules_match_the_lock() -> str | None:
    """Why a rebuild here would not be the lock file's build, or None if it would be."""
    if shutil.which("node") is None:
        return "node is not installed"
    installed = WEB_SRC / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return "web-src/node_modules is missing (npm --prefix web-src ci)"
    have = json.loads(installed.read_text(encoding="utf-8"))["packages"]
    want = json.loads((WEB_SRC / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for path, meta in want.items():
        if path and not meta.get("optional") and have.get(path, {}).get("version") != \
                meta["version"]:
            return f"web-src/node_modules differs from the lock at {path} (npm ci)"
    return None


def test_rebuilding_gives_the_committed_bytes() -> None:
    """The build is deterministic and the committed bundles are its output: build.mjs
    --check builds into a temporary folder and compares byte for byte."""
    reason = node_modules_match_the_lock()
    if reason:
        pytest.skip(reason)
    done = subprocess.run(["node", "build.mjs", "--check"], cwd=WEB_SRC, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def test_bundles_are_served_under_app_vendor_with_the_apps_credential(
        demo_runtime: Runtime, arun: Any) -> None:
    """Real HTTP: /_app/vendor/ is part of /_app/ (resources/web/), so it needs the token
    or a browser session like every app asset, and is JavaScript to a module script."""

    async def fetch() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {demo_runtime.token}"}
        async with httpx.AsyncClient(base_url=demo_runtime.url, timeout=30) as client:
            answers = [await client.get(f"/_app/vendor/{name}.js", headers=headers)
                       for name in BUNDLES]
            answers.append(await client.get("/_app/vendor/charts.LICENSES.txt",
                                            headers=headers))
            answers.append(await client.get("/_app/vendor/charts.js"))
            return answers

    charts, editor, licences, anonymous = arun(fetch())
    for answer, name in ((charts, "charts"), (editor, "editor")):
        assert answer.status_code == 200
        assert answer.headers["content-type"].split(";")[0] in (
            "text/javascript", "application/javascript")
        assert answer.content == (VENDOR / f"{name}.js").read_bytes()
        assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert licences.status_code == 200 and "vega-interpreter@" in licences.text
    assert anonymous.status_code == 401


BAR_FILLS = ("[...document.querySelectorAll('#bars .mark-rect.role-mark path')]"
             ".map((p) => p.getAttribute('fill'))")


def count(selector: str) -> str:
    return f"document.querySelectorAll({selector!r}).length"


INSIDE_SVG = """(() => {
  const svg = document.querySelector('CHART svg').getBoundingClientRect();
  return [...document.querySelectorAll('CHART svg text')].every((t) => {
    const r = t.getBoundingClientRect();
    return r.top >= svg.top - 1 && r.bottom <= svg.bottom + 1 && r.left >= svg.left - 1 &&
      r.right <= svg.right + 1;
  }) && document.querySelector('CHART svg').textContent.includes('Wed');
})()"""
HOVER_THU = """(() => {
  const bar = document.querySelectorAll('#bars .mark-rect.role-mark path')[3];
  const box = bar.getBoundingClientRect();
  const at = {bubbles: true, clientX: box.x + box.width / 2, clientY: box.y + box.height / 2,
              pointerType: 'mouse'};
  bar.dispatchEvent(new PointerEvent('pointerover', at));
  bar.dispatchEvent(new PointerEvent('pointermove', at));
  return true;
})()"""


def keys_target(view: Any) -> QWidget:
    """Chromium's widget inside the view, which takes key events once the page exists."""
    target = view.focusProxy()
    assert isinstance(target, QWidget)
    return target


def type_into(browser: PageBrowser, view: Any, editor: str, text: str) -> None:
    """Real key events, the way a person types: focus the editor, then keys to the view."""
    view.activateWindow()
    view.setFocus()
    assert browser.js(view, f"(window.__demo.{editor}.focus(), "
                            f"window.__demo.{editor}.dispatch({{selection: {{anchor: "
                            f"window.__demo.{editor}.state.doc.length}}}}), "
                            f"window.__demo.{editor}.hasFocus)")
    QTest.keyClicks(keys_target(view), text)


def doc_of(browser: PageBrowser, view: Any, editor: str) -> str:
    return str(browser.js(view, f"window.__demo.{editor}.state.doc.toString()"))


def test_demo_page_draws_charts_and_editors_without_errors(
        qapp: Any, qtbot: Any, demo_runtime: Runtime, arun: Any, tmp_path: Path) -> None:
    with page_browser(qapp, qtbot, demo_runtime, tmp_path, arun) as browser:
        view = browser.open(DEMO, size=(1280, 900))
        qtbot.waitUntil(lambda: browser.js(view, "window.__demo && window.__demo.state")
                        in ("ready", "failed"), timeout=30_000)
        browser.wait_idle(view)
        assert browser.js(view, "window.__demo.state") == "ready", \
            browser.js(view, "window.__demo.error")

        # Charts: SVG (not canvas) with the marks of the data, expressions evaluated.
        assert browser.js(view, count("#bars svg")) == 1
        assert browser.js(view, BAR_FILLS) == ["#4c78a8"] * 5
        assert browser.js(view, count("#lines .mark-line.role-mark path")) == 2
        assert browser.js(view, count("#lines .mark-symbol.role-mark path")) == 12
        # calculate divided by 100 and the axis formats as percent: 80% is a tick label.
        assert "80%" in browser.js(view, "document.querySelector('#lines svg').textContent")
        # A selection (signals and their expressions, all interpreted) recolours a bar.
        assert browser.js(view, HOVER_THU)
        qtbot.waitUntil(lambda: browser.js(view, BAR_FILLS)[3] == "#e4572e", timeout=10_000)
        # README's example: named data, rows inserted through the View afterwards.
        live_bars = count("#live .mark-rect.role-mark path")
        assert browser.js(view, live_bars) == 2
        assert browser.js(view, "(window.__demo.liveView.insert('rows', [{day: 'Wed', n: 5}])"
                                ".runAsync(), true)")
        qtbot.waitUntil(lambda: browser.js(view, live_bars) == 3, timeout=10_000)
        # Laid out again for the new rows: the x axis (labels, title) is inside the SVG.
        assert browser.js(view, INSIDE_SVG.replace("CHART", "#live")), "axis cut off"

        # Editors: CodeMirror's DOM, Python highlighting, typed text reaches the document.
        assert browser.js(view, count("#editor .cm-editor .cm-content")) == 1
        assert browser.js(view, count("#editor .cm-content span")) > 3  # highlighted tokens
        type_into(browser, view, "editor", "print(greet('world'))")
        qtbot.waitUntil(lambda: doc_of(browser, view, "editor").endswith(
            "print(greet('world'))"), timeout=10_000)
        assert "print(greet('world'))" in browser.js(
            view, "document.querySelector('#editor .cm-content').textContent")
        QTest.keyClick(keys_target(view), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: "print(" not in doc_of(browser, view, "editor"),
                        timeout=10_000)

        # Yjs: what is typed into peer A appears in peer B, through Y.Doc updates.
        assert doc_of(browser, view, "peerB") == "# Shared notes\n"
        type_into(browser, view, "peerA", "typed by A")
        qtbot.waitUntil(lambda: doc_of(browser, view, "peerB").endswith("typed by A"),
                        timeout=10_000)
        assert "typed by A" in browser.js(
            view, "document.querySelector('#peer-b .cm-content').textContent")

        browser.wait_idle(view)
        report = browser.report(view)
        assert not report.problems, "\n".join(report.problems)
        if SCREENSHOTS:
            view.grab().save(os.path.join(SCREENSHOTS, "vendor-demo-light.png"))


def test_demo_page_in_the_dark_theme(qapp: Any, qtbot: Any, demo_runtime: Runtime,
                                     arun: Any, tmp_path: Path) -> None:
    """The helpers read the app's theme (data-theme): dark axes and a dark editor."""
    with page_browser(qapp, qtbot, demo_runtime, tmp_path, arun, theme="dark") as browser:
        view = browser.open(DEMO, size=(1280, 900))
        qtbot.waitUntil(lambda: browser.js(view, "window.__demo && window.__demo.state")
                        in ("ready", "failed"), timeout=30_000)
        browser.wait_idle(view)
        assert browser.js(view, "window.__demo.state") == "ready"
        assert browser.js(view, "document.documentElement.dataset.theme") == "dark"
        label_fill = browser.js(view, "document.querySelector('#bars .role-axis-label text')"
                                      ".getAttribute('fill')")
        assert label_fill == "#c4c9d1"
        editor_bg = browser.js(view, "getComputedStyle(document.querySelector("
                                     "'#editor .cm-editor')).backgroundColor")
        assert editor_bg == "rgb(40, 44, 52)"  # one-dark's background, #282c34
        report = browser.report(view)
        assert not report.problems, "\n".join(report.problems)
        if SCREENSHOTS:
            view.grab().save(os.path.join(SCREENSHOTS, "vendor-demo-dark.png"))


PLAIN_VEGA = """(() => {
  window.__plain = null;
  import(new URL('/_app/vendor/charts.js', location.href).href).then(async ({vega, vegaLite}) => {
    const spec = vegaLite.compile({data: {values: [{a: 1}]},
      transform: [{calculate: 'datum.a * 2', as: 'b'}], mark: 'point',
      encoding: {x: {field: 'b', type: 'quantitative'}}}).spec;
    try {
      await new vega.View(vega.parse(spec), {renderer: 'none'}).runAsync();
      window.__plain = 'drawn';
    } catch (err) {
      window.__plain = err.name;
    }
  }).catch((err) => { window.__plain = `unexpected ${err}`; });
  return true;
})()"""


def test_without_the_interpreter_vega_is_refused_by_the_csp(
        qapp: Any, qtbot: Any, demo_runtime: Runtime, arun: Any, tmp_path: Path) -> None:
    """Why renderChart exists: the same bundle's Vega, used the plain way, compiles
    expressions with Function, which the pages' CSP refuses (and reports)."""
    with page_browser(qapp, qtbot, demo_runtime, tmp_path, arun) as browser:
        view = browser.open(DEMO)
        qtbot.waitUntil(lambda: browser.js(view, "window.__demo && window.__demo.state")
                        == "ready", timeout=30_000)
        assert browser.js(view, PLAIN_VEGA)
        qtbot.waitUntil(lambda: browser.js(view, "window.__plain") is not None,
                        timeout=10_000)
        assert browser.js(view, "window.__plain") == "EvalError"
        assert any("script-src refused eval" in v for v in browser.report(view).csp)
