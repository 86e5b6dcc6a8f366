"""The plugin in the real app against the embedded v1 server (loopback only): streamed
chats with the built-in provider, stop mid-answer, a provider that is down, model output
that tries to script the page, presets, history search and export, context within a
budget with BM25 retrieval, smart replies (rules and a real OpenAI-compatible model),
notes over the collaboration API, the activity panel, and clear 4xx answers.

One app serves the session (``app`` in conftest.py; starting it is the slow part). The
built-in provider streams a token every 20 ms so that "stop" has an answer to interrupt
(tests where none has to land stream at full speed: ``full_speed``); no test asserts a
duration.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from plexichat_desktop.testing.harness import USER_PASSWORD, PlexiChatApp

XSS = ('Hi <script>alert("x")</script> <img src=x onerror="alert(1)"> '
       '[click](javascript:alert(2)) <a href="javascript:alert(3)">a</a> **bold**')


@pytest.fixture(scope="module")
def admin(app: PlexiChatApp) -> Iterator[httpx.Client]:
    """The install's administrator (AI providers are theirs to configure)."""
    _id, client = _peer(app, "acadmin", owner=True)
    yield client
    client.close()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def events(app: PlexiChatApp, chat_id: str, body: dict[str, Any],
           on_event: Callable[[str, Any], None] | None = None) -> list[tuple[str, Any]]:
    """The SSE events of one send, parsed."""
    out: list[tuple[str, Any]] = []
    with app.client.stream("POST", f"api/chats/{chat_id}/send", json=body,
                           timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                data = json.loads(line[6:])
                out.append((name, data))
                if on_event:
                    on_event(name, data)
    return out


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element of ``html`` with its attributes, as a browser's parser sees them."""
    parser = _Elements()
    parser.feed(html)
    return parser.found


def new_chat(app: PlexiChatApp, **body: Any) -> dict[str, Any]:
    return ok(app.client.post("api/chats", json=body))


def test_status_says_who_and_what_voice_can_do(app: PlexiChatApp) -> None:
    status = ok(app.client.get("api/status"))
    assert status["signed_in"] is True
    assert status["user"]["username"] == app.user.username
    assert "new conversation" in status["voice"]["commands"]
    models = ok(app.client.get("api/models"))
    ids = [m["id"] for m in models["models"]]
    assert "builtin/plexi-echo" in ids and "builtin/plexi-rules" in ids
    assert models["default_model"] == "builtin/plexi-echo"


def test_streamed_answer_is_stored_with_timings_and_usage(app: PlexiChatApp) -> None:
    chat = new_chat(app)
    got = events(app, chat["id"], {"content": "Streaming works, token by token!"})
    names = [n for n, _ in got]
    assert names[0] == "user" and names[1] == "context" and names[-1] == "done"
    deltas = [d["text"] for n, d in got if n == "delta"]
    assert len(deltas) > 3  # one token per chunk: it really streamed
    assert "".join(deltas) == "Streaming works, token by token!"
    done = got[-1][1]
    assert done["status"] == "done" and done["content"] == "Streaming works, token by token!"
    assert done["completion_tokens"] == len(deltas) and done["first_token_ms"] is not None
    stored = ok(app.client.get(f"api/chats/{chat['id']}"))
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    # The first question names the chat.
    assert stored["chat"]["title"] == "Streaming works, token by token!"


def full_speed(app: PlexiChatApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in model streams without the suite's delay between tokens until the test
    ends (the server reads the setting for each answer)."""
    monkeypatch.setattr(app.runtime.settings.api, "ai_builtin_token_delay", 0.0)


def test_model_output_cannot_script_the_page(app: PlexiChatApp,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """plexi-echo repeats the question: the answer is exactly the attack, and what the
    page gets to put in the DOM is inert."""
    full_speed(app, monkeypatch)  # no stop to land: the suite's 20 ms a token is not needed
    chat = new_chat(app)
    got = events(app, chat["id"], {"content": XSS})
    done = got[-1][1]
    assert done["content"] == XSS  # stored as the model wrote it
    html = done["html"]
    tags = elements(html)
    assert {t for t, _ in tags} <= {"p", "strong", "a"}, tags
    for tag, attrs in tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").strip().lower().startswith("javascript"), (tag, name)
    assert "<strong>bold</strong>" in html
    assert "&lt;script&gt;" in html  # shown as text, so the reader sees what was sent
    for name, data in got:
        if name in ("user", "done"):
            assert "<script" not in data["html"]
    rendered = ok(app.client.post("api/render", json={"content": '<a href="javascript:x">'
                                                                  'y</a> [z](javascript:q)'}))
    assert [t for t, _ in elements(rendered["html"])] == ["p"]  # no link made at all


def test_stop_mid_answer_keeps_what_was_written(app: PlexiChatApp,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    chat = new_chat(app)
    # Long enough (150 tokens at the suite's 20 ms each: 3 s) that the stop, sent at the
    # first delta, lands mid-answer with seconds to spare; regenerating streams it all,
    # at full speed.
    long = " ".join(f"word{i}" for i in range(150))
    stopped: list[bool] = []

    def on_event(name: str, _data: Any) -> None:
        if name == "delta" and not stopped:
            stopped.append(True)
            assert ok(app.client.post(f"api/chats/{chat['id']}/stop")) == {
                "stopping": chat["id"]}

    got = events(app, chat["id"], {"content": long}, on_event)
    done = got[-1][1]
    assert done["status"] == "stopped"
    assert 0 < len(done["content"]) < len(long)
    # Nothing is running any more: a second stop is a 409 naming the field.
    again = app.client.post(f"api/chats/{chat['id']}/stop")
    assert again.status_code == 409 and again.json()["field"] == "chat_id"
    # Regenerate answers the same question again, in full.
    full_speed(app, monkeypatch)
    got = events(app, chat["id"], {"regenerate": True})
    assert got[-1][1]["status"] == "done" and got[-1][1]["content"] == long
    messages = ok(app.client.get(f"api/chats/{chat['id']}"))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_two_sends_at_once_answer_one_and_a_deleted_chat_ends_its_stream(
        app: PlexiChatApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit: two sends together (a double click, two tabs) both got past the check and
    were both answered, interleaved; deleting a chat while its answer streamed left the
    stream open for good."""
    import threading

    chat = new_chat(app)
    long = " ".join(f"word{i}" for i in range(60))
    start = threading.Barrier(2)
    statuses: list[int] = []

    def send(text: str) -> None:
        start.wait()
        with app.client.stream("POST", f"api/chats/{chat['id']}/send",
                               json={"content": text}, timeout=60) as response:
            statuses.append(response.status_code)
            response.read()

    both = [threading.Thread(target=send, args=(f"{n} {long}",)) for n in ("first", "second")]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(60)
    assert sorted(statuses) == [200, 409], statuses
    roles = [m["role"] for m in ok(app.client.get(f"api/chats/{chat['id']}"))["messages"]]
    assert roles == ["user", "assistant"]

    deleted: list[bool] = []
    # At the suite's 20 ms a token the whole answer (1.2 s) could end before a delete
    # sent on a loaded machine arrived; at 0.25 s it would take 15 s.
    monkeypatch.setattr(app.runtime.settings.api, "ai_builtin_token_delay", 0.25)
    # The delete's database work as slow as on a loaded machine: the answer was stopped
    # first and stored as an ordinary "done" before the delete ran (failed in CI twice).
    store = app.runtime.plugins.by_id["advanced_client"].instance.store
    real_delete = store.delete_chat

    def slow_delete(chat_id: str) -> None:
        time.sleep(0.5)
        real_delete(chat_id)

    monkeypatch.setattr(store, "delete_chat", slow_delete)

    def on_event(name: str, _data: Any) -> None:
        if name == "delta" and not deleted:
            deleted.append(True)
            ok(app.client.delete(f"api/chats/{chat['id']}"))

    got = events(app, chat["id"], {"content": long}, on_event)  # returns: the stream ended
    assert got[-1] == ("done", {"id": got[-1][1]["id"], "chat_id": chat["id"],
                                "deleted": True})
    assert app.client.get(f"api/chats/{chat['id']}").status_code == 404


def test_null_in_a_chat_update_names_the_field(app: PlexiChatApp) -> None:
    """Audit: null title, system prompt or budget were a 500 (a NOT NULL column), and
    null attachments made every later answer an empty one marked done."""
    chat = new_chat(app)
    for name in ("title", "system_prompt", "context_budget", "attachments", "use_retrieval"):
        answer = app.client.patch(f"api/chats/{chat['id']}", json={name: None})
        assert answer.status_code == 422 and answer.json()["field"] == name, answer.text
    assert ok(app.client.patch(f"api/chats/{chat['id']}", json={"temperature": None}))
    got = events(app, chat["id"], {"content": "still fine"})
    assert got[-1][1]["status"] == "done" and got[-1][1]["content"] == "still fine"


def test_provider_down_gives_an_error_to_retry(app: PlexiChatApp, admin: httpx.Client
                                               ) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ok(admin.put("ai/providers/gone", json={
        "base_url": f"http://127.0.0.1:{port}/v1", "models": ["tiny"], "timeout": 5}), 201)
    try:
        chat = new_chat(app, model="gone/tiny")
        got = events(app, chat["id"], {"content": "anyone there?"})
        error = next(d for n, d in got if n == "error")
        assert error["status"] == 503 and error["retry"] is True
        assert "gone" in error["detail"]
        assert got[-1][1]["status"] == "error"
        # Switching the chat to a working model and retrying answers it.
        ok(app.client.patch(f"api/chats/{chat['id']}", json={"model": "builtin/plexi-echo"}))
        got = events(app, chat["id"], {"regenerate": True})
        assert got[-1][1]["content"] == "anyone there?"
    finally:
        admin.delete("ai/providers/gone")


def test_presets_history_search_and_export(app: PlexiChatApp) -> None:
    presets = ok(app.client.get("api/presets"))["presets"]
    assert {"General", "Concise", "Code reviewer"} <= {p["name"] for p in presets}
    ok(app.client.post("api/presets", json={"name": "Pirate", "system_prompt": "Talk like "
                                            "a pirate.", "temperature": 0.9}))
    chat = new_chat(app, preset="Pirate")
    assert chat["system_prompt"] == "Talk like a pirate." and chat["temperature"] == 0.9
    events(app, chat["id"], {"content": "The treasure is under the old oak tree."})
    found = ok(app.client.get("api/chats", params={"q": "old oak"}))["chats"]
    assert [c["id"] for c in found] == [chat["id"]]
    assert ok(app.client.get("api/chats", params={"q": "no-such-words-here"}))["chats"] == []
    md = app.client.get(f"api/chats/{chat['id']}/export", params={"format": "markdown"})
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert md.headers["content-disposition"] == (
        'attachment; filename="The treasure is under the old oak tree.md"')
    assert "# The treasure is under the old oak tree." in md.text
    assert "> **System:** Talk like a pirate." in md.text
    assert md.text.count("### ") == 2
    data = ok(app.client.get(f"api/chats/{chat['id']}/export", params={"format": "json"}))
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    builtin = app.client.delete("api/presets/General")
    assert builtin.status_code == 409 and builtin.json()["field"] == "name"
    ok(app.client.delete("api/presets/Pirate"))
    assert app.client.delete("api/presets/Pirate").status_code == 404


def test_context_within_budget_and_bm25_retrieval(app: PlexiChatApp) -> None:
    doc = "\n".join(["Project Falcon budget review."] + [
        f"Line {i}: the falcon launch moves to the third quarter." for i in range(200)])
    up = ok(app.client.post("api/library", files={"file": ("falcon.md", doc.encode(),
                                                           "text/markdown")}))
    assert up["words"] > 1000
    other = ok(app.client.post("api/library", files={"file": (
        "lunch.txt", b"The canteen serves pasta on Fridays.", "text/plain")}))
    # Attached whole, it is cut to the budget.
    preview = ok(app.client.post("api/context/preview", json={
        "question": "when is the launch?", "budget": 200,
        "attachments": [{"kind": "document", "id": up["id"], "title": "falcon.md"}]}))
    assert preview["tokens"] <= 200 and preview["pieces"][0]["truncated"] is True
    # Retrieval finds the right document and not the other.
    preview = ok(app.client.post("api/context/preview", json={
        "question": "pasta canteen", "use_retrieval": True, "budget": 1500}))
    assert preview["pieces"][0]["source_id"] == other["id"]
    assert all(p["source_id"] != up["id"] for p in preview["pieces"])
    # A chat with retrieval on sends the context to the model (echo shows the question;
    # the stored answer lists its sources).
    chat = new_chat(app)
    ok(app.client.patch(f"api/chats/{chat['id']}", json={"use_retrieval": True,
                                                         "context_budget": 300}))
    got = events(app, chat["id"], {"content": "What does the canteen serve?"})
    context = next(d for n, d in got if n == "context")
    assert context["pieces"][0]["title"] == "lunch.txt"
    assert got[-1][1]["context"][0]["title"] == "lunch.txt"
    bad = app.client.post("api/library", files={"file": ("x.bin", b"\x00\x01", "app/x")})
    assert bad.status_code == 422 and bad.json()["field"] == "file"
    ok(app.client.delete(f"api/library/{other['id']}"))
    ok(app.client.delete(f"api/library/{up['id']}"))


def test_an_oversized_upload_is_refused_before_its_body(app: PlexiChatApp) -> None:
    """An ``UploadFile`` parameter spooled the whole multipart body to disk before the
    size was looked at: a declared 10 GB upload was read to its end (review finding).
    Now the declared length is refused at once, and a body without one stops at the
    limit."""
    host, port = app.url.split("//", 1)[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall((f"POST /plugins/{app.plugin_id}/api/library HTTP/1.1\r\n"
                      f"Host: {host}:{port}\r\nAuthorization: Bearer {app.token}\r\n"
                      "Content-Type: multipart/form-data; boundary=b\r\n"
                      "Content-Length: 10000000000\r\n\r\n").encode() + b"--b\r\n")
        head = sock.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head[:200]

    def chunks() -> Iterator[bytes]:
        yield b"--b\r\nContent-Disposition: form-data; name=file; filename=a.txt\r\n\r\n"
        for _ in range(12):
            yield b"word " * 100_000  # 6 MB in all, past the 5 MB limit

    big = app.client.post("api/library", content=chunks(),
                          headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert big.status_code == 413 and big.json()["field"] == "file"
    bad = app.client.post("api/library", content=b"not a form",
                          headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert bad.status_code == 422 and bad.json()["field"] == "file"


def _peer(app: PlexiChatApp, name: str, owner: bool = False) -> tuple[str, httpx.Client]:
    """Another v1 user; ``owner``: registered with the app token, so the administrator."""
    v1 = httpx.Client(base_url=f"{app.url}api/v1/", timeout=30)
    headers = {"X-PlexiChat-App-Token": app.token} if owner else {}
    ok(v1.post("auth/register", headers=headers, json={
        "username": name, "email": f"{name}@example.org", "password": USER_PASSWORD,
        "terms_accepted": True}), 201)
    login = ok(v1.post("auth/login", json={"username": name, "password": USER_PASSWORD}))
    v1.headers["Authorization"] = f"Bearer {login['access_token']}"
    return str(login["user_id"]), v1


def test_smart_replies_rules_then_a_language_model(app: PlexiChatApp, admin: httpx.Client
                                                   ) -> None:
    from api_integration_layer.testing import FakeOpenAIServer

    assert app.user is not None
    bob_id, bob = _peer(app, "bobsmart")
    try:
        ok(bob.post("messages/send", json={"recipient_id": app.user.user_id,
                                           "content": "Thanks a lot for the report!"}), 201)
        convs = ok(app.client.get("api/messaging/conversations"))["conversations"]
        assert any(c["user_id"] == bob_id for c in convs)
        smart = ok(app.client.get(f"api/messaging/conversations/{bob_id}/suggestions"))
        assert smart["source"] == "rules" and smart["label"] == "Smart reply · rules"
        assert smart["replies"][0] == "You're welcome!"
        assert "built-in provider" in smart["reason"]
        # With a real (non-deterministic) model configured, the model writes them.
        fake = FakeOpenAIServer(models=["tiny"], reply_prefix="Sure thing\n2. On it\n- ")
        app.call(fake.__aenter__())
        try:
            ok(admin.put("ai/providers/fake", json={"base_url": fake.base_url,
                                                    "timeout": 10}), 201)
            smart = ok(app.client.get(f"api/messaging/conversations/{bob_id}/suggestions"))
            assert smart["source"] == "ai" and smart["model"] == "fake/tiny"
            assert smart["label"] == "Smart reply · AI (fake/tiny)"
            assert smart["replies"][:2] == ["Sure thing", "On it"]
        finally:
            admin.delete("ai/providers/fake")
            app.call(fake.__aexit__(None, None, None))
        sent = ok(app.client.post(f"api/messaging/conversations/{bob_id}",
                                  json={"content": "You're welcome!"}))
        assert sent["mine"] is True
        thread = ok(app.client.get(f"api/messaging/conversations/{bob_id}"))
        assert [m["mine"] for m in thread["messages"]] == [False, True]
        # A conversation can be attached as context.
        preview = ok(app.client.post("api/context/preview", json={
            "question": "report", "budget": 500,
            "attachments": [{"kind": "conversation", "id": bob_id}]}))
        assert "Thanks a lot for the report!" in preview["pieces"][0]["excerpt"]
        # A long conversation: the thread holds its newest messages (audit: it took the
        # first page, and the latest never showed; the conversation attachment took its
        # first 100 the same way and reads the newest 100 now).
        for n in range(52):
            ok(bob.post("messages/send", json={"recipient_id": app.user.user_id,
                                               "content": f"filler {n}"}), 201)
        ok(bob.post("messages/send", json={"recipient_id": app.user.user_id,
                                           "content": "NEWEST: meeting moved to Friday"}), 201)
        thread = ok(app.client.get(f"api/messaging/conversations/{bob_id}"))["messages"]
        assert len(thread) == 50 and thread[-1]["content"].startswith("NEWEST")
        assert thread[0]["content"] == "filler 3"  # oldest first, as a chat shows them
    finally:
        bob.close()


def test_notes_sessions_ticket_history_export(app: PlexiChatApp) -> None:
    made = ok(app.client.post("api/notes", json={"title": "Plan", "content": "# Plan\n"}))
    sid = made["session_id"]
    listed = ok(app.client.get("api/notes"))["notes"]
    assert any(n["session_id"] == sid for n in listed)
    ticket = ok(app.client.post(f"api/notes/{sid}/ticket"))
    assert ticket["ws_path"].startswith(f"/api/v1/collaboration/ws/{sid}?ticket=")
    assert ticket["user"]["name"] == app.user.username and ticket["role"] == "owner"
    assert ticket["user"]["color"].startswith("#")
    snap = ok(app.client.post(f"api/notes/{sid}/history", json={"label": "first"}))
    history = ok(app.client.get(f"api/notes/{sid}/history"))["snapshots"]
    assert history[0]["label"] == "first"
    restored = ok(app.client.post(f"api/notes/{sid}/history/{snap['snapshot_id']}/restore"))
    assert restored["content"] == "# Plan\n"
    exported = app.client.get(f"api/notes/{sid}/export")
    assert exported.status_code == 200 and exported.text.startswith("# Plan")
    sources = ok(app.client.get("api/sources"))
    assert any(n["id"] == sid for n in sources["note"])
    ok(app.client.delete(f"api/notes/{sid}"))
    gone = app.client.post(f"api/notes/{sid}/ticket")
    assert gone.status_code == 404


def test_activity_panel_has_every_part(app: PlexiChatApp) -> None:
    chat = new_chat(app)
    events(app, chat["id"], {"content": "count me"})
    data = ok(app.client.get("api/activity"))
    assert data["signed_in"] is True and data["problems"] == []
    timings = data["client"]["timings"]
    assert timings["first_token"]["count"] >= 1 and timings["first_token"]["p50_ms"] >= 0
    assert data["client"]["usage"]["answers"] >= 1
    assert data["notifications"]["unread"] >= 0
    assert "cpu_percent" in data["server"] and "api" in data["server"]


def test_bad_input_is_a_4xx_naming_the_field(app: PlexiChatApp) -> None:
    missing = app.client.get("api/chats/nope")
    assert missing.status_code == 404 and missing.json()["field"] == "chat"
    chat = new_chat(app)
    empty = app.client.post(f"api/chats/{chat['id']}/send", json={"content": "  "})
    assert empty.status_code == 422 and empty.json()["field"] == "content"
    nothing = app.client.post(f"api/chats/{chat['id']}/send", json={"regenerate": True})
    assert nothing.status_code == 422 and nothing.json()["field"] == "regenerate"
    hot = app.client.patch(f"api/chats/{chat['id']}", json={"temperature": 7})
    assert hot.status_code == 422 and "temperature" in hot.text
    kind = app.client.post("api/context/preview", json={"attachments": [{"kind": "disk",
                                                                          "id": "/etc"}]})
    assert kind.status_code == 422 and "kind" in kind.text
    speak = app.client.post("api/voice/speak", json={"text": "** __ **"})
    assert speak.status_code == 422 and speak.json()["field"] == "text"
    bad_voice = app.client.post("api/voice/speak", json={"text": "hi", "voice": "--help"})
    assert bad_voice.status_code in (422, 503)
    clip = app.client.get("api/voice/clips/nothing")
    assert clip.status_code == 404 and clip.json()["field"] == "clip_id"


def test_activity_is_pushed_when_someone_writes(app: PlexiChatApp) -> None:
    """The panel's stream: once the account's realtime socket is followed (``live``), a
    message from someone else arrives as ``changed``."""
    assert app.user is not None
    _carol_id, carol = _peer(app, "carolpush")
    seen: list[str] = []
    try:
        with app.client.stream("GET", "api/activity/events", timeout=60) as response:
            assert response.status_code == 200
            name = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                    continue
                if not line.startswith("data: ") or name is None:
                    continue
                seen.append(name)
                if name == "live":
                    ok(carol.post("messages/send", json={
                        "recipient_id": app.user.user_id, "content": "ping"}), 201)
                if name == "changed" and json.loads(line[6:])["kind"] == "message":
                    break
    finally:
        carol.close()
    assert seen[0] == "hello" and "live" in seen and seen[-1] == "changed"


def test_leaving_mid_answer_stops_it_and_keeps_the_text(app: PlexiChatApp) -> None:
    chat = new_chat(app)
    long = " ".join(f"token{i}" for i in range(400))
    with app.client.stream("POST", f"api/chats/{chat['id']}/send", json={"content": long},
                           timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("event: delta"):
                break  # the page goes away after the first piece

    def stored() -> dict[str, Any] | None:
        data = ok(app.client.get(f"api/chats/{chat['id']}"))
        answer = data["messages"][-1]
        return answer if answer["status"] != "writing" and not data["running"] else None

    answer = until(stored, "the answer to be stored")
    assert answer["status"] == "stopped" and 0 < len(answer["content"]) < len(long)
    # The chat is free again: a new question is answered.
    got = events(app, chat["id"], {"content": "again"})
    assert got[-1][1]["content"] == "again"


def test_an_answer_cut_by_max_tokens_is_marked_cut(app: PlexiChatApp,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer the max_tokens cap ended (finish_reason "length") was stored and shown
    as "done": half an answer looked like a whole one, in the chat and in exports."""
    full_speed(app, monkeypatch)
    monkeypatch.setattr(app.plugin, "config",
                        app.plugin.config.model_copy(update={"max_tokens": 16}))
    chat = new_chat(app)
    question = " ".join(f"word{i}" for i in range(60))  # plexi-echo repeats it: > 16 tokens
    done = events(app, chat["id"], {"content": question})[-1][1]
    assert done["status"] == "cut", done
    assert done["content"] and len(done["content"]) < len(question)
    short = events(app, chat["id"], {"content": "hi"})[-1][1]
    assert short["status"] == "done", short
    exported = app.client.get(f"api/chats/{chat['id']}/export", params={"format": "markdown"})
    assert exported.status_code == 200, exported.text
    assert exported.text.count(" — cut") == 1
