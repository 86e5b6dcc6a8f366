"""The realtime subscription over the real WebSocket: reconnect and resubscribe after the
server restarts, and the end of the session ending the subscription."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from api_integration_layer.realtime import OPEN_EVENT, NotConnected
from api_integration_layer.testing import PASSWORD, embedded_server, unique_name


@pytest.mark.asyncio
async def test_subscription_reconnects_and_rejoins_its_rooms_after_a_server_restart(
        home: Path):
    async with embedded_server(home) as server:
        ann = await server.account()
        bob = await server.account()
        sub = ann.realtime.subscribe(rooms=["lobby"]).start()
        try:
            await sub.wait_connected(10)
            opened = await sub.next(OPEN_EVENT, timeout=5)
            assert opened.data["reconnect"] is False
            await sub.join("books")
            await sub.set_presence("away")
            await sub.next("room_joined", timeout=5, match=lambda e: e.data["room_id"] == "books")
            first_connection = sub.welcome["connection_id"]  # type: ignore[index]

            started = time.monotonic()
            await server.restart()
            reopened = await sub.next(OPEN_EVENT, timeout=20)
            assert reopened.data["reconnect"] is True and sub.reconnects == 1
            assert sub.welcome["connection_id"] != first_connection  # type: ignore[index]
            assert set(reopened.data["rooms"]) == {"lobby", "books"}
            took = time.monotonic() - started

            # The rooms were joined again on the new server: a typing event from bob in
            # "books" reaches ann, and the server lists ann's rooms.
            async with bob.realtime.subscribe(rooms=["books"]) as other:
                await other.wait_connected(10)
                await other.typing("books")
                typing = await sub.next("typing", timeout=5)
                assert typing.data["user_id"] == bob.user["id"]
                presence = (await bob.users.get(ann.user["id"])).presence
                assert presence is not None and presence.status == "away"  # restored
            rooms = (await ann.realtime.connections()).rooms
            assert set(rooms) >= {"lobby", "books"}
            assert took < 15
        finally:
            await sub.close()
        assert sub.state == "closed"
        with pytest.raises(StopAsyncIteration):
            while True:
                await sub.__anext__()


async def test_logout_closes_subscriptions_and_a_revoked_session_ends_them(shared_server):
    async with shared_server() as server:
        name = unique_name()
        ann = await server.account(name)
        sub = ann.realtime.subscribe().start()
        await sub.wait_connected(10)
        await ann.auth.logout()
        assert sub.state == "closed" and sub.finished

        await ann.auth.login(name, PASSWORD)
        sub = ann.realtime.subscribe().start()
        await sub.wait_connected(10)
        elsewhere = server.client()
        await elsewhere.auth.login(name, PASSWORD)
        await elsewhere.auth.logout(all_sessions=True)  # the server closes ann's socket
        closed = await sub.next("subscription.closed", timeout=10)
        assert closed.data["state"] == "unauthorized" and sub.state == "unauthorized"
        assert not ann.session.logged_in
        with pytest.raises(NotConnected):
            await sub.wait_connected(1)

        # Signing in as someone else without signing out ends the last user's
        # subscriptions (audit: they went on delivering that user's private events to
        # plugins now acting for the new one); signing in again as the same user not.
        await ann.auth.login(name, PASSWORD)
        sub = ann.realtime.subscribe().start()
        await sub.wait_connected(10)
        await ann.auth.login(name, PASSWORD)
        assert not sub.finished
        eve = unique_name()
        await server.client().auth.register(eve, f"{eve}@example.org", PASSWORD)
        await ann.auth.login(eve, PASSWORD)
        assert sub.state == "closed" and sub.finished


@pytest.mark.asyncio
async def test_a_subscription_started_while_the_server_is_away_keeps_trying(home: Path):
    async with embedded_server(home) as server:
        ann = await server.account(ws_reconnect_max_delay=0.2)
        port = server.port
        await server.stop()
        sub = ann.realtime.subscribe(rooms=["lobby"]).start()
        try:
            with pytest.raises(TimeoutError):
                await sub.wait_connected(0.5)
            assert sub.state in ("connecting", "reconnecting") and sub.last_error
            server.settings.server.port = port
            await server.start()
            await sub.wait_connected(10)
            assert sub.rooms == {"lobby": None}
        finally:
            await sub.close()
