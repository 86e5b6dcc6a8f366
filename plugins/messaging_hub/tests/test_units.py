"""The parts that need no server: analytics on seeded messages (exact figures), the CSV
escape, the inbox's waiting-on-you rule, templates in the sandbox, markdown sanitising,
away hours, the outbox's claim and the auto-responder's guards."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from messaging_hub.analytics import Msg, report, safe_cell, to_csv, walk
from messaging_hub.autoreply import MARKER, AutoResponder, AwaySettings, next_change
from messaging_hub.inbox import conversation_state
from messaging_hub.render import markdown_html
from messaging_hub.store import Store
from messaging_hub.templating import TemplateProblem, check, render

ME, BOB, CAT = "me", "bob", "cat"
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def at(days_ago: float, hour: int = 9, minute: int = 0) -> datetime:
    day = (NOW - timedelta(days=days_ago)).replace(hour=hour, minute=minute)
    return day


def seeded() -> list[Msg]:
    """Bob: two questions answered in 30 and 90 min this week, one answered in 4 h the
    week before; Cat: a question still waiting, and an auto-reply that answers nothing."""
    n = iter(range(1000))

    def m(sender: str, when: datetime, auto: bool = False) -> Msg:
        other = BOB if sender == ME else sender
        return Msg(f"m{next(n)}", sender, ME if sender != ME else other, when, auto)

    def to(recipient: str, when: datetime, auto: bool = False) -> Msg:
        return Msg(f"m{next(n)}", ME, recipient, when, auto)

    return [
        # the previous week (days 8-14 ago): one run from Bob, answered after 4 h
        m(BOB, at(10, 9, 0)), m(BOB, at(10, 9, 10)), to(BOB, at(10, 13, 0)),
        # this week: Bob asks, 30 min; later (same conversation, 2 h on) 90 min
        m(BOB, at(3, 9, 0)), to(BOB, at(3, 9, 30)),
        m(BOB, at(3, 11, 30)), to(BOB, at(3, 13, 0)),
        # Cat asks; my auto-reply is no answer; she is still waiting
        m(CAT, at(1, 20, 0)), to(CAT, at(1, 20, 0), auto=True),
    ]


def test_analytics_on_seeded_messages_are_exact() -> None:
    data = report(seeded(), ME, {BOB: "Bob", CAT: "Cat"}, days=7, now=NOW,
                  tz=ZoneInfo("UTC"), gap=timedelta(hours=8))
    cur, prev = data["current"], data["previous"]
    assert cur["received"] == 3 and cur["sent"] == 2 and cur["auto_replies"] == 1
    assert cur["replies"] == 2
    assert cur["median_response_seconds"] == 60 * 60  # median of 30 and 90 minutes
    # only the first run opened a conversation (the second came 2 h after my answer)
    assert cur["median_first_response_seconds"] == 30 * 60
    assert cur["conversations_opened"] == 2  # Bob's, and Cat's still open
    assert prev["received"] == 2 and prev["replies"] == 1
    assert prev["median_response_seconds"] == 4 * 3600  # from his FIRST message of the run
    assert data["change"]["median_response_seconds"] == pytest.approx(-0.75)
    assert data["change"]["received"] == pytest.approx(0.5)
    bob = next(c for c in data["contacts"] if c["contact_id"] == BOB)
    assert bob["median_response_seconds"] == 3600
    assert bob["previous_median_response_seconds"] == 4 * 3600
    cat = next(c for c in data["contacts"] if c["contact_id"] == CAT)
    assert cat["replies"] == 0 and cat["waiting_since"] == at(1, 20, 0).isoformat()
    assert [w["contact_id"] for w in data["waiting"]] == [CAT]
    assert len(data["by_day"]) == 8 and sum(d["received"] for d in data["by_day"]) == 3
    hours = {(h["weekday"], h["hour"], h["direction"]): h["count"] for h in data["by_hour"]}
    assert hours[(at(3).strftime("%a"), 9, "received")] == 1
    assert hours[(at(3).strftime("%a"), 13, "sent")] == 1


def test_analytics_days_and_hours_follow_the_time_zone() -> None:
    late = [Msg("a", BOB, ME, datetime(2026, 3, 30, 23, 30, tzinfo=UTC))]
    data = report(late, ME, {}, days=7, now=NOW, tz=ZoneInfo("Asia/Tokyo"),
                  gap=timedelta(hours=8))
    [cell] = data["by_hour"]
    assert (cell["weekday"], cell["hour"]) == ("Tue", 8)  # 08:30 the next day in Tokyo
    assert next(d for d in data["by_day"] if d["received"])["date"] == "2026-03-31"


def test_a_run_is_timed_from_its_first_message_and_auto_replies_are_ignored() -> None:
    msgs = [Msg("1", BOB, ME, at(2, 9)), Msg("2", ME, BOB, at(2, 9, 5), auto=True),
            Msg("3", BOB, ME, at(2, 9, 20)), Msg("4", ME, BOB, at(2, 10))]
    walked = walk(msgs, ME, timedelta(hours=8))
    [response] = walked.responses
    assert response.seconds == 3600 and response.opening and not walked.waiting


def test_csv_export_escapes_formulas() -> None:
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("+33 1") == "'+33 1" and safe_cell("-x") == "'-x"
    assert safe_cell("\tcmd") == "'\tcmd" and safe_cell("Bob") == "Bob"
    assert safe_cell(-5) == -5  # numbers stay numbers
    data = report(seeded(), ME, {BOB: "=HYPERLINK(\"http://x\")", CAT: "Cat"}, days=7,
                  now=NOW, tz=ZoneInfo("UTC"), gap=timedelta(hours=8))
    rows = list(csv.reader(io.StringIO(to_csv(data, "contacts"))))
    assert rows[0][0] == "contact"
    assert rows[1][:6] == ["'=HYPERLINK(\"http://x\")", BOB, "2", "2", "2", "3600.0"]
    daily = list(csv.reader(io.StringIO(to_csv(data, "daily"))))
    assert daily[0] == ["date", "sent", "received"] and len(daily) == 9


def test_waiting_on_you() -> None:
    def m(sender: str, content: str, ts: str) -> dict[str, Any]:
        return {"sender_id": sender, "content": content, "timestamp": ts}

    newest_first = [m(BOB, "ping?", "t3"), m(BOB, "question", "t2"), m(ME, "hi", "t1")]
    state = conversation_state(newest_first, ME)
    assert state["waiting"] and state["waiting_count"] == 2 and state["waiting_since"] == "t2"
    # my auto-reply does not answer them
    state = conversation_state([m(ME, f"{MARKER} away", "t4"), *newest_first], ME)
    assert state["waiting"] and state["last_from"] == "me" and state["last_auto"]
    # their auto-reply asks nothing of me
    assert not conversation_state([m(BOB, f"{MARKER} away", "t2"), m(ME, "hi", "t1")],
                                  ME)["waiting"]
    assert not conversation_state([m(ME, "answer", "t4"), *newest_first], ME)["waiting"]


def test_templates_in_the_sandbox() -> None:
    assert check("Hi {{ name }}, {{ order }}", {})["missing"] == ["order"]
    assert render("Hi {{ name }}: {{ order }}", {"order": "A1"}, {"name": "Bob"}) == \
        "Hi Bob: A1"
    with pytest.raises(TemplateProblem) as missing:
        render("{{ a }} {{ b }}", {"a": "1"})
    assert missing.value.field == "variables.b" and missing.value.missing == ["b"]
    # Given as empty is given: an optional part switched off with it (review).
    assert render("Order {{ id }} ships{% if note %} - {{ note }}{% endif %}",
                  {"id": "42", "note": ""}) == "Order 42 ships"
    for escape in ("{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}",
                   "{{ name.__class__.__base__.__subclasses__() }}"):
        with pytest.raises(TemplateProblem) as refused:
            render(escape, {}, {"name": "x"})
        assert refused.value.field in ("body", "variables")
    with pytest.raises(TemplateProblem) as attribute:
        render("{{ user.nick }}", {"user": "bob"})
    assert attribute.value.field == "variables"
    with pytest.raises(TemplateProblem) as syntax:
        render("{% for x in %}", {})
    assert syntax.value.field == "body" and "line 1" in str(syntax.value)
    with pytest.raises(TemplateProblem) as big:
        render("{% for i in range(1000) %}xxxxxxxxxxxx{% endfor %}", {})
    assert big.value.field == "content"


@pytest.mark.parametrize("source", [
    "{{ 'a' * 10**9 }}",
    "{{ 'a' * 50000 ~ 'b' * 50001 }}",
    "{% set s = 'x' * 90000 %}{% set s = s ~ s %}{{ s }}",
    "{{ 2 ** (10 ** 9) }}",
    "{{ ''.ljust(10**9) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'x' | center(10**9) }}",
    "{{ ',' .join(['ab'] * 90000) }}",
    "{% for i in range(10**6) %}{% endfor %}",
    # output stops at the limit while it is made, not after gigabytes
    "{% for i in range(1000) %}{% for j in range(1000) %}{{ 'y' * 1000 }}{% endfor %}"
    "{% endfor %}",
    # three nested loops writing nothing: stopped by the clock
    "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}x",
])
def test_templates_cannot_exhaust_memory_or_time(source: str) -> None:
    """Templates run on the server's event loop: a huge value or a long loop would hold
    every plugin up (it built 10**8 characters before the length check) (review finding)."""
    started = time.monotonic()
    with pytest.raises(TemplateProblem):
        render(source, {})
    assert time.monotonic() - started < 3


def test_markdown_is_sanitised() -> None:
    html = markdown_html("<b onclick=x>hi</b> [a](javascript:alert(1)) "
                         "[b](data:text/html,x) ![i](http://tracker/p.png) <https://ok.example>")
    assert "<b" not in html and "onclick" not in html.replace("onclick=x", "")
    assert 'href="javascript' not in html and 'href="data' not in html and "<img" not in html
    assert 'href="https://ok.example"' in html


def test_away_hours_and_settings() -> None:
    quiet = AwaySettings(quiet_start="22:00", quiet_end="07:00", timezone="Europe/Berlin")
    assert quiet.away_at(datetime(2026, 1, 5, 22, 30, tzinfo=UTC))  # 23:30 in Berlin
    assert not quiet.away_at(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    assert next_change(quiet, datetime(2026, 1, 5, 12, 0, tzinfo=UTC)) == \
        datetime(2026, 1, 5, 21, 0, tzinfo=UTC)
    until = AwaySettings(enabled=True, until=datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    assert until.away_at(datetime(2026, 1, 5, 11, 59, tzinfo=UTC))
    assert not until.away_at(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    with pytest.raises(ValueError, match="quiet_start"):
        AwaySettings(quiet_start="7 pm")
    with pytest.raises(ValueError, match="unknown variable"):
        AwaySettings(message="Hi {{ boss }}")
    # Settings saved before the sandbox check still read back (the check is on saving).
    assert AwaySettings(message="Back soon {{ name.__class__ }}").message
    # A name longer than a file name was an OSError from the zone database: a 500 on
    # PUT /away (review finding).
    for zone in ("x" * 5000, "Europe/" + "y" * 300):
        with pytest.raises(ValueError, match="unknown time zone"):
            AwaySettings(timezone=zone)


def test_the_outbox_claim_is_taken_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    item = store.queue(ME, BOB, "hello", "text", None, "undo", 100.0)
    assert not store.claim(item["id"], 99.0)  # not due yet
    assert store.claim(item["id"], 100.0) and not store.claim(item["id"], 101.0)
    assert store.update_pending(item["id"], ME, content="changed") is None  # already leaving
    assert not store.cancel(item["id"], ME)
    store.mark_sent(item["id"], "v1-id", 100.5)
    assert store.item(item["id"])["state"] == "sent"  # type: ignore[index]
    other = store.queue(ME, BOB, "later", "text", None, "scheduled", 200.0)
    assert store.update_pending(other["id"], "someone else", content="x") is None
    assert store.cancel(other["id"], ME) and not store.claim(other["id"], 300.0)
    store.close()


def test_the_responder_answers_once_per_window_and_never_an_auto_reply(tmp_path: Path
                                                                      ) -> None:
    store = Store(tmp_path / "r.sqlite3")
    store.save_away(ME, AwaySettings(enabled=True, window_hours=1).model_dump(mode="json"))
    sent: list[tuple[str, str]] = []
    clock = [1_000_000.0]

    async def send(to: str, content: str) -> dict[str, Any]:
        sent.append((to, content))
        return {"id": f"r{len(sent)}"}

    async def contact(user_id: str) -> dict[str, Any]:
        return {"id": user_id, "username": user_id, "display_name": f"{user_id.title()} X"}

    responder = AutoResponder(store, {"id": ME, "username": "me", "display_name": "Me"},
                              send, contact, clock=lambda: clock[0])

    def msg(i: int, sender: str, content: str = "hi") -> dict[str, Any]:
        return {"id": f"m{i}", "sender_id": sender, "recipient_id": ME, "content": content,
                "timestamp": datetime.fromtimestamp(clock[0], UTC).isoformat()}

    async def scenario() -> list[str]:
        out = []
        # two messages at once from Bob: one answer
        both = await asyncio.gather(responder.consider(msg(1, BOB)),
                                    responder.consider(msg(2, BOB)))
        out += sorted(d["decision"] for d in both if d)
        out.append((await responder.consider(msg(1, BOB)) or {})["decision"])  # seen again
        out.append((await responder.consider(msg(3, CAT, f"{MARKER} away")) or {})["reason"])
        clock[0] += 3601  # the window is over
        out.append((await responder.consider(msg(4, BOB)) or {})["decision"])
        assert await responder.consider({"id": "x", "sender_id": ME, "recipient_id": BOB,
                                         "content": "mine"}) is None
        return out

    decisions = asyncio.run(scenario())
    assert decisions[:2] == ["replied", "skipped"] and decisions[2] == "replied"
    assert "marker" in decisions[3] and decisions[4] == "replied"
    assert [to for to, _ in sent] == [BOB, BOB]
    assert sent[0][1].startswith(f"{MARKER} Hi Bob,")
    store.close()


def test_an_auto_reply_signs_with_the_owners_name_as_it_is_now(tmp_path: Path) -> None:
    """The responder kept the owner's name from when it was made: a rename never reached
    the replies until the app restarted."""
    store = Store(tmp_path / "r.sqlite3")
    store.save_away(ME, AwaySettings(enabled=True, message="Away. {{ me }}").model_dump(
        mode="json"))
    sent: list[str] = []
    names = {ME: "Old Name", BOB: "Bob X"}

    async def send(to: str, content: str) -> dict[str, Any]:
        sent.append(content)
        return {"id": f"r{len(sent)}"}

    async def contact(user_id: str) -> dict[str, Any]:
        return {"id": user_id, "username": user_id, "display_name": names[user_id]}

    responder = AutoResponder(store, {"id": ME, "username": "me", "display_name": "Old Name"},
                              send, contact)
    names[ME] = "New Name"
    asyncio.run(responder.consider({"id": "m1", "sender_id": BOB, "recipient_id": ME,
                                    "content": "hi",
                                    "timestamp": datetime.now(UTC).isoformat()}))
    assert sent == [f"{MARKER} Away. New Name"]
    store.close()


class FakeMessages:
    """The two v1 calls the dispatcher makes, with a server that fails on demand."""

    def __init__(self) -> None:
        self.stored: list[Any] = []
        self.fail: list[tuple[int, bool]] = []  # (status, stored anyway)

    async def send(self, recipient: str, content: str, client_message_id: str | None = None,
                   **_: Any) -> Any:
        from api_integration_layer.errors import ApiHTTPError
        from api_integration_layer.models import SentMessage

        # As the v1 server: a send with a key it stored before answers that message.
        for earlier in self.stored:
            if client_message_id and earlier.client_message_id == client_message_id:
                return earlier.model_copy(update={"duplicate": True})
        message = SentMessage(id=f"v{len(self.stored)}", sender_id=ME, recipient_id=recipient,
                              content=content, timestamp=datetime.now(UTC),
                              client_message_id=client_message_id)
        if self.fail:
            status, stored = self.fail.pop(0)
            if stored:
                self.stored.append(message)
            raise ApiHTTPError("POST", "/messages/send", status, "content: boom")
        self.stored.append(message)
        return message

    async def conversation(self, other: str, **_: Any) -> Any:
        class Page:
            messages = list(reversed(self.stored))
        return Page()


class FakeNotifications:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, recipient: str, title: str, message: str, **_: Any) -> None:
        self.sent.append(title)


class FakeApi:
    def __init__(self) -> None:
        self.messages = FakeMessages()
        self.notifications = FakeNotifications()

    def bypass_cache(self) -> Any:
        import contextlib
        return contextlib.nullcontext()


def test_dispatcher_sends_once_through_server_errors(tmp_path: Path) -> None:
    from messaging_hub.outbox import MAX_ATTEMPTS, Dispatcher

    store = Store(tmp_path / "o.sqlite3")
    api = FakeApi()
    clock = [1000.0]
    events: list[str] = []
    dispatcher = Dispatcher(store, lambda: (api, ME), lambda n, d: events.append(d["state"]),
                            logger=__import__("logging").getLogger("test"),
                            clock=lambda: clock[0])

    async def run() -> None:
        # a 500 after the server stored it: found on read-back, not sent again
        a = store.queue(ME, BOB, "stored then 500", "text", None, "undo", 1000.0)
        api.messages.fail = [(500, True)]
        await dispatcher.step(api, ME)  # type: ignore[arg-type]
        assert store.item(a["id"])["state"] == "sent"  # type: ignore[index]
        assert [m.content for m in api.messages.stored] == ["stored then 500"]
        # a 500 before storing: pending again, later (backoff), then sent once
        b = store.queue(ME, BOB, "lost in a 500", "text", None, "undo", 1000.0)
        api.messages.fail = [(500, False)]
        await dispatcher.step(api, ME)  # type: ignore[arg-type]
        item = store.item(b["id"])
        assert item is not None and item["state"] == "pending" and item["send_at"] > 1000
        clock[0] = item["send_at"]
        await dispatcher.step(api, ME)  # type: ignore[arg-type]
        assert store.item(b["id"])["state"] == "sent"  # type: ignore[index]
        # a 4xx: failed with the reason, kept
        c = store.queue(ME, BOB, "refused", "text", None, "undo", clock[0])
        api.messages.fail = [(422, False)]
        await dispatcher.step(api, ME)  # type: ignore[arg-type]
        assert store.item(c["id"])["error"] == "422: content: boom"  # type: ignore[index]
        # a server that never stores it: failed after MAX_ATTEMPTS, not a loop
        d = store.queue(ME, BOB, "never", "text", None, "undo", clock[0])
        api.messages.fail = [(503, False)] * MAX_ATTEMPTS
        for _ in range(MAX_ATTEMPTS):
            clock[0] += 400
            await dispatcher.step(api, ME)  # type: ignore[arg-type]
        final = store.item(d["id"])
        assert final is not None and final["state"] == "failed"
        assert final["error"].startswith(f"gave up after {MAX_ATTEMPTS} attempts")

    asyncio.run(run())
    contents = [m.content for m in api.messages.stored]
    assert contents == ["stored then 500", "lost in a 500"]
    assert api.notifications.sent == ["A message was not sent"] * 2  # the 422, the give-up
    assert "sending" in events and "sent" in events
    store.close()


def test_an_edit_made_while_earlier_items_are_sent_is_what_goes_out(tmp_path: Path) -> None:
    """Audit: the due list was read once, then sent item by item; an edit to a later item
    made while an earlier one was being sent was answered 200 and the old text left."""
    from messaging_hub.outbox import Dispatcher

    store = Store(tmp_path / "o.sqlite3")
    api = FakeApi()
    first = store.queue(ME, BOB, "first", "text", None, "scheduled", 1000.0)
    second = store.queue(ME, BOB, "second ORIGINAL", "text", None, "scheduled", 1000.0)
    real_send = api.messages.send

    async def send_then_edit(recipient: str, content: str, **kw: Any) -> Any:
        answer = await real_send(recipient, content, **kw)
        if content == "first":  # the user edits the second while the first leaves
            assert store.update_pending(second["id"], ME, content="second EDITED")
        return answer

    api.messages.send = send_then_edit  # type: ignore[method-assign]
    dispatcher = Dispatcher(store, lambda: (api, ME), lambda n, d: None,
                            logger=__import__("logging").getLogger("test"),
                            clock=lambda: 1000.0)
    asyncio.run(dispatcher.step(api, ME))  # type: ignore[arg-type]
    assert [m.content for m in api.messages.stored] == ["first", "second EDITED"]
    assert store.item(first["id"])["state"] == "sent"  # type: ignore[index]
    store.close()


def test_a_known_name_serves_through_a_short_outage_not_a_deleted_user() -> None:
    """After the minute, a failed lookup raised where the name known a minute ago would
    do; but a deleted user (404) must not keep a name for good."""
    import contextlib

    import messaging_hub
    from api_integration_layer.errors import ApiHTTPError, ApiUnavailable

    answers: list[Any] = [type("P", (), {"id": "u1", "username": "ann",
                                         "display_name": "Ann"})()]

    class Users:
        async def get(self, user_id: str) -> Any:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    class Api:
        users = Users()

        def bypass_cache(self) -> Any:
            return contextlib.nullcontext()

    plugin = messaging_hub.MessagingHubPlugin.__new__(messaging_hub.MessagingHubPlugin)
    plugin._profiles = {}

    async def scenario() -> list[Any]:
        seen = [await plugin._profile(Api(), "u1")]
        plugin._profiles["u1"]["_at"] -= messaging_hub.PROFILE_TTL + 1  # a minute later
        answers.append(ApiUnavailable("GET", "/users/u1", "connection refused", 3))
        seen.append(await plugin._profile(Api(), "u1"))  # the known name, not an error
        seen.append(await plugin._profile(Api(), "u1"))  # not asked again right away
        plugin._profiles["u1"]["_at"] -= messaging_hub.PROFILE_TTL + 1
        answers.append(ApiHTTPError("GET", "/users/u1", 404, "no such user"))
        try:
            await plugin._profile(Api(), "u1")
        except ApiHTTPError as exc:
            seen.append(exc.status)
        return seen

    first, during, again, deleted = asyncio.run(scenario())
    assert first == during == again == {"id": "u1", "username": "ann", "display_name": "Ann"}
    assert deleted == 404 and answers == []
