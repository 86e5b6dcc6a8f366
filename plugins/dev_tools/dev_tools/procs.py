"""Running programs for the workspace: argument lists only, never a shell.

Every child starts in a session (and so a process group) of its own, so cancelling
kills what the task started too (``make`` -> ``sh`` -> ``pytest`` -> workers), not only
the first process. Output is merged (stderr into stdout, in the order it was written)
and kept within a byte cap: the head and the tail survive, the middle is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Seconds a cancelled child gets between SIGTERM and SIGKILL to clean up.
TERM_GRACE = 2.0
CHUNK = 65536


# Terminal control sequences (colours, cursor moves, titles, character sets) that a task
# writes although NO_COLOR is set (FORCE_COLOR, --color=yes): "[32m" noise in the page.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]+[0-~]|[0-~])")
_ANSI_START = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/]*)?\Z")
# An unfinished sequence longer than this is no sequence (an "ESC ]" never closed would
# otherwise hold back everything after it).
_LONGEST = 256


def strip_ansi(text: str) -> tuple[str, str]:
    """``text`` without terminal control sequences, and an unfinished one at its end (to
    put before the next chunk: a sequence can be split between two reads)."""
    pending = ""
    start = _ANSI_START.search(text, max(0, len(text) - _LONGEST))
    if start is not None:
        text, pending = text[:start.start()], text[start.start():]
    return _ANSI.sub("", text).replace("\x1b", ""), pending


class OutputBuffer:
    """Keeps at most ``cap`` bytes of text: the first half and the last half.

    What falls in between is counted, so the page can say "1.2 MB not shown" instead of
    holding a build log of gigabytes in memory.
    """

    def __init__(self, cap: int):
        self.cap = max(1024, cap)
        self._head: list[str] = []
        self._head_bytes = 0
        self._tail: deque[str] = deque()
        self._tail_bytes = 0
        self.dropped_bytes = 0
        self.total_bytes = 0

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    def add(self, text: str) -> str:
        """Store ``text``; returns the part that went to the head (to stream live)."""
        size = len(text.encode("utf-8", "replace"))
        self.total_bytes += size
        half = self.cap // 2
        if self._head_bytes < half and not self._tail:
            room = half - self._head_bytes
            if size <= room:
                self._head.append(text)
                self._head_bytes += size
                return text
            part = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            self._head.append(part)
            self._head_bytes = half
            text = text[len(part):]
            size = len(text.encode("utf-8", "replace"))
            shown = part
        else:
            shown = ""
        self._tail.append(text)
        self._tail_bytes += size
        while self._tail_bytes > half and len(self._tail) > 1:
            gone = self._tail.popleft()
            gone_bytes = len(gone.encode("utf-8", "replace"))
            self._tail_bytes -= gone_bytes
            self.dropped_bytes += gone_bytes
        if self._tail_bytes > half:  # one huge chunk: keep its end
            only = self._tail.pop().encode("utf-8", "replace")
            self.dropped_bytes += len(only) - half
            self._tail.append(only[-half:].decode("utf-8", "ignore"))
            self._tail_bytes = half
        return shown

    @property
    def head(self) -> str:
        return "".join(self._head)

    @property
    def tail(self) -> str:
        return "".join(self._tail)

    def text(self) -> str:
        """Everything kept, with a marker where the middle was dropped."""
        if not self.truncated:
            return self.head + self.tail
        return (f"{self.head}\n… {self.dropped_bytes} bytes of output not kept "
                f"(output cap {self.cap} bytes) …\n{self.tail}")


@dataclass
class ProcResult:
    argv: list[str]
    exit_code: int | None
    output: str
    truncated: bool = False
    total_bytes: int = 0
    cancelled: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The app's environment for children, without what makes tools interactive."""
    env = dict(os.environ)
    # A pager or a credential prompt would hang a child that has no terminal.
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "PAGER": "cat",
                "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("PYTEST_ADDOPTS", None)
    if extra:
        env.update(extra)
    return env


def kill_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal the child's whole process group (it leads one: start_new_session)."""
    # Sent even when the leader has exited: its group may still hold children.
    try:
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


async def run(argv: Sequence[str], cwd: Path, *, cap: int = 1_000_000,
              env: Mapping[str, str] | None = None, stdin: bytes | None = None,
              on_output: Callable[[str], None] | None = None,
              timeout: float | None = None, buffer: OutputBuffer | None = None) -> ProcResult:
    """Run ``argv`` (a list: no shell ever parses it) in ``cwd``; output merged and capped.

    Cancelling the awaiting task terminates the child's process group (SIGTERM, then
    SIGKILL after :data:`TERM_GRACE`) before the ``CancelledError`` goes on (pass
    ``buffer`` to keep the output seen until then). A timeout does the same and returns
    with ``exit_code`` None.
    """
    args = [str(a) for a in argv]
    for index, arg in enumerate(args):
        if "\x00" in arg:
            raise ValueError(f"argument {index} contains a NUL character")
    spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *args, cwd=str(cwd), env=dict(env) if env is not None else child_env(),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=os.name == "posix"))
    try:
        proc = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        # Cancelled while asyncio still connected the child's pipes (a Cancel clicked at
        # once, a loaded machine): the child runs already, and asyncio would kill it alone
        # and then wait for its pipes, which whatever it started holds (for minutes).
        await asyncio.shield(_stop_once_started(spawn))
        raise
    out = buffer if buffer is not None else OutputBuffer(cap)

    async def pump() -> None:
        assert proc.stdout is not None
        if stdin is not None and proc.stdin is not None:
            proc.stdin.write(stdin)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.drain()
            proc.stdin.close()
        decoder_tail = b""
        while True:
            chunk = await proc.stdout.read(CHUNK)
            if not chunk:
                break
            data = decoder_tail + chunk
            # Do not split a UTF-8 sequence between two chunks.
            cut = len(data)
            while cut > 0 and cut > len(data) - 4 and (data[cut - 1] & 0xC0) == 0x80:
                cut -= 1
            if cut > 0 and data[cut - 1] >= 0xC0:
                cut -= 1
            text, decoder_tail = data[:cut].decode("utf-8", "replace"), data[cut:]
            text, pending = strip_ansi(text)
            decoder_tail = pending.encode("utf-8") + decoder_tail
            shown = out.add(text)
            if shown and on_output is not None:
                on_output(shown)
        if decoder_tail:
            shown = out.add(strip_ansi(decoder_tail.decode("utf-8", "replace"))[0])
            if shown and on_output is not None:
                on_output(shown)
        await proc.wait()

    timed_out = False
    try:
        if timeout is None:
            await pump()
        else:
            try:
                await asyncio.wait_for(pump(), timeout)
            except TimeoutError:
                timed_out = True
                await _stop(proc)
    except asyncio.CancelledError:
        await asyncio.shield(_stop(proc))
        raise
    finally:
        if proc.returncode is None:
            await asyncio.shield(_stop(proc))
    result = ProcResult(args, None if timed_out else proc.returncode, out.text(),
                        out.truncated, out.total_bytes)
    if timed_out:
        result.output += f"\n… stopped after {timeout:g} s …"
    return result


async def _stop_once_started(spawn: asyncio.Future[asyncio.subprocess.Process]) -> None:
    try:
        proc = await spawn
    except Exception:
        return  # it never started
    await _stop(proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    kill_group(proc, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), TERM_GRACE)
    # SIGKILL the group even when the leader obeyed: a child that ignores SIGTERM (or was
    # still starting) would otherwise outlive the cancel.
    if os.name == "posix":
        kill_group(proc, signal.SIGKILL)
    elif proc.returncode is None:
        proc.kill()
    with contextlib.suppress(ProcessLookupError):
        await proc.wait()
