"""Running a plugin's tests in pytest children, never in the app's own process.

One run may need several children: when a test hangs past its timeout or the child dies
(segfault, ``os._exit``, killed), the test in flight is recorded as timed out or crashed
and the tests it had not reached run on in a fresh child. Each child is the leader of its
own process group, so killing it also kills whatever it forked.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plexichat_desktop.core.waiting import cancel_and_wait, within
from plexichat_desktop.testing.analytics import failure_signature
from plexichat_desktop.testing.child import (
    FORK_SERVER_FD_ENV,
    PRELOAD_ENV,
    child_command,
    fork_server_command,
    warm_command,
)
from plexichat_desktop.testing.models import (
    BAD_OUTCOMES,
    CollectedTest,
    Outcome,
    RunnerClosed,
    TestAttempt,
)
from plexichat_desktop.testing.protocol import (
    FD_ENV,
    MODE_ENV,
    NICE_ENV,
    STACKS_ENV,
    decode,
    truncate,
)
from plexichat_desktop.testing.results import final_attempt, group_attempts

log = logging.getLogger(__name__)

STDERR_TAIL = 8 * 1024
LINE_LIMIT = 16 * 1024 * 1024
DRAIN_TIMEOUT = 1.0       # reading what a dead child left in the pipe
EXIT_TIMEOUT = 5.0        # a child that reported session_end but does not exit
DUMP_GRACE = 0.3          # time for the child to write its stacks after SIGUSR1

PYTEST_CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def _is_pytest_config(path: Path) -> bool:
    """Whether pytest would take ``path`` as its config file: pytest.ini always, the others
    only with a pytest section. A file we cannot parse counts, so pytest reports it."""
    if not path.is_file():
        return False
    if path.name in ("pytest.ini", ".pytest.ini"):
        return True
    try:
        if path.name == "pyproject.toml":
            with path.open("rb") as fh:
                tool = tomllib.load(fh).get("tool", {})
            return isinstance(tool, dict) and "pytest" in tool
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path, encoding="utf-8")
        return parser.has_section("pytest" if path.name == "tox.ini" else "tool:pytest")
    except (OSError, ValueError, configparser.Error):
        return True


def plugin_pytest_config(plugin_root: Path, tests_path: str) -> Path | None:
    """The pytest config file pytest would find for the plugin's tests, looking from the
    tests folder up to the plugin folder and no further; None when the plugin has none."""
    folder = (plugin_root / tests_path).resolve()
    root = plugin_root.resolve()
    if not folder.is_dir():
        folder = folder.parent
    while True:
        for name in PYTEST_CONFIG_FILES:
            if _is_pytest_config(folder / name):
                return folder / name
        if folder == root or root not in folder.parents:
            return None
        folder = folder.parent

EventSink = Callable[[dict[str, Any]], None]



class _LineProtocol(asyncio.Protocol):
    """The child's event pipe: each complete line is handled as soon as its chunk arrives.

    Reading line by line with ``StreamReader.readline`` costs a loop round trip per line,
    which under qasync added up to ~300 ms of backlog in a 200-test run; handling a whole
    chunk in ``data_received`` keeps the GUI within a millisecond of the child.
    """

    def __init__(self, on_line: Callable[[bytes], None], limit: int = LINE_LIMIT):
        self.on_line = on_line
        self.limit = limit
        self.buffer = bytearray()
        self.eof: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._chunk: asyncio.Future[None] | None = None
        self._skipping = False

    def next_chunk(self) -> asyncio.Future[None]:
        """A future that completes when the next chunk (or EOF) arrives."""
        if self._chunk is None or self._chunk.done():
            self._chunk = asyncio.get_running_loop().create_future()
        return self._chunk

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\n")) >= 0:
            line = bytes(self.buffer[:end + 1])
            del self.buffer[:end + 1]
            if self._skipping:
                self._skipping = False  # the tail of an over-long line
                continue
            self._handle(line)
        if len(self.buffer) > self.limit:
            log.warning("a test child wrote a line over %d bytes; it was dropped", self.limit)
            self.buffer.clear()
            self._skipping = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buffer and not self._skipping:
            self._handle(bytes(self.buffer))
        self.buffer.clear()
        if not self.eof.done():
            self.eof.set_result(None)
        self._wake()

    def _handle(self, line: bytes) -> None:
        try:
            self.on_line(line)
        except Exception:  # one bad event must not cut the pipe (and the run) short
            log.exception("handling an event from a test child failed: %.200r", line)

    def _wake(self) -> None:
        if self._chunk is not None and not self._chunk.done():
            self._chunk.set_result(None)


@dataclass
class RunLimits:
    """Per-run limits. ``None`` means no limit."""

    test_timeout: float | None = 300.0
    run_timeout: float | None = None
    reruns: int = 0              # test-level reruns of failed tests
    max_restarts: int = 3        # fresh children after crashes or timeouts


@dataclass
class CollectResult:
    items: list[CollectedTest] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    stderr_tail: str = ""


@dataclass
class RunResult:
    """What one run produced: every attempt of every test, and how the children ended."""

    attempts: list[TestAttempt] = field(default_factory=list)
    collected: list[CollectedTest] = field(default_factory=list)
    collect_errors: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    infrastructure_error: str | None = None   # crash outside a test, failure to start...
    timed_out: bool = False                   # the whole-run timeout fired
    cancelled: bool = False
    # pytest said tests failed (exit code 1) in a child none of whose tests we saw fail:
    # the run must not look greener than pytest.
    unexplained_failure: str | None = None
    # The last child's pytest session ended as sessions do (not killed, not crashed).
    session_ended: bool = False
    # The test inside which a session ended (it raised KeyboardInterrupt or called
    # pytest.exit()): it ran, and it stops every session that runs it.
    stopped_in_test: str | None = None
    # Told of every attempt as it is recorded (pytest's own and those the runner makes:
    # timed out, crashed, not run, a file that did not collect), so live views see each.
    on_record: Callable[[TestAttempt], None] | None = field(default=None, repr=False)

    # Category markers by node id, from the run's collection.
    categories: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def record(self, attempt: TestAttempt) -> None:
        if not attempt.categories:
            attempt.categories = self.categories.get(attempt.nodeid, [])
        if attempt.outcome in BAD_OUTCOMES and not attempt.signature:
            attempt.signature = failure_signature(str(attempt.outcome), attempt.message,
                                                  attempt.nodeid)
        self.attempts.append(attempt)
        if self.on_record is not None:
            self.on_record(attempt)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit code {returncode}"


def _tail(path: Path, limit: int = STDERR_TAIL) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text if size <= limit else f"... [{size - limit} bytes before]\n{text}"


def _kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@dataclass
class _ChildReport:
    events: int = 0
    session_ended: bool = False
    exit_code: int | None = None
    finished: set[str] = field(default_factory=set)
    in_flight: str | None = None
    in_flight_since: float = 0.0
    killed_for: str | None = None    # "test_timeout", "run_timeout", "cancel", "exit_timeout"
    pytest_exit: int | None = None   # the exit status pytest reported at session end
    internal_error: str | None = None


MAX_WARM_DEATHS = 3
FORK_SERVER_ENV = "PLEXICHAT_FORK_SERVER"   # "0" turns the fork server off

# Words of test files whose tests start the app (the harness, the shared v1 cores, a
# Runtime): a fork server for them imports the app's stack once (see child.APP_STACK),
# ~0.9 s of CPU each such session would pay; for the others it would be a loss.
_APP_MARKERS = (b"plexichat_app", b"start_app", b"embedded_server", b"module_server",
                b"SharedServer", b"plexichat_desktop.runtime")


def tests_start_the_app(plugin_root: Path) -> bool:
    """Whether the plugin's tests (its ``tests`` folder) start the app, by their words."""
    folder = plugin_root / "tests"
    try:
        files = [p for p in folder.rglob("*.py") if "node_modules" not in p.parts]
    except OSError:
        return False
    for path in files:
        try:
            text = path.read_bytes()
        except OSError:
            continue
        if any(marker in text for marker in _APP_MARKERS):
            return True
    return False


class _ForkedProcess:
    """A pytest session forked by the fork server: what the runner needs of a process
    (pid, returncode, wait, kill), though it is the fork server's child, not ours."""

    def __init__(self, pid: int, exited: asyncio.Future[int]):
        self.pid = pid
        self._exited = exited

    @property
    def returncode(self) -> int | None:
        # Read from the future itself: a done-callback would run a turn later, and a
        # session that exited before spawn() returned (its exit read with its start)
        # was then waited for and found without a code.
        if not self._exited.done():
            return None
        return -signal.SIGKILL if self._exited.cancelled() else self._exited.result()

    async def wait(self) -> int:
        if not self._exited.done():
            try:
                await asyncio.shield(self._exited)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not self._exited.cancelled() or (current and current.cancelling()):
                    raise  # the caller's cancel, not the session's end
        code = self.returncode
        assert code is not None
        return code

    def kill(self) -> None:
        _kill_group(self.pid)


class _ForkServer:
    """One process that has paid for Python's start and pytest's imports once and forks
    a pytest session per run (see ``child.run_fork_server``): a suite starts in about a
    millisecond instead of ~150 ms, and still runs in a process (and process group) of
    its own, with the same outcomes, timeouts and crash attribution."""

    def __init__(self, proc: asyncio.subprocess.Process, control: socket.socket):
        self.proc = proc
        self.control = control
        self._ids = itertools.count(1)
        self._starting: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._early_exits: dict[int, int] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read(),
                                                              name="pytest fork server")

    @classmethod
    async def start(cls, python: str, cwd: Path, env: dict[str, str]) -> _ForkServer:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await asyncio.create_subprocess_exec(
                *fork_server_command(python), cwd=cwd,
                env={**env, FORK_SERVER_FD_ENV: str(theirs.fileno())},
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(proc, ours)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self._reader.done()

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self.control, 65536)
                if not data:
                    break
                message = json.loads(data)
                if message["event"] == "started":
                    future = self._starting.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(int(message["pid"]))
                elif message["event"] == "exited":
                    pid, code = int(message["pid"]), int(message["code"])
                    exit_future = self._exits.pop(pid, None)
                    if exit_future is None:
                        self._early_exits[pid] = code  # ended before "started" was read
                    elif not exit_future.done():
                        exit_future.set_result(code)
        except (OSError, ValueError, KeyError):
            log.warning("the pytest fork server's channel broke", exc_info=True)
        finally:
            # The server is gone: children it had started cannot be reaped by us; end
            # their groups and report them killed, so no run waits forever.
            for pid, future in list(self._exits.items()):
                _kill_group(pid)
                if not future.done():
                    future.set_result(-signal.SIGKILL)
            for future in self._starting.values():
                if not future.done():
                    future.set_exception(ConnectionError("the pytest fork server ended"))
            self._exits.clear()
            self._starting.clear()

    async def spawn(self, order: dict[str, Any], event_fd: int) -> _ForkedProcess:
        """Fork a session for ``order``; ``event_fd`` (the write end of its event pipe)
        travels with the order and is the session's own from then on."""
        loop = asyncio.get_running_loop()
        order_id = next(self._ids)
        started: asyncio.Future[int] = loop.create_future()
        self._starting[order_id] = started
        payload = json.dumps({**order, "id": order_id}).encode()
        # SOCK_SEQPACKET keeps the order in one message with its descriptor; a local
        # socket's buffer takes it at once, so the blocking send never waits.
        self.control.setblocking(True)
        try:
            socket.send_fds(self.control, [payload], [event_fd])
        finally:
            self.control.setblocking(False)
        pid = await within(started, 30)
        exited: asyncio.Future[int] = loop.create_future()
        if pid in self._early_exits:
            exited.set_result(self._early_exits.pop(pid))
        else:
            self._exits[pid] = exited
        return _ForkedProcess(pid, exited)

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            self.control.shutdown(socket.SHUT_RDWR)
        self.control.close()
        _kill_group(self.proc.pid, signal.SIGTERM)
        try:
            await within(self.proc.wait(), 2)
        except TimeoutError:
            _kill_group(self.proc.pid)
            await self.proc.wait()
        await cancel_and_wait(self._reader)


def _ignore(_line: bytes) -> None:
    pass


@dataclass
class _WarmChild:
    proc: asyncio.subprocess.Process
    read_fd: int   # our end of its event pipe


class PytestRunner:
    """Starts pytest children for one plugin folder and turns their events into attempts."""

    def __init__(self, work_dir: Path, python: str = sys.executable, warm: bool = True):
        self.work_dir = work_dir
        self.python = python
        # How far each session lowers its CPU priority (see testing/priority.py).
        self.nice = 0
        # One child kept ready with pytest imported: the next run skips interpreter start
        # and imports (about 100 ms of the ~185 ms from "run this test" to its result).
        self.warm = warm
        self._warm: _WarmChild | None = None
        self._warming: asyncio.Task[None] | None = None
        self._warm_deaths = 0
        self._closed = False
        # Set by close(): collections in flight end with it (a page's discovery would
        # otherwise hold its HTTP request, and the server's stop, for seconds).
        self._closing: asyncio.Event | None = None
        # Better still: one process with pytest imported forks each session (POSIX). The
        # warm child stays as the fallback where fork is missing or the server keeps dying.
        self.fork = (warm and hasattr(os, "fork") and hasattr(socket, "send_fds")
                     and os.environ.get(FORK_SERVER_ENV, "1") != "0")
        self._fork_server: _ForkServer | None = None
        self._fork_starting: asyncio.Task[_ForkServer] | None = None
        self._fork_deaths = 0

    def prepare(self, plugin_roots: Sequence[Path] = ()) -> None:
        """Start the fork server now (in the background), so the first run does not pay
        for Python's start and pytest's imports (nor, when the tests of one of
        ``plugin_roots`` start the app, for the app's)."""
        if self.fork and not self._closed:
            self._fork_server_task(lambda: any(map(tests_start_the_app, plugin_roots)))

    def _fork_server_task(self, app_stack: Callable[[], bool] = lambda: False
                          ) -> asyncio.Task[_ForkServer]:
        """The fork server, started if there is none; ``app_stack`` says, when it
        starts, whether it imports the app's stack (unless PRELOAD_ENV says already)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        server = self._fork_server
        if server is not None and not server.alive:
            self._fork_server = None
            self._fork_starting = None
        if self._fork_starting is None:
            env = self._base_env()
            if PRELOAD_ENV not in env and not app_stack():
                env[PRELOAD_ENV] = ""
            self._fork_starting = asyncio.get_running_loop().create_task(
                _ForkServer.start(self.python, self.work_dir, env),
                name="start pytest fork server")
        return self._fork_starting

    async def _start_forked(self, plugin_root: Path, log_path: Path, args: list[str],
                            env: dict[str, str], write_fd: int) -> _ForkedProcess | None:
        """A session forked by the fork server; None when there is none to be had."""
        if not self.fork or self._closed:
            return None
        try:
            server = self._fork_server = await self._fork_server_task(
                lambda: tests_start_the_app(plugin_root))
            order = {"cwd": str(plugin_root), "pythonpath": str(plugin_root),
                     "log": str(log_path), "env": env, "fd_env": FD_ENV, "args": args}
            return await server.spawn(order, write_fd)
        except (OSError, ConnectionError, TimeoutError) as exc:
            self._fork_deaths += 1
            if self._fork_deaths >= MAX_WARM_DEATHS:
                log.warning("the pytest fork server failed %d times (%s); runs start in "
                            "their own interpreter from now on", self._fork_deaths, exc)
                self.fork = False
            else:
                log.warning("the pytest fork server failed (%s); starting another", exc)
            stale = self._fork_server
            self._fork_server = None
            self._fork_starting = None
            if stale is not None:
                await stale.close()
            return None

    def _pytest_args(self, plugin_root: Path, run_dir: Path, targets: list[str],
                     tests_path: str) -> list[str]:
        args_file = run_dir / f"args-{time.monotonic_ns()}.txt"
        args_file.write_text("\n".join(targets) + "\n", encoding="utf-8")
        # Always name the config: left to itself, pytest climbs past the plugin folder to
        # whatever project holds it and applies that project's options (or test paths)
        # to the plugin's tests. The plugin folder is the config boundary.
        config = plugin_pytest_config(plugin_root, tests_path)
        boundary: list[str] = []
        if config is None:
            config = run_dir / "pytest.ini"
            config.write_text("[pytest]\n", encoding="utf-8")
            # pytest cuts conftest.py files at the config file's folder; this one's is our
            # run folder, which left every conftest.py above the plugin folder (but those
            # above the app's cache) loaded into the plugin's tests: a parent project's
            # fixtures and hooks, and its imports in every session. With a config of its
            # own the plugin folder is already the limit; without, it is the limit too.
            boundary = [f"--confcutdir={plugin_root}"]
        return ["-c", str(config), *boundary, "-p", "plexichat_desktop.testing.reporter",
                "-p", "no:cacheprovider", "--import-mode=importlib",
                f"--rootdir={plugin_root}", f"--basetemp={run_dir / 'tmp'}",
                "-o", "console_output_style=classic", "--continue-on-collection-errors",
                "-q", f"@{args_file}"]

    @staticmethod
    def _base_env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        env["PYTHONFAULTHANDLER"] = "1"
        env["PYTHONIOENCODING"] = "utf-8:backslashreplace"
        return env

    # -- the warm child ---------------------------------------------------------------------
    async def _spawn_warm(self) -> None:
        read_fd, write_fd = os.pipe()
        env = self._base_env()
        env[FD_ENV] = str(write_fd)
        try:
            proc = await asyncio.create_subprocess_exec(
                *warm_command(self.python), cwd=self.work_dir, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, pass_fds=(write_fd,),
                start_new_session=True)
        except BaseException as exc:
            os.close(read_fd)
            if not isinstance(exc, OSError):
                raise
            log.warning("could not start a warm pytest child; runs start cold", exc_info=True)
            self.warm = False
            return
        finally:
            os.close(write_fd)
        self._warm = _WarmChild(proc, read_fd)
        if self._closed:
            await self._drop_warm()

    def _replenish(self) -> None:
        if (self.warm and not self.fork and not self._closed and self._warm is None
                and (self._warming is None or self._warming.done())):
            self._warming = asyncio.get_running_loop().create_task(self._spawn_warm(),
                                                                    name="warm pytest child")

    async def _drop_warm(self) -> None:
        warm, self._warm = self._warm, None
        if warm is not None:
            _kill_group(warm.proc.pid)
            await warm.proc.wait()
            os.close(warm.read_fd)

    async def _start_warm(self, plugin_root: Path, log_path: Path, args: list[str],
                          env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int] | None:
        """Hand the run to the warm child; None when there is none (or it died)."""
        warm, self._warm = self._warm, None
        if warm is None:
            return None
        if warm.proc.returncode is not None:  # it died while it waited
            self._warm = warm
            await self._drop_warm()
            self._warm_deaths += 1
            if self._warm_deaths >= MAX_WARM_DEATHS:
                # Something in this environment kills it at start: stop paying for it.
                log.warning("the warm pytest child died %d times before use (exit code %s); "
                            "runs start cold from now on", self._warm_deaths,
                            warm.proc.returncode)
                self.warm = False
            return None
        order = {"cwd": str(plugin_root), "pythonpath": str(plugin_root), "log": str(log_path),
                 "env": env, "args": args}
        try:
            assert warm.proc.stdin is not None
            warm.proc.stdin.write(json.dumps(order).encode() + b"\n")
            await warm.proc.stdin.drain()
            warm.proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError, AssertionError):
            self._warm = warm
            await self._drop_warm()
            return None
        return warm.proc, warm.read_fd

    def end_collections(self) -> None:
        """End the collections under way (they raise ``RunnerClosed``); later ones run
        again. What :meth:`close` does first, for a runner lent to one user after another."""
        if self._closing is not None:
            self._closing.set()
            self._closing = None

    async def close(self) -> None:
        """End the warm child and the fork server; call when the runner is done for good."""
        self._closed = True
        self.end_collections()
        if self._fork_starting is not None:
            try:
                server: _ForkServer | None = await self._fork_starting
            except (OSError, asyncio.CancelledError):
                server = None
            if server is not None:
                await server.close()
            self._fork_starting = self._fork_server = None
        if self._warming is not None:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._warming
        await self._drop_warm()

    async def _child(self, plugin_root: Path, run_dir: Path, tests_path: str,
                     targets: list[str], mode: str,
                     on_event: Callable[[dict[str, Any], _ChildReport], None],
                     test_timeout: float | None, deadline: float | None,
                     cancel: asyncio.Event | None, log_path: Path) -> _ChildReport:
        report = _ChildReport()
        args = self._pytest_args(plugin_root, run_dir, targets, tests_path)
        per_run = {MODE_ENV: mode, STACKS_ENV: str(run_dir / "stacks.txt"),
                   NICE_ENV: str(self.nice)}
        loop = asyncio.get_running_loop()
        proc: asyncio.subprocess.Process | _ForkedProcess | None = None
        read_fd, write_fd = os.pipe()
        try:
            proc = await self._start_forked(plugin_root, log_path, args, per_run, write_fd)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the forked session has its own copy
        started: tuple[asyncio.subprocess.Process | _ForkedProcess, int] | None
        if proc is None:
            os.close(read_fd)
            started = await self._start_warm(plugin_root, log_path, args, per_run)
        else:
            started = (proc, read_fd)
        if started is not None:
            proc, read_fd = started
        else:
            read_fd, write_fd = os.pipe()
            env = {**self._base_env(), **per_run, "PYTHONPATH": str(plugin_root),
                   FD_ENV: str(write_fd)}
            try:
                with log_path.open("ab") as child_log:
                    proc = await asyncio.create_subprocess_exec(
                        *child_command(self.python), *args, cwd=plugin_root, env=env,
                        stdin=asyncio.subprocess.DEVNULL, stdout=child_log, stderr=child_log,
                        pass_fds=(write_fd,), start_new_session=True)
            except BaseException:
                os.close(read_fd)
                raise
            finally:
                os.close(write_fd)
        self._replenish()
        lines = _LineProtocol(lambda line: self._handle(line, report, on_event))
        transport, _ = await loop.connect_read_pipe(lambda: lines,
                                                    os.fdopen(read_fd, "rb", 0))
        exit_wait = asyncio.ensure_future(proc.wait())
        cancel_wait = asyncio.ensure_future(cancel.wait()) if cancel else None
        try:
            while not (report.session_ended or lines.eof.done()):
                now = time.monotonic()
                limits = []
                if test_timeout is not None and report.in_flight is not None:
                    limits.append((report.in_flight_since + test_timeout, "test_timeout"))
                if deadline is not None:
                    limits.append((deadline, "run_timeout"))
                wake_at, reason = min(limits) if limits else (None, None)
                # Woken by each chunk from the pipe, so the timeouts follow the test in
                # flight; the lines themselves were handled as the chunk arrived.
                arrived = lines.next_chunk()
                waiters: set[asyncio.Future[Any]] = {arrived, lines.eof, exit_wait}
                if cancel_wait is not None:
                    waiters.add(cancel_wait)
                done, _ = await asyncio.wait(
                    waiters, timeout=None if wake_at is None else max(0.0, wake_at - now),
                    return_when=asyncio.FIRST_COMPLETED)
                if cancel_wait is not None and cancel_wait in done:
                    report.killed_for = "cancel"
                    lines.on_line = _ignore  # the run's record ends here
                    _kill_group(proc.pid)
                    break
                if not done:
                    report.killed_for = reason
                    # The verdict is about the test in flight now: what the child still
                    # says while it dies (a test_end a moment late, the next test) must
                    # not move it to another test.
                    lines.on_line = _ignore
                    if reason == "test_timeout":
                        _kill_group(proc.pid, signal.SIGUSR1)  # stacks to the child log
                        await asyncio.sleep(DUMP_GRACE)
                    _kill_group(proc.pid)
                    break
                if exit_wait in done and not (report.session_ended or lines.eof.done()):
                    # The child exited but something it forked may still hold the pipe:
                    # take what is already there, then stop.
                    with contextlib.suppress(TimeoutError):
                        await within(asyncio.shield(lines.eof), DRAIN_TIMEOUT)
                    break
            try:
                report.exit_code = await within(asyncio.shield(exit_wait), EXIT_TIMEOUT)
            except TimeoutError:
                # Ours, not the test's: its exit code says nothing of how pytest ended.
                if report.session_ended and report.killed_for is None:
                    report.killed_for = "exit_timeout"
                    # Said where the run's details are: plain pytest would have waited
                    # (a non-daemon thread, a slow exit handler) or ended otherwise.
                    note = (f"\n[plexichat] pytest's session ended, but its process had "
                            f"not exited {EXIT_TIMEOUT:g} s later (a thread that is not a "
                            f"daemon, a slow exit handler): it was stopped; the run's "
                            f"outcome is pytest's\n")
                    with contextlib.suppress(OSError), log_path.open("a") as child_log:
                        child_log.write(note)
                    log.warning("%s: %s", plugin_root.name, note.strip())
                _kill_group(proc.pid)
                report.exit_code = await exit_wait
        finally:
            for task in (cancel_wait, exit_wait):
                if task is not None and not task.done():
                    task.cancel()
            transport.close()
            _kill_group(proc.pid)  # leftovers the test forked
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        return report

    @staticmethod
    def _handle(line: bytes, report: _ChildReport,
                on_event: Callable[[dict[str, Any], _ChildReport], None]) -> None:
        event = decode(line)
        if event is None:
            return
        report.events += 1
        kind = event["event"]
        if kind == "test_start":
            report.in_flight, report.in_flight_since = event["nodeid"], time.monotonic()
        elif kind == "test_end":
            report.finished.add(event["nodeid"])
            report.in_flight = None
        elif kind == "session_end":
            report.session_ended = True
            status = event.get("exitstatus")
            with contextlib.suppress(TypeError, ValueError):
                if status is not None:
                    report.pytest_exit = int(status)
        elif kind == "internal_error":
            report.internal_error = str(event.get("longrepr") or event.get("message") or "")
        on_event(event, report)

    # -- collection ----------------------------------------------------------------------
    async def collect(self, plugin_id: str, plugin_root: Path, tests_path: str,
                      timeout: float = 120.0, targets: list[str] | None = None
                      ) -> CollectResult:
        """What pytest would collect under ``tests_path`` (or only ``targets``, paths
        relative to the plugin folder): items and per-file errors."""
        if self._closed:
            raise RunnerClosed(f"the app is stopping: {plugin_id}'s tests were not collected")
        if self._closing is None:
            self._closing = asyncio.Event()
        result = CollectResult()
        run_dir = self._run_dir(f"collect-{plugin_id}")
        log_path = run_dir / "child.log"

        def on_event(event: dict[str, Any], _: _ChildReport) -> None:
            if event["event"] == "collected":
                result.items = [_collected(plugin_id, item) for item in event.get("items", [])]
            elif event["event"] == "collect_error":
                result.errors.append(_collect_error(event))

        try:
            report = await self._child(plugin_root, run_dir, tests_path,
                                       targets or [tests_path], "collect", on_event,
                                       None, time.monotonic() + timeout, self._closing,
                                       log_path)
            if report.killed_for == "cancel":
                # Never an empty collection: the stored one must not be replaced by it.
                raise RunnerClosed(f"the app is stopping: collecting {plugin_id}'s tests "
                                   "was stopped")
            result.exit_code = report.exit_code
            result.stderr_tail = _tail(log_path)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        verdict = _pytest_verdict(report, [], result.stderr_tail)
        if verdict is not None and verdict[0] == "error":
            result.errors.append({"nodeid": tests_path, "file": tests_path,
                                  "message": verdict[1].splitlines()[0],
                                  "longrepr": verdict[1]})
        elif not report.session_ended and not result.errors:
            result.errors.append({"nodeid": tests_path, "file": tests_path,
                                  "message": f"collection did not finish "
                                             f"({describe_exit(report.exit_code)})",
                                  "longrepr": result.stderr_tail})
        return result

    def _run_dir(self, name: str) -> Path:
        path = self.work_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- running -------------------------------------------------------------------------
    async def run(self, *, run_id: int, plugin_id: str, plugin_root: Path, tests_path: str,
                  selection: list[str] | None, limits: RunLimits,
                  emit: EventSink | None = None,
                  cancel: asyncio.Event | None = None,
                  on_record: Callable[[TestAttempt], None] | None = None) -> RunResult:
        """Run the selected tests (all under ``tests_path`` when ``selection`` is None).

        ``emit`` gets the child's protocol events as they arrive; ``on_record`` every
        attempt as it is recorded, with its attempt number."""
        result = RunResult(on_record=on_record)
        run_dir = self._run_dir(f"run-{run_id}")
        deadline = None if limits.run_timeout is None else time.monotonic() + limits.run_timeout
        emit = emit or (lambda _e: None)
        phases: dict[str, list[dict[str, Any]]] = {}
        started: dict[str, float] = {}
        order: list[str] = []
        attempt_no: dict[str, int] = {}

        def on_event(event: dict[str, Any], _: _ChildReport) -> None:
            kind = event["event"]
            if kind == "collected" and not result.collected:
                result.collected = [_collected(plugin_id, i) for i in event.get("items", [])]
                order.extend(t.nodeid for t in result.collected)
                result.categories.update({t.nodeid: t.categories for t in result.collected
                                          if t.categories})
            elif kind == "collect_error":
                error = _collect_error(event)
                result.collect_errors.append(error)
                # A file that does not import is a result of its own, as in pytest's
                # summary ("1 passed, 1 error"), not only a note on the run.
                nodeid = error["nodeid"] or error["file"] or "(collection)"
                now = time.time()
                result.record(TestAttempt(
                    run_id=run_id, plugin_id=plugin_id, nodeid=nodeid, outcome=Outcome.ERROR,
                    attempt=attempt_no.get(nodeid, 1), phase="collect",
                    message=error["message"] or "collection failed",
                    longrepr=error["longrepr"], started_at=now, finished_at=now))
            elif kind == "collect_skip":
                # A module that skipped itself while imported: one skipped result, as in
                # pytest's summary.
                nodeid = event.get("nodeid") or event.get("file") or "(collection)"
                now = time.time()
                result.record(TestAttempt(
                    run_id=run_id, plugin_id=plugin_id, nodeid=nodeid,
                    outcome=Outcome.SKIPPED, attempt=attempt_no.get(nodeid, 1),
                    phase="collect", message=event.get("message") or "skipped",
                    started_at=now, finished_at=now))
            elif kind == "test_start":
                phases[event["nodeid"]] = []
                started[event["nodeid"]] = time.time()
            elif kind == "phase":
                phases.setdefault(event["nodeid"], []).append(event)
            elif kind == "test_end":
                nodeid = event["nodeid"]
                result.record(self._attempt(
                    run_id, plugin_id, nodeid, attempt_no.get(nodeid, 1), event,
                    phases.pop(nodeid, []), started.pop(nodeid, time.time())))
            emit(event)

        try:
            await self._run_children(result, run_id, plugin_id, plugin_root, run_dir, tests_path,
                                     selection, limits, deadline, cancel, on_event, order,
                                     started, attempt_no)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        # A selection is only what was asked for: after a session that ended as sessions
        # do, what it did not collect is no test (a file without tests), not one "not run".
        self._mark_not_run(result, run_id, plugin_id,
                           None if result.session_ended else selection, order)
        return result

    async def _run_children(self, result: RunResult, run_id: int, plugin_id: str,
                            plugin_root: Path, run_dir: Path, tests_path: str,
                            selection: list[str] | None, limits: RunLimits,
                            deadline: float | None, cancel: asyncio.Event | None,
                            on_event: Callable[[dict[str, Any], _ChildReport], None],
                            order: list[str], started: dict[str, float],
                            attempt_no: dict[str, int]) -> None:
        log_path = run_dir / "child.log"
        targets = list(selection) if selection else [tests_path]
        restarts = 0
        rerun_round = 0
        round_nodes: list[str] | None = None   # the tests of this rerun round
        round_start = 0                        # where this round's attempts begin
        while True:
            if not targets:
                # A rerun round follows however the last child ended (a crash or a
                # timeout restarts the child; the failures before it still get reruns).
                failing = [a.nodeid for a in map(final_attempt,
                                                 group_attempts(result.attempts).values())
                           if a.outcome in (Outcome.FAILED, Outcome.ERROR)]
                if rerun_round >= limits.reruns or not failing:
                    break
                rerun_round += 1
                for nodeid in failing:
                    attempt_no[nodeid] = rerun_round + 1
                targets = round_nodes = failing
                round_start = len(result.attempts)
            before = len(result.attempts)
            report = await self._child(plugin_root, run_dir, tests_path, targets, "run",
                                       on_event,
                                       limits.test_timeout, deadline, cancel, log_path)
            result.exit_code = report.exit_code
            result.session_ended = report.session_ended
            if report.killed_for == "cancel":
                result.cancelled = True
                self._close_in_flight(result, run_id, plugin_id, report, Outcome.NOT_RUN,
                                      "the run was cancelled", "", started, attempt_no)
                break
            if report.session_ended:
                targets = []
                if report.in_flight is not None:
                    # The session ended inside a test (KeyboardInterrupt, pytest.exit()):
                    # it ran and did not pass; "not run" would count it as nothing.
                    result.stopped_in_test = report.in_flight
                    self._close_in_flight(
                        result, run_id, plugin_id, report, Outcome.ERROR,
                        "pytest's session ended inside this test (it raised "
                        "KeyboardInterrupt or called pytest.exit())", _tail(log_path),
                        started, attempt_no)
                verdict = _pytest_verdict(report, result.attempts[before:], _tail(log_path))
                if verdict is not None:
                    kind, text = verdict
                    if kind == "error":
                        result.infrastructure_error = text
                        break
                    result.unexplained_failure = text
            else:
                tail = _tail(log_path)
                if report.in_flight is None:
                    if report.killed_for == "run_timeout":
                        result.timed_out = True
                        break
                    # Died outside any test (start-up, collection, an internal error).
                    result.infrastructure_error = (
                        f"pytest stopped before finishing ({describe_exit(report.exit_code)})"
                        + (f":\n{tail}" if tail.strip() else ""))
                    break
                if report.killed_for in ("test_timeout", "run_timeout"):
                    stacks = _tail(run_dir / "stacks.txt", STDERR_TAIL * 4)
                    (run_dir / "stacks.txt").unlink(missing_ok=True)
                    tail = f"Stacks of the test process when it was stopped:\n{stacks}" if \
                        stacks.strip() else tail
                    limit = (limits.test_timeout if report.killed_for == "test_timeout"
                             else limits.run_timeout)
                    what = "test" if report.killed_for == "test_timeout" else "run"
                    self._close_in_flight(result, run_id, plugin_id, report, Outcome.TIMED_OUT,
                                          f"timed out: the {what} took longer than {limit:g} s",
                                          tail, started, attempt_no)
                    if report.killed_for == "run_timeout":
                        result.timed_out = True
                        break
                else:
                    self._close_in_flight(result, run_id, plugin_id, report, Outcome.CRASHED,
                                          f"the test process died while running this test "
                                          f"({describe_exit(report.exit_code)})",
                                          tail, started, attempt_no)
                restarts += 1
                done = {a.nodeid for a in result.attempts[round_start:]}
                pool = round_nodes if round_nodes is not None else (order or selection or [])
                targets = [n for n in pool if n not in done]
                if restarts > limits.max_restarts and targets:
                    result.infrastructure_error = (f"gave up after {restarts} crashes or "
                                                   "timeouts in this run")
                    break

    def _close_in_flight(self, result: RunResult, run_id: int, plugin_id: str,
                         report: _ChildReport, outcome: Outcome, message: str, tail: str,
                         started: dict[str, float], attempt_no: dict[str, int]) -> None:
        nodeid = report.in_flight
        if nodeid is None:
            return
        start = started.pop(nodeid, time.time())
        result.record(TestAttempt(
            run_id=run_id, plugin_id=plugin_id, nodeid=nodeid, outcome=outcome,
            attempt=attempt_no.get(nodeid, 1), duration=time.time() - start, phase="call",
            message=message, longrepr=truncate(tail), started_at=start,
            finished_at=time.time()))

    @staticmethod
    def _mark_not_run(result: RunResult, run_id: int, plugin_id: str,
                      selection: list[str] | None, order: list[str]) -> None:
        done = {a.nodeid for a in result.attempts}
        now = time.time()
        for nodeid in order or selection or []:
            if nodeid not in done:
                result.record(TestAttempt(
                    run_id=run_id, plugin_id=plugin_id, nodeid=nodeid, outcome=Outcome.NOT_RUN,
                    message="not run: the run ended before this test started",
                    started_at=now, finished_at=now))

    @staticmethod
    def _attempt(run_id: int, plugin_id: str, nodeid: str, attempt: int,
                 end: dict[str, Any], phases: list[dict[str, Any]], start: float
                 ) -> TestAttempt:
        def joined(key: str) -> str:
            return truncate("".join(p.get(key) or "" for p in phases))

        decided = next((p for p in phases if p.get("when") == end.get("phase")
                        and p.get("label") == end.get("label")), None)
        try:
            outcome = Outcome(end.get("outcome") or "")  # "" and unknown names: ValueError
        except ValueError:
            outcome = Outcome.ERROR
        reports = _extra_reports(phases, decided, outcome)
        message = end.get("message") or ""
        sections = [(decided or {}).get("longrepr") or ""]
        failed_subtests = [r for r in reports if r["kind"] == "subtest"
                           and r["outcome"] == "failed"]
        if failed_subtests:
            first = failed_subtests[0]
            more = len(failed_subtests) - 1
            message = (f"subtest {first['label']} failed: {first['message']}"
                       + (f" (and {more} more failed subtests)" if more else ""))
            sections = [f"--- subtest {r['label']} ---\n{r['longrepr']}"
                        for r in failed_subtests]
        sections += [f"--- error at teardown ---\n{r['longrepr']}"
                     for r in reports if r["kind"] == "teardown"]
        longrepr = "\n\n".join(part for part in sections if part)
        timings = {k: float(v) for k, v in (end.get("timings") or {}).items()
                   if isinstance(v, int | float)}
        if isinstance(end.get("cpu"), int | float):
            timings["cpu"] = float(end["cpu"])
        signature = ""
        if outcome in BAD_OUTCOMES:
            signature = failure_signature(str(outcome), message, nodeid,
                                          (decided or {}).get("exc_type"),
                                          (decided or {}).get("frames") or [])
        return TestAttempt(
            run_id=run_id, plugin_id=plugin_id, nodeid=nodeid, outcome=outcome,
            attempt=attempt, duration=float(end.get("duration") or 0.0),
            phase=end.get("phase"), message=message, longrepr=truncate(longrepr.strip()),
            stdout=joined("stdout"), stderr=joined("stderr"), log=joined("log"),
            started_at=start, finished_at=time.time(), reports=reports, timings=timings,
            signature=signature)


def _extra_reports(phases: list[dict[str, Any]], decided: dict[str, Any] | None,
                   outcome: Outcome) -> list[dict[str, Any]]:
    """Subtest results, and a teardown error after a failed call: pytest counts both in
    its summary besides the test's own outcome."""
    reports: list[dict[str, Any]] = []
    passed = 0
    for phase in phases:
        if phase.get("when") == "subtest":
            if phase.get("outcome") == "passed":
                passed += 1
                continue
            reports.append({"kind": "subtest", "label": phase.get("label") or "(<subtest>)",
                            "outcome": phase.get("outcome"), "message": phase.get("message"),
                            "longrepr": phase.get("longrepr") or ""})
        elif (phase.get("when") == "teardown" and phase.get("outcome") == "failed"
              and phase is not decided and outcome is not Outcome.ERROR):
            reports.append({"kind": "teardown", "label": None, "outcome": "error",
                            "message": phase.get("message"),
                            "longrepr": phase.get("longrepr") or ""})
    if passed:
        reports.append({"kind": "subtest", "label": None, "outcome": "passed",
                        "count": passed})
    return reports


# pytest's exit codes (pytest.ExitCode) that say the session itself went wrong.
_SESSION_FAILURES = {2: "pytest was interrupted", 3: "pytest stopped with an internal error",
                     4: "pytest refused its command line (usage error)"}


def _pytest_verdict(report: _ChildReport, attempts: list[TestAttempt], tail: str
                    ) -> tuple[str, str] | None:
    """What pytest's own exit status says that the attempts of this child do not.

    ``("error", why)`` when the session went wrong (internal error, interrupted, usage
    error), ``("failed", why)`` when pytest counted a failure none of the attempts shows;
    None when the two agree.
    """
    status = report.pytest_exit
    if report.internal_error or status in _SESSION_FAILURES:
        head = _SESSION_FAILURES.get(status or 3, "pytest stopped with an internal error")
        detail = report.internal_error or tail
        return "error", f"{head} (exit code {status}):\n{detail}".rstrip()
    if status == 1 and not any(a.outcome in BAD_OUTCOMES for a in attempts):
        return "failed", ("pytest reported failed tests (exit code 1) that no result shows; "
                          "see the run's log")
    code = report.exit_code
    if status is not None and code is not None and code != status and \
            report.killed_for is None:
        # What pytest's process ends with is what a plain run reports: an exit handler's
        # os._exit, a crash at interpreter exit (a C extension's teardown) turned a run
        # that plain pytest fails into a passed one.
        return "failed", (f"pytest finished (exit code {status}), then its process ended "
                          f"with {describe_exit(code)}: an exit handler or a crash at exit; "
                          f"plain pytest reports that. See the run's log")
    return None


def _collected(plugin_id: str, item: dict[str, Any]) -> CollectedTest:
    return CollectedTest(plugin_id=plugin_id, nodeid=item["nodeid"], file=item["file"],
                         line=item.get("line"), name=item["name"], cls=item.get("cls"),
                         categories=list(item.get("categories") or []))


def _collect_error(event: dict[str, Any]) -> dict[str, Any]:
    return {"nodeid": event.get("nodeid"), "file": event.get("file"),
            "message": event.get("message", ""), "longrepr": event.get("longrepr", "")}
