"""Every endpoint of the embedded v1 server through the client, over real HTTP and the
real WebSocket on 127.0.0.1, with typed answers."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from api_integration_layer import models as m
from api_integration_layer.client import ApiClient
from api_integration_layer.endpoints import ENDPOINTS
from api_integration_layer.errors import ApiHTTPError
from api_integration_layer.testing import (
    PASSWORD,
    FakeOpenAIServer,
    LoopbackHTTPServer,
    embedded_server,
    signature_ok,
    unique_name,
)
from pydantic import ValidationError

pytestmark = pytest.mark.asyncio
BIG_LOG = {"log_size": 2000}


def used(*clients: ApiClient) -> set[str]:
    return {r.endpoint for c in clients for r in c.activity.records}


async def exercise_auth_and_users(ann: ApiClient, bob: ApiClient) -> None:
    status = await ann.auth.status()
    assert status.service == "authentication" and status.total_users >= 2
    me = await ann.auth.me()
    assert isinstance(me, m.UserProfile) and me.username == ann.user["username"]
    assert me.is_admin  # the first account of an empty server
    assert (await ann.users.me()).id == me.id
    updated = await ann.users.update_me(display_name="Ann A.", first_name="Ann")
    assert updated.display_name == "Ann A." and updated.first_name == "Ann"
    found = await ann.users.search(bob.user["username"])
    assert found.users[0].id == bob.user["id"] and found.query == bob.user["username"]
    listed = await ann.users.list(limit=1)
    assert listed.total >= 2 and listed.has_more and len(listed.users) == 1
    other = await ann.users.get(bob.user["id"])
    assert other.username == bob.user["username"] and other.email is None  # privacy
    assert (await ann.users.stats()).total_users >= 2
    old_access = ann.session.tokens.access_token  # type: ignore[union-attr]
    await ann.auth.refresh()
    assert ann.session.tokens.access_token != old_access  # type: ignore[union-attr]
    assert (await ann.auth.me()).id == me.id


async def exercise_messages(ann: ApiClient, bob: ApiClient) -> str:
    sent = await ann.messages.send(bob.user["id"], "hello bob", message_type="markdown")
    assert isinstance(sent, m.Message) and sent.sender_id == ann.user["id"]
    assert sent.message_type == "markdown" and not sent.read
    conversations = await bob.messages.conversations()
    assert conversations.conversations[0].user_id == ann.user["id"]
    assert conversations.conversations[0].unread_count == 1
    history = await bob.messages.conversation(ann.user["id"], order="asc")
    assert [x.content for x in history.messages] == ["hello bob"]
    assert history.other_user.id == ann.user["id"]
    assert (await ann.messages.get(sent.id)).read  # read by bob's fetch
    stats = await bob.messages.stats()
    assert stats.received_messages == 1 and stats.unread_messages == 0
    reply = await bob.messages.reply(sent.id, "hello ann")
    assert reply.recipient_id == ann.user["id"] and reply.thread_id == sent.id
    thread = await ann.messages.thread(reply.id)
    assert thread.root is not None and thread.root.reply_count == 1
    assert [x.content for x in thread.messages] == ["hello ann"]
    edited = await bob.messages.edit(reply.id, "hello, ann")
    assert edited.edited and edited.content == "hello, ann"
    reacted = await ann.messages.react(reply.id, "👍")
    assert reacted.changed and [(r.emoji, r.count, r.me) for r in reacted.reactions] == [
        ("👍", 1, True)]
    assert not (await ann.messages.react(reply.id, "👍")).changed
    assert (await bob.messages.get(reply.id)).reactions[0].me is False
    assert (await ann.messages.unreact(reply.id, "👍")).reactions == []
    with pytest.raises(ApiHTTPError) as refused:
        await ann.messages.edit(reply.id, "not mine")
    assert refused.value.status == 403
    doomed = await ann.messages.send(bob.user["id"], "oops")
    assert (await ann.messages.delete(doomed.id)).success
    with pytest.raises(ApiHTTPError) as info:
        await bob.messages.get(doomed.id)
    assert info.value.status == 404
    return sent.id


async def exercise_keys(ann: ApiClient, bob: ApiClient) -> None:
    # base64url of 32 bytes, as an X25519 public key is (unpadded, the server's spelling)
    key = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
    published = await ann.keys.publish(key)
    assert published.user_id == ann.user["id"] and published.public_key == key
    found = await bob.keys.get(ann.user["id"])
    assert [(k.algorithm, k.public_key) for k in found.keys] == [("x25519", key)]
    assert (await ann.keys.get(bob.user["id"])).keys == []
    with pytest.raises(ApiHTTPError) as info:
        await ann.keys.publish("too-short")
    assert info.value.status == 422
    assert (await ann.keys.withdraw()).success
    assert (await bob.keys.get(ann.user["id"])).keys == []


async def exercise_files(ann: ApiClient, bob: ApiClient, tmp: Path) -> None:
    content = b"quarterly figures\n" * 100
    info = await ann.files.upload(content, "report.txt", description="Q3")
    assert info.size == len(content) and info.sha256 == hashlib.sha256(content).hexdigest()
    assert info.description == "Q3" and info.is_owner and not info.is_public
    source = tmp / "notes.csv"
    source.write_text("a,b\n1,2\n")
    from_path = await ann.files.upload(source, is_public=True)
    assert from_path.filename == "notes.csv" and from_path.is_public
    assert (await ann.files.info(info.id)).filename == "report.txt"
    listed = await ann.files.list(file_type="txt")
    assert [f.id for f in listed.files] == [info.id]
    shared = await ann.files.share(info.id, bob.user["id"])
    assert shared.success
    downloaded = await bob.files.download(info.id)
    assert downloaded.content == content and downloaded.filename == "report.txt"
    bob.last_error = "a failure from before"
    target = await bob.files.download_to(info.id, tmp / "copy.txt")
    assert target.read_bytes() == content
    assert bob.last_error is None  # a streamed answer says the server is there too
    assert (await bob.files.list(scope="shared")).total == 1
    assert (await ann.files.unshare(info.id, bob.user["id"])).success
    with pytest.raises(ApiHTTPError) as info_404:
        await bob.files.info(info.id)
    assert info_404.value.status == 404
    stats = await ann.files.stats()
    assert stats.total_files == 2 and stats.total_downloads >= 2
    assert (await ann.files.delete(from_path.id)).success


async def exercise_groups(ann: ApiClient, bob: ApiClient, carol: ApiClient) -> str:
    group = await ann.groups.create("Readers", description="books", max_members=10)
    assert isinstance(group, m.Group) and group.role == "owner" and group.member_count == 1
    joined = await bob.groups.join(group.id)
    assert joined.group.member_count == 2
    invited = await ann.groups.invite(group.id, [carol.user["id"]], message="come")
    assert invited.invited_users == [carol.user["id"]]
    members = await ann.groups.members(group.id)
    assert members.total == 2 and members.members[0].role == "owner"
    changed = await ann.groups.update(group.id, description="novels", max_members=20)
    assert changed.description == "novels" and changed.max_members == 20
    assert (await bob.groups.get(group.id)).is_member
    assert (await bob.groups.mine()).total == 1
    assert (await bob.groups.leave(group.id)).success
    assert (await bob.groups.list()).total >= 1
    assert (await ann.groups.stats()).owned_groups == 1
    private = await ann.groups.create("Secret", type="private")
    assert not private.is_public
    assert (await ann.groups.delete(private.id)).success
    return group.id


async def exercise_search(ann: ApiClient, bob: ApiClient) -> None:
    results = await ann.search.search("hello", type="messages")
    assert results.total >= 1 and results.results[0].type == "message"
    everything = await ann.search.search(bob.user["username"], filters={"file_type": "txt"})
    assert any(r.type == "user" for r in everything.results)
    suggestions = await ann.search.suggestions(bob.user["username"][:3])
    assert isinstance(suggestions, m.Suggestions)
    overview = await ann.search.overview()
    assert overview.messages_sent >= 1 and overview.files_uploaded >= 1
    trends = await ann.search.trends(days=7)
    assert len(trends.series["messages"]) == 7
    assert (await ann.search.status()).status == "online"


async def exercise_notifications(ann: ApiClient, bob: ApiClient, carol: ApiClient) -> None:
    note = await ann.notifications.send(bob.user["id"], "Hi", "A note", type="message",
                                        priority="high", metadata={"k": 1})
    assert note.user_id == bob.user["id"] and note.priority == "high"
    sent = await ann.notifications.broadcast([bob.user["id"], carol.user["id"]], "All",
                                             "Everyone")
    assert sent.sent_count == 2
    # "system" and "group_invite" are the server's own: refused before anything is sent.
    with pytest.raises(ValidationError, match="type"):
        await ann.notifications.send(bob.user["id"], "Hi", "x", type="system")  # type: ignore[arg-type]
    listed = await bob.notifications.list(unread_only=True)
    assert listed.unread_count >= 2
    assert (await bob.notifications.unread_count()).unread_count == listed.unread_count
    assert (await bob.notifications.get(note.id)).title == "Hi"
    changed = await bob.notifications.update(note.id, read=True, archived=True)
    assert changed.read and changed.archived
    settings = await bob.notifications.settings()
    assert settings.email_notifications is True
    saved = await bob.notifications.update_settings(
        email_notifications=False, quiet_hours={"start": "22:00", "end": "07:00"})
    assert saved.email_notifications is False and saved.quiet_hours == {
        "start": "22:00", "end": "07:00"}
    assert (await bob.notifications.stats()).total >= 2
    assert (await bob.notifications.system_status()).service == "notifications"
    own = await bob.notifications.test()
    assert own.type == "system"
    assert (await bob.notifications.mark_all_read()).success
    assert (await bob.notifications.unread_count()).unread_count == 0
    assert (await bob.notifications.delete(own.id)).success


async def exercise_system(ann: ApiClient) -> None:
    description = await ann.system.discover()
    assert description.name == "PlexiChat" and description.base_path == "/api/v1"
    assert (await ann.system.describe()).routes == description.routes
    assert (await ann.system.health()).status in ("healthy", "degraded")
    assert (await ann.system.info()).cpu_count >= 1  # type: ignore[operator]
    assert (await ann.system.metrics()).memory_percent is not None
    assert (await ann.system.status()).status == "online"
    assert (await ann.system.version()).api_version == "v1"
    assert (await ann.system.ping()).message == "pong"
    assert (await ann.system.time()).unix > 0
    assert (await ann.system.capabilities()).features is not None
    assert (await ann.system.stats()).users >= 3
    report = await ann.discover()
    assert report.missing_on_server == [] and report.unknown_to_client == []


async def exercise_realtime(ann: ApiClient, bob: ApiClient, group_id: str) -> set[str]:
    async with ann.realtime.subscribe(rooms=["lobby"]) as sub_a, \
            bob.realtime.subscribe(rooms=["lobby"]) as sub_b:
        await sub_a.wait_connected(10)
        await sub_b.wait_connected(10)
        assert sub_a.welcome and sub_a.welcome["user_id"] == ann.user["id"]
        await sub_b.next("room_joined", timeout=5)
        await sub_a.typing("lobby")
        typing = await sub_b.next("typing", timeout=5)
        assert typing.data["user_id"] == ann.user["id"] and typing.data["is_typing"]
        await sub_a.set_presence("busy")
        presence = await sub_b.next("presence_update", timeout=5,
                                    match=lambda e: e.data.get("status") == "busy")
        assert presence.data["user_id"] == ann.user["id"]
        connections = await ann.realtime.connections()
        assert connections.total_connections >= 2 and "lobby" in connections.rooms
        assert (await ann.realtime.status()).total_connections >= 2
        delivered = await ann.realtime.broadcast("note", {"x": 1}, room_id="lobby")
        assert delivered.delivered >= 1
        event = await sub_b.next("broadcast", timeout=5)
        assert event.data["event"] == "note" and event.data["payload"] == {"x": 1}
        direct = await ann.realtime.send(bob.user["id"], "ping-me", {"n": 2})
        assert direct.online
        assert (await sub_b.next("direct", timeout=5)).data["payload"] == {"n": 2}
        await ann.messages.send(bob.user["id"], "live!")
        live = await sub_b.next("message", timeout=5)
        assert live.data["content"] == "live!"
        await sub_b.leave("lobby")
        assert "lobby" not in sub_b.rooms
    assert sub_a.state == "closed"
    return {"realtime.subscribe", "realtime.typing", "realtime.presence"}


async def exercise_webhooks(ann: ApiClient) -> None:
    async with LoopbackHTTPServer() as receiver:
        events = await ann.webhooks.events()
        assert "message.received" in events.events and events.wildcard == "*"
        hook = await ann.webhooks.register(receiver.url + "/hook", ["webhook.test"],
                                           description="test hook")
        assert hook.secret and len(hook.secret) >= 16
        assert (await ann.webhooks.get(hook.id)).url == receiver.url + "/hook"
        assert (await ann.webhooks.list()).total == 1
        delivery = await ann.webhooks.test(hook.id, wait=True)
        assert delivery.status == "delivered", delivery
        request = receiver.requests[-1]
        assert signature_ok(hook.secret, request.headers["x-plexichat-timestamp"],
                            request.body, request.headers["x-plexichat-signature"])
        deliveries = await ann.webhooks.deliveries(hook.id, status="delivered")
        assert deliveries.deliveries[0].id == delivery.id
        assert (await ann.webhooks.delivery(delivery.id)).attempt_count == 1
        log = await ann.webhooks.all_deliveries(event="webhook.test", status="delivered")
        assert [d.id for d in log.deliveries] == [delivery.id]
        again = await ann.webhooks.redeliver(delivery.id, wait=True)
        assert again.redelivery_of == delivery.id and again.status == "delivered"
        recovered = await ann.webhooks.recover(hook.id, delivery.created_at)
        assert recovered.recovered == 0  # nothing failed
        rotated = await ann.webhooks.rotate_secret(hook.id, grace_seconds=60)
        assert rotated.secret and rotated.secret != hook.secret
        assert rotated.previous_secret_expires_at is not None
        changed = await ann.webhooks.update(hook.id, active=False, events=["*"])
        assert changed.active is False and changed.events == ["*"]
        assert (await ann.webhooks.delete(hook.id)).success


async def exercise_analytics_and_performance(ann: ApiClient) -> None:
    usage = await ann.analytics.usage(days=7)
    assert usage.period_days == 7 and usage.messages["total"] >= 1
    trends = await ann.analytics.trends(days=3, metrics=["messages", "files"])
    assert set(trends.series) == {"messages", "files"}
    reports = await ann.analytics.reports()
    assert {r.type for r in reports.reports} >= {"activity", "top_users"}
    report = await ann.analytics.report("activity", days=3)
    assert report.columns and len(report.rows) == 3
    csv = await ann.analytics.report_csv("files")
    assert csv.splitlines()[0].startswith(report.columns[0]) or "," in csv.splitlines()[0]
    metrics = await ann.performance.metrics()
    assert metrics.cpu_percent is not None and "requests" in metrics.api
    history = await ann.performance.history(minutes=5)
    assert history.interval_seconds
    alerts = await ann.performance.alerts(active_only=True)
    assert alerts.total == alerts.active_count
    assert isinstance(await ann.performance.summary(), m.PerformanceSummary)


async def exercise_backup(ann: ApiClient) -> None:
    backup = await ann.backup.create(name="before", wait=True)
    assert backup.status == "completed" and backup.checksum
    assert (await ann.backup.list()).total == 1
    assert (await ann.backup.status(backup.id)).status == "completed"
    assert (await ann.backup.get(backup.id)).id == backup.id
    archive = await ann.backup.download(backup.id)
    assert archive.sha256 == backup.checksum
    uploaded = await ann.backup.upload(archive.content, archive.sha256, name="copy")
    assert uploaded.source == "uploaded" and uploaded.checksum == backup.checksum
    restored = await ann.backup.restore(uploaded.id, confirm=True, checksum=archive.sha256)
    assert restored.checksum_verified
    assert (await ann.users.me()).username == ann.user["username"]  # the session survived
    assert (await ann.backup.delete(uploaded.id)).success
    assert (await ann.backup.delete(backup.id)).success


async def exercise_ai(ann: ApiClient, bob: ApiClient) -> None:
    """Each AI call once (tests/test_ai.py goes further, with a fake OpenAI server)."""
    async with FakeOpenAIServer() as fake:
        added = await ann.ai.configure_provider("fake", base_url=fake.base_url,
                                                api_key="sk-endpoint-test-key-123456")
        assert added.api_key_set and added.api_key_hint == "…3456"
        assert [p.name for p in (await bob.ai.providers()).providers] == ["builtin", "fake"]
        tested = await ann.ai.test_provider("fake", model="tiny")
        assert tested.ok and tested.reply == "fake says: Say OK."
        answer = await bob.ai.chat("hi there", model="fake/tiny")
        assert answer.content == "fake says: hi there" and answer.usage.total_tokens == 6
        pieces = [d async for d in bob.ai.chat_stream([("user", "one two")],
                                                      model="builtin/plexi-echo")]
        assert "".join(d.content for d in pieces) == "one two"
        assert pieces[-1].usage is not None and pieces[-1].usage.completion_tokens == 2
        old = await bob.ai.request("legacy", model_id="builtin/plexi-echo")
        assert old.success and old.content == "legacy"
        models = await bob.ai.models()
        assert "fake/small" in [x.id for x in models.data]
        assert (await bob.ai.health()).status == "healthy"
        usage = await bob.ai.usage(days=1)
        assert usage.totals.requests == 3
        assert (await ann.ai.usage(all_users=True)).totals.requests == 4
        flagged = await bob.ai.moderate(["mail ann@example.org", "fine"])
        assert [r.flagged for r in flagged.results] == [True, False]
        assert (await ann.ai.delete_provider("fake")).success


async def test_every_endpoint_through_the_client(home: Path, tmp_path: Path):
    async with embedded_server(home) as server:
        ann = await server.account(unique_name("ann"), **BIG_LOG)
        bob = await server.account(unique_name("bob"), **BIG_LOG)
        carol = await server.account(unique_name("carol"), **BIG_LOG)
        ws_used: set[str] = set()

        await exercise_auth_and_users(ann, bob)
        await exercise_messages(ann, bob)
        await exercise_keys(ann, bob)
        await exercise_files(ann, bob, tmp_path)
        group_id = await exercise_groups(ann, bob, carol)
        await exercise_search(ann, bob)
        await exercise_notifications(ann, bob, carol)
        await exercise_system(ann)
        ws_used |= await exercise_realtime(ann, bob, group_id)
        await exercise_webhooks(ann)
        await exercise_analytics_and_performance(ann)
        await exercise_backup(ann)
        ws_used |= await exercise_collaboration(ann, bob, carol)
        await exercise_ai(ann, bob)
        assert (await ann.groups.delete(group_id)).success

        dave_name = unique_name("dave")
        dave = await server.account(dave_name, **BIG_LOG)
        gone = await dave.users.delete_me(PASSWORD)
        assert gone.success and not dave.session.logged_in
        assert (await carol.auth.logout()).success
        assert not carol.session.logged_in
        with pytest.raises(ApiHTTPError) as info:
            await carol.users.me()
        assert info.value.status == 401
        with pytest.raises(ApiHTTPError) as bad:
            await server.client().auth.login(dave_name, PASSWORD)
        assert bad.value.status == 401  # deleted accounts cannot log in

        await exercise_account_security(ann, bob, server)

        covered = used(ann, bob, carol, dave) | ws_used
        missing = sorted(set(ENDPOINTS) - covered)
        assert missing == [], f"endpoints never called: {missing}"


async def exercise_collaboration(ann: ApiClient, bob: ApiClient, carol: ApiClient
                                 ) -> set[str]:
    """Sessions, roles, history and two live documents converging over the socket."""
    made = await ann.collaboration.create("Spec", initial_content="v1", max_users=3)
    assert isinstance(made, m.CollaborationSession) and made.content == "v1"
    sid = made.session_id
    joined = await bob.collaboration.join(sid)
    assert joined.my_role == "editor" and joined.joined == "joined"
    assert (await carol.collaboration.join(sid, "viewer")).my_role == "viewer"
    assert [s.session_id for s in (await bob.collaboration.list()).sessions][:1] == [sid]
    snap = await ann.collaboration.snapshot(sid, "first")
    async with ann.collaboration.open(sid) as live_a, bob.collaboration.open(sid) as live_b:
        assert live_a.content == live_b.content == "v1" and live_a.role == "owner"
        live_a.text.insert(0, "A:")
        live_b.text.insert(len(live_b.content), ":B")
        await live_a.wait_for(lambda d: d.content == live_b.content == "A:v1:B")
        await live_b.wait_for(lambda d: d.content == "A:v1:B")
        stats = await ann.collaboration.session_stats(sid)
        assert stats.connected_users == 2 and stats.members == 3
    assert (await carol.collaboration.content(sid)).content == "A:v1:B"
    with pytest.raises(ApiHTTPError) as refused:
        await carol.collaboration.snapshot(sid)
    assert refused.value.status == 403
    changed = await ann.collaboration.set_role(sid, carol.user["id"], "editor")
    assert changed.role == "editor"
    restored = await bob.collaboration.restore(sid, snap.snapshot_id)
    assert restored.content == "v1"
    history = await ann.collaboration.history(sid)
    assert history.total == 2
    before = await ann.collaboration.get_snapshot(sid, history.snapshots[0].snapshot_id)
    assert before.content == "A:v1:B"
    assert (await ann.collaboration.get(sid)).content == "v1"
    assert (await ann.collaboration.stats()).owned >= 1
    assert (await carol.collaboration.leave(sid)).success
    assert (await bob.collaboration.ticket(sid)).expires_in > 0
    assert (await ann.collaboration.delete(sid)).success
    return {"collaboration.open"}


async def exercise_account_security(ann: ApiClient, bob: ApiClient, server) -> None:
    """2FA with the MFA login step, recovery codes, sessions, the security log, the
    export, password change and an administrator's reset token: each call through the
    client once (tests/test_mfa.py checks them in depth, on a fixed TOTP clock)."""
    import time

    from api_integration_layer.errors import MfaRequired

    from plexichat_desktop.server.v1 import mfa

    assert bob.user is not None
    name = bob.user["username"]
    assert (await bob.auth.password_policy()).min_length >= 12
    assert (await bob.auth.mfa_status()).enabled is False
    setup = await bob.auth.mfa_setup(PASSWORD)
    # The server accepts the step before and after its own: codes of the step now and the
    # next one stay valid however the real clock's 30 s fall between these calls.
    step = mfa.step_of(time.time())
    codes = (await bob.auth.mfa_verify_setup(mfa.code_at(setup.secret, step))
             ).recovery_codes
    codes = (await bob.auth.mfa_backup_codes(PASSWORD, recovery_code=codes[0])
             ).recovery_codes
    with pytest.raises(MfaRequired) as challenge:
        await bob.auth.login(name, PASSWORD)
    await bob.auth.login_2fa(challenge.value.mfa_token,
                             code=mfa.code_at(setup.secret, step + 1))

    async def recovery(_: MfaRequired) -> str:
        return codes[0]

    other = server.client()
    await other.auth.login(name, PASSWORD, on_mfa=recovery)
    sessions = await bob.auth.sessions()
    assert sessions.total >= 3
    others = [s for s in sessions.sessions if not s.current]
    assert (await bob.auth.revoke_session(others[0].id)).success
    await bob.auth.revoke_other_sessions()
    assert (await bob.auth.sessions()).total == 1
    assert (await bob.auth.mfa_disable(PASSWORD, recovery_code=codes[1])).success
    assert any(e.kind == "2fa_enabled" for e in (await bob.users.security_log()).events)
    assert (await bob.users.export())["profile"]["username"] == name
    new = PASSWORD + "-2"
    await bob.auth.change_password(PASSWORD, new)
    issued = await ann.auth.issue_reset_token(bob.user["id"])
    reset = await bob.auth.reset_password(name, PASSWORD, reset_token=issued.reset_token)
    assert reset.sessions_ended == 1
    await bob.auth.login(name, PASSWORD)
