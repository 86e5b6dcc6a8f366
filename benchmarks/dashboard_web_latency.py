"""Web dashboard push latency: a test's finish -> the /tests page's DOM showing it.

A generated plugin with 200 quick tests runs through the real core (server, test manager,
pytest child) while the overview page (/tests) is open in a QWebEngineView (real
Chromium, offscreen, the app's profile and token interceptor). For each test:

  origin    the ``tests.test_finished`` bus event's timestamp: the host turned the child's
            test_end line into the event (what the brief calls "the test's finish");
  (a) web   the moment the page's results row for it got its final outcome, taken by a
            MutationObserver inside the page (so: DOM updated, before the next paint);
  (b) base  the moment a plain httpx client reading /tests/events in a process of its own
            received the same event: the floor any SSE consumer pays.

Chromium's clock is aligned to Python's by runJavaScript round trips (the sample with the
shortest round trip wins; its half round trip is the error bound printed). Figures are
median, p95 (nearest rank) and max over every test of every run, and the ratio a/b.

    .venv/bin/python benchmarks/dashboard_web_latency.py [--tests 200] [--runs 1] [--sleep 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from plexichat_desktop.gui.environment import prepare_qt_environment  # noqa: E402

prepare_qt_environment()

import httpx  # noqa: E402
import PySide6.QtWebEngineWidgets  # noqa: E402, F401  (before the QApplication)
import qasync  # noqa: E402
from PySide6.QtCore import QUrl  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from plexichat_desktop.core.paths import AppPaths  # noqa: E402
from plexichat_desktop.core.settings import Settings  # noqa: E402
from plexichat_desktop.gui.web import (  # noqa: E402
    PluginPage,
    PluginView,
    TokenInterceptor,
    create_profile,
)
from plexichat_desktop.runtime import Runtime, RuntimeOptions  # noqa: E402
from plexichat_desktop.testing.events import TestFinished  # noqa: E402

FINAL = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "timed_out", "crashed",
         "not_run")

# Installed into the page: records when each results row first shows a final outcome.
OBSERVER = """
(() => {
  window.__bench = {};
  const final = new Set(FINAL_OUTCOMES);
  const note = (tr) => {
    if (tr && tr.dataset && tr.dataset.key && final.has(tr.dataset.outcome) &&
        !(tr.dataset.key in window.__bench)) {
      window.__bench[tr.dataset.key] = performance.timeOrigin + performance.now();
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") note(r.target);
      else r.addedNodes.forEach(note);
    }
  }).observe(document.getElementById("recent"),
             { subtree: true, childList: true, attributes: true,
               attributeFilter: ["data-outcome"] });
  return 1;
})()
""".replace("FINAL_OUTCOMES", json.dumps(FINAL))


def generate(root: Path, tests: int, sleep: float) -> Path:
    folder = root / "bench_web"
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        'id = "bench_web"\nname = "Bench web"\nversion = "1.0.0"\n'
        'entry = "bench_web_pkg:Plugin"\n')
    (folder / "tests" / "test_many.py").write_text(
        "import time\n\nimport pytest\n\n\n"
        f"@pytest.mark.parametrize('n', range({tests}))\n"
        f"def test_quick(n):\n    time.sleep({sleep!r})\n    assert n * n >= 0\n")
    return root


def sse_client(url: str) -> int:
    """Child mode: read /tests/events, print "key origin arrival" per test_finished event.
    A process of its own, so it never waits for the server's GIL (nor the other way)."""
    headers = {"Authorization": f"Bearer {os.environ['PLEXICHAT_BENCH_TOKEN']}"}
    with httpx.Client(timeout=None) as client, \
            client.stream("GET", url + "tests/events", headers=headers) as response:
        print("connected", flush=True)
        name = None
        for line in response.iter_lines():
            now = time.time()
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "tests.test_finished":
                data = json.loads(line[6:])
                print(json.dumps([f"{data['run_id']}:{data['nodeid']}", data["timestamp"],
                                  now]), flush=True)
    return 0


class SseClient:
    """The baseline: a plain httpx SSE reader (``--sse-client`` mode) in a child process."""

    def __init__(self, url: str, token: str):
        self.arrivals: dict[str, tuple[float, float]] = {}  # key -> (event ts, arrival)
        self.connected = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--sse-client", url], stdout=subprocess.PIPE,
            text=True, env={**os.environ, "PLEXICHAT_BENCH_TOKEN": token})
        threading.Thread(target=self._read, daemon=True, name="sse-baseline").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == "connected":
                self.connected.set()
                continue
            key, origin, arrival = json.loads(line)
            self.arrivals[key] = (origin, arrival)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def evaluate(view: Any, expression: str) -> Any:
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    view.page().runJavaScript(f"JSON.stringify({expression})", 0,
                              lambda result: done.done() or done.set_result(result))
    result = await done
    return json.loads(result) if result else None


async def until(view: Any, expression: str, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await evaluate(view, expression)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


async def clock_offset(view: Any, samples: int = 25) -> tuple[float, float]:
    """Chromium's wall clock minus Python's (seconds), and the error bound."""
    best = (math.inf, 0.0)
    for _ in range(samples):
        before = time.time()
        js_ms = await evaluate(view, "performance.timeOrigin + performance.now()")
        after = time.time()
        rtt = after - before
        if rtt < best[0]:
            best = (rtt, js_ms / 1000 - (before + after) / 2)
    return best[1], best[0] / 2


def summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95, ordered[-1]


async def bench(app: QApplication, tmp: Path, tests: int, runs: int, sleep: float) -> int:
    home = AppPaths.from_env({"PLEXICHAT_DESKTOP_HOME": str(tmp / "home")})
    settings = Settings()
    settings.server.port = 0
    runtime = Runtime(home, settings, RuntimeOptions(
        bundled=False, include_installed=False,
        extra_plugin_dirs=[generate(tmp / "plugins", tests, sleep)]))
    await runtime.start()
    assert runtime.server is not None
    interceptor = TokenInterceptor(runtime.server.port, runtime.token, app)
    profile = create_profile(app, interceptor, tmp / "webengine", tmp / "webcache")
    view = PluginView(lambda owner: PluginPage(profile, interceptor, None, owner))
    baseline: SseClient | None = None
    web: list[float] = []
    base: list[float] = []
    loop_lag: list[float] = []
    try:
        await runtime.tests.discover("bench_web")  # as a dashboard user would have it
        view.resize(1280, 900)
        view.show()
        loaded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        view.loadFinished.connect(lambda ok: loaded.done() or loaded.set_result(ok))
        view.load(QUrl(runtime.url + "tests"))
        if not await loaded:
            raise RuntimeError("the /tests page did not load")
        await until(view, "window.plexichatDashboard && plexichatDashboard.snapshots > 0 && "
                          "document.getElementById('conn').dataset.state === 'live'", 30,
                    "the page's first snapshot and live stream")
        offset, error = await clock_offset(view)
        baseline = SseClient(runtime.url, runtime.token)
        if not await asyncio.to_thread(baseline.connected.wait, 20):
            raise RuntimeError("the baseline SSE client did not connect")
        sub = runtime.bus.subscribe(TestFinished, name="bench", maxsize=100_000)
        inproc: dict[str, float] = {}

        async def listen() -> None:
            async for event in sub:
                inproc[f"{event.run_id}:{event.nodeid}"] = time.time() - event.timestamp

        listener = asyncio.get_running_loop().create_task(listen())
        for index in range(runs):
            await evaluate(view, OBSERVER)
            run = await runtime.tests.submit("bench_web")
            finished = await runtime.tests.wait(run.id)  # type: ignore[arg-type]
            if finished.counts.get("passed") != tests:
                raise RuntimeError(f"run {run.id}: expected {tests} passes, got "
                                   f"{finished.counts}")
            keys = [f"{run.id}:{k}" for k in (f"tests/test_many.py::test_quick[{n}]"
                                              for n in range(tests))]
            seen = await until(view, f"Object.keys(window.__bench).filter(k => "
                                     f"k.startsWith('{run.id}:')).length >= {tests} && "
                                     "window.__bench", 60, "every row updated on the page")
            deadline = time.monotonic() + 10
            while any(k not in baseline.arrivals for k in keys) and \
                    time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for key in keys:
                origin, arrived = baseline.arrivals[key]
                base.append(arrived - origin)
                web.append(seen[key] / 1000 - offset - origin)
                loop_lag.append(inproc[key])
            print(f"run {index + 1}/{runs}: {tests} tests, run #{run.id}, "
                  f"{finished.duration or 0:.2f} s in the child", flush=True)
        listener.cancel()
        sub.close()
    finally:
        if baseline is not None:
            baseline.close()
        view.close()
        view.deleteLater()
        await asyncio.sleep(0.1)
        profile.deleteLater()
        interceptor.deleteLater()
        await asyncio.sleep(0.1)
        await runtime.stop()

    cores = os.cpu_count() or 1
    print(f"tests: {len(web)} ({runs} run(s) x {tests}, each sleeping {sleep} s), {cores} cores, "
          f"QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM')}")
    print(f"clock alignment Chromium vs Python: offset {offset * 1000:+.2f} ms, "
          f"error bound +/-{error * 1000:.2f} ms")
    w = summary(web)
    b = summary(base)
    print(f"(a) bus event -> web page DOM updated:   median {w[0] * 1000:6.1f} ms   "
          f"p95 {w[1] * 1000:6.1f} ms   max {w[2] * 1000:6.1f} ms")
    print(f"(b) bus event -> httpx SSE client:      median {b[0] * 1000:6.1f} ms   "
          f"p95 {b[1] * 1000:6.1f} ms   max {b[2] * 1000:6.1f} ms")
    c = summary(loop_lag)
    print(f"(c) bus event -> in-process subscriber: median {c[0] * 1000:6.1f} ms   "
          f"p95 {c[1] * 1000:6.1f} ms   max {c[2] * 1000:6.1f} ms  (the loop's own delay)")
    print(f"ratio a/b: median {w[0] / b[0]:.2f}x, p95 {w[1] / b[1]:.2f}x; "
          f"page cost over the SSE floor: median {(w[0] - b[0]) * 1000:.1f} ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--sleep", type=float, default=0.0,
                        help="seconds each test sleeps: 0 is a burst, 0.02 a steady trickle")
    parser.add_argument("--sse-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sse_client:
        return sse_client(args.sse_client)
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory(prefix="plexichat-web-bench-") as tmp, loop:
        # Exactly one run_until_complete per process (qasync + QtWebEngine, see the notes).
        code = loop.run_until_complete(bench(app, Path(tmp), args.tests, args.runs,
                                             args.sleep))
    sys.stdout.flush()
    sys.stderr.flush()
    # QtWebEngine's exit-time teardown was seen to hang now and then; everything is printed.
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
