"""Takes docs/inbox.png, analytics.png, templates.png and away.png: the page in
QtWebEngine offscreen, as the desktop window shows it, signed in as Ann with real
conversations on the embedded server (Bob waiting on her, a markdown and a code message,
a thread, reactions, an auto-reply, a scheduled message, a template). The page must show
no console error on the way.

Run from the repository root (it uses the project's GUI test fixtures; set
MH_SCREENSHOT_THEME=dark for the dark theme, written as inbox-dark.png and so on):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/messaging_hub/docs/screenshot.py -q -n 0 -p no:cacheprovider
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.gui.plugin_screenshots import docs_app, page_shots, sign_in

HERE = Path(__file__).resolve().parent


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    from api_integration_layer.testing import PASSWORD

    with docs_app(home, arun, tmp_path, plugins=("messaging_hub",)) as rt:
        layer = sign_in(rt, arun)
        arun(layer.client.users.update_me(display_name="Ann Lee"))
        base = f"{rt.url}plugins/messaging_hub/api/"
        headers = {"Authorization": f"Bearer {rt.token}"}
        v1 = f"{rt.url}api/v1/"

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as c:
                answer = await c.request(method, path, json=body)
                assert answer.status_code < 400, answer.text
                return answer.json()

        async def person(name: str, display: str) -> tuple[str, httpx.AsyncClient]:
            c = httpx.AsyncClient(base_url=v1, timeout=30)
            await c.post("auth/register", json={"username": name, "password": PASSWORD,
                                                "email": f"{name}@example.org",
                                                "terms_accepted": True})
            login = (await c.post("auth/login", json={"username": name,
                                                      "password": PASSWORD})).json()
            c.headers["Authorization"] = f"Bearer {login['access_token']}"
            await c.put("users/me", json={"display_name": display})
            return str(login["user_id"]), c

        async def scene() -> dict[str, str]:
            me = (await layer.client.auth.me()).id
            bob, bc = await person("bob", "Bob Builder")
            cat, cc = await person("cat", "Cat Stevens")
            dan, dc = await person("dan", "Dan Okafor")

            async def say(c: httpx.AsyncClient, text: str, kind: str = "text",
                          reply_to: str | None = None) -> dict[str, Any]:
                body: dict[str, Any] = {"recipient_id": me, "content": text,
                                        "message_type": kind}
                if reply_to:
                    body["reply_to"] = reply_to
                answer = await c.post("messages/send", json=body)
                assert answer.status_code == 201, answer.text
                return dict(answer.json())

            await history(me, {bob: bc, cat: cc, dan: dc})
            # Cat: an exchange today, answered.
            await say(cc, "Lunch on Friday?")
            await layer.client.messages.send(cat, "Yes! 12:30 at the usual place?")
            await say(cc, "Perfect, see you then 🙌")
            await layer.client.messages.send(cat, "👍")
            # Dan: Ann is away in quiet hours -> an auto-reply went out; Dan then waits.
            await call("PUT", "away", {"enabled": True, "window_hours": 24})
            for _ in range(200):
                if (await call("GET", "status"))["live"] == "open":
                    break
                await asyncio.sleep(0.05)
            await say(dc, "Hi Ann, can we move tomorrow's review to 3 pm?")
            for _ in range(200):
                if any(d["decision"] == "replied" for d in (await call("GET", "away"))[
                        "decisions"]):
                    break
                await asyncio.sleep(0.05)
            await call("PUT", "away", {"enabled": False})
            # Bob: a thread, reactions, markdown and code; waiting on Ann.
            root = await say(bc, "Release checklist for **v2.4** is ready:\n\n"
                                 "- [x] changelog\n- [x] migration notes\n- [ ] sign-off\n\n"
                                 "See <https://example.org/release/2.4>", "markdown")
            await layer.client.messages.reply(root["id"], "Looks good — I'll sign off after "
                                                          "the smoke tests.")
            await layer.client.messages.react(root["id"], "🎉")
            await bc.post(f"messages/{root['id']}/reactions", json={"emoji": "🎉"})
            await say(bc, "The smoke test fails on this:", "text")
            await say(bc, "def parse(line: str) -> dict[str, str]:\n"
                          "    key, value = line.split('=')\n"
                          "    return {key.strip(): value.strip()}", "code")
            await say(bc, "Any idea why `a=b=c` breaks it?", "markdown")
            later = (datetime.now(UTC) + timedelta(days=1, hours=2)).isoformat()
            await call("POST", "send", {"recipient_id": cat, "send_at": later,
                                        "content": "Reminder: lunch is at 12:30 today"})
            # Two sends whose answers were lost (as the dispatcher leaves them): the first
            # had reached the server, the second had not; Ann edits the first below.
            hub = rt.plugins.by_id["messaging_hub"].instance
            lost = {}
            for to, text, stored in ((cat, "The door code is 4512", True),
                                     (bob, "Running 10 minutes late", False)):
                far = time.time() + 86400
                item = hub.store.queue(me, to, text, "text", None, "undo", far)
                assert hub.store.claim(item["id"], far)
                assert await hub.dispatcher.mark(hub.ctx.api, item)
                if stored:
                    await hub.dispatcher.send(hub.ctx.api, item)
                hub.store.release(item["id"], time.time() + 600,
                                  "ReadTimeout: no answer from the server")
                lost[text] = item["id"]
            await call("POST", "templates", {
                "name": "Meeting moved", "description": "reschedule a meeting",
                "body": "Hi {{ first_name }}, could we move {{ meeting }} to {{ when }}? "
                        "Thanks, {{ me }}"})
            await call("POST", "templates", {
                "name": "Code review done", "message_type": "markdown",
                "body": "Reviewed **{{ pr }}** — {{ verdict }}. Details in the PR."})
            await call("PUT", f"drafts/{dan}", {"content": "Sure, 3 pm works for"})
            await call("PUT", "away", {"quiet_start": "22:00", "quiet_end": "07:30",
                                       "timezone": "Europe/Berlin", "window_hours": 12})
            for c in (bc, cc, dc):
                await c.aclose()
            return {"bob": bob, "root": root["id"], "door": lost["The door code is 4512"]}

        async def history(me: str, people: dict[str, httpx.AsyncClient]) -> None:
            """Two months of conversations, sent through the v1 API in time order and then
            dated back in the embedded server's database (the API stamps messages with
            the time they arrive; analytics needs weeks of them). Ann answered faster in
            the last 30 days than in the 30 before."""
            ann = httpx.AsyncClient(base_url=v1, timeout=30)
            login = (await ann.post("auth/login", json={"username": "ann",
                                                        "password": PASSWORD})).json()
            ann.headers["Authorization"] = f"Bearer {login['access_token']}"
            rng = random.Random(24)
            now = datetime.now(UTC)
            plan: list[tuple[datetime, httpx.AsyncClient, str, str]] = []
            lines = ["Got a minute?", "Can you check the build?", "Notes from the call",
                     "Thanks!", "Is the doc up to date?", "Coffee later?"]
            for day in range(59, 0, -1):
                for other, client in people.items():
                    if rng.random() < 0.45:
                        continue
                    asked = (now - timedelta(days=day)).replace(
                        hour=rng.choice([8, 9, 10, 11, 13, 14, 15, 16, 17]),
                        minute=rng.randrange(60))
                    plan.append((asked, client, me, rng.choice(lines)))
                    if rng.random() < 0.4:
                        plan.append((asked + timedelta(minutes=rng.randrange(2, 9)), client,
                                     me, "(and one more thing)"))
                    slow = 2.5 if day > 30 else 1.0
                    delay = timedelta(minutes=rng.randrange(5, 95) * slow)
                    plan.append((asked + timedelta(minutes=10) + delay, ann, other,
                                 "On it, thanks"))
            plan.sort(key=lambda p: p[0])
            stamps: list[tuple[float, str]] = []
            for at, client, to, text in plan:
                sent = (await client.post("messages/send", json={
                    "recipient_id": to, "content": text})).json()
                stamps.append((at.timestamp(), sent["id"]))
            await ann.aclose()
            with sqlite3.connect(home.data_dir / "api_v1" / "plexichat.sqlite3") as db:
                db.executemany("UPDATE messages SET created_at = ?, read_at = ? WHERE id = ?",
                               [(t, t, i) for t, i in stamps])

        ids = arun(scene(), timeout=120_000)
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE, "MH_SCREENSHOT_THEME") as shots:
            shots.open("/plugins/messaging_hub/", size=(1440, 900))
            js, count = shots.js, shots.count

            qtbot.waitUntil(lambda: count("#conv-list li") == 3, timeout=20_000)
            js(f"document.querySelector('[data-user=\"{ids['bob']}\"]').click() || 1")
            qtbot.waitUntil(lambda: count("#messages li") >= 5, timeout=20_000)
            js("[...document.querySelectorAll('#messages .thread-link')][0].click() || 1")
            qtbot.waitUntil(lambda: count("#right .msg") == 2, timeout=20_000)
            js("(document.getElementById('content').value = 'Split on the first = "
               "only: `line.split(\"=\", 1)`') && 1")
            js("document.getElementById('msg-type').value = 'markdown'")
            js("document.getElementById('content').dispatchEvent(new Event('input'))"
               " || 1")
            shots.save("inbox", settle=400)

            # Driven as a person would: send, then Undo puts the text back.
            js("document.getElementById('send-btn').click() || 1")
            qtbot.waitUntil(lambda: not js("document.getElementById('toast-undo')"
                                           ".hidden"), timeout=10_000)
            js("document.getElementById('toast-undo').click() || 1")
            qtbot.waitUntil(lambda: "line.split" in str(js(
                "document.getElementById('content').value")), timeout=10_000)
            # A template with a variable left empty is refused, the field named and marked.
            js("(document.getElementById('tpl-pick').value = [...document"
               ".querySelectorAll('#tpl-pick option')].find(o => o.textContent"
               ".includes('Meeting')).value) && 1")
            js("document.getElementById('tpl-pick').dispatchEvent(new Event('change'))"
               " || 1")
            qtbot.waitUntil(lambda: count("#tpl-vars [data-var]") == 2, timeout=10_000)
            js("(document.querySelector('[data-var=meeting]').value = 'the review') "
               "&& 1")
            js("document.getElementById('send-btn').click() || 1")
            qtbot.waitUntil(lambda: str(js("document.getElementById('composer-error')"
                                           ".textContent")).startswith("variables.when"),
                            timeout=10_000)
            assert js("document.querySelector('[data-var=when]').classList"
                      ".contains('invalid')")
            # The keyboard moves through the inbox.
            js("document.activeElement.blur() || 1")
            js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'j'})) || 1")
            qtbot.waitUntil(lambda: count("#conv-list li.cursor") == 1, timeout=10_000)
            # Search with a filter, then jump to an old message.
            js("(document.getElementById('search-q').value = 'Notes from the call') "
               "&& 1")
            js("document.getElementById('search-form').requestSubmit() || 1")
            qtbot.waitUntil(lambda: count("#right .result") >= 2, timeout=10_000)
            js(f"(document.querySelector('#right select').value = '{ids['bob']}') && 1")
            js("document.querySelector('#right select').dispatchEvent(new Event("
               "'change')) || 1")
            qtbot.waitUntil(lambda: bool(js("[...document.querySelectorAll("
                                            "'#right .result')].every(r => r"
                                            ".textContent.includes('Bob'))")),
                            timeout=10_000)
            js("[...document.querySelectorAll('#right .result')].at(-1).click() || 1")
            qtbot.waitUntil(lambda: count("#messages li.found") == 1, timeout=10_000)
            # The template and its variables belonged to the composer before the jump.
            assert js("document.getElementById('tpl-pick').value") == ""
            assert "{{" not in str(js("document.getElementById('content').value"))
            js("document.getElementById('toast').hidden = true")
            shots.save("search")
            # The search was the last view's: the next tabs' shots show an empty box.
            js("(document.getElementById('search-q').value = '') || 1")

            js("document.getElementById('tab-analytics').click() || 1")
            qtbot.waitUntil(lambda: count("#an-table tbody tr") >= 3, timeout=20_000)
            qtbot.waitUntil(lambda: count("#chart-contacts svg") == 1, timeout=20_000)
            shots.save("analytics", settle=400)

            js("document.getElementById('tab-templates').click() || 1")
            qtbot.waitUntil(lambda: count("#tpl-list li") == 2, timeout=20_000)
            js("[...document.querySelectorAll('#tpl-list li')].find(l => l.textContent"
               ".includes('Meeting')).click() || 1")
            qtbot.waitUntil(lambda: count("#tpl-lint .chip") == 4, timeout=20_000)
            shots.save("templates")

            js("document.getElementById('tab-outbox').click() || 1")
            qtbot.waitUntil(lambda: count("#outbox-list li") == 3, timeout=20_000)
            assert count("#outbox-list li.doubt") == 2
            # Ann corrects the code; the first text had reached Cat: the edit is held.
            door = f"#outbox-list li[data-item=\"{ids['door']}\"]"
            js(f"(document.querySelector('{door} textarea').value = 'The door code is "
               f"4521, not 4512') && 1")
            js(f"[...document.querySelectorAll('{door} button')].find(b => b.textContent"
               f" === 'Save').click() || 1")
            qtbot.waitUntil(lambda: count("#outbox-list li.held") == 1, timeout=20_000)
            qtbot.waitUntil(lambda: "Your edit was not sent" in str(js(
                "document.getElementById('page-error').textContent")), timeout=10_000)
            assert count("#outbox-list li.doubt") == 1 and count("#outbox-list li") == 3
            # The PATCH's 409 (already delivered) is the answer expected here, and the
            # only failed request the shot may have: it is taken off the page's record.
            expected = f"/api/outbox/{ids['door']}: 409"
            assert js("(() => { const w = window.__pageWatch; const n = w.failed.length;"
                      f" w.failed = w.failed.filter(f => !f.endsWith({expected!r}));"
                      " return n - w.failed.length; })()") == 1
            shots.save("outbox")

            js("document.getElementById('tab-away').click() || 1")
            qtbot.waitUntil(lambda: count("#away-log li.replied") >= 1, timeout=20_000)
            shots.save("away")
