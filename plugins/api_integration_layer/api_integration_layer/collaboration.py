"""A live collaboration document: a :class:`pycrdt.Doc` kept in sync with a session of
``/api/v1/collaboration`` over its y-websocket socket.

``ApiClient.collaboration.open(session_id)`` gets a single-use ticket and yields a
:class:`LiveDocument` once the first sync is done; changes made to ``live.text`` (the
session's shared ``content`` text) reach the other members, theirs arrive by themselves.
On the server a viewer's changes are dropped, so a viewer's edits stay local.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Provider, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TEXT_NAME = "content"
SYNC_MESSAGE = 0


class WebsocketChannel:
    """pycrdt's ``Channel`` over a websockets connection. The provider only speaks the sync
    messages; awareness frames go to ``on_awareness`` (or are skipped)."""

    def __init__(self, ws: ClientConnection, path: str,
                 on_awareness: Callable[[bytes], None] | None = None):
        self.ws = ws
        self._path = path
        self.on_awareness = on_awareness

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        return await self.recv()

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):  # the reader side ends the provider
            await self.ws.send(message)

    async def recv(self) -> bytes:
        while True:
            try:
                message = await self.ws.recv()
            except ConnectionClosed:
                raise StopAsyncIteration from None
            if isinstance(message, str) or not message:
                continue
            if message[0] == SYNC_MESSAGE:
                return message
            if self.on_awareness is not None:
                self.on_awareness(message)


@dataclass
class LiveDocument:
    """The synced document, its shared text and the socket (``close_code`` once closed)."""

    doc: Doc[Any]
    websocket: ClientConnection
    role: str

    @property
    def text(self) -> Text:
        return self.doc.get(TEXT_NAME, type=Text)

    @property
    def content(self) -> str:
        return str(self.text)

    @property
    def close_code(self) -> int | None:
        return self.websocket.close_code

    async def wait_for(self, condition: Callable[[LiveDocument], bool],
                       timeout: float = 10.0) -> None:
        """Wait until ``condition(self)`` holds (changes arrive in the background);
        TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not condition(self):
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def live_document(url: str, role: str, doc: Doc[Any] | None = None,
                        sync_timeout: float = 10.0) -> AsyncIterator[LiveDocument]:
    """Connect to ``url`` (a ws:// URL carrying a ticket) and keep ``doc`` (a new one when
    None: pass your own to merge edits made offline) in sync until the block ends."""
    doc = doc if doc is not None else Doc()
    async with connect(url, max_size=None) as ws:
        provider = Provider(doc, WebsocketChannel(ws, url))
        async with provider:
            async with asyncio.timeout(sync_timeout):
                await provider.synced.wait()
            yield LiveDocument(doc, ws, role)
