"""How a pytest child is started, from a source install and from the frozen bundle.

A source install runs ``<python> -m pytest``. A frozen bundle (PyInstaller) has no
``python`` to run: its own executable doubles as the pytest child when its first argument
is :data:`PYTEST_CHILD_FLAG`, so plugin tests run the same way from the desktop bundle.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

PYTEST_CHILD_FLAG = "--pytest-child"
REPORTER_MODULE = "plexichat_desktop.testing.reporter"   # loaded with -p in every child


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def child_command(python: str) -> list[str]:
    """The command line up to pytest's own arguments."""
    if is_frozen():
        return [sys.executable, PYTEST_CHILD_FLAG]
    return [python, "-m", "pytest"]


def run_pytest_child(argv: list[str]) -> int:
    """Be the pytest child inside a frozen bundle: ``PYTHONPATH`` (the plugin folder) is
    not read by the bundle's bootloader, so it is put on ``sys.path`` here."""
    for entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    import pytest

    return int(pytest.main(argv))


# Interpreter options that may come before -c/-m (multiprocessing passes some); the bundle
# cannot honour them, and none changes what the code does. Those taking a value: -X, -W.
_FLAGS = {"-B", "-E", "-I", "-O", "-OO", "-P", "-q", "-s", "-S", "-u", "-b", "-bb", "-d", "-v"}
_FLAGS_WITH_VALUE = {"-X", "-W"}


def interpreter_args(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """``(flag, target, rest)`` when ``argv`` reads like ``python [options] -c CODE ...``
    or ``python [options] -m MODULE ...``; None otherwise."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "-m") and i + 1 < len(argv):
            return arg, argv[i + 1], argv[i + 2:]
        if arg in _FLAGS_WITH_VALUE:
            i += 2
        elif arg in _FLAGS or (arg[:2] in _FLAGS_WITH_VALUE and len(arg) > 2):
            i += 1
        else:
            return None
    return None


def run_as_interpreter(argv: list[str]) -> int:
    """Be ``python [options] -c CODE ...`` or ``python [options] -m MODULE ...`` inside a
    frozen bundle.

    Tests often start helper processes with ``[sys.executable, "-c", ...]``; in the bundle
    ``sys.executable`` is the app, so the app answers those forms like Python would.
    """
    parsed = interpreter_args(argv)
    if parsed is None:
        raise SystemExit(f"not an interpreter command line: {argv!r}")
    flag, target, rest = parsed
    if flag == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    else:
        import runpy

        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    return 0


WARM_CHILD_FLAG = "--pytest-warm"


# Modules every session imports whatever it runs, so a fork server or warm child imports
# them once instead: asyncio for our reporter (~25 ms of CPU, a fifth of a small suite's
# session), pdb and argcomplete for pytest's debugging plugin and its parser, readline
# (~2 ms with the page faults of loading its libraries), which pytest's capture plugin
# imports before it replaces the standard streams so that it binds to the real ones:
# the C streams of fds 0 and 1, the same objects in the server and in every session.
_SESSION_MODULES = ("asyncio", "pdb", "_pytest._argcomplete", "readline", REPORTER_MODULE)


def _import_pytest() -> None:
    """The slow imports, done ahead of any order: pytest, every built-in plugin module it
    would import while configuring a session (~50 ms of each session otherwise) and what
    each session imports besides (:data:`_SESSION_MODULES`). Our reporter plugin among
    them: pytest loads it with -p and warns that an already imported module cannot be
    rewritten (an error for suites that turn warnings into errors), which its
    PYTEST_DONT_REWRITE docstring marker stops."""
    import importlib

    import _pytest.assertion.rewrite
    import _pytest.python  # noqa: F401
    import pytest  # noqa: F401
    from _pytest.config import default_plugins, essential_plugins

    for name in (*essential_plugins, *default_plugins):
        with contextlib.suppress(ImportError):
            importlib.import_module(f"_pytest.{name}")
    for name in _SESSION_MODULES:
        # Only ahead of time: a module missing here (a bundle built without it) fails
        # the session that needs it, as it would have without the server.
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def warm_command(python: str) -> list[str]:
    """A child that imports pytest now and runs one session when told what to run."""
    if is_frozen():
        return [sys.executable, WARM_CHILD_FLAG]
    return [python, "-m", "plexichat_desktop.testing.child"]


def run_warm_child() -> int:
    """Import pytest, then wait for one JSON line on stdin and be that pytest session.

    The line holds ``cwd``, ``pythonpath``, ``env`` (added to the environment), ``log``
    (where stdout and stderr go from then on) and ``args``. EOF instead of a line (the
    app went away) ends the child quietly.
    """
    import faulthandler
    import json

    import pytest

    _import_pytest()
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    faulthandler.enable()
    # Started with ``-m`` in the runner's work dir, which Python put first on sys.path; a
    # cold child has the plugin folder there instead.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    os.chdir(order["cwd"])
    os.environ.update(order["env"])
    os.environ["PYTHONPATH"] = order["pythonpath"]
    sys.path.insert(0, order["pythonpath"])
    return int(pytest.main(order["args"]))


FORK_SERVER_FLAG = "--pytest-fork-server"
FORK_SERVER_FD_ENV = "PLEXICHAT_FORK_SERVER_FD"
# Comma-separated modules the fork server imports instead of APP_STACK ("" for none).
PRELOAD_ENV = "PLEXICHAT_FORK_SERVER_PRELOAD"

# The app's stack as a core start in a test imports it (the runtime, the host and v1
# apps, uvicorn's protocols, httpx): ~0.9 s of CPU that every suite starting a core (14 of
# the 15 bundled ones) would pay again in its session. Imported by the fork server only
# when that changes no outcome; see _preload.
APP_STACK = ("plexichat_desktop.runtime", "plexichat_desktop.server.app",
             "plexichat_desktop.server.web_server", "plexichat_desktop.server.v1.service",
             "plexichat_desktop.server.v1.app", "httpx", "uvicorn.protocols.http.h11_impl",
             "uvicorn.protocols.http.auto", "uvicorn.protocols.websockets.auto",
             "uvicorn.protocols.websockets.websockets_sansio_impl", "uvicorn.lifespan.on",
             "uvicorn.lifespan.off", "uvicorn.loops.auto", "uvicorn.loops.asyncio")


def _preload_list() -> list[str]:
    raw = os.environ.get(PRELOAD_ENV)
    if raw is None:
        return list(APP_STACK)
    return [name.strip() for name in raw.split(",") if name.strip()]


def _preload(modules: Sequence[str]) -> set[str] | None:
    """Import ``modules`` in the fork server; the top-level names that brought into
    ``sys.modules``, or None when the server must start again without them.

    A session would otherwise import them itself, and some outcomes depend on that
    import happening inside the session: a warning it raises is an error under a suite's
    ``filterwarnings = error`` (the websockets package warns when uvicorn's legacy
    protocol imports it) and must stay one; a module that fails to import, or starts a
    thread (which a fork would not carry over), is no better. Any of these: None."""
    import importlib
    import threading
    import warnings

    if not modules:
        return set()
    before = set(sys.modules)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for name in modules:
                importlib.import_module(name)
    except Exception:
        return None
    if caught or threading.active_count() > 1:
        return None
    return {name.partition(".")[0] for name in set(sys.modules) - before}


def _shadows(folder: str, names: set[str]) -> bool:
    """Whether ``folder`` (a session's plugin folder, first on its ``sys.path``) holds a
    module or package of one of the top-level ``names``: plain pytest would import the
    folder's, a session of the fork server already has the other."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return False
    for entry in entries:
        stem, dot, suffix = entry.partition(".")
        if stem in names and (not dot or suffix == "py" or suffix.endswith(".so")
                              or suffix == "pyc"):
            return True
    return False


def fork_server_command(python: str) -> list[str]:
    """A process that imports pytest once and forks one pytest session per order."""
    if is_frozen():
        return [sys.executable, FORK_SERVER_FLAG]
    return [python, "-m", "plexichat_desktop.testing.child", FORK_SERVER_FLAG]


# What pytest.main()'s first step, get_config(), depends on besides the process: the
# "-p no:NAME" options among the arguments (the runner gives every session this one).
_PREBUILT_BLOCKS = ["no:cacheprovider"]
_PREBUILT_BLOCKS_ARGS = [arg for block in _PREBUILT_BLOCKS for arg in ("-p", block)]
_PROG = "pytest.main()"   # what pytest.main() tells get_config() it is


def _blocks(args: Sequence[str]) -> list[str]:
    """The ``-p no:NAME`` options of ``args``, read the way pytest's
    ``PytestPluginManager.consider_preparse`` reads them."""
    found = []
    i = 0
    while i < len(args):
        opt = args[i]
        i += 1
        if opt == "-p":
            if i == len(args):
                break
            value = args[i]
            i += 1
        elif opt.startswith("-p"):
            value = opt[2:]
        else:
            continue
        if value.strip().startswith("no:"):
            found.append(value.strip())
    return found


def _prebuild_config() -> Callable[[], None] | None:
    """Build, in the fork server, the Config that pytest.main() would start each session
    with (a plugin manager with pytest's built-in plugins imported and registered, and the
    option parser they fill in: ~10 ms of every session). Returns what a forked session
    calls to have its pytest.main() take its copy, once; pytest builds its own when the
    session's arguments block other plugins. None when it cannot be built here."""
    if os.environ.get("PYTEST_DEBUG"):
        return None  # pytest would trace to the server's stderr
    try:
        import _pytest.config as config_module
        from _pytest.config import Config

        prebuilt = config_module.get_config(list(_PREBUILT_BLOCKS_ARGS), None, prog=_PROG)
    except Exception:
        return None
    real = config_module.get_config

    def offer() -> None:
        def get_config(args: Any = None, plugins: Any = None, *, prog: str | None = None
                       ) -> Config:
            config_module.get_config = real  # for the session's first call only
            args = None if args is None else list(args)
            if (args is not None and plugins is None and prog == _PROG
                    and _blocks(args) == _PREBUILT_BLOCKS):
                # The one thing get_config() takes from the process: where it runs.
                prebuilt.invocation_params = Config.InvocationParams(
                    args=args, plugins=None, dir=Path.cwd())
                return prebuilt
            return real(args, plugins, prog=prog)

        config_module.get_config = get_config

    _parse_plugins_ahead(prebuilt)
    _remember_entry_points(prebuilt.pluginmanager)
    return offer


def _namespaces(holder: object) -> list[tuple[Mapping[str, object], dict[str, object]]]:
    """What pytest's fixture parsing reads of ``holder`` (a module's namespace, or the
    dicts along a class's MRO), each with a copy to compare against later."""
    import types

    if isinstance(holder, types.ModuleType):
        return [(holder.__dict__, dict(holder.__dict__))]
    assert isinstance(holder, type)
    return [(cls.__dict__, dict(cls.__dict__)) for cls in holder.__mro__]


def _changes(holder: object, snapshot: list[tuple[Mapping[str, object], dict[str, object]]]
             ) -> dict[str, object]:
    """The names whose entry differs from ``snapshot`` (added, replaced or removed), each
    with the entry the fixture parsing would read now (the first along the MRO)."""
    changed: set[str] = set()
    for live, seen in snapshot:
        if len(live) == len(seen) and all(live.get(k, _MISSING) is v
                                          for k, v in seen.items()):
            continue
        changed.update(k for k in live.keys() | seen.keys()
                       if live.get(k, _MISSING) is not seen.get(k, _MISSING))
    now: dict[str, object] = {}
    for name in changed:
        for live, _ in snapshot:
            if name in live:
                now[name] = live[name]
                break
    return now


_MISSING = object()

# Classes whose instances every session registers as plugins (pytest's session,
# reporters, capture and logging managers, ours), by module and name.
_SESSION_PLUGIN_CLASSES = (("_pytest.main", "Session"), ("_pytest.terminal", "TerminalReporter"),
                           ("_pytest.capture", "CaptureManager"),
                           ("_pytest.logging", "LoggingPlugin"),
                           ("_pytest.legacypath", "LegacyTmpdirPlugin"),
                           ("_pytest.fixtures", "FixtureManager"),
                           ("_pytest.config", "Config"),
                           ("_pytest.config", "PytestPluginManager"),
                           (REPORTER_MODULE, "Reporter"))


def _parse_plugins_ahead(prebuilt: Any) -> None:
    """Spare each session most of the fixture parsing of the plugins every session has.

    A session's FixtureManager, created at sessionstart, walks every attribute of every
    registered plugin for fixtures: ~15 ms of each session, nearly all on pytest's own
    plugin modules and session objects (and ours), the same in every session. Here, once,
    pytest's own parsefactories() runs on each plugin module the prebuilt Config holds
    (and the reporter) and on the classes of the session's plugin objects (for an object
    the parsing looks fixtures up on its class only). A session's FixtureManager then
    skips those that registered nothing and warned nothing, and parses, of a module
    that has fixtures, only those (in a module of the same name holding just them,
    when that registers the same fixtures as the whole module did) -- but only while what
    the parsing reads of them (the module's namespace, the dicts along the class's MRO)
    holds the same objects. Any doubt (another pytest whose parsing or hook differs)
    leaves the parsing as is."""
    import functools
    import inspect
    import types
    import warnings

    try:
        from _pytest.fixtures import FixtureFunctionDefinition, FixtureManager

        original = FixtureManager.pytest_plugin_registered
        if list(inspect.signature(original).parameters) != ["self", "plugin", "plugin_name"]:
            return

        def parse(holder: object) -> list[dict[str, Any]] | None:
            """What parsing ``holder`` registers; None when it warns or fails."""
            found: list[dict[str, Any]] = []
            probe = FixtureManager.__new__(FixtureManager)
            probe._register_fixture = lambda **kw: found.append(kw)  # type: ignore[method-assign]
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    probe.parsefactories(holder=holder, node=prebuilt)
            except Exception:
                return None
            return None if caught else found

        import _pytest.monkeypatch

        if "monkeypatch" not in [kw.get("name") for kw in parse(_pytest.monkeypatch) or []]:
            return  # the probe does not see fixtures where there are some: not this pytest
        modules = [plugin for _, plugin in prebuilt.pluginmanager.list_name_plugin()
                   if isinstance(plugin, types.ModuleType)]
        if REPORTER_MODULE in sys.modules:
            modules.append(sys.modules[REPORTER_MODULE])
        classes = [getattr(sys.modules.get(module), name, None)
                   for module, name in _SESSION_PLUGIN_CLASSES]
        candidates = [*modules, *(c for c in classes if isinstance(c, type))]
    except Exception:
        return

    def fixtures_only(module: types.ModuleType, registered: list[dict[str, Any]]
                      ) -> types.ModuleType | None:
        small = types.ModuleType(module.__name__)
        small.__dict__.update({name: value for name, value in vars(module).items()
                               if type(value) is FixtureFunctionDefinition})
        return small if parse(small) == registered else None

    def fixtureless_now(holder: object, snapshot: Any) -> bool:
        """Whether ``holder``, fixture-free when the server parsed it, still is: what
        changed since (pytest's legacypath plugin adds properties to Config and Session
        at each configure) is parsed by pytest, alone in a holder of the same kind."""
        changed = _changes(holder, snapshot)
        if not changed:
            return True
        try:
            if isinstance(holder, types.ModuleType):
                delta: object = types.ModuleType(holder.__name__)
                delta.__dict__.update(changed)
            else:
                delta = type("_Changed", (), changed)
        except Exception:
            return False
        return parse(delta) == []

    @functools.wraps(original)
    def pytest_plugin_registered(self: Any, plugin: Any, plugin_name: Any) -> None:
        holder = plugin if isinstance(plugin, types.ModuleType) else type(plugin)
        known = parsed.get(id(holder))
        if known is not None and known[0] is holder:
            _, snapshot, small = known
            if small is None and fixtureless_now(holder, snapshot):
                return  # parsed in the fork server: no fixture there
            if (small is not None and not str(plugin_name).endswith("conftest.py")
                    and not _changes(holder, snapshot)):
                original(self, small, plugin_name)  # its fixtures, not the whole module
                return
        original(self, plugin, plugin_name)

    parsed: dict[int, tuple[object, Any, types.ModuleType | None]] = {}
    FixtureManager.pytest_plugin_registered = pytest_plugin_registered  # type: ignore[method-assign]
    # After the hook above replaced pytest's: FixtureManager's own dict is then as the
    # sessions find it.
    with contextlib.suppress(Exception):
        for holder in candidates:
            registered = parse(holder)
            if registered == []:
                parsed[id(holder)] = (holder, _namespaces(holder), None)
            elif registered and isinstance(holder, types.ModuleType):
                small = fixtures_only(holder, registered)
                if small is not None:
                    parsed[id(holder)] = (holder, _namespaces(holder), small)


def _remember_entry_points(pluginmanager: Any) -> None:
    """Spare each session the scan of every installed distribution's entry points that
    pytest makes for each ``-p NAME`` (is NAME a ``pytest11`` entry point?): ~4.5 ms
    per option with ~140 distributions, paid by every session for the reporter's -p.

    The server reads the entry point names once. A session answers "none" itself only
    for a name that no distribution offered then, when every folder of its import path
    that the server read is unchanged (same mtime: a package installed or removed since
    changes it), so is every distribution's ``entry_points.txt`` (rewritten in place by
    ``setup.py develop`` or ``egg_info``, which leaves its folder's mtime alone), and the
    folders the server did not read (the plugin folder, its ``pythonpath``) offer none
    either; anything else is pytest's own scan."""
    import importlib.metadata

    group = "pytest11"

    def finders() -> list[object]:
        return [f for f in sys.meta_path if hasattr(f, "find_distributions")]

    def mtime(entry: str) -> int | None:
        try:
            return os.stat(entry).st_mtime_ns
        except OSError:
            return None

    try:
        seen = {entry: mtime(entry) for entry in sys.path if os.path.isabs(entry)}
        dists = list(importlib.metadata.distributions())
        names = {ep.name for dist in dists for ep in dist.entry_points if ep.group == group}
        # A distribution not read from a folder cannot be checked: no answers of our own.
        folders = [getattr(dist, "_path", None) for dist in dists]
        if not all(isinstance(folder, os.PathLike) for folder in folders):
            return
        listed = {os.path.join(os.fspath(folder), "entry_points.txt")
                  for folder in folders if isinstance(folder, os.PathLike)}
        listed_at = {path: mtime(path) for path in listed}
        server_finders = finders()
    except Exception:
        return
    real = pluginmanager.load_setuptools_entrypoints

    def offered_elsewhere(name: str) -> bool:
        if finders() != server_finders:
            return True
        if any(mtime(path) != at for path, at in listed_at.items()):
            return True  # pytest's own scan reads what changed
        fresh = [entry for entry in sys.path
                 if entry not in seen or mtime(entry) != seen[entry]]
        if not fresh:
            return False
        return any(ep.group == group and ep.name == name
                   for dist in importlib.metadata.distributions(path=fresh)
                   for ep in dist.entry_points)

    def load_setuptools_entrypoints(group_: str, name: str | None = None) -> int:
        try:
            if group_ == group and name is not None and name not in names \
                    and not offered_elsewhere(name):
                return 0  # what pytest's scan returns when no distribution offers it
        except Exception:
            pass  # pytest's own scan says what is wrong
        return int(real(group_, name))

    pluginmanager.load_setuptools_entrypoints = load_setuptools_entrypoints


def _be_the_session(order: dict[str, Any], event_fd: int, control: socket.socket,
                    offer_config: Callable[[], None] | None = None,
                    preloaded: set[str] | None = None) -> int:
    """In a freshly forked child: become the pytest session the order asks for (a pytest
    of its own, started afresh in this process, when the plugin folder shadows a module
    the server preloaded)."""
    import faulthandler

    import pytest

    control.close()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()  # its own process group: a timeout kills it and whatever it forked
    log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    faulthandler.enable()
    os.chdir(order["cwd"])
    os.environ.update(order["env"])
    os.environ[order["fd_env"]] = str(event_fd)
    os.environ["PYTHONPATH"] = order["pythonpath"]
    if preloaded and _shadows(order["pythonpath"], preloaded):
        # Same process, group, pipes and environment; only the imports are its own.
        os.set_inheritable(event_fd, True)
        command = [*child_command(sys.executable), *order["args"]]
        os.execv(command[0], command)
    sys.path.insert(0, order["pythonpath"])
    if offer_config is not None:
        offer_config()
    code = int(pytest.main(order["args"]))
    # A plain pytest process runs the exit handlers its tests registered, and their end
    # (an os._exit, a crash) is its exit status; this session ends with os._exit, which
    # skips them: run here, what they do is seen as pytest's process would show it.
    atexit._run_exitfuncs()
    return code


def run_fork_server() -> int:
    """Import pytest once, then fork one pytest session per order until the app goes.

    Orders arrive on the SOCK_SEQPACKET socket named by :data:`FORK_SERVER_FD_ENV`: a JSON
    object (``id``, ``cwd``, ``pythonpath``, ``env``, ``fd_env``, ``log``, ``args``) with
    the session's event pipe attached (SCM_RIGHTS). The server answers
    ``{"event": "started", "id", "pid"}`` and, when that child ends,
    ``{"event": "exited", "pid", "code"}`` (``code`` as ``subprocess`` gives it: negative
    for a signal). Each session is a fork of this pristine process: nothing one suite
    imports or changes is seen by the next, at the cost of a fork (about a millisecond)
    instead of an interpreter start and pytest's imports (about 150 ms).
    """
    import gc
    import json
    import selectors

    _import_pytest()
    modules = _preload_list()
    os.environ.pop(PRELOAD_ENV, None)  # the server's business, not the sessions'
    preloaded = _preload(modules)
    if preloaded is None:
        # Nothing can be un-imported: the server starts again (same process and
        # channel) with pytest's imports only, and the sessions import the rest.
        os.environ[PRELOAD_ENV] = ""
        os.execv(sys.executable, sys.orig_argv)
    control = socket.socket(fileno=int(os.environ.pop(FORK_SERVER_FD_ENV)))
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    offer_config = _prebuild_config()  # after the path is the sessions' (less the plugin)
    # A child's end wakes the loop through this pipe, so it is reaped (and reported) at once.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    # Everything imported so far (pytest, its plugins, asyncio, the app) moves out of the
    # collector's sight. Otherwise each session's full collections (pytest forces several
    # at unconfigure, to surface unraisable exceptions) walk that inherited heap and write
    # to every object's GC header, copying ~3000 of the server's pages into the child:
    # about 30 ms of CPU per session, a sixth of a small suite's. What the session itself
    # creates is collected as before; only objects that predate the fork are left out of
    # gc.get_objects() and gc.get_referrers() there.
    gc.freeze()

    live: set[int] = set()  # sessions forked and not yet reaped (each its own group)

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            live.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            control.send(json.dumps({"event": "exited", "pid": pid, "code": code}).encode())

    while True:
        for key, _ in selector.select():
            if key.fileobj is wake_r:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_r, 512):
                        pass
                reap()
                continue
            try:
                data, fds, _, _ = socket.recv_fds(control, 1 << 20, 1)
            except OSError:
                data, fds = b"", []
            if not data:
                # The app went away. After a stop its runs are over; after a crash nobody
                # enforces their timeouts any more, and a hanging test would run forever:
                # end whatever is left (each session's group: what its tests forked too).
                for session in live:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(session, signal.SIGKILL)
                return 0
            order = json.loads(data)
            pid = os.fork()
            if pid == 0:
                code = 70
                try:
                    code = _be_the_session(order, fds[0], control, offer_config,
                                           preloaded)
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            live.add(pid)
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"event": "started", "id": order["id"],
                                     "pid": pid}).encode())
        reap()


if __name__ == "__main__":
    if sys.argv[1:] == [FORK_SERVER_FLAG]:
        raise SystemExit(run_fork_server())
    raise SystemExit(run_warm_child())
