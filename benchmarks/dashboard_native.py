"""Native dashboard benchmark: push latency into the Qt model, and UI lag under a stream.

(a) Latency, per test of a real 200-test run through the real test manager: from the
    moment the pytest child finished the test (a generated conftest stamps wall-clock time
    after each test's teardown report) to the moment the dashboard's tree model holds the
    result. Baseline in the same run: the same child stamp to the arrival of the bus event
    at a plain asyncio subscriber (what every consumer pays before the Qt side starts).
(b) UI event-loop lag while 1,000 results stream in: a 5 ms QTimer probe records how late
    each tick fires; first with nothing happening (baseline), then while 1,000 results of a
    real 1,000-test run arrive, then while 1,000 TestFinished events are published at
    1,000/s (the issue's "1,000 results in a second").

Offscreen Qt, no QtWebEngine (the panel is widgets only).

    .venv/bin/python benchmarks/dashboard_native.py [--tests 200] [--burst 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

STAMP_ENV = "PLEXICHAT_BENCH_STAMPS"
CONFTEST = f'''
import os, time

def pytest_runtest_logreport(report):
    if report.when == "teardown":
        with open(os.environ["{STAMP_ENV}"], "a") as out:
            out.write(f"{{report.nodeid}}\\t{{time.time()!r}}\\n")
'''


def generate(root: Path, plugin_id: str, tests: int) -> None:
    folder = root / plugin_id
    (folder / "tests").mkdir(parents=True)
    (folder / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nname = "{plugin_id}"\nversion = "1.0.0"\nentry = "none:P"\n')
    (folder / "tests" / "conftest.py").write_text(CONFTEST)
    body = "\n".join(f"def test_{i:04d}():\n    assert {i} == {i}\n" for i in range(tests))
    (folder / "tests" / "test_many.py").write_text(body)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class LagProbe:
    """How late a 5 ms timer fires: the UI's responsiveness, as a person would feel it."""

    def __init__(self, interval_ms: int = 5):
        from PySide6.QtCore import QTimer

        self.interval = interval_ms / 1000
        self.lags: list[float] = []
        self.last = 0.0
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.lags = []
        self.last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lags.append(max(0.0, now - self.last - self.interval))
        self.last = now

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.lags


def summary(lags: list[float]) -> str:
    if not lags:
        return "no ticks"
    return (f"p50 {pct(lags, 0.5) * 1000:5.1f} ms  p99 {pct(lags, 0.99) * 1000:5.1f} ms  "
            f"max {max(lags) * 1000:5.1f} ms  ({len(lags)} ticks)")


async def bench(args: argparse.Namespace, app: Any) -> None:
    from plexichat_desktop.core.paths import AppPaths
    from plexichat_desktop.core.settings import Settings
    from plexichat_desktop.gui.app import DesktopShell
    from plexichat_desktop.runtime import Runtime, RuntimeOptions
    from plexichat_desktop.testing.events import TestFinished

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stamps = root / "stamps.tsv"
        os.environ[STAMP_ENV] = str(stamps)
        os.environ["PLEXICHAT_DESKTOP_HOME"] = str(root / "home")
        generate(root / "plugins", "latency_bench", args.tests)
        generate(root / "plugins", "stream_bench", args.burst)
        settings = Settings()
        settings.server.port = 0
        runtime = Runtime(AppPaths.from_env(), settings, RuntimeOptions(
            bundled=False, include_installed=False, extra_plugin_dirs=[root / "plugins"]))
        await runtime.start()
        shell = DesktopShell(app, runtime, AppPaths.from_env(), asyncio.Event(),
                             "the benchmark measures the widgets only")
        shell.show()
        panel = shell.window.dashboard
        await panel._loaded.wait()
        try:
            # (a) latency into the model, and the bus floor.
            in_model: dict[str, float] = {}
            on_bus: dict[str, float] = {}

            def rows_changed(top_left: Any, bottom_right: Any) -> None:
                # The moment the views are told: the row shows the result from here on.
                parent = panel.model.node(top_left).parent
                for row in range(top_left.row(), bottom_right.row() + 1):
                    node = parent.children[row]
                    if node.kind == "test" and node.outcome is not None:
                        in_model.setdefault(node.key, time.time())

            panel.model.dataChanged.connect(rows_changed)
            sub = runtime.bus.subscribe(name="bench floor", maxsize=100_000)

            async def floor() -> None:
                async for event in sub:
                    if isinstance(event, TestFinished):
                        on_bus.setdefault(event.nodeid, time.time())

            floor_task = asyncio.get_running_loop().create_task(floor())
            run = await runtime.tests.submit("latency_bench")
            await runtime.tests.wait(run.id)
            await asyncio.sleep(0.2)
            panel.model.dataChanged.disconnect(rows_changed)
            sub.close()
            floor_task.cancel()
            child = {}
            for line in stamps.read_text().splitlines():
                nodeid, stamp = line.split("\t")
                child[nodeid] = float(stamp)
            model_lat = [in_model[n] - child[n] for n in child if n in in_model]
            bus_lat = [on_bus[n] - child[n] for n in child if n in on_bus]
            med_model, med_bus = statistics.median(model_lat), statistics.median(bus_lat)
            print(f"(a) child finish -> native model row, {len(model_lat)} tests: "
                  f"median {med_model * 1000:.2f} ms, p95 {pct(model_lat, 0.95) * 1000:.2f} ms")
            print(f"    baseline child finish -> bus subscriber:     "
                  f"median {med_bus * 1000:.2f} ms, p95 {pct(bus_lat, 0.95) * 1000:.2f} ms"
                  f"   ratio {med_model / med_bus:.2f}")

            # (b) UI lag: idle, a real 1,000-test run, then 1,000 events in one second.
            probe = LagProbe()
            probe.start()
            await asyncio.sleep(1.0)
            idle = probe.stop()
            print(f"(b) UI loop lag, idle (baseline):            {summary(idle)}")

            probe.start()
            run = await runtime.tests.submit("stream_bench")
            started = time.perf_counter()
            await runtime.tests.wait(run.id)
            took = time.perf_counter() - started
            streamed = probe.stop()
            print(f"    real run of {args.burst} tests ({took:.2f} s):      {summary(streamed)}"
                  f"   p99 ratio {pct(streamed, .99) / max(pct(idle, .99), 1e-4):.1f}")

            probe.start()
            t0 = time.perf_counter()
            for i in range(args.burst):
                due = t0 + i / args.burst
                delay = due - time.perf_counter()
                if delay > 0.002:
                    await asyncio.sleep(delay)
                runtime.bus.publish(TestFinished(
                    run_id=-1, plugin_id="burst_bench", nodeid=f"tests/test_b.py::test_{i}",
                    outcome="failed" if i % 7 == 0 else "passed", attempt=1,
                    duration=0.001, message="", completed=i + 1, total=args.burst))
            await asyncio.sleep(0.3)
            burst = probe.stop()
            shown = len(panel.model.tests("burst_bench"))
            print(f"    {args.burst} events published in 1 s:        {summary(burst)}"
                  f"   p99 ratio {pct(burst, .99) / max(pct(idle, .99), 1e-4):.1f}"
                  f"   rows in model {shown}")
        finally:
            await shell.shutdown()
            await runtime.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args()

    from plexichat_desktop.gui.environment import prepare_qt_environment

    prepare_qt_environment()
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)  # the loop ends when bench() returns
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(bench(args, app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
