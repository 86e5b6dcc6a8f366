"""GUI start-up benchmark: process start -> the first plugin tab's ``loadFinished``.

(a) the real app: ``plexichat_desktop.cli.main(["--port", "0"])`` (what ``python -m
    plexichat_desktop --port 0`` runs) in a subprocess, offscreen, with a fresh
    PLEXICHAT_DESKTOP_HOME whose gui.ini restores one tab on the Performance Monitor page.
    The app has no "first tab loaded" hook, so the child is this file in ``--child app``
    mode: it wraps ``DesktopShell.make_pane`` only to connect the first pane's
    ``view.loadFinished`` to a probe that prints a timestamped FIRST_TAB_LOADED line, then
    the app runs unchanged. After the line and the first answer of the plugin's API (the
    page's data; at most DATA_WAIT s later) the child sends itself SIGTERM, which the app
    handles (clean shutdown, exit code 0). It also wraps a few start-up steps (the core
    imported; Qt app up; Runtime() made; plugins discovered; window built and shown; the
    listener serving; the app installed in it) and the server's side of the first page
    (its request, its answer, the first of its assets asked for, its first data) to print
    when each ended, in wall-clock time and in the main process's CPU time: the phase
    lines.
(b) the floor: QApplication + one QWebEngineView showing a short static page (setHtml, no
    server), same environment and window size, in ``--child floor`` mode: the issue's
    baseline.
(c) the page of (a) without the app: the same bare view loading the same HTML, CSS and
    scripts from a plain http.server in a thread (``--child floor-http``); its API
    requests get 404s. c/b is what the page itself costs over (b); a/c what the app adds.

Times are CLOCK_MONOTONIC (system-wide on Linux) from just before Popen to the probe.
Memory is sampled at first load: the main process's VmHWM (its peak so far) and the sum of
RSS / PSS over it and its QtWebEngineProcess helpers; the main process's VmHWM is read
again just before it exits. Runs are interleaved (a, b, a, b, ...). Each child runs in its
own session and is killed (whole process group) on timeout; leftovers are reported.

    .venv/bin/python benchmarks/gui_startup.py [--runs 5] [--timeout 30]
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TAB = {"path": "/plugins/performance_monitor/index.html", "title": "Performance"}
FLOOR_HTML = ("<!doctype html><html><head><meta charset='utf-8'><title>Floor</title></head>"
              "<body style='font-family:sans-serif'><h1>Hello</h1><p>A static page.</p>"
              "</body></html>")
WINDOW_SIZE = (1280, 820)  # the size MainWindow gives itself
PREFIX = "BENCH "
DATA_WAIT = 10.0  # seconds the app child waits after the first load for the page's data
MB = 1024 * 1024
# The children: the app, the bare view with a static page (the goal's baseline), and the
# bare view loading the app child's page from a plain HTTP server.
MODES = ("app", "floor", "floor-http")


# -- child side ------------------------------------------------------------------------------
def event_line(fields: dict[str, Any]) -> None:
    """One event line, written in one system call and on a line of its own: the app's
    threads print too (the worker's phase marks, the ready line), and print() writes the
    text and its newline separately, so two lines once came out as one (a run lost)."""
    data = ("\n" + PREFIX + json.dumps(fields) + "\n").encode()
    while data:  # a pipe takes a line this short whole; a short write would keep the rest
        data = data[os.write(1, data):]


def emit(event: str, **fields: Any) -> None:
    # cpu: this process's CPU seconds so far, which load on a shared machine inflates less
    # than the wall-clock time; main: its main thread's alone (Python, Qt and Chromium's UI
    # thread), without the threads Chromium runs in the same process once it started.
    event_line({"event": event, "t": time.monotonic(), "cpu": time.process_time(),
                "main": time.thread_time(), **fields})


def vm_hwm() -> int:
    """Peak resident set size of this process so far, in bytes (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_snapshot() -> dict[str, Any]:
    """This process and all its descendants (the QtWebEngineProcess helpers)."""
    import psutil

    me = psutil.Process()
    rss = pss = 0
    names: list[str] = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", 0)
            names.append(proc.name())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return {"hwm_main": vm_hwm(), "rss_main": me.memory_info().rss, "rss_all": rss,
            "pss_all": pss, "procs": names}


def child_app() -> int:
    emit("child_start")
    # gui.app does not import PySide6 at module level. Importing PySide6 here (e.g. to wrap
    # BrowserPane) would cost ~50 ms: PySide6 replaces builtins.__import__ with its slower
    # __feature_import__, and the app's fastapi/pydantic imports would all pay for it.
    from plexichat_desktop.gui import app as gui_app
    from plexichat_desktop.gui.app import DesktopShell
    from plexichat_desktop.runtime import Listener, Runtime

    # Phase marks (each an event line with its time): where the time to the first load goes.
    marked: set[str] = set()

    def once(event: str) -> None:
        if event not in marked:  # Runtime.start() calls prepare() again, for one
            marked.add(event)
            emit(event)

    def mark_after(owner: Any, name: str, event: str, before: str | None = None) -> None:
        original = getattr(owner, name)
        if inspect.iscoroutinefunction(original):
            async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
                if before:
                    once(before)
                result = await original(*args, **kwargs)
                once(event)
                return result
            setattr(owner, name, wrapped_async)
        else:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                if before:
                    once(before)
                result = original(*args, **kwargs)
                once(event)
                return result
            setattr(owner, name, wrapped)

    # The core's import: in a worker thread after the window is shown (its CPU mark is
    # then that thread's), or before PySide6 in older revisions.
    for importer in ("_import_core", "_import_server_stack"):
        if hasattr(gui_app, importer):
            mark_after(gui_app, importer, "core_imported")
    if hasattr(gui_app, "_prepare_serving"):
        mark_after(gui_app, "_prepare_serving", "serving_prepared")
    mark_after(gui_app, "_warm_up_webengine", "webengine_warming", before="qt_app_ready")
    mark_after(Runtime, "__init__", "runtime_made")
    mark_after(Runtime, "prepare", "port_bound")
    mark_after(DesktopShell, "__init__", "window_built")
    mark_after(DesktopShell, "show", "window_shown")
    mark_after(Listener, "start", "listener_serving")
    mark_after(Runtime, "start", "server_listening")
    state = {"pane": False, "loaded": False, "data": False}

    def stop_when_done() -> None:
        # The page loaded and its first data answered (or that never came): the app's own
        # handler closes it.
        if state["loaded"] and state["data"]:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_data() -> None:
        state["data"] = True
        stop_when_done()

    mark_requests(on_data)
    original_make_pane = DesktopShell.make_pane

    def on_loaded(pane: Any, ok: bool) -> None:
        if state["loaded"]:
            return
        state["loaded"] = True
        t = time.monotonic()
        event_line({"event": "FIRST_TAB_LOADED", "t": t, "ok": ok, "cpu": time.process_time(),
                    "main": time.thread_time(), "url": pane.view.url().toString(),
                    **memory_snapshot()})
        stop_when_done()
        waiting = threading.Timer(DATA_WAIT, on_data)
        waiting.daemon = True
        waiting.start()

    def make_pane(self: Any, path: str, title: str, parent: object) -> object:
        first = not state["pane"]
        if first:
            state["pane"] = True
            emit("pane_created", path=path)
        pane = original_make_pane(self, path, title, parent)
        if first:  # BrowserPane.__init__ only queued load(): loadFinished comes later
            pane.view.loadFinished.connect(  # type: ignore[attr-defined]
                lambda ok, pane=pane: on_loaded(pane, ok))
        return pane

    DesktopShell.make_pane = make_pane  # type: ignore[method-assign]
    from plexichat_desktop.cli import main

    rc = main(["--port", "0"])
    emit("child_exit", rc=rc, hwm_main=vm_hwm())
    return rc


def mark_requests(on_data: Callable[[], None]) -> None:
    """Phase marks on the server's side of the first page: its request arriving, its
    answer sent, the first of its assets asked for (Chromium read the page meanwhile),
    and the first answer of a plugin's API (the page's data, which needs the app and the
    plugin started), after which ``on_data`` is called."""
    from plexichat_desktop.server.listening import AppGate

    original = AppGate.__call__
    seen = {"requests": 0, "data": False}

    async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await original(self, scope, receive, send)
            return
        seen["requests"] += 1
        first = seen["requests"] == 1
        data = "/api/" in scope.get("path", "") and not seen["data"]
        if data:
            seen["data"] = True
        if first:
            emit("page_asked")
        elif seen["requests"] == 2:
            emit("assets_asked")

        async def marking_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                if first:
                    emit("page_answered")
                if data:
                    emit("data_answered")
                    on_data()

        await original(self, scope, receive, marking_send)

    AppGate.__call__ = call  # type: ignore[method-assign]


def child_floor(over_http: bool) -> int:
    """The floor: a bare QWebEngineView showing FLOOR_HTML (setHtml, no server), or, with
    ``over_http``, the app child's page (the same HTML, CSS and scripts) from a plain
    http.server in a thread of this process: what that page costs Chromium and Python's
    sockets without anything of the app."""
    emit("child_start")
    from PySide6.QtCore import QTimer, QUrl
    from PySide6.QtWebEngineWidgets import QWebEngineView  # before the QApplication
    from PySide6.QtWidgets import QApplication

    url = "setHtml"
    if over_http:
        url = serve_page_files()
    app = QApplication(sys.argv[:1])
    view = QWebEngineView()
    view.resize(*WINDOW_SIZE)
    done = {"loaded": False}

    def on_loaded(ok: bool) -> None:
        if done["loaded"]:
            return
        done["loaded"] = True
        t = time.monotonic()
        event_line({"event": "FIRST_TAB_LOADED", "t": t, "ok": ok, "cpu": time.process_time(),
                    "main": time.thread_time(), "url": url, **memory_snapshot()})
        # The view goes before the app (see the QtWebEngine notes), then the loop ends.
        view.close()
        view.deleteLater()
        QTimer.singleShot(50, app.quit)

    view.loadFinished.connect(on_loaded)
    QTimer.singleShot(30_000, lambda: app.exit(3))  # never hang
    if over_http:
        view.load(QUrl(url))
    else:
        view.setHtml(FLOOR_HTML)
    view.show()
    rc = app.exec()
    emit("child_exit", rc=rc, hwm_main=vm_hwm())
    return rc


def serve_page_files() -> str:
    """TAB's page and the app's shared assets (/_app/) from a plain http.server on
    loopback, in a daemon thread; the page's URL. Its API requests get 404s."""
    import functools
    import http.server

    root = Path(os.environ["PLEXICHAT_DESKTOP_HOME"]) / "floor-http"  # the run's own folder
    (root / "plugins").mkdir(parents=True)
    plugin = TAB["path"].split("/")[2]
    (root / "plugins" / plugin).symlink_to(REPO / "plugins" / plugin / "web")
    (root / "_app").symlink_to(REPO / "resources" / "web")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}{TAB['path']}"


# -- parent side -----------------------------------------------------------------------------
# Where the children keep their byte-code (set by main(); None: as the environment says).
PYCACHE: Path | None = None


def child_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PLEXICHAT_DESKTOP_HOME": str(home)}
    env.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
    if PYCACHE is not None:
        # An installed app has byte-code (pip compiles it at install time): with
        # PYTHONDONTWRITEBYTECODE inherited (CI, sandboxes) every child would compile the
        # app's ~300 modules again, which users never pay. A private cache, warmed by an
        # unmeasured first round, keeps the working tree free of __pycache__ folders.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    # What the app's prepare_qt_environment() would choose, given to both children alike.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    env.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--log-level=3 --disable-gpu")
    return env


def write_gui_ini(home: Path) -> None:
    """main/tabs restores one tab; written through QSettings so the INI quoting is right."""
    from PySide6.QtCore import QSettings

    (home / "config").mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(home / "config" / "gui.ini"), QSettings.Format.IniFormat)
    settings.setValue("main/tabs", json.dumps([TAB]))
    settings.setValue("main/current", 0)
    settings.sync()
    assert json.loads(str(settings.value("main/tabs"))) == [TAB]


def live_group_members(pgid: int) -> list[int]:
    """Processes of the child's process group that still run (zombies don't count: the
    QtWebEngineProcess helpers are reparented to PID 1 and wait there to be reaped)."""
    import psutil

    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def reap_group(pgid: int, grace: float = 3.0) -> int:
    """Wait for the child's process group to end; SIGKILL what is left after ``grace``.
    Returns how many processes had to be killed."""
    deadline = time.monotonic() + grace
    while (members := live_group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    if members:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    return len(members)


def run_child(mode: str, home: Path, timeout: float, exit_timeout: float) -> dict[str, Any]:
    """One child run. ``error``: no usable first load; ``exit_error``: it loaded (the
    figures count) but did not shut down cleanly within ``exit_timeout`` of the load."""
    home.mkdir(parents=True)
    if mode == "app":
        write_gui_ini(home)
    stderr_path = home / "child-stderr.txt"
    lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
    result: dict[str, Any] = {"mode": mode, "events": {}}
    with stderr_path.open("w") as stderr:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", mode],
                                cwd=REPO, env=child_env(home), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=stderr, text=True,
                                start_new_session=True)

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put((time.monotonic(), line))
            lines.put((time.monotonic(), None))

        threading.Thread(target=reader, daemon=True).start()
        deadline = t0 + timeout
        try:
            while True:
                try:
                    seen, line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if line is None:
                    break
                if line.startswith("PlexiChat Desktop is serving at"):
                    result["events"]["serving"] = seen - t0
                elif line.startswith(PREFIX):
                    data = json.loads(line[len(PREFIX):])
                    result["events"][data["event"]] = data["t"] - t0
                    result.setdefault("cpu", {})[data["event"]] = data.get("cpu")
                    result.setdefault("main", {})[data["event"]] = data.get("main")
                    if data["event"] == "FIRST_TAB_LOADED":
                        result["loaded"] = data
                        deadline = min(deadline, seen + DATA_WAIT + exit_timeout)
                    elif data["event"] == "child_exit":
                        result["exit"] = data
            with contextlib.suppress(subprocess.TimeoutExpired):
                result["rc"] = proc.wait(max(0.1, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            result["exited"] = time.monotonic() - t0
            result["leftovers_killed"] = reap_group(proc.pid)
    loaded = result.get("loaded")
    if loaded is None:
        result["error"] = (f"no FIRST_TAB_LOADED line within {timeout:g} s" if "rc" not in result
                           else f"exited with code {result['rc']} before the first load")
    elif not loaded["ok"]:
        result["error"] = f"loadFinished(ok=False) for {loaded['url']}"
    elif mode == "app" and not loaded["url"].endswith(TAB["path"]):
        result["error"] = f"the first tab showed {loaded['url']}, not {TAB['path']}"
    elif "rc" not in result:
        result["exit_error"] = f"hung on shutdown, killed {exit_timeout:g} s after the load"
    elif result["rc"] != 0:
        result["exit_error"] = f"exit code {result['rc']}"
    if "error" in result or "exit_error" in result:
        result["stderr_tail"] = stderr_path.read_text(errors="replace").strip().splitlines()[-12:]
    return result


def fmt_times(values: list[float]) -> str:
    return (f"median {statistics.median(values):.2f} s "
            f"(min {min(values):.2f}, max {max(values):.2f})")


def median_of(results: list[dict[str, Any]], fn: Callable[[dict[str, Any]], Any]) -> float:
    values = [v for v in map(fn, results) if v is not None]
    return statistics.median(values) if values else float("nan")


def report(label: str, results: list[dict[str, Any]]) -> float:
    def event(name: str) -> Callable[[dict[str, Any]], Any]:
        return lambda r: r["events"].get(name)

    def memory(key: str) -> float:
        return median_of(results, lambda r: r["loaded"][key]) / MB

    load = [r["events"]["FIRST_TAB_LOADED"] for r in results]
    print(f"{label}\n    Popen -> first loadFinished: {fmt_times(load)}")
    data = [r["events"]["data_answered"] for r in results if "data_answered" in r["events"]]
    if data:  # the page's own data (its plugin's API), which needs the app and the plugin
        print(f"    Popen -> the page's first data answered: {fmt_times(data)}")
    phase_events = [("python up", "child_start")]
    if results[0]["mode"] == "app":
        phase_events += [(title, key) for title, key in (
            ("core imported", "core_imported"), ("Qt app", "qt_app_ready"),
            ("server module and early files ready", "serving_prepared"),
            ("Chromium warm-up asked", "webengine_warming"),
            ("Runtime()", "runtime_made"), ("plugins discovered", "port_bound"),
            ("first pane created", "pane_created"), ("window built", "window_built"),
            ("window shown", "window_shown"), ("listener serving", "listener_serving"),
            ("app installed", "server_listening"),
            ("ready line printed", "serving"), ("page asked for", "page_asked"),
            ("page answered", "page_answered"), ("its assets asked for", "assets_asked"),
            ("its first data answered", "data_answered"))
            if key in results[0]["events"]]
    phase_events.append(("loadFinished", "FIRST_TAB_LOADED"))
    # In the order they happened (revisions differ: the window first, or the core; the
    # page before its data, or after).
    phase_events[1:] = sorted(phase_events[1:], key=lambda pe: median_of(results, event(pe[1])))
    phases = [(name, event(key)) for name, key in phase_events]
    phases.append(("child exited", lambda r: None if "exit_error" in r else r["exited"]))
    print("    phases, median s from Popen: "
          + ", ".join(f"{name} {median_of(results, fn):.2f}" for name, fn in phases))
    cpu_events = [(name, key) for name, key in phase_events if key in results[0].get("cpu", {})]
    print("    main process CPU s at each phase (median): "
          + ", ".join(f"{name} {median_of(results, lambda r, k=key: r['cpu'].get(k)):.2f}"
                      for name, key in cpu_events))
    print("    of which its main thread (median): "
          + ", ".join(f"{name} {median_of(results, lambda r, k=key: r['main'].get(k)):.2f}"
                      for name, key in cpu_events))
    stop = [r["exited"] - max(r["events"]["FIRST_TAB_LOADED"],
                              r["events"].get("data_answered", 0.0))
            for r in results if "exit_error" not in r]
    bad = len(results) - len(stop)
    print("    first load and data -> process exited (shutdown): "
          + (fmt_times(stop) if stop else "no clean exit")
          + (f"; {bad} run(s) did not exit cleanly" if bad else ""))
    exit_hwm = median_of(results, lambda r: r.get("exit", {}).get("hwm_main")) / MB
    print(f"    main process peak RSS (VmHWM): {memory('hwm_main'):.0f} MB at first load, "
          f"{exit_hwm:.0f} MB just before exit")
    helpers = median_of(results, lambda r: len(r["loaded"]["procs"]) - 1)
    print(f"    all processes at first load (main + {helpers:g} QtWebEngineProcess): "
          f"RSS sum {memory('rss_all'):.0f} MB, PSS sum {memory('pss_all'):.0f} MB")
    return statistics.median(load)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a child may take to its first load")
    parser.add_argument("--exit-timeout", type=float, default=10.0,
                        help="seconds a child may take to exit after its first load")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep the environment's byte-code setting (with "
                             "PYTHONDONTWRITEBYTECODE set, every start compiles the app)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "app":
        return child_app()
    if args.child in ("floor", "floor-http"):
        return child_floor(over_http=args.child == "floor-http")

    started = time.monotonic()
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="plexichat-gui-bench-") as tmp:
        global PYCACHE
        if not args.no_bytecode_cache:
            PYCACHE = Path(tmp) / "pycache"
            for mode in MODES:  # unmeasured: fills the byte-code cache
                run_child(mode, Path(tmp) / f"{mode}-warm-up", args.timeout, args.exit_timeout)
        for i in range(args.runs):  # interleaved, so drift in machine load hits both alike
            for mode in MODES:
                result = run_child(mode, Path(tmp) / f"{mode}-{i}", args.timeout,
                                   args.exit_timeout)
                where = f"{mode} run {i + 1}"
                if result["leftovers_killed"]:
                    print(f"warning: {where}: {result['leftovers_killed']} process(es) "
                          "outlived the child and were killed", file=sys.stderr)
                problem = result.get("error") or result.get("exit_error")
                if problem:
                    failures += 1
                    usable = "" if "error" in result else " (its load figures still count)"
                    print(f"error: {where}: {problem}{usable}", file=sys.stderr)
                    for line in result.get("stderr_tail", []):
                        print(f"    | {line}", file=sys.stderr)
                if "error" not in result:
                    results[mode].append(result)
    if not all(results.values()):
        print("error: no successful runs to report", file=sys.stderr)
        return 1
    print(f"runs: {' + '.join(f'{len(results[mode])} {mode}' for mode in MODES)} loaded, "
          f"{failures} with errors; QT_QPA_PLATFORM=offscreen, "
          f"QTWEBENGINE_CHROMIUM_FLAGS={child_env(REPO)['QTWEBENGINE_CHROMIUM_FLAGS']!r}, "
          + ("byte-code as the environment says" if args.no_bytecode_cache
             else "byte-code cached (warm-up round not counted)"))
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()} on "
          f"{os.cpu_count()} CPU(s)")
    app_median = report("(a) app, 1 restored tab (performance_monitor)", results["app"])
    floor_median = report("(b) floor, QWebEngineView + setHtml", results["floor"])
    page_median = report("(c) the same page's files from a plain http.server, no app",
                         results["floor-http"])
    print(f"ratio a/b: {app_median / floor_median:.2f}x (the goal's figure)")
    # Where the gap to (b) lies: the page itself (its files over HTTP, its scripts) and
    # what the app adds on top of that.
    print(f"ratio c/b: {page_median / floor_median:.2f}x (the page without the app); "
          f"a/c: {app_median / page_median:.2f}x (the app over its page)")
    print(f"benchmark wall time: {time.monotonic() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
