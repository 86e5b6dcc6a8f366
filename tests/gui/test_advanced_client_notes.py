"""Two real browser pages (QtWebEngine) co-edit one Advanced Client note over the v1
collaboration socket and converge: each sees the other's presence, concurrent edits at
both ends merge the same way in both pages and on the server, and undo in one page takes
back only that page's own change (per-user undo), with no console error. And the chat in
the same page: a streamed answer whose model output tries to run script stays inert in
the DOM.

Both pages act as the same PlexiChat user (the API layer's one session), as two windows of
one person do; every page is a Yjs client of its own (its own client id, cursor and undo
history), which is what convergence and per-user undo are about.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from plexichat_desktop.core.settings import ApiSettings, Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.gui.conftest import FAKE_MEDIA
from tests.gui.page_console import page_browser
from tests.gui.shell_helpers import bundled_only, make_shell, wait_loaded

SCREENSHOTS = os.environ.get("PLEXICHAT_SCREENSHOT_DIR")

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

EDITOR = "window.advancedClient.connection.view"


def _start(home: Any, arun: Any, tmp_path: Path, **api: Any) -> Runtime:
    """The app with the API layer and the Advanced Client only, ann signed in."""
    if str(PLUGINS / "api_integration_layer") not in sys.path:
        sys.path.append(str(PLUGINS / "api_integration_layer"))
    from api_integration_layer.testing import FAST_API, PASSWORD

    holder = tmp_path / "plugins"
    holder.mkdir()
    for name in ("api_integration_layer", "advanced_client"):
        (holder / name).symlink_to(PLUGINS / name, target_is_directory=True)
    settings = Settings()
    settings.server.port = 0
    settings.api = ApiSettings(**{**FAST_API, **api})
    rt = Runtime(home, settings, RuntimeOptions(bundled=False, include_installed=False,
                                                extra_plugin_dirs=[holder]))
    arun(rt.start())
    layer = rt.plugins.by_id["api_integration_layer"].instance
    arun(layer.client.auth.register("ann", "ann@example.org", PASSWORD))
    arun(layer.client.auth.login("ann", PASSWORD))
    return rt


def test_two_pages_co_edit_one_note_and_converge(
        qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    rt = _start(home, arun, tmp_path)
    try:
        api = f"{rt.url}plugins/advanced_client/api/"
        headers = {"Authorization": f"Bearer {rt.token}"}

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as c:
                answer = await c.request(method, path, json=body)
                assert answer.status_code == 200, answer.text
                return answer.json()

        note = arun(call("POST", "notes", {"title": "Shared", "content": "middle"}))
        sid = note["session_id"]
        with page_browser(qapp, qtbot, rt, tmp_path, arun) as browser:
            js = browser.js
            pages = [browser.open(f"/plugins/advanced_client/#note/{sid}") for _ in range(2)]

            def text(view: Any) -> str:
                return str(js(view, f"{EDITOR} ? {EDITOR}.state.doc.toString() : ''"))

            def peers(view: Any) -> int:
                return int(js(view, "document.querySelectorAll('#note-peers .peer').length"))

            for view in pages:
                qtbot.waitUntil(lambda v=view: js(v, "document.getElementById('note-state')"
                                                     ".textContent") == "online",
                                timeout=30_000)
                qtbot.waitUntil(lambda v=view: text(v) == "middle", timeout=30_000)
            # Presence: each page shows both cursors' owners (itself and the other).
            for view in pages:
                qtbot.waitUntil(lambda v=view: peers(v) == 2, timeout=30_000)
            first, second = pages
            # Concurrent edits at both ends, made before either has seen the other's.
            js(first, f"{EDITOR}.dispatch({{changes: {{from: 0, insert: 'alpha '}}}}) || 1")
            js(second, f"{EDITOR}.dispatch({{changes: {{from: {EDITOR}.state.doc.length, "
                       f"insert: ' omega'}}}}) || 1")
            for view in pages:
                qtbot.waitUntil(lambda v=view: text(v) == "alpha middle omega",
                                timeout=30_000)
            # Interleaved typing in the middle converges to one text in both pages.
            for i in range(5):
                js(first, f"{EDITOR}.dispatch({{changes: {{from: 6, insert: 'a{i}'}}}}) || 1")
                js(second, f"{EDITOR}.dispatch({{changes: {{from: 6, insert: 'b{i}'}}}}) || 1")
            qtbot.waitUntil(lambda: text(first) == text(second) and len(text(first)) == 38,
                            timeout=30_000)
            merged = text(first)
            assert all(f"a{i}" in merged and f"b{i}" in merged for i in range(5))
            # The server holds the same text (what a third client or an export gets).
            async def server_text() -> str:
                async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as c:
                    return (await c.get(f"notes/{sid}/export")).text

            for _ in range(300):  # polled: arun cannot run inside qtbot.waitUntil
                if arun(server_text()).strip() == f"# Shared\n\n{merged}":
                    break
                qtbot.wait(100)
            else:
                raise AssertionError(f"the server never held {merged!r}")
            # Per-user undo: Ctrl+Z in the first page takes back its own typing only.
            js(first, f"{EDITOR}.focus() || 1")
            for _ in range(10):
                js(first, f"{EDITOR}.contentDOM.dispatchEvent(new KeyboardEvent('keydown', "
                          "{key: 'z', code: 'KeyZ', keyCode: 90, ctrlKey: true, "
                          "bubbles: true, cancelable: true})) || 1")
            for view in pages:
                qtbot.waitUntil(lambda v=view: "a0" not in text(v) and "alpha" not in text(v),
                                timeout=30_000)
                assert "omega" in text(view) and all(f"b{i}" in text(view) for i in range(5))
            assert text(first) == text(second)
            for view in pages:
                browser.wait_idle(view)
                report = browser.report(view)
                assert not report.problems, report.problems
    finally:
        arun(rt.stop())


ATTACK = ('See <img src=x onerror="document.title=\'owned\'"> and '
          '<script>document.title="owned"</script> [link](javascript:alert(1)) **bold**')


def test_streamed_answer_in_the_page_renders_model_output_inert(
        qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    """A model (plexi-echo) answers with markup meant to run in the page: streamed into
    the page, the answer's DOM has no script, image or handler, the title is untouched."""
    rt = _start(home, arun, tmp_path, ai_builtin_token_delay=0.005)
    try:
        with page_browser(qapp, qtbot, rt, tmp_path, arun) as browser:
            js = browser.js
            view = browser.open("/plugins/advanced_client/")
            qtbot.waitUntil(lambda: js(view, "document.body.dataset.ready || ''") == "true",
                            timeout=30_000)
            js(view, "document.getElementById('new-chat').click() || 1")
            qtbot.waitUntil(lambda: not js(view, "document.getElementById('chat-model')"
                                                 ".disabled"), timeout=30_000)
            js(view, "(document.getElementById('chat-model').value = 'builtin/plexi-echo')"
                     " && 1")
            js(view, "document.getElementById('chat-model').dispatchEvent(new Event('change'))"
                     " || 1")
            browser.wait_idle(view)
            js(view, f"(document.getElementById('prompt').value = {ATTACK!r}) && 1")
            js(view, "document.getElementById('send').click() || 1")
            qtbot.waitUntil(lambda: int(js(view, "document.querySelectorAll("
                                                 "'#messages .msg.assistant').length")) == 1
                            and not js(view, "document.querySelector('.msg.writing') !== null")
                            and bool(js(view, "!document.getElementById('send').hidden")),
                            timeout=30_000)
            browser.wait_idle(view)
            answer = "document.querySelector('#messages .msg.assistant .body')"
            assert "document.title" in str(js(view, f"{answer}.textContent"))
            assert js(view, f"{answer}.querySelectorAll('script, img, iframe, svg').length") \
                == 0
            assert js(view, "[...document.querySelectorAll('#messages *')].some(e => "
                            "[...e.attributes].some(a => a.name.startsWith('on') || "
                            "/^\\s*javascript:/i.test(a.value)))") is False
            assert js(view, f"{answer}.querySelector('strong').textContent") == "bold"
            assert js(view, "document.title") == "Advanced Client"
            meta = str(js(view, "document.querySelector('#messages .msg.assistant .meta')"
                                ".textContent"))
            assert "first token" in meta and "tokens" in meta
            assert "cut at the length limit" not in meta
            # An answer the max_tokens cap ended says so (it looked whole).
            plugin = rt.plugins.by_id["advanced_client"].instance
            plugin.config = plugin.config.model_copy(update={"max_tokens": 16})
            long = " ".join(f"word{i}" for i in range(60))
            js(view, f"(document.getElementById('prompt').value = {long!r}) && 1")
            js(view, "document.getElementById('send').click() || 1")
            qtbot.waitUntil(lambda: int(js(view, "document.querySelectorAll("
                                                 "'#messages .msg.assistant').length")) == 2
                            and bool(js(view, "!document.getElementById('send').hidden")),
                            timeout=30_000)
            browser.wait_idle(view)
            last = "[...document.querySelectorAll('#messages .msg.assistant .meta')].at(-1)"
            assert "cut at the length limit" in str(js(view, f"{last}.textContent"))
            if SCREENSHOTS:
                view.window().grab().save(str(Path(SCREENSHOTS) / "advanced-client-cut.png"))
            report = browser.report(view)
            assert not report.problems, report.problems
    finally:
        arun(rt.stop())


def test_dictation_records_through_the_permission_gate(
        qapp: Any, qtbot: Any, home: Any, arun: Any, js: Any, tmp_path: Path) -> None:
    """The desktop window with a fake capture device: the page's 🎤 asks the app's gate,
    which puts the question for this plugin; after Allow, the recording goes through the
    AudioWorklet into a WAV that the plugin's pocketsphinx decodes (its timing is in the
    activity panel's figures), and the grant is remembered for this plugin only."""
    if FAKE_MEDIA not in os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", ""):
        pytest.skip(f"needs {FAKE_MEDIA} in QTWEBENGINE_CHROMIUM_FLAGS (no capture device)")
    settings = Settings()
    settings.server.port = 0
    rt = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[bundled_only(
            tmp_path / "plugins", "api_integration_layer", "advanced_client")]))
    arun(rt.start())
    shell = make_shell(qapp, rt, home)
    try:
        gate = shell.permissions
        assert gate is not None
        pane = shell.window.open_page("/plugins/advanced_client/index.html", "Advanced")
        wait_loaded(qtbot, js, pane, "document.body.dataset.ready === 'true'", 30_000)
        view = pane.view
        js(view, "document.getElementById('dictate').click() || 1")
        qtbot.waitUntil(lambda: bool(gate.open_questions), timeout=15_000)
        (question,) = gate.open_questions
        assert question.kind == "microphone" and question.plugin == "advanced_client"
        next(b for b in question.box.buttons() if b.text() == "Allow").click()
        qtbot.waitUntil(lambda: js(view, "document.getElementById('dictate')"
                                         ".getAttribute('aria-pressed')") == "true",
                        timeout=15_000)
        qtbot.wait(1500)  # a second and a half of the fake device's tone
        js(view, "document.getElementById('dictate').click() || 1")
        qtbot.waitUntil(lambda: any(t in str(js(view, "document.getElementById('notice')"
                                                      ".textContent"))
                                    for t in ("Dictated", "Nothing was understood")),
                        timeout=30_000)
        figures = str(js(view, "document.getElementById('client-figures').textContent"))
        assert "Recognition p50" in figures
        wait_loaded(qtbot, js, pane, "!document.getElementById('client-figures').textContent"
                                     ".includes('Recognition p50—')", 30_000)
        assert js(view, "document.getElementById('page-error').hidden") is True
        stored = json.loads((home.config_dir / "permissions.json").read_text())
        assert stored == {"advanced_client": {"microphone": "granted"}}
    finally:
        arun(shell.shutdown())
        arun(rt.stop())


def test_ask_ai_about_a_note_from_the_notes_tab(
        qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    """Notes and chat in one window: "Ask AI" on a note opens a new chat with the note
    attached, and the answer lists it as its source."""
    rt = _start(home, arun, tmp_path)
    try:
        async def make() -> str:
            async with httpx.AsyncClient(base_url=f"{rt.url}plugins/advanced_client/api/",
                                         headers={"Authorization": f"Bearer {rt.token}"},
                                         timeout=30) as c:
                answer = await c.post("notes", json={"title": "Retro", "content":
                                                     "Certify the payments earlier."})
                assert answer.status_code == 200, answer.text
                return str(answer.json()["session_id"])

        sid = arun(make())
        with page_browser(qapp, qtbot, rt, tmp_path, arun) as browser:
            js = browser.js
            view = browser.open(f"/plugins/advanced_client/#note/{sid}")
            qtbot.waitUntil(lambda: js(view, "document.getElementById('note-state')"
                                             ".textContent") == "online", timeout=30_000)
            js(view, "document.getElementById('note-ask').click() || 1")
            qtbot.waitUntil(lambda: not js(view, "document.getElementById('sec-assistant')"
                                                 ".hidden")
                            and "Retro" in str(js(view, "document.getElementById("
                                                        "'attachments').textContent")),
                            timeout=30_000)
            assert "Summarize this note" in str(js(view, "document.getElementById('prompt')"
                                                         ".value"))
            js(view, "document.getElementById('send').click() || 1")
            qtbot.waitUntil(lambda: "note: Retro" in str(js(
                view, "document.querySelector('#messages .msg.assistant .sources') ? "
                      "document.querySelector('#messages .msg.assistant .sources')"
                      ".textContent : ''")), timeout=30_000)
            browser.wait_idle(view)
            report = browser.report(view)
            assert not report.problems, report.problems
    finally:
        arun(rt.stop())
