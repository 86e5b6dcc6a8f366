"""Takes docs/network-scanner.png: the page in QtWebEngine offscreen, as the desktop window
shows it, after a real scan of loopback listeners started here (a fake SSH server, an
old Apache with a directory listing, Redis without a password, a TLS server with an
expired certificate) run twice as a profile, with a change found in between.

Run from the repository root (it uses the project's GUI test fixtures; set
NS_SCREENSHOT_THEME=dark for docs/network-scanner-dark.png):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/network_scanner/docs/screenshot.py -q -n 0 \\
        -p no:cacheprovider
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx

from tests.gui.plugin_screenshots import docs_app, page_shots, sign_in

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # network_scanner.testing: the loopback listeners


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    import trustme
    from network_scanner.testing import (
        greeter,
        http_server,
        listener,
        redis_server,
        reserved_port,
        tls_context,
    )

    stack = AsyncExitStack()
    with docs_app(home, arun, tmp_path, plugin_settings={
            "network_scanner": {"connect_timeout": 0.3, "probe_timeout": 0.6}}) as rt:
        sign_in(rt, arun)
        ca = trustme.CA()
        banner = [b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n"]
        later = reserved_port()

        async def scenario() -> None:
            ports = [
                await stack.enter_async_context(listener(greeter(banner))),
                await stack.enter_async_context(listener(http_server(
                    "Apache/2.4.49 (Unix)", b"<html><title>Index of /</title></html>"))),
                await stack.enter_async_context(listener(redis_server())),
                await stack.enter_async_context(listener(
                    http_server("nginx/1.24.0"), tls_context(ca, expired=True))),
                later.getsockname()[1],
            ]
            async with httpx.AsyncClient(
                    base_url=f"{rt.url}plugins/network_scanner/api/", timeout=30,
                    headers={"Authorization": f"Bearer {rt.token}"}) as client:
                profile = (await client.post("profiles", json={
                    "name": "This laptop", "schedule": "every_30_minutes", "notify": True,
                    "options": {"targets": "localhost",
                                "ports": "top100," + ",".join(map(str, ports)),
                                "connect_timeout": 0.3, "probe_timeout": 0.6}})).json()
                for step in range(2):
                    if step == 1:  # SSH upgraded, a web server came up
                        banner[0] = b"SSH-2.0-OpenSSH_9.8p1 Ubuntu-1\r\n"
                        await stack.enter_async_context(listener(
                            http_server("uvicorn"), sock=later))
                    job = (await client.post(f"profiles/{profile['id']}/run")).json()["job"]
                    async with asyncio.timeout(60):
                        while (await client.get(f"_host/jobs/{job}")).json()["state"] \
                                not in ("succeeded", "failed", "cancelled"):
                            await asyncio.sleep(0.05)

        try:
            arun(scenario(), timeout=90_000)
            with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE,
                            "NS_SCREENSHOT_THEME") as shots:
                shots.open("/plugins/network_scanner/", size=(1440, 1760))
                js, count = shots.js, shots.count

                qtbot.waitUntil(lambda: count("#history tr") == 2, timeout=20_000)
                qtbot.waitUntil(lambda: count("#findings .finding") > 3, timeout=20_000)
                qtbot.waitUntil(lambda: count("#diff li") >= 2, timeout=20_000)
                qtbot.waitUntil(lambda: count("#alerts li button") == 1, timeout=20_000)
                # Show the first scan's findings (the older SSH): more to see.
                js("networkScanner.showScan(networkScanner.state.scans[1].id) && 1")
                qtbot.waitUntil(lambda: count("#history tr.current") == 1, timeout=20_000)
                js("networkScanner.showScan(networkScanner.state.scans[0].id) && 1")
                qtbot.waitUntil(lambda: count("#diff li") >= 2, timeout=20_000)
                shots.save("network-scanner", settle=400)
        finally:
            arun(stack.aclose())
