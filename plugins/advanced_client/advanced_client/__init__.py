"""Advanced Client: AI chat, voice, smart replies and collaborative notes in one page.

* **Chat** (:mod:`chat`, :mod:`store`): chats kept in the plugin's SQLite file, answers
  streamed from the v1 ``/ai/chat`` (SSE) through ``ctx.api``, model picker, presets,
  stop, regenerate, search in the history, export as Markdown or JSON. Every message is
  rendered server-side from Markdown and sanitised (:mod:`render`).
* **Context**: attach a library document, another chat, a PlexiChat conversation, a v1
  file or a note; optionally add the best chunks of a local BM25 index over all of them
  (:mod:`retrieval`); everything within a token budget the page shows before sending.
* **Smart replies** (:mod:`smart`) in the Messages tab, labelled AI or rules.
* **Voice** (:mod:`voice`): read-aloud with espeak-ng, dictation and a command grammar
  with pocketsphinx, all offline. The page records through the app's permission gate.
* **Notes**: v1 collaboration sessions edited by CodeMirror + Yjs in the page, over the
  session socket (this plugin hands out the single-use tickets).
* **Activity**: online contacts, notifications, server performance and this client's own
  timings (time to first token, answer time, speech timings).

The page talks only to this plugin's routes, except the notes' WebSocket, which goes to
the v1 server with a ticket.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fastapi import Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException

from advanced_client import smart, voice
from advanced_client.chat import (
    build_messages,
    export_filename,
    export_json,
    export_markdown,
    extract_text,
    title_from,
)
from advanced_client.render import plain_text, render_markdown
from advanced_client.retrieval import BM25, ContextPiece, Doc, assemble, chunk_text
from advanced_client.store import NotFound, Store
from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.api import PluginProblem as Problem
from plexichat_desktop.plugins.attachments import attachment_headers
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.settings import PluginSettings

if TYPE_CHECKING:
    from api_integration_layer.scoped import ScopedApi

T = TypeVar("T")
MAX_SPOKEN = 4000  # characters read aloud at most
CLIPS_KEPT = 32  # spoken clips kept in memory for the page's <audio> elements
V1_CACHE_SECONDS = 30.0  # how long fetched PlexiChat messages serve retrieval
# Realtime events after which the activity panel is out of date (presence, notifications,
# new or changed messages): the page reloads it when one arrives.
LIVE_KINDS = frozenset({"presence_update", "notification", "message", "message_updated",
                        "message_deleted", "reaction", "user_joined", "user_left"})
COLORS = ["#e5484d", "#0b8a7a", "#6e56cf", "#d6409f", "#3e63dd", "#ad5700", "#2f8f46"]


class ClientSettings(PluginSettings):
    """``[plugin.advanced_client]`` settings."""

    default_model: str = Field("", max_length=200)
    context_budget: int = Field(1500, ge=100, le=100_000)
    history_budget: int = Field(6000, ge=200, le=200_000)
    max_tokens: int = Field(1024, ge=16, le=32_000)
    max_audio_seconds: float = Field(30.0, ge=1, le=600)
    max_upload_bytes: int = Field(5 << 20, ge=1024, le=100 << 20)
    tts_voice: str = Field("en-us", max_length=40)
    tts_words_per_minute: int = Field(160, ge=80, le=400)
    smart_reply_model: str = Field("", max_length=200)


def _api_problem(exc: Exception) -> Problem:
    """A v1 or client error as this plugin's Problem, keeping the status and the words."""
    from api_integration_layer.errors import ApiHTTPError, ApiUnavailable

    if isinstance(exc, ApiHTTPError):
        detail = exc.detail
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
            return Problem(exc.status if exc.status < 500 else 502, ".".join(loc) or "request",
                           "; ".join(str(d.get("msg", "")) for d in detail))
        status = exc.status if exc.status in (400, 401, 403, 404, 409, 413, 422, 429, 502,
                                              503, 504) else 502
        return Problem(status, "api", str(detail))
    if isinstance(exc, PermissionError):
        return Problem(403, "scope", str(exc))
    if isinstance(exc, ApiUnavailable):
        return Problem(503, "api", f"the PlexiChat server is not reachable: {exc}")
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return Problem(422, ".".join(str(p) for p in error["loc"]) or "request", error["msg"])
    return Problem(502, "api", f"{type(exc).__name__}: {exc}")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 1)


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


# -- request bodies ---------------------------------------------------------------------
class Attachment(BaseModel):
    kind: Literal["document", "chat", "conversation", "file", "note"]
    id: str = Field(min_length=1, max_length=200)
    title: str = Field("", max_length=300)


class NewChat(BaseModel):
    title: str | None = Field(None, max_length=200)
    model: str | None = Field(None, max_length=200)
    preset: str | None = Field(None, max_length=100)


class ChatUpdate(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    model: str | None = Field(None, max_length=200)
    preset: str | None = Field(None, max_length=100)
    system_prompt: str | None = Field(None, max_length=20_000)
    temperature: float | None = Field(None, ge=0, le=2)
    use_retrieval: bool | None = None
    context_budget: int | None = Field(None, ge=0, le=100_000)
    attachments: list[Attachment] | None = Field(None, max_length=20)


class SendBody(BaseModel):
    content: str = Field("", max_length=100_000)
    regenerate: bool = False


class PresetBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    system_prompt: str = Field(max_length=20_000)
    temperature: float | None = Field(None, ge=0, le=2)
    model: str | None = Field(None, max_length=200)


class PreviewBody(BaseModel):
    question: str = Field("", max_length=100_000)
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    use_retrieval: bool = False
    budget: int = Field(1500, ge=0, le=100_000)


class SpeakBody(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)
    voice: str | None = Field(None, max_length=40)
    words_per_minute: int | None = Field(None, ge=80, le=400)
    markdown: bool = True


class MessageBody(BaseModel):
    content: str = Field(min_length=1, max_length=10_000)


class RenderBody(BaseModel):
    content: str = Field(min_length=1, max_length=1_000_000)


class NoteBody(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    content: str = Field("", max_length=1_000_000)


class SnapshotBody(BaseModel):
    label: str = Field("", max_length=200)


class AdvancedClientPlugin(Plugin):
    """Wires the store, the voice engines and the routes (see the module docstring)."""

    settings_model = ClientSettings

    async def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: ClientSettings = ctx.config
        self.store = Store(ctx.data_dir / "client.sqlite3")
        ctx.on_teardown(self.store.close)
        self.recognizer = voice.Recognizer()
        self.clips: OrderedDict[str, bytes] = OrderedDict()
        self.running: dict[str, asyncio.Event] = {}  # chat id -> stop request
        self._v1_cache: tuple[float, str, list[Doc]] | None = None
        self.hub = EventHub(maxsize=64)
        self._follower: asyncio.Task[Any] | None = None

        add = ctx.add_route
        add("/status", self.status)
        add("/models", self.models)
        add("/presets", self.presets)
        add("/presets", self.save_preset, methods=["POST"])
        add("/presets/{name}", self.delete_preset, methods=["DELETE"])
        add("/chats", self.list_chats)
        add("/chats", self.create_chat, methods=["POST"])
        add("/chats/{chat_id}", self.get_chat)
        add("/chats/{chat_id}", self.update_chat, methods=["PATCH"])
        add("/chats/{chat_id}", self.delete_chat, methods=["DELETE"])
        add("/chats/{chat_id}/send", self.send, methods=["POST"])
        add("/chats/{chat_id}/stop", self.stop, methods=["POST"])
        add("/chats/{chat_id}/export", self.export)
        add("/render", self.render, methods=["POST"])
        add("/sources", self.sources)
        add("/context/preview", self.preview, methods=["POST"])
        add("/library", self.library)
        add("/library", self.upload, methods=["POST"])
        add("/library/{doc_id}", self.delete_document, methods=["DELETE"])
        add("/messaging/conversations", self.conversations)
        add("/messaging/conversations/{user_id}", self.conversation)
        add("/messaging/conversations/{user_id}", self.send_message, methods=["POST"])
        add("/messaging/conversations/{user_id}/suggestions", self.suggestions)
        add("/voice", self.voice_status)
        add("/voice/speak", self.speak, methods=["POST"])
        add("/voice/clips/{clip_id}", self.clip)
        add("/voice/transcribe", self.transcribe, methods=["POST"])
        add("/voice/command", self.command, methods=["POST"])
        add("/notes", self.notes)
        add("/notes", self.create_note, methods=["POST"])
        add("/notes/{session_id}", self.delete_note, methods=["DELETE"])
        add("/notes/{session_id}/ticket", self.note_ticket, methods=["POST"])
        add("/notes/{session_id}/history", self.note_history)
        add("/notes/{session_id}/history", self.note_snapshot, methods=["POST"])
        add("/notes/{session_id}/history/{snapshot_id}/restore", self.note_restore,
            methods=["POST"])
        add("/notes/{session_id}/export", self.note_export)
        add("/activity", self.activity)
        add("/activity/events", self.activity_events)

    # -- helpers -------------------------------------------------------------------------
    def _api(self) -> ScopedApi:
        try:
            api: ScopedApi = self.ctx.api
        except Exception as exc:
            raise Problem(503, "api", f"the PlexiChat API is not available: {exc}") from None
        if api.user is None:
            raise Problem(409, "api", "nobody is signed in to PlexiChat; sign in on the API "
                                      "Integration page first")
        return api

    async def _v1(self, work: Awaitable[T]) -> T:
        """Await a v1 call; its errors become this plugin's Problem."""
        from api_integration_layer.errors import ApiError

        try:
            return await work
        except (ApiError, ValidationError, PermissionError) as exc:
            raise _api_problem(exc) from None

    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except NotFound as exc:
            raise Problem(404, exc.what, str(exc)) from None

    def _message_out(self, message: dict[str, Any]) -> dict[str, Any]:
        return {**message, "html": render_markdown(message["content"])}

    # -- status, models, presets ---------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        user = None
        try:
            api = self.ctx.api
            user = api.user
        except Exception:  # the layer is missing or refused us: the page says so
            api = None
        return {
            "signed_in": user is not None,
            "user": user,
            "api": api is not None,
            "voice": {"recognition": self.recognizer.available() is None,
                      "recognition_problem": self.recognizer.available(),
                      "speech": voice.espeak_path() is not None,
                      "speech_problem": None if voice.espeak_path() else
                      "espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)",
                      "commands": list(voice.COMMANDS),
                      "max_seconds": self.config.max_audio_seconds},
            "settings": {"context_budget": self.config.context_budget,
                         "history_budget": self.config.history_budget,
                         "default_model": self.config.default_model},
            "degraded": self.ctx.degraded,
        }

    async def models(self) -> Any:
        api = self._api()
        listed = await self._v1(api.ai.models())
        return {"models": [m.model_dump(mode="json") for m in listed.data],
                "default_model": self.config.default_model or listed.default_model,
                "errors": listed.errors}

    async def presets(self) -> dict[str, Any]:
        return {"presets": await self._db(self.store.presets)}

    async def save_preset(self, body: PresetBody) -> Any:
        return await self._db(self.store.save_preset, body.name.strip(), body.system_prompt,
                              body.temperature, body.model)

    async def delete_preset(self, name: str) -> Any:
        preset = await self._db(self.store.preset, name)
        if preset["builtin"]:
            raise Problem(409, "name", f"{name!r} is a built-in preset; save a copy "
                                       "under another name to change it")
        await self._db(self.store.delete_preset, name)
        return {"deleted": name}

    # -- chats ---------------------------------------------------------------------------
    async def list_chats(self, q: str = Query("", max_length=200)) -> dict[str, Any]:
        return {"chats": await self._db(self.store.chats, q.strip())}

    async def create_chat(self, body: NewChat) -> Any:
        system_prompt, temperature, model = "", None, body.model
        if body.preset:
            preset = await self._db(self.store.preset, body.preset)
            system_prompt, temperature = preset["system_prompt"], preset["temperature"]
            model = model or preset["model"]
        chat = await self._db(self.store.create_chat, body.title or "New chat",
                              model or self.config.default_model or None, body.preset,
                              system_prompt, temperature)
        await self._db(self.store.update_chat, chat["id"],
                       context_budget=self.config.context_budget)
        return await self._db(self.store.chat, chat["id"])

    async def get_chat(self, chat_id: str) -> Any:
        chat = await self._db(self.store.chat, chat_id)
        messages = await self._db(self.store.messages, chat_id)
        return {"chat": chat, "messages": [self._message_out(m) for m in messages],
                "running": chat_id in self.running}

    async def update_chat(self, chat_id: str, body: ChatUpdate) -> Any:
        fields = body.model_dump(exclude_unset=True)
        # null means "the default" for the model, preset and temperature only: for these
        # it was a 500, or (attachments) every later answer came back empty.
        for name in ("title", "system_prompt", "use_retrieval", "context_budget",
                     "attachments"):
            if name in fields and fields[name] is None:
                raise Problem(422, name, "must not be null; leave it out to keep it")
        if body.preset is not None and body.preset:
            preset = await self._db(self.store.preset, body.preset)
            fields.setdefault("system_prompt", preset["system_prompt"])
            fields.setdefault("temperature", preset["temperature"])
            if preset["model"]:
                fields.setdefault("model", preset["model"])
        if "attachments" in fields and body.attachments is not None:
            fields["attachments"] = [a.model_dump() for a in body.attachments]
        return await self._db(self.store.update_chat, chat_id, **fields)

    async def delete_chat(self, chat_id: str) -> Any:
        # Deleted first, then its answer stopped: stopped first, the answer could be
        # stored (and ended as an ordinary "done") before the delete's thread ran.
        await self._db(self.store.delete_chat, chat_id)
        stop = self.running.get(chat_id)
        if stop is not None:
            stop.set()
        return {"deleted": chat_id}

    async def stop(self, chat_id: str) -> Any:
        stop = self.running.get(chat_id)
        if stop is None:
            raise Problem(409, "chat_id", "no answer is being written in this chat")
        stop.set()
        return {"stopping": chat_id}

    async def export(self, chat_id: str,
                     format: Literal["markdown", "json"] = "markdown") -> Any:
        chat = await self._db(self.store.chat, chat_id)
        messages = await self._db(self.store.messages, chat_id)
        if format == "json":
            body, media, ext = export_json(chat, messages), "application/json", "json"
        else:
            body, media, ext = export_markdown(chat, messages), "text/markdown", "md"
        return Response(body, media_type=f"{media}; charset=utf-8",
                        headers=attachment_headers(export_filename(chat["title"], ext)))

    async def render(self, body: RenderBody) -> dict[str, str]:
        """Markdown to sanitised HTML (the page's preview of what it is about to send)."""
        return {"html": render_markdown(body.content)}

    async def send(self, chat_id: str, body: SendBody) -> Any:
        """Stream an answer as Server-Sent Events: ``user`` (the stored question),
        ``context`` (what was attached and retrieved), ``delta`` pieces, then ``done``
        with the finished message (its HTML sanitised), or ``error`` with ``retry``
        when trying again may help (a provider down or busy)."""
        chat = await self._db(self.store.chat, chat_id)
        if chat_id in self.running:
            raise Problem(409, "chat_id", "an answer is already being written in this "
                                          "chat; stop it first")
        # Taken at once, before the next await: two sends together (a double click, two
        # tabs) both got past the check and both were answered, interleaved.
        stop = self.running[chat_id] = asyncio.Event()
        try:
            return await self._start_answer(chat, chat_id, body, stop)
        except BaseException:
            self.running.pop(chat_id, None)
            raise

    async def _start_answer(self, chat: dict[str, Any], chat_id: str, body: SendBody,
                            stop: asyncio.Event) -> Any:
        history = await self._db(self.store.messages, chat_id)
        if body.regenerate:
            last_user = next((m for m in reversed(history) if m["role"] == "user"), None)
            if last_user is None:
                raise Problem(422, "regenerate", "there is no question to answer again")
            await self._db(self.store.delete_messages_from, chat_id, last_user["seq"] + 1)
            question = last_user
        else:
            if not body.content.strip():
                raise Problem(422, "content", "write a message first")
            question = await self._db(self.store.add_message, chat_id, "user",
                                      body.content)
            if chat["title"] == "New chat" and not history:
                chat = await self._db(self.store.update_chat, chat_id,
                                      title=title_from(body.content))
        api = self._api()
        history = await self._db(self.store.messages, chat_id)
        # The model is read in a task of its own, started here (not in the response's
        # generator, which the server steps from its task group and may never start when
        # the client is already gone): the upstream stream's cancel scopes must be entered
        # and left in one task, and the answer is stored (and ``running`` cleared) in
        # every case.
        queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        producer = self.ctx.create_task(
            self._produce(api, chat, history, question, stop, queue),
            name=f"advanced_client answer {chat_id}")
        return StreamingResponse(self._relay(queue, producer, stop),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    @staticmethod
    async def _relay(queue: asyncio.Queue[tuple[str, Any] | None],
                     producer: asyncio.Task[Any], stop: asyncio.Event
                     ) -> AsyncIterator[bytes]:
        """The response's side: what :meth:`_produce` finds, as SSE."""
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield _sse(*item)
        finally:
            if not producer.done():
                stop.set()  # the page went away: stop asking the model, keep the text

    async def _produce(self, api: ScopedApi, chat: dict[str, Any],
                       history: list[dict[str, Any]], question: dict[str, Any],
                       stop: asyncio.Event,
                       queue: asyncio.Queue[tuple[str, Any] | None]) -> None:
        from api_integration_layer.errors import ApiError, ApiHTTPError

        chat_id = chat["id"]
        model = chat.get("model") or self.config.default_model or None
        answer = self.store.add_message(chat_id, "assistant", "", model=model,
                                        status="writing")
        text: list[str] = []
        status, error, usage, estimated = "done", None, None, None
        finish: str | None = None
        started = time.perf_counter()
        first_ms: float | None = None
        pieces: list[ContextPiece] = []
        put = queue.put_nowait
        try:
            put(("user", self._message_out(question)))
            try:
                pieces = await self._context(api, chat, question["content"],
                                             list(chat["attachments"]),
                                             chat["use_retrieval"], chat["context_budget"])
            except Problem as exc:  # an attachment that went away: answer without it
                put(("notice", {"detail": str(exc)}))
            messages, dropped = build_messages(chat["system_prompt"], history, pieces,
                                               self.config.history_budget)
            put(("context", {"pieces": [p.to_dict() for p in pieces],
                             "history_dropped": dropped, "answer_id": answer["id"]}))
            # Stop = cancel this task: the cancellation reaches the upstream read inside
            # the client's stream, which closes its connection on the way out (the server
            # then stops generating) in this same task, as its cancel scopes require.
            me = asyncio.current_task()
            assert me is not None
            stopper = asyncio.ensure_future(stop.wait())
            stopper.add_done_callback(lambda f: None if f.cancelled() else me.cancel())
            try:
                async for delta in api.ai.chat_stream(messages, model=model,
                                                      temperature=chat.get("temperature"),
                                                      max_tokens=self.config.max_tokens):
                    if delta.usage is not None:
                        usage, estimated = delta.usage, delta.usage_estimated
                    if delta.model:
                        model = delta.model
                    if delta.finish_reason:
                        finish = delta.finish_reason
                    if delta.content:
                        if first_ms is None:
                            first_ms = (time.perf_counter() - started) * 1000
                        text.append(delta.content)
                        put(("delta", {"text": delta.content}))
            finally:
                stopper.cancel()
            if finish == "length":
                # Ended by the max_tokens cap, not by the model: shown and exported as
                # cut, so nobody takes half an answer for a whole one.
                status = "cut"
        except ApiHTTPError as exc:
            status, error = "error", f"{exc.status}: {exc.detail}"
            retry = exc.status in (429, 502, 503, 504)
            put(("error", {"status": exc.status, "detail": str(exc.detail), "retry": retry,
                           "answer_id": answer["id"]}))
        except (ApiError, PermissionError) as exc:
            status, error = "error", str(exc)
            put(("error", {"status": 403 if isinstance(exc, PermissionError) else 503,
                           "detail": str(exc), "retry": not isinstance(exc, PermissionError),
                           "answer_id": answer["id"]}))
        except asyncio.CancelledError:
            status = "stopped"  # keep what was written
            if not stop.is_set():
                raise  # the plugin is stopping, not the user: let the cancel through
        except Exception as exc:
            # Anything else (a bad attachment list...) is an error the page shows: it
            # ended as an empty answer marked done.
            self.ctx.logger.exception("answering in chat %s failed", chat_id)
            status, error = "error", f"{type(exc).__name__}: {exc}"
            put(("error", {"status": 500, "detail": error, "retry": False,
                           "answer_id": answer["id"]}))
        finally:
            self.running.pop(chat_id, None)
            try:
                self._finish(answer["id"], chat_id, "".join(text), status, error, usage,
                             estimated, started, first_ms, pieces, put)
            finally:
                put(None)  # the stream ends whatever happened: a page never waits on

    def _finish(self, answer_id: str, chat_id: str, text: str, status: str,
                error: str | None, usage: Any, estimated: Any, started: float,
                first_ms: float | None, pieces: list[ContextPiece],
                put: Any) -> None:
        """Store the answer as it ended and send it as ``done``. Synchronous on purpose:
        this also runs while the task is being cancelled, where an await would be
        interrupted and the answer left "writing"."""
        elapsed = (time.perf_counter() - started) * 1000
        try:
            finished = self.store.finish_message(
                answer_id, content=text, status=status, error=error,
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                usage_estimated=estimated, latency_ms=round(elapsed, 1),
                first_token_ms=round(first_ms, 1) if first_ms is not None else None,
                context=[p.to_dict() for p in pieces])
        except NotFound:  # the chat was deleted while its answer was written
            put(("done", {"id": answer_id, "chat_id": chat_id, "deleted": True}))
            return
        if status in ("done", "cut") and first_ms is not None:
            self.store.add_timing("first_token", first_ms)
            self.store.add_timing("answer", elapsed)
        put(("done", self._message_out(finished)))

    # -- context -------------------------------------------------------------------------
    async def _attachment_doc(self, api: ScopedApi | None, item: dict[str, Any]) -> Doc:
        kind, ident = item["kind"], item["id"]
        if kind == "document":
            doc = await self._db(self.store.document, ident)
            return Doc("document", ident, doc["name"], doc["text"])
        if kind == "chat":
            chat = await self._db(self.store.chat, ident)
            messages = await self._db(self.store.messages, ident)
            text = "\n".join(f"{m['role']}: {m['content']}" for m in messages if m["content"])
            return Doc("chat", ident, chat["title"], text)
        if api is None:
            raise Problem(409, "attachments", f"a {kind} needs a PlexiChat sign-in")
        if kind == "conversation":
            # The newest 100, oldest first: the first page in ascending order was the
            # conversation's beginning, and a question missed what was said last.
            page = await self._v1(api.messages.conversation(ident, limit=100, order="desc",
                                                            mark_read=False))
            me = (api.user or {}).get("id")
            other = page.other_user.username
            text = "\n".join(f"{'me' if m.sender_id == me else other}: {m.content}"
                             for m in reversed(page.messages) if not m.encrypted)
            return Doc("conversation", ident, f"conversation with {other}", text)
        if kind == "file":
            info = await self._v1(api.files.info(ident))
            if info.size > self.config.max_upload_bytes:
                raise Problem(413, "attachments", f"{info.filename} is larger than "
                                                  f"{self.config.max_upload_bytes} bytes")
            data = await self._v1(api.files.download(ident))
            try:
                text = extract_text(info.filename, info.content_type, data.content)
            except ValueError as exc:
                raise Problem(422, "attachments", str(exc)) from None
            return Doc("file", ident, info.filename, text)
        content = await self._v1(api.collaboration.content(ident))
        return Doc("note", ident, item.get("title") or "note", content.content)

    async def _v1_docs(self, api: ScopedApi) -> list[Doc]:
        """Your PlexiChat messages as retrieval docs (one per message), cached briefly:
        the index is rebuilt per question and the server need not be asked every time."""
        me = (api.user or {}).get("id", "")
        cached = self._v1_cache
        if cached and cached[1] == me and time.monotonic() - cached[0] < V1_CACHE_SECONDS:
            return cached[2]
        docs: list[Doc] = []
        listed = await self._v1(api.messages.conversations(limit=20))
        for summary in listed.conversations:
            page = await self._v1(api.messages.conversation(summary.user_id, limit=100,
                                                            mark_read=False))
            for message in page.messages:
                if message.encrypted or not message.content.strip():
                    continue
                who = "me" if message.sender_id == me else summary.username
                docs.append(Doc("message", summary.user_id,
                                f"{who} in the conversation with {summary.username}",
                                message.content))
        self._v1_cache = (time.monotonic(), me, docs)
        return docs

    async def _corpus(self, api: ScopedApi | None, exclude_chat: str | None) -> list[Doc]:
        docs: list[Doc] = []
        for document in await self._db(self.store.documents):
            docs += [Doc("document", document["id"], document["name"], chunk)
                     for chunk in chunk_text(document["text"])]
        for message in await self._db(self.store.all_chat_messages):
            if message["chat_id"] != exclude_chat:
                docs += [Doc("chat", message["chat_id"], message["chat_title"], chunk)
                         for chunk in chunk_text(message["content"])]
        if api is not None and api.allows("messages:read"):
            docs += await self._v1_docs(api)
        return docs

    async def _context(self, api: ScopedApi | None, chat: dict[str, Any] | None,
                       question: str, attachments: list[dict[str, Any]],
                       use_retrieval: bool, budget: int) -> list[ContextPiece]:
        if budget <= 0 or (not attachments and not use_retrieval):
            return []
        attached = [await self._attachment_doc(api, a) for a in attachments]
        hits = []
        if use_retrieval and question.strip():
            corpus = await self._corpus(api, chat["id"] if chat else None)
            index = await asyncio.to_thread(BM25, corpus)
            hits = index.search(question, limit=12)
        return assemble(attached, hits, budget)

    async def preview(self, body: PreviewBody) -> Any:
        """What a question would carry as context, without asking the model."""
        api = self._optional_api()
        pieces = await self._context(api, None, body.question,
                                     [a.model_dump() for a in body.attachments],
                                     body.use_retrieval, body.budget)
        return {"pieces": [p.to_dict() for p in pieces],
                "tokens": sum(p.tokens for p in pieces), "budget": body.budget}

    def _optional_api(self) -> ScopedApi | None:
        try:
            api: ScopedApi = self.ctx.api
        except Exception:
            return None
        return api if api.user is not None else None

    async def sources(self) -> Any:
        """What can be attached: library documents, chats, PlexiChat conversations, text
        files and notes (the last three when signed in)."""
        out: dict[str, Any] = {
            "document": [{"id": d["id"], "title": d["name"]}
                         for d in await self._db(self.store.documents)],
            "chat": [{"id": c["id"], "title": c["title"]}
                     for c in await self._db(self.store.chats)],
            "conversation": [], "file": [], "note": []}
        api = self._optional_api()
        if api is not None:
            listed = await self._v1(api.messages.conversations(limit=50))
            out["conversation"] = [{"id": c.user_id, "title": c.display_name or c.username}
                                   for c in listed.conversations]
            files = await self._v1(api.files.list(limit=100))
            out["file"] = [{"id": f.id, "title": f.filename} for f in files.files
                           if f.size <= self.config.max_upload_bytes]
            notes = await self._v1(api.collaboration.list(limit=100))
            out["note"] = [{"id": s.session_id, "title": s.title} for s in notes.sessions]
        return out

    async def library(self) -> dict[str, Any]:
        docs = await self._db(self.store.documents)
        return {"documents": [{k: d[k] for k in ("id", "name", "kind", "size", "created_at")}
                              | {"words": len(d["text"].split())} for d in docs]}

    async def upload(self, request: Request) -> Any:
        file = await self._upload_file(request)
        data = await file.read(self.config.max_upload_bytes + 1)
        if len(data) > self.config.max_upload_bytes:
            raise Problem(413, "file", f"larger than {self.config.max_upload_bytes} bytes")
        name = (file.filename or "document").rsplit("/", 1)[-1][:200]
        try:
            text = await asyncio.to_thread(extract_text, name, file.content_type, data)
        except ValueError as exc:
            raise Problem(422, "file", str(exc).split(": ", 1)[-1]) from None
        if not text.strip():
            raise Problem(422, "file", f"{name!r} holds no text (a scanned PDF?)")
        kind = "pdf" if name.lower().endswith(".pdf") else "text"
        doc = await self._db(self.store.add_document, name, kind, text, len(data))
        return {k: doc[k] for k in ("id", "name", "kind", "size", "created_at")} | {
            "words": len(text.split())}

    async def _upload_file(self, request: Request) -> StarletteUpload:
        """The multipart body's ``file``, read up to the upload limit first: an
        ``UploadFile`` parameter had the whole body spooled to disk (gigabytes, with no
        limit) before the size was looked at."""
        limit = self.config.max_upload_bytes + 64 * 1024  # the multipart framing
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise Problem(413, "file", f"larger than {self.config.max_upload_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, "file", f"larger than {self.config.max_upload_bytes} "
                                           f"bytes")
            chunks.append(chunk)
        body = b"".join(chunks)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
        except HTTPException as exc:
            raise Problem(422, "file", f"not a multipart form: {exc.detail}") from None
        file = form.get("file")
        if not isinstance(file, StarletteUpload):
            raise Problem(422, "file", "a multipart form with the document in 'file'")
        return file

    async def delete_document(self, doc_id: str) -> Any:
        await self._db(self.store.delete_document, doc_id)
        return {"deleted": doc_id}

    # -- messaging and smart replies ---------------------------------------------------
    async def conversations(self) -> Any:
        api = self._optional_api()
        if api is None:
            return {"signed_in": False, "conversations": []}
        listed = await self._v1(api.messages.conversations(limit=50))
        return {"signed_in": True,
                "conversations": [c.model_dump(mode="json") for c in listed.conversations]}

    async def conversation(self, user_id: str) -> Any:
        api = self._api()
        # The newest 50, oldest first (as a chat shows them): the first page in ascending
        # order was the conversation's beginning, and the latest messages never showed.
        page = await self._v1(api.messages.conversation(user_id, limit=50, order="desc"))
        me = (api.user or {}).get("id")
        messages = [{**m.model_dump(mode="json"), "mine": m.sender_id == me,
                     "html": render_markdown(m.content) if not m.encrypted else None}
                    for m in reversed(page.messages)]
        return {"other_user": page.other_user.model_dump(mode="json"),
                "messages": messages}

    async def send_message(self, user_id: str, body: MessageBody) -> Any:
        api = self._api()
        sent = await self._v1(api.messages.send(user_id, body.content))
        self._v1_cache = None
        return {**sent.model_dump(mode="json"), "mine": True,
                "html": render_markdown(sent.content)}

    async def _reply_model(self, api: ScopedApi) -> str | None:
        """The model smart replies ask: the setting, else the first model that is not
        deterministic (a real language model); None when there is none."""
        if self.config.smart_reply_model:
            return self.config.smart_reply_model
        try:
            listed = await api.ai.models()
        except Exception:
            return None
        for model in listed.data:
            if not model.deterministic and model.status == "available":
                return model.id
        return None

    async def suggestions(self, user_id: str) -> Any:
        api = self._api()
        page = await self._v1(api.messages.conversation(user_id, limit=20,
                                                        mark_read=False))
        me = api.user or {}
        ordered = sorted(page.messages, key=lambda m: m.timestamp)
        theirs = [m for m in ordered if m.sender_id != me.get("id") and not m.encrypted]
        if not theirs:
            return {"replies": [], "source": "rules", "model": None,
                    "label": "Smart reply", "reason": "nothing to reply to yet",
                    "replying_to": None}
        last = theirs[-1]
        result = smart.Suggestions(smart.rule_replies(last.content), "rules",
                                   reason="no language model is configured (the "
                                          "built-in provider is a set of rules)")
        model = await self._reply_model(api)
        if model is not None:
            history = [("me" if m.sender_id == me.get("id") else
                        page.other_user.username, m.content)
                       for m in ordered if not m.encrypted]
            try:
                answer = await api.ai.chat(smart.ai_prompt(history, "me"), model=model,
                                           max_tokens=120, temperature=0.7)
                replies = smart.parse_ai_replies(answer.content)
                if replies:
                    result = smart.Suggestions(replies, "ai", model=model)
                else:
                    result.reason = f"{model} gave no usable reply"
            except Exception as exc:  # any failure: the rules still help
                result.reason = f"{model} failed: {exc}"
        return {**result.to_dict(), "replying_to": {"id": last.id,
                                                    "content": last.content[:300]}}

    # -- voice ---------------------------------------------------------------------------
    async def voice_status(self) -> dict[str, Any]:
        return {"voices": await asyncio.to_thread(voice.voices),
                "default_voice": self.config.tts_voice,
                "commands": voice.COMMANDS,
                "recognition_problem": self.recognizer.available(),
                "speech_problem": None if voice.espeak_path() else
                "espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)"}

    async def _speak(self, text: str, voice_name: str | None = None,
                     wpm: int | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            data = await asyncio.to_thread(voice.speak, text, voice_name or
                                           self.config.tts_voice,
                                           wpm or self.config.tts_words_per_minute)
        except voice.SpeechUnavailable as exc:
            raise Problem(503, "voice", str(exc)) from None
        except voice.AudioProblem as exc:
            raise Problem(exc.status, "voice", str(exc).split(": ", 1)[-1]) from None
        except subprocess.TimeoutExpired:
            raise Problem(504, "voice", "espeak-ng took longer than 30 s") from None
        ms = (time.perf_counter() - started) * 1000
        await self._db(self.store.add_timing, "speak", ms)
        clip_id = uuid.uuid4().hex
        self.clips[clip_id] = data
        while len(self.clips) > CLIPS_KEPT:
            self.clips.popitem(last=False)
        seconds = max(0, len(data) - 44) / 2 / 22050
        return {"clip_url": f"api/voice/clips/{clip_id}", "clip_id": clip_id,
                "seconds": round(seconds, 2), "ms": round(ms, 1), "bytes": len(data)}

    async def speak(self, body: SpeakBody) -> Any:
        """Read ``text`` aloud: a clip URL for the page's player. Long texts are cut at
        :data:`MAX_SPOKEN` characters (about four minutes of speech, a 10 MB WAV)."""
        text = plain_text(body.text, MAX_SPOKEN) if body.markdown else body.text[:MAX_SPOKEN]
        if not text.strip():
            raise Problem(422, "text", "nothing to read aloud")

        clip = await self._speak(text, body.voice, body.words_per_minute)
        return {**clip, "truncated": len(body.text) > MAX_SPOKEN}

    async def clip(self, clip_id: str) -> Response:
        data = self.clips.get(clip_id)
        if data is None:
            raise Problem(404, "clip_id", "no such clip (clips are kept for the last 32 "
                                          "read-alouds)")
        return Response(data, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    async def _audio(self, request: Request) -> voice.Audio:
        limit = int(self.config.max_audio_seconds * 192_000 * 2 * 8) + 4096
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise Problem(413, "audio", f"{int(declared)} bytes is more than "
                                        f"{self.config.max_audio_seconds:g} s of audio")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, "audio", f"more than {limit} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
        try:
            return await asyncio.to_thread(voice.read_wav, data, self.config.max_audio_seconds)
        except voice.AudioProblem as exc:
            raise Problem(exc.status, "audio", str(exc).split(": ", 1)[-1]) from None

    async def _recognize(self, audio: voice.Audio, kind: str) -> voice.Recognition:
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(self.recognizer.recognize, audio, kind)
        except voice.SpeechUnavailable as exc:
            raise Problem(503, "voice", str(exc)) from None
        await self._db(self.store.add_timing, "recognize",
                       (time.perf_counter() - started) * 1000)
        return result

    async def transcribe(self, request: Request) -> Any:
        """Dictation: the WAV in the body as text (free text, the language model)."""
        audio = await self._audio(request)
        return (await self._recognize(audio, "dictation")).to_dict()

    async def command(self, request: Request, chat_id: str | None = Query(None)) -> Any:
        """A spoken command (WAV body) recognised with the grammar and run: the answer
        says what was heard, which command, and what the page should do next."""
        audio = await self._audio(request)
        heard = await self._recognize(audio, "commands")
        command = voice.command_of(heard.text)
        out: dict[str, Any] = {"heard": heard.to_dict(), "command": command}
        if command is None:
            out["action"] = None
            out["detail"] = (f"not understood (heard {heard.text!r})" if heard.text
                             else "nothing was understood") + "; say one of: " + \
                ", ".join(voice.COMMANDS)
            return out
        out.update(await self._run_command(command, chat_id))
        return out

    async def _run_command(self, command: str, chat_id: str | None) -> dict[str, Any]:
        if command == "new_conversation":
            chat = await self._db(self.store.create_chat, "New chat",
                                  self.config.default_model or None, None, "", None)
            await self._db(self.store.update_chat, chat["id"],
                           context_budget=self.config.context_budget)
            return {"action": "open_chat", "chat": await self._db(self.store.chat, chat["id"])}
        if command == "read_last":
            if not chat_id:
                raise Problem(422, "chat_id", "open a chat to read its last answer")
            messages = await self._db(self.store.messages, chat_id)
            last = next((m for m in reversed(messages)
                         if m["role"] == "assistant" and m["content"]), None)
            if last is None:
                raise Problem(404, "chat_id", "this chat has no answer to read yet")
            return {"action": "play", "message_id": last["id"],
                    **await self._speak(plain_text(last["content"]))}
        if command == "summarize":
            if not chat_id:
                raise Problem(422, "chat_id", "open a chat to summarise it")
            await self._db(self.store.chat, chat_id)
            return {"action": "ask", "text": "Summarize this conversation."}
        return {"action": command}  # the page's own: open a tab, stop, send, suggest

    # -- notes (v1 collaboration) --------------------------------------------------------
    async def notes(self) -> Any:
        api = self._optional_api()
        if api is None:
            return {"signed_in": False, "notes": []}
        listed = await self._v1(api.collaboration.list(limit=100))
        return {"signed_in": True,
                "notes": [s.model_dump(mode="json") for s in listed.sessions]}

    async def create_note(self, body: NoteBody) -> Any:
        api = self._api()
        made = await self._v1(api.collaboration.create(
            body.title, collaboration_type="document", initial_content=body.content))
        return made.model_dump(mode="json")

    async def delete_note(self, session_id: str) -> Any:
        api = self._api()
        await self._v1(api.collaboration.delete(session_id))
        return {"deleted": session_id}

    async def note_ticket(self, session_id: str) -> Any:
        """A single-use ticket for the note's socket, and how to show this user to the
        others (name and a colour stable per user)."""
        api = self._api()
        ticket = await self._v1(api.collaboration.ticket(session_id))
        session = await self._v1(api.collaboration.get(session_id))
        user = api.user or {}
        color = COLORS[sum(map(ord, str(user.get("id", "")))) % len(COLORS)]
        return {**ticket.model_dump(mode="json"), "title": session.title,
                "user": {"id": user.get("id"), "name": user.get("username"),
                         "color": color},
                "members": [u.model_dump(mode="json") for u in session.users]}

    async def note_history(self, session_id: str) -> Any:
        api = self._api()
        listed = await self._v1(api.collaboration.history(session_id, limit=50))
        return {"snapshots": [s.model_dump(mode="json") for s in listed.snapshots]}

    async def note_snapshot(self, session_id: str, body: SnapshotBody) -> Any:
        api = self._api()
        saved = await self._v1(api.collaboration.snapshot(session_id, body.label))
        return saved.model_dump(mode="json")

    async def note_restore(self, session_id: str, snapshot_id: str) -> Any:
        api = self._api()
        done = await self._v1(api.collaboration.restore(session_id, snapshot_id))
        return done.model_dump(mode="json")

    async def note_export(self, session_id: str) -> Any:
        api = self._api()
        content = await self._v1(api.collaboration.content(session_id,
                                                           format="markdown"))
        session = await self._v1(api.collaboration.get(session_id))
        return Response(content.content, media_type="text/markdown; charset=utf-8",
                        headers=attachment_headers(export_filename(session.title, "md")))

    # -- activity ------------------------------------------------------------------------
    async def activity_events(self) -> StreamingResponse:
        """Server-Sent Events for the activity panel: ``changed`` (with the realtime
        event's kind) whenever presence, notifications or messages change, ``live`` once
        the account's realtime socket is followed. The plugin follows that socket only
        while a page listens."""
        return self.ctx.event_stream(self._activity_stream())

    async def _activity_stream(self) -> AsyncIterator[tuple[str, Any]]:
        queue = self.hub.subscribe()
        if self._follower is None or self._follower.done():
            self._follower = self.ctx.create_task(self._follow(),
                                                  name="advanced_client activity follower")
        try:
            yield "hello", {"following": self._optional_api() is not None}
            while True:
                yield await queue.get()
        finally:
            self.hub.unsubscribe(queue)
            if not self.hub.subscriber_count and self._follower is not None:
                self._follower.cancel()

    async def _follow(self) -> None:
        """Relay the signed-in account's realtime events while a page listens; without a
        sign-in, look again every few seconds (a sign-in on the layer's page)."""
        while self.hub.subscriber_count:
            api = self._optional_api()
            if api is None or not api.allows("realtime:read"):
                await asyncio.sleep(5)
                continue
            user = (api.user or {}).get("id")
            async with api.realtime.subscribe() as subscription:
                async for event in subscription:
                    if event.type == "subscription.open":
                        self.hub.publish("live", {})
                    elif event.type in LIVE_KINDS:
                        self.hub.publish("changed", {"kind": event.type})
                    if (api.user or {}).get("id") != user or not self.hub.subscriber_count:
                        break  # signed out or someone else signed in: start again
            await asyncio.sleep(1)

    async def activity(self) -> Any:
        """Presence, notifications, the server's performance and this client's timings in
        one answer (the page asks every few seconds while it is visible)."""
        timings = await self._db(self.store.timings)
        usage = await self._db(self.store.usage_totals)
        own = {kind: {"count": len(values), "p50_ms": _percentile(values, 0.5),
                      "p95_ms": _percentile(values, 0.95),
                      "mean_ms": round(statistics.fmean(values), 1) if values else None}
               for kind, values in timings.items()}
        out: dict[str, Any] = {"signed_in": False, "client": {"timings": own, "usage": usage},
                               "online": [], "notifications": None, "server": None,
                               "problems": []}
        api = self._optional_api()
        if api is None:
            return out
        out["signed_in"] = True

        async def part(name: str, work: Awaitable[Any]) -> Any:
            try:
                return await work
            except Exception as exc:  # one failing part must not blank the panel
                out["problems"].append(f"{name}: {exc}")
                return None

        listed, notes, unread, summary = await asyncio.gather(
            part("presence", api.messages.conversations(limit=50)),
            part("notifications", api.notifications.list(limit=5)),
            part("notifications", api.notifications.unread_count()),
            part("performance", api.performance.summary()))
        if listed is not None:
            out["online"] = [{"user_id": c.user_id, "name": c.display_name or c.username,
                              "online": c.is_online, "unread": c.unread_count}
                             for c in listed.conversations]
        if notes is not None:
            out["notifications"] = {
                "unread": unread.unread_count if unread is not None else notes.unread_count,
                "latest": [{"id": n.id, "title": n.title, "message": n.message,
                            "type": n.type, "read": n.read,
                            "created_at": n.created_at.isoformat() if n.created_at else None}
                           for n in notes.notifications]}
        if summary is not None:
            out["server"] = summary.model_dump(mode="json")
        return out
