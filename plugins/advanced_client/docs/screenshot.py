"""Takes docs/chat.png, messages.png, notes.png and library.png: the page in QtWebEngine
offscreen, as the desktop window shows it, signed in as ann, with answers really streamed from the
built-in provider (typed and sent through the page), a library document found by BM25
retrieval, a message from bob with smart replies, and a shared note.

Run from the repository root (it uses the project's GUI test fixtures; set
AC_SCREENSHOT_THEME=dark for the dark theme, written as chat-dark.png and so on):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/advanced_client/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.gui.plugin_screenshots import docs_app, page_shots, sign_in

HERE = Path(__file__).resolve().parent

PLAN = """# Project Falcon: launch plan

The Falcon launch moves to the third quarter: the payment provider needs six more weeks
of certification. Marketing keeps the September campaign; the beta stays open until then.

Owners: Ann (release), Bob (payments), Chen (support playbook).
Risks: certification slips again; support staffing in September.
"""
CODE = """Here is the check we agreed on:

```python
def launch_quarter(certified: bool) -> str:
    return "Q3" if certified else "Q4"
```

| owner | task |
|---|---|
| Ann | release |
| Bob | payments |
"""


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    from api_integration_layer.testing import PASSWORD

    # A visible pace for the streamed answers (the built-in provider's tokens).
    with docs_app(home, arun, tmp_path, plugins=("advanced_client",), api={
            "ai_builtin_token_delay": 0.01, "performance_interval": 1.0}) as rt:
        layer = sign_in(rt, arun)
        ann_id = layer.client.user["id"]
        base = f"{rt.url}plugins/advanced_client/api/"
        headers = {"Authorization": f"Bearer {rt.token}"}

        async def scene() -> dict[str, Any]:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as c:
                doc = await c.post("library", files={"file": ("falcon-plan.md",
                                                              PLAN.encode(), "text/markdown")})
                assert doc.status_code == 200, doc.text
                note = await c.post("notes", json={"title": "Falcon retro", "content": (
                    "# Falcon retro\n\n## Went well\n- Beta feedback loop\n\n## To change\n"
                    "- Certify payments earlier\n")})
                assert note.status_code == 200, note.text
            async with httpx.AsyncClient(base_url=f"{rt.url}api/v1/", timeout=30) as v1:
                r = await v1.post("auth/register", json={
                    "username": "bob", "email": "bob@example.org", "password": PASSWORD,
                    "terms_accepted": True})
                assert r.status_code == 201, r.text
                token = (await v1.post("auth/login", json={
                    "username": "bob", "password": PASSWORD})).json()["access_token"]
                v1.headers["Authorization"] = f"Bearer {token}"
                for text in ("Morning Ann! The certification report is in.",
                             "Can we meet tomorrow at 10 to go over the Falcon plan?"):
                    r = await v1.post("messages/send", json={"recipient_id": ann_id,
                                                             "content": text})
                    assert r.status_code == 201, r.text
                return {"bob": (await v1.get("users/me")).json()["id"],
                        "note": note.json()["session_id"]}

        made = arun(scene(), timeout=60_000)
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "AC_SCREENSHOT_THEME") as shots:
            shots.open("/plugins/advanced_client/", size=(1480, 960))
            js = shots.js
            qtbot.waitUntil(lambda: js("document.body.dataset.ready || ''") == "true",
                            timeout=20_000)

            def ask(text: str) -> None:
                before = int(js("document.querySelectorAll('#messages .msg').length"))
                js(f"(document.getElementById('prompt').value = {text!r}) && 1")
                js("document.getElementById('send').click() || 1")
                qtbot.waitUntil(lambda: int(js("document.querySelectorAll("
                                               "'#messages .msg').length")) >= before + 2
                                and not js("document.querySelector('.msg.writing') "
                                           "!== null")
                                and bool(js("!document.getElementById('send')"
                                            ".hidden")), timeout=30_000)
                shots.idle()

            js("document.getElementById('new-chat').click() || 1")
            qtbot.waitUntil(lambda: not js("document.getElementById('chat-title')"
                                           ".disabled"), timeout=20_000)
            js("(document.getElementById('chat-model').value = 'builtin/plexi-rules')"
               " && 1")
            js("document.getElementById('chat-model').dispatchEvent(new Event("
               "'change')) || 1")
            ask("Hello!")
            js("document.getElementById('use-retrieval').click() || 1")
            shots.idle()
            ask("When does the Falcon launch move, and why?")
            js("(document.getElementById('chat-model').value = 'builtin/plexi-echo')"
               " && 1")
            js("document.getElementById('chat-model').dispatchEvent(new Event("
               "'change')) || 1")
            shots.idle()
            ask(CODE)
            js("(document.getElementById('prompt').value = 'Summarize the launch "
               "risks for Bob') && 1")
            qtbot.waitUntil(lambda: "tokens" in shots.text("context-estimate") or True)
            shots.save("chat", settle=400)

            js("document.getElementById('tab-messages').click() || 1")
            qtbot.waitUntil(lambda: int(js("document.querySelectorAll('#conv-list li')"
                                           ".length")) >= 1, timeout=20_000)
            js("document.querySelector('#conv-list li').click() || 1")
            qtbot.waitUntil(lambda: int(js("document.querySelectorAll("
                                           "'#smart-replies button').length")) == 3,
                            timeout=20_000)
            shots.save("messages")

            js("document.getElementById('tab-notes').click() || 1")
            qtbot.waitUntil(lambda: int(js("document.querySelectorAll('#note-list li')"
                                           ".length")) >= 1, timeout=20_000)
            js("document.querySelector('#note-list li').click() || 1")
            qtbot.waitUntil(lambda: js("document.getElementById('note-state')"
                                       ".textContent") == "online", timeout=20_000)
            qtbot.waitUntil(lambda: "Certify" in str(js("document.querySelector("
                                                        "'#note-editor .cm-content')"
                                                        ".textContent")),
                            timeout=20_000)
            shots.save("notes")
            js("document.getElementById('tab-library').click() || 1")
            qtbot.waitUntil(lambda: int(js("document.querySelectorAll("
                                           "'#library-rows tr').length")) >= 1,
                            timeout=20_000)
            js("(document.getElementById('probe-q').value = 'why does the launch "
               "move?') && 1")
            js("document.querySelector('#probe button').click() || 1")
            qtbot.waitUntil(lambda: int(js("document.querySelectorAll("
                                           "'#probe-results li').length")) >= 1,
                            timeout=20_000)
            shots.save("library")
            assert made["note"]
