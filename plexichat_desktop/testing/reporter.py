"""Our pytest plugin, loaded in every pytest child with ``-p``.

It streams the protocol of :mod:`plexichat_desktop.testing.protocol` to the file
descriptor named by ``PLEXICHAT_REPORT_FD``, and adds the two compatibility rules of
original PlexiChat tests: a module-level ``async def test_*`` runs on a fresh asyncio loop
without any marker, and a test that returns ``{"success": False, "message": ...}`` fails
with that message (a returned dict with a true ``success`` passes).

On SIGUSR1 the child dumps every thread's stack to the file named by
``PLEXICHAT_STACKS_FILE`` (the host asks for it before it kills a test that timed out). A
file of its own, because pytest's output capture owns stderr while a test runs.

PYTEST_DONT_REWRITE: the fork server imports this module before pytest marks it for
assertion rewriting (it has no asserts to rewrite); the marker keeps pytest from warning
about it.
"""

from __future__ import annotations

import asyncio
import faulthandler
import inspect
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import pytest
from _pytest._code.code import ExceptionRepr

from plexichat_desktop.testing.priority import lower_priority
from plexichat_desktop.testing.protocol import (
    FD_ENV,
    MODE_ENV,
    NICE_ENV,
    STACKS_ENV,
    encode,
    truncate,
)

# The async plugins whose markers these rules run when the plugin is not loaded: the name
# its entry point registers it under (autoload, -p asyncio), its module's (-p module,
# pytest_plugins), and its ini settings as it defines them (name, type, default).
ASYNC_PLUGINS: dict[str, tuple[str, tuple[tuple[str, Literal["string", "bool"], Any], ...]]] = {
    "asyncio": ("pytest_asyncio.plugin", (
        ("asyncio_mode", "string", "strict"), ("asyncio_debug", "bool", False),
        ("asyncio_default_fixture_loop_scope", "string", None),
        ("asyncio_default_test_loop_scope", "string", "function"))),
    "anyio": ("anyio.pytest_plugin", (("anyio_mode", "string", "strict"),)),
    "trio": ("pytest_trio.plugin", (("trio_mode", "bool", False), ("trio_run", "string", "trio"))),
}
ASYNC_MARKERS = tuple(ASYNC_PLUGINS)
ASYNC_PLUGIN_HINT = (
    "The test manager does not autoload pytest plugins, so the plugin that runs this async "
    "fixture is not loaded here. Name it in the plugin's pytest.ini, as plain pytest then "
    "loads it too: addopts = -p asyncio (pytest-asyncio) or -p anyio.")
# The test categories of the original PlexiChat, registered so that suites run with
# --strict-markers may use them; results can be filtered and broken down by them.
CATEGORIES = {
    "functionality": "what a feature does",
    "performance": "speed and resource use",
    "security": "authentication, permissions, hostile input",
    "integration": "several parts or a real server together",
    "analytics": "figures, reports and statistics",
    "ux": "what the user sees and does",
}
FRAMES_KEPT = 3
_STACKS_KEY = pytest.StashKey[Any]()


class _Channel:
    def __init__(self, fd: int):
        self._fd = fd
        self._held: list[bytes] = []

    def send(self, event: str, **fields: Any) -> None:
        self._held.append(encode(event, **fields))
        data = b"".join(self._held)
        self._held.clear()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def hold(self, event: str, **fields: Any) -> None:
        """Queue an event for the next :meth:`send`, in order. Only for events the host
        has no use for until a later one: each write wakes the host, and sending a test's
        three phase reports made five writes of each test instead of two. What is held
        when the process dies is lost, which is why test_start and test_end are sent."""
        self._held.append(encode(event, **fields))


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message).splitlines()[0] if crash.message else ""
    text = str(longrepr).strip().splitlines()
    return text[-1] if text else ""


class Reporter:
    """Turns pytest hooks into protocol events."""

    def __init__(self, config: pytest.Config, channel: _Channel):
        self.config = config
        self.channel = channel
        self.phases: dict[str, list[dict[str, Any]]] = {}
        self.cpu_started: dict[str, float] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.channel.send("session_start", pytest_version=pytest.__version__,
                          python=sys.version.split()[0], rootdir=str(session.config.rootpath),
                          pid=os.getpid())

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.channel.send("collect_error", nodeid=report.nodeid,
                              file=report.fspath, message=_message(report),
                              longrepr=truncate(str(report.longrepr)))
        elif report.skipped:
            # A module skipped as it is imported (pytest.skip(allow_module_level=True)):
            # pytest counts it in its summary ("1 skipped"), so the results show it too.
            self.channel.send("collect_skip", nodeid=report.nodeid, file=report.fspath,
                              message=_message(report))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = []
        for item in session.items:
            path, line, _ = item.location
            cls = item.getparent(pytest.Class)
            categories = sorted({m.name for m in item.iter_markers() if m.name in CATEGORIES})
            items.append({"nodeid": item.nodeid, "file": path,
                          "line": None if line is None else line + 1, "name": item.name,
                          "cls": cls.name if cls is not None else None,
                          "categories": categories})
        self.channel.send("collected", items=items)

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]
                                ) -> None:
        self.phases[nodeid] = []
        self.cpu_started[nodeid] = time.process_time()
        self.channel.send("test_start", nodeid=nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]
                                  ) -> Any:
        report = yield
        if call.excinfo is not None:
            # Structured, so failures can be grouped by where they happened in the
            # plugin's own code, whatever the traceback style.
            report.plexichat_exc = {"type": call.excinfo.typename,
                                    "frames": self._frames(call.excinfo)}
            self._hint_unloaded_async_plugin(report, call.excinfo)
        return report

    def _hint_unloaded_async_plugin(self, report: pytest.TestReport, excinfo: Any) -> None:
        """pytest's error for an async fixture nobody handles, with what to do about it
        here: plain pytest autoloads pytest-asyncio (or anyio) and passes the test, the
        manager loads only the plugins a suite's config names."""
        longrepr = report.longrepr
        if ("requested an async fixture" not in str(excinfo.value)
                or any(async_plugin_loaded(self.config.pluginmanager, name)
                       for name in ASYNC_MARKERS)
                or not isinstance(longrepr, ExceptionRepr)):
            return
        longrepr.addsection("PlexiChat test manager", ASYNC_PLUGIN_HINT)

    def _frames(self, excinfo: Any) -> list[dict[str, Any]]:
        root = self.config.rootpath
        frames = []
        try:
            entries = list(excinfo.traceback)
        except Exception:
            return []
        for entry in reversed(entries):
            try:
                path = Path(entry.path)
                relative = path.relative_to(root)
            except (TypeError, ValueError):
                continue  # outside the plugin: pytest, the standard library, packages
            frames.append({"path": relative.as_posix(), "func": entry.name,
                           "line": entry.lineno + 1})
            if len(frames) == FRAMES_KEPT:
                break
        return frames

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        category, _, _ = self.config.hook.pytest_report_teststatus(report=report,
                                                                   config=self.config)
        sections = dict(report.sections)
        subtest = _subtest_label(report)
        exc = getattr(report, "plexichat_exc", None) or {}
        phase = {
            "nodeid": report.nodeid, "when": "subtest" if subtest is not None else report.when,
            "label": subtest, "outcome": report.outcome, "exc_type": exc.get("type"),
            "frames": exc.get("frames", []),
            "category": category, "duration": report.duration, "message": _message(report),
            "longrepr": truncate(str(report.longrepr)) if report.longrepr else "",
            "stdout": truncate(sections.get(f"Captured stdout {report.when}", "")),
            "stderr": truncate(sections.get(f"Captured stderr {report.when}", "")),
            "log": truncate(sections.get(f"Captured log {report.when}", "")),
        }
        self.phases.setdefault(report.nodeid, []).append(phase)
        # The host reads a test's phases when its test_end arrives, and a test that dies
        # or times out is judged without them.
        self.channel.hold("phase", **phase)

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]
                                 ) -> None:
        phases = self.phases.pop(nodeid, [])
        cpu = time.process_time() - self.cpu_started.pop(nodeid, time.process_time())
        outcome, decided = final_outcome(phases)
        self.channel.send("test_end", nodeid=nodeid, outcome=outcome,
                          duration=sum(p["duration"] for p in phases
                                       if p["when"] != "subtest"),
                          timings={p["when"]: round(p["duration"], 6) for p in phases
                                   if p["when"] != "subtest"},
                          cpu=round(cpu, 6),
                          message=decided["message"] if decided else "",
                          phase=decided["when"] if decided else None,
                          label=decided.get("label") if decided else None)

    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        # pytest stops the session after this; without it the host would only see tests
        # that never ran and could not tell a broken suite from an empty one.
        self.channel.send("internal_error", longrepr=truncate(str(excrepr)),
                          message=_first_line(excinfo))

    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str,
                                location: Any) -> None:
        self.channel.send("warning", message=truncate(str(warning_message.message), 4096),
                          category=warning_message.category.__name__,
                          filename=warning_message.filename, lineno=warning_message.lineno,
                          nodeid=nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # The session's status as the hooks before this one left it (a conftest's
        # sessionfinish may fail the session: a leak check), which is what pytest exits
        # with; the argument is the status from before them (a run said passed, exit 0).
        final = getattr(session, "exitstatus", exitstatus)
        self.channel.send("session_end", exitstatus=int(final))


def _subtest_label(report: pytest.TestReport) -> str | None:
    """The label pytest prints for a subtest report (``(i=1)``, ``[msg] (i=1)``), or None
    for an ordinary phase report."""
    describe = getattr(report, "_sub_test_description", None)
    if getattr(report, "context", None) is None or not callable(describe):
        return None
    try:
        return str(describe())
    except Exception:
        return "(<subtest>)"


def _first_line(excinfo: Any) -> str:
    try:
        text = str(excinfo.exconly()).strip()
    except Exception:
        return "internal error"
    return text.splitlines()[0] if text else "internal error"


def final_outcome(phases: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    """A test's outcome from its phase reports, the way pytest's summary counts them:
    a failing setup or teardown is an error, otherwise the call decides, and a test with a
    failed subtest failed (whatever its own call report says: pytest counts the subtest's
    failure and exits 1)."""
    by_when = {p["when"]: p for p in phases if p["when"] != "subtest"}
    setup, call, teardown = (by_when.get(w) for w in ("setup", "call", "teardown"))
    if setup is not None and setup["outcome"] != "passed":
        return setup["category"] or setup["outcome"], setup
    failed_subtest = next((p for p in phases
                           if p["when"] == "subtest" and p["outcome"] == "failed"), None)
    if failed_subtest is not None:
        return "failed", failed_subtest
    teardown_failed = teardown is not None and teardown["outcome"] == "failed"
    if call is not None and (call["category"] != "passed" or not teardown_failed):
        return call["category"] or call["outcome"], call
    if teardown_failed:
        return "error", teardown
    return ("passed", call) if call is not None else ("error", None)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Call the test function ourselves so that plain ``async def`` tests run and a
    returned result dict counts. A test marked for an async plugin (asyncio, anyio, trio)
    is left to that plugin when it is loaded, else run on a fresh asyncio loop.
    Everything else behaves as in pytest's own hook."""
    function = pyfuncitem.obj
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        return None  # pytest's own hook fails these; so must we (an async generator passed)
    is_async = inspect.iscoroutinefunction(function)
    if is_async and any(any(pyfuncitem.iter_markers(name))
                        and async_plugin_loaded(pyfuncitem.config.pluginmanager, name)
                        for name in ASYNC_MARKERS):
        return None  # the async plugin this test asked for is loaded: it runs the test
    funcargs = pyfuncitem.funcargs
    kwargs = {arg: funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames}
    result = asyncio.run(function(**kwargs)) if is_async else function(**kwargs)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        pytest.fail("async def functions are not natively supported", pytrace=False)
    if isinstance(result, dict) and "success" in result:
        # Original PlexiChat tests report through a returned dict instead of asserts.
        if not result["success"]:
            message = result.get("message") or result.get("error") or "success is false"
            pytest.fail(str(message), pytrace=False)
    elif result is not None:
        warnings.warn(pytest.PytestReturnNotNoneWarning(
            f"Test functions should return None, but {pyfuncitem.nodeid} returned "
            f"{type(result)!r}."), stacklevel=1)
    return True


def async_plugin_loaded(pluginmanager: pytest.PytestPluginManager, name: str) -> bool:
    """Whether the async plugin ``name`` (a key of ASYNC_PLUGINS) is loaded, under its
    entry point's name or its module's."""
    return pluginmanager.has_plugin(name) or pluginmanager.has_plugin(ASYNC_PLUGINS[name][0])


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # The async plugins' ini settings stay known keys without their plugin (the manager
    # does not autoload pytest-asyncio): unknown, a pytest.ini that sets one (the loop
    # scope that quiets pytest-asyncio's warning in plain pytest) was a usage error under
    # --strict-config and a warning without, where plain pytest with the plugin has
    # neither. With the plugin's own types and defaults, whichever of the two registers
    # last, nothing changes. pytest checks the keys after collection, so the harness's
    # loading this module at configure time is early enough.
    for name, (_module, settings) in ASYNC_PLUGINS.items():
        if not async_plugin_loaded(pluginmanager, name):
            for key, kind, default in settings:
                parser.addini(key, f"a setting of the {name} pytest plugin (not loaded: the "
                              "test manager runs async tests on a fresh loop)", type=kind,
                              default=default)


def pytest_configure(config: pytest.Config) -> None:
    for name, what in CATEGORIES.items():
        config.addinivalue_line("markers", f"{name}: test category: {what}")
    for name in ASYNC_MARKERS:
        # Without its plugin (the manager does not autoload pytest-asyncio) the marker is
        # still one these rules run; unknown, it failed every file using it under
        # --strict-markers, where plain pytest with the plugin passes.
        if not async_plugin_loaded(config.pluginmanager, name):
            config.addinivalue_line("markers", f"{name}: run on a fresh asyncio loop (the "
                                    f"{name} plugin is not loaded)")
    fd = os.environ.get(FD_ENV)
    if fd is None:
        return  # loaded outside the host (a plain pytest run): only the compat rules apply
    # Every way the runner starts a session (forked, warm, cold) loads this plugin: here
    # all of them lower their priority, before collection and the tests. The value leaves
    # the environment: a pytest run again in this process (pytester) or a child loading
    # this plugin must not lower it a second time (os.nice adds up).
    lower_priority(int(os.environ.pop(NICE_ENV, None) or 0))
    stacks = os.environ.get(STACKS_ENV)
    if stacks and hasattr(signal, "SIGUSR1"):
        # Kept open for the life of the process: faulthandler writes to its fd.
        config.stash[_STACKS_KEY] = open(stacks, "a", encoding="utf-8")  # noqa: SIM115
        faulthandler.register(signal.SIGUSR1, file=config.stash[_STACKS_KEY], all_threads=True)
    channel = _Channel(int(fd))
    config.pluginmanager.register(Reporter(config, channel), "plexichat-reporter")
    if os.environ.get(MODE_ENV) == "collect":
        config.option.collectonly = True
