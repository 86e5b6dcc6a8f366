"""Start-up benchmark: process start -> /healthz answering, and with every bundled plugin started;
then 100 generated plugins against 15 (bundled ones disabled).

Compared with a bare FastAPI + uvicorn hello-world started the same way (a subprocess on a
pre-bound loopback port, polled over HTTP) in the same run. Prints medians and the ratio.

``serve`` listens before it imports and builds the rest of the core: its first /healthz
answer says ``ready: false`` (other requests wait for the app); the app's own answers say
``ready: true``. Both moments are printed, and (on Linux) the CPU time the process had used
at its first answer, which other processes' load inflates far less than wall time.

    .venv/bin/python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop.core.paths import AppPaths, bundled_plugins_dir  # noqa: E402
from plexichat_desktop.plugins.discovery import Source, scan_folder  # noqa: E402
from plexichat_desktop.server.token import load_or_create_token  # noqa: E402

BASELINE = r'''
import socket, uvicorn
from fastapi import FastAPI
app = FastAPI()

@app.get("/healthz")
def healthz():
    return {"status": "ok"}

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(f"serving at http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[sock])
'''
URL_RE = re.compile(r"serving at (http://127\.0\.0\.1:\d+/)")
TIMEOUT = 60.0
WARM_UP_TIMEOUT = 240.0


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_to_healthy(cmd: list[str], env: dict[str, str], headers: dict[str, str],
                    ready: callable, first: list[float] | None = None,
                    timeout: float = TIMEOUT, first_cpu: list[float] | None = None,
                    app_ready: list[float] | None = None) -> float:
    """Seconds from process start to a /healthz answer that ``ready`` accepts; the time
    of the first 200 answer of any kind is appended to ``first``, the process's CPU time
    then to ``first_cpu``, and the time of the first answer without ``ready: false`` to
    ``app_ready``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if match := URL_RE.search(line):
                url = match.group(1)
                break
        if url is None:
            raise RuntimeError(f"{cmd} exited without printing its URL (rc {proc.wait()})")
        seen = seen_ready = False
        with httpx.Client(headers=headers, timeout=5) as client:
            while time.perf_counter() - start < timeout:
                try:
                    response = client.get(url + "healthz")
                    if response.status_code == 200 and not seen:
                        if first is not None:
                            first.append(time.perf_counter() - start)
                        cpu = process_cpu(proc.pid)
                        if first_cpu is not None and cpu is not None:
                            first_cpu.append(cpu)
                        seen = True
                    if (response.status_code == 200 and app_ready is not None
                            and not seen_ready and response.json().get("ready", True)):
                        app_ready.append(time.perf_counter() - start)
                        seen_ready = True
                    if response.status_code == 200 and ready(response.json()):
                        return time.perf_counter() - start
                except httpx.TransportError:
                    pass
                time.sleep(0.005)
        raise RuntimeError(f"{cmd}: /healthz not ready within {timeout} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def settled(body: dict) -> bool:
    """Every plugin has been started (active or degraded), or has failed to."""
    states = body["plugins"]
    return body.get("plugins_started", True) and not any(
        states.get(s) for s in ("discovered", "validated"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep the environment's byte-code setting (with "
                             "PYTHONDONTWRITEBYTECODE set, every start compiles the app)")
    parser.add_argument("--bundled-only", action="store_true",
                        help="skip the 15-against-100 generated plugins part")
    args = parser.parse_args()
    bundled = [c.root.name for c in scan_folder(bundled_plugins_dir(), Source.BUNDLED)]
    app_times, base_times = [], []
    pycache = tempfile.TemporaryDirectory(prefix="plexichat-bench-pycache-")
    with tempfile.TemporaryDirectory(prefix="plexichat-bench-") as tmp:
        env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": tmp}
        env.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
        if not args.no_bytecode_cache:
            # An installed app has byte-code (pip compiles it at install time); with
            # PYTHONDONTWRITEBYTECODE inherited every start would compile the app's ~300
            # modules again. A private cache, warmed by an unmeasured run of each command.
            # Set here too: many_plugins() starts its runs from this environment.
            for environ in (env, os.environ):
                environ.pop("PYTHONDONTWRITEBYTECODE", None)
                environ["PYTHONPYCACHEPREFIX"] = str(Path(pycache.name))
        token = load_or_create_token(AppPaths.from_env(env).token_file)
        auth = {"Authorization": f"Bearer {token}"}
        app_cmd = [sys.executable, "-m", "plexichat_desktop", "serve", "--port", "0",
                   "--log-level", "WARNING"]
        base_cmd = [sys.executable, "-c", BASELINE]
        if not args.no_bytecode_cache:
            # The warm-up compiles the app and all 15 plugins into the empty cache: on a
            # loaded shared machine that alone took over a minute.
            time_to_healthy(app_cmd, env, auth, settled, timeout=WARM_UP_TIMEOUT)
            time_to_healthy(base_cmd, env, {}, lambda body: True, timeout=WARM_UP_TIMEOUT)
        answering: list[float] = []
        app_built: list[float] = []
        app_cpu: list[float] = []
        base_cpu: list[float] = []
        for _ in range(args.runs):  # interleaved, so drift in machine load hits both alike
            app_times.append(time_to_healthy(app_cmd, env, auth, settled, answering,
                                             first_cpu=app_cpu, app_ready=app_built))
            base_times.append(time_to_healthy(base_cmd, env, {}, lambda body: True,
                                              first_cpu=base_cpu))
    app_median, base_median = statistics.median(app_times), statistics.median(base_times)
    first_median = statistics.median(answering)
    print(f"bundled plugins: {len(bundled)} ({', '.join(bundled)})")
    print(f"runs: {args.runs}; "
          + ("byte-code as the environment says" if args.no_bytecode_cache
             else "byte-code cached (one warm-up run of each command not counted)")
          + f"; load average {os.getloadavg()} on {os.cpu_count()} CPU(s)")
    print(f"plexichat-desktop serve -> /healthz answering (plugins start in the background): "
          f"median {first_median * 1000:.0f} ms (min {min(answering) * 1000:.0f}, "
          f"max {max(answering) * 1000:.0f}); ratio {first_median / base_median:.2f}x")
    print(f"plexichat-desktop serve -> /healthz, every plugin started: "
          f"median {app_median * 1000:.0f} ms (min {min(app_times) * 1000:.0f}, "
          f"max {max(app_times) * 1000:.0f})")
    print(f"bare FastAPI + uvicorn hello-world -> /healthz:         "
          f"median {base_median * 1000:.0f} ms (min {min(base_times) * 1000:.0f}, "
          f"max {max(base_times) * 1000:.0f})")
    print(f"ratio (every plugin started): {app_median / base_median:.2f}x the bare framework")
    print(f"plexichat-desktop serve -> /healthz ready: true (the app built; plugins starting): "
          f"median {statistics.median(app_built) * 1000:.0f} ms (min "
          f"{min(app_built) * 1000:.0f}, max {max(app_built) * 1000:.0f}); ratio "
          f"{statistics.median(app_built) / base_median:.2f}x")
    if app_cpu and base_cpu:
        cpu_app, cpu_base = statistics.median(app_cpu), statistics.median(base_cpu)
        print(f"CPU time of the process at its first /healthz answer: serve median "
              f"{cpu_app * 1000:.0f} ms, bare FastAPI + uvicorn median {cpu_base * 1000:.0f} "
              f"ms; ratio {cpu_app / cpu_base:.2f}x")
    if not args.bundled_only:
        many_plugins(args.runs, app_cmd)
    pycache.cleanup()
    return 0


PLUGIN_CODE = """from plexichat_desktop.plugins.api import Plugin, PluginContext


class Generated(Plugin):
    def setup(self, ctx: PluginContext) -> None:
        ctx.add_route("/ping", self.ping)

    async def ping(self) -> dict[str, str]:
        return {"pong": "yes"}
"""


def generate_plugins(root: Path, count: int) -> None:
    """``count`` small real plugins (manifest, package with a route, a page)."""
    for n in range(count):
        folder = root / f"gen_{n:03d}"
        (folder / f"gen_{n:03d}_pkg").mkdir(parents=True)
        (folder / "web").mkdir()
        (folder / "plugin.toml").write_text(
            f'id = "gen_{n:03d}"\nname = "Generated {n}"\nversion = "1.0.0"\n'
            f'entry = "gen_{n:03d}_pkg:Generated"\n\n[[pages]]\ntitle = "Page"\n'
            'path = "index.html"\n')
        (folder / f"gen_{n:03d}_pkg" / "__init__.py").write_text(PLUGIN_CODE)
        (folder / "web" / "index.html").write_text("<!doctype html><title>gen</title>")


def many_plugins(runs: int, app_cmd: list[str]) -> None:
    """Start-up with 100 generated plugins against 15 (the bundled ones switched off), in
    the same run: what each plugin costs the start."""
    results: dict[int, tuple[list[float], list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="plexichat-bench-many-") as tmp:
        for count in (15, 100):
            generate_plugins(Path(tmp) / f"plugins-{count}", count)
        envs = {count: {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(Path(tmp) / f"home-{count}"),
                        "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(Path(tmp) / f"plugins-{count}")}
                for count in (15, 100)}
        bundled = [c.root.name for c in scan_folder(bundled_plugins_dir(), Source.BUNDLED)]
        for env in envs.values():  # only the generated plugins count
            for plugin_id in bundled:
                subprocess.run([sys.executable, "-m", "plexichat_desktop", "plugins", "disable",
                                plugin_id], env=env, capture_output=True, check=True)
        for _ in range(runs):
            for count, env in envs.items():
                auth = {"Authorization":
                        f"Bearer {load_or_create_token(AppPaths.from_env(env).token_file)}"}
                answering, started, built = results.setdefault(count, ([], [], []))
                started.append(time_to_healthy(app_cmd, env, auth, settled, answering,
                                               app_ready=built))
    for count, (answering, started, built) in results.items():
        print(f"{count:3d} generated plugins: /healthz answering median "
              f"{statistics.median(answering) * 1000:.0f} ms, ready: true (app built, "
              f"manifests read) median {statistics.median(built) * 1000:.0f} ms, every plugin "
              f"started median {statistics.median(started) * 1000:.0f} ms")

    def ratio(index: int) -> float:
        return statistics.median(results[100][index]) / statistics.median(results[15][index])

    print(f"100 vs 15 plugins: answering {ratio(0):.2f}x, ready {ratio(2):.2f}x, every plugin "
          f"started {ratio(1):.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
