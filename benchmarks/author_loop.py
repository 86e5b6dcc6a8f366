"""The author loop: how soon a save shows, against a plain restart, in the same run.

A plugin made by ``plugins new`` is served by ``plexichat-desktop dev PATH --headless`` (a
real process). Each round:

- **Python edit -> route**: the route's text is changed in the plugin's module; timed from
  just before the write until ``GET /plugins/<id>/api/hello`` answers the new text
  (polled every 2 ms over HTTP from this process).
- **test edit -> result**: a one-test file is rewritten; timed from just before the write
  until the ``tests.test_finished`` event of that test arrives on ``/events`` (the stream
  the web dashboard shows; the Tests dock gets the same bus event in-process).

Baselines, in the same run: a cold ``serve`` (process start to ``/healthz`` answering, and
to the plugin's route answering) and a cold ``pytest`` of that one-test file (the plugin's
pytest.ini, autoloading off as under the manager). Prints medians and the ratios.

    .venv/bin/python benchmarks/author_loop.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-m", "plexichat_desktop"]
PLUGIN = "loop_bench"
QUICK = "tests/test_quick.py"
POLL = 0.002


def quick_test(n: int) -> str:
    return f"def test_quick() -> None:\n    assert {n} + 1 == {n + 1}\n"


def wait_for_url(proc: subprocess.Popen[str], log: Path, pattern: str = r"serving at "
                 r"(http://127\.0\.0\.1:\d+/)", ready: str = "", limit: float = 120) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the process exited: {log.read_text()}")
        text = log.read_text()
        match = re.search(pattern, text)
        if match and ready in text:
            return match.group(1)
        time.sleep(0.01)
    raise SystemExit(f"no URL within {limit} s: {log.read_text()}")


class EventStream(threading.Thread):
    """``/events`` read in a thread; each event with the time it arrived."""

    def __init__(self, url: str, token: str):
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.opened = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=None, headers={
                "Authorization": f"Bearer {self.token}"}) as client, \
                client.stream("GET", "/events") as stream:
            self.opened.set()
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    self.events.put((time.perf_counter(), json.loads(line[5:])))

    def wait_for(self, topic: str, match: Any, limit: float = 60) -> float:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                arrived, event = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            if event.get("topic") == topic and match(event):
                return arrived
        raise SystemExit(f"no {topic} event within {limit} s")


def cold_serve(root: Path, tmp: Path, env: dict[str, str], n: int) -> tuple[float, float]:
    """Process start of ``serve`` to /healthz, and to the plugin's route answering."""
    log = tmp / f"serve-{n}.log"
    home = tmp / f"serve-home-{n}"
    token = subprocess.run([*CLI, "token"], env={**env, "PLEXICHAT_DESKTOP_HOME": str(home)},
                           capture_output=True, text=True, check=True).stdout.strip()
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([*CLI, "serve", "--port", "0"], stdout=out,
                                stderr=subprocess.STDOUT, text=True,
                                env={**env, "PLEXICHAT_DESKTOP_HOME": str(home),
                                     "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(root.parent)})
    try:
        url = wait_for_url(proc, log)
        healthz = route = None
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            while route is None:
                if healthz is None and c.get("/healthz").status_code == 200:
                    healthz = time.perf_counter() - started
                if c.get(f"/plugins/{PLUGIN}/api/hello").status_code == 200:
                    route = time.perf_counter() - started
                    healthz = healthz or route
                time.sleep(POLL)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return healthz, route


def cold_pytest(root: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           QUICK], cwd=root, capture_output=True, text=True,
                          env={**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"cold pytest failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:7.0f} ms  "
            f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        env = {k: v for k, v in os.environ.items()
               if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PLEXICHAT_DESKTOP_PLUGINS_PATH")}
        env["PLEXICHAT_DESKTOP_HOME"] = str(tmp / "home")
        subprocess.run([*CLI, "plugins", "new", PLUGIN, "--dir", str(tmp / "work")], env=env,
                       check=True, capture_output=True)
        root = tmp / "work" / PLUGIN
        module = root / PLUGIN / "__init__.py"
        (root / QUICK).write_text(quick_test(0))
        source = module.read_text()
        token = subprocess.run([*CLI, "token"], env=env, capture_output=True, text=True,
                               check=True).stdout.strip()
        log = tmp / "dev.log"
        with log.open("w") as out:
            dev = subprocess.Popen([*CLI, "dev", str(root), "--headless", "--port", "0"],
                                   stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        reload_times: list[float] = []
        test_times: list[float] = []
        run_times: list[float] = []
        try:
            url = wait_for_url(dev, log, ready="Watching ")
            stream = EventStream(url, token)
            stream.start()
            stream.opened.wait(30)
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
            nodeid = f"{QUICK}::test_quick"
            for n in range(args.rounds + 1):  # round 0 warms up (imports, fork server)
                text = f"edit {n}"
                start = time.perf_counter()
                module.write_text(source.replace('f"{greeting}, {who}!"',
                                                 f'f"{{greeting}}, {{who}}! {text}"'))
                while text not in client.get(f"/plugins/{PLUGIN}/api/hello").text:
                    time.sleep(POLL)
                reloaded = time.perf_counter() - start
                time.sleep(0.3)  # the route edit's test reruns end before the next save
                while not stream.events.empty():
                    stream.events.get_nowait()

                start = time.perf_counter()
                (root / QUICK).write_text(quick_test(n + 1))
                finished = stream.wait_for("tests.test_finished",
                                           lambda e: e.get("nodeid") == nodeid)
                ran = stream.wait_for("tests.run_finished",
                                      lambda e: e["run"]["trigger"] == "watch")
                if n:
                    reload_times.append(reloaded)
                    test_times.append(finished - start)
                    run_times.append(ran - start)
                time.sleep(0.3)
            client.close()
        finally:
            dev.send_signal(signal.SIGINT)
            dev.wait(30)
        serve = [cold_serve(root, tmp, env, n) for n in range(min(args.rounds, 5))]
        healthz = [h for h, _ in serve]
        route = [r for _, r in serve]
        pytest_cold = [cold_pytest(root, env) for _ in range(min(args.rounds, 5))]

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"author loop, plugin from 'plugins new' under 'dev --headless', "
          f"{args.rounds} rounds after a warm-up; {os.cpu_count()} CPUs, load {load}")
    print(f"save -> route answers the Python edit      {ms(reload_times)}")
    print(f"  baseline: cold serve -> /healthz         {ms(healthz)}")
    print(f"  baseline: cold serve -> route answers    {ms(route)}")
    print(f"save -> tests.test_finished (one test)     {ms(test_times)}")
    print(f"save -> tests.run_finished                 {ms(run_times)}")
    print(f"  baseline: cold pytest of that file       {ms(pytest_cold)}")
    med = statistics.median
    print(f"ratios: restart(/healthz)/reload {med(healthz) / med(reload_times):.1f}x, "
          f"restart(route)/reload {med(route) / med(reload_times):.1f}x, "
          f"cold pytest/watch result {med(pytest_cold) / med(test_times):.1f}x")
    print(f"goals: reload < 1000 ms: {'met' if med(reload_times) < 1 else 'missed'}; "
          f"test result < 300 ms: {'met' if med(test_times) < 0.3 else 'missed'}")


if __name__ == "__main__":
    main()
