"""A pycrdt client of the collaboration socket for the tests and the benchmark: a
:class:`pycrdt.Provider` over a real ``websockets`` connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from pycrdt import Doc, Provider, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class WebsocketChannel:
    """The :class:`pycrdt.Channel` protocol over a websockets client connection; awareness
    and other non-sync messages are handed to ``on_other`` (the Provider ignores them)."""

    def __init__(self, ws: ClientConnection, path: str,
                 on_other: Callable[[bytes], None] | None = None):
        self.ws = ws
        self._path = path
        self.on_other = on_other

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        return await self.recv()

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(message)

    async def recv(self) -> bytes:
        while True:
            try:
                message = await self.ws.recv()
            except ConnectionClosed:
                raise StopAsyncIteration from None
            if isinstance(message, str):
                continue
            if message[:1] != b"\x00":
                if self.on_other is not None:
                    self.on_other(message)
                continue
            return message


def text_of(doc: Doc[Any]) -> str:
    return str(doc.get("content", type=Text))


@contextlib.asynccontextmanager
async def synced(url: str, doc: Doc[Any] | None = None
                 ) -> AsyncIterator[tuple[Doc[Any], ClientConnection]]:
    """A document kept in sync with the session at ``url`` (a ws:// URL with its ticket)
    until the block ends; yields once the first sync is done."""
    doc = doc if doc is not None else Doc()
    async with connect(url, max_size=None) as ws:
        provider = Provider(doc, WebsocketChannel(ws, url))
        async with provider:
            async with asyncio.timeout(10):
                await provider.synced.wait()
            yield doc, ws


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait until ``condition()`` holds (the timeout only guards against a hang)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)
