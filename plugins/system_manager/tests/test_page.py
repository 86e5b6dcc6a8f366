"""The page and its assets are served by the running app, and load nothing from elsewhere."""

from __future__ import annotations

import re


async def test_the_page_and_its_assets_are_served_and_local(app):
    async with app() as a:
        base = str(a.client.base_url).replace("/api/", "/")
        page = await a.client.get(base)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and not [s for s in sources if "//" in s]   # no CDN, no other host
        for asset in ("app.js", "style.css", "icon.svg"):
            response = await a.client.get(base + asset)
            assert response.status_code == 200, asset
        script = (await a.client.get(base + "app.js")).text
        # Every api/ route the page calls exists on the plugin's router.
        called = set(re.findall(r'api\("([a-z_/]+)', script)) | set(
            re.findall(r'api\(`([a-z_/]+)', script))
        assert {"state", "backups", "schedules/", "retention/preview", "restore",
                "maintenance/preview", "health/check", "windows"} <= called
        paths = {route.path.strip("/") for route in a.manager.ctx.router.routes}
        for path in called:
            assert any(p == path.strip("/") or p.startswith(path.strip("/"))
                       for p in paths), path
        state = (await a.client.get("state")).json()
        assert {"account", "schedules", "targets", "windows", "health", "history",
                "notifications", "maintenance", "capabilities"} <= set(state)
