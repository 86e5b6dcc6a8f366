"""The WebUI test dashboard's HTML pages: ``/tests``, ``/tests/plugin/<id>`` and
``/tests/analytics``.

The pages are shells: their scripts (``resources/web/dashboard/``) fill them from
``/tests/dashboard/...`` and ``/tests/statistics`` and keep them live over
``/tests/events``. Only what the scheduling form needs before any script runs (the plugin
choices, the time zones) is rendered here.
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from plexichat_desktop.testing.analytics import CATEGORIES
from plexichat_desktop.testing.manager import TestManager

PRESETS = [("hourly", "Hourly"), ("daily", "Daily"), ("weekly", "Weekly"),
           ("every_30_minutes", "Every 30 min"), ("every_6_hours", "Every 6 h")]


@functools.cache
def _timezones() -> list[str]:
    # Offered as suggestions only: the server validates whatever is typed.
    return sorted(z for z in zoneinfo.available_timezones()
                  if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))


def dashboard_pages(manager: TestManager, templates: Jinja2Templates,
                    version: str) -> APIRouter:
    """The pages; ``GET /tests`` and ``GET /tests/analytics`` have no API twin (the API is
    under ``/tests/analytics/<x>``), so nothing is shadowed."""
    router = APIRouter(include_in_schema=False)

    def render(request: Request, name: str, status_code: int = 200, **context: Any
               ) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"version": version, **context},
                                          status_code=status_code)

    def schedulable() -> list[dict[str, str]]:
        return [{"id": rec.id, "name": rec.name}
                for rec in sorted(manager.testable(), key=lambda r: r.name.lower())
                if manager.tests_dir(rec).is_dir()]

    @router.get("/tests", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        return render(request, "tests_overview.html", plugins=schedulable(),
                      selected_plugin=None, timezones=_timezones(), presets=PRESETS)

    @router.get("/tests/analytics", response_class=HTMLResponse)
    async def analytics(request: Request, plugin: str | None = None) -> HTMLResponse:
        choices = schedulable()
        selected = plugin if any(p["id"] == plugin for p in choices) else None
        return render(request, "tests_analytics.html", plugins=choices,
                      selected_plugin=selected, categories=CATEGORIES)

    @router.get("/tests/plugin/{plugin_id}", response_class=HTMLResponse)
    async def plugin_page(request: Request, plugin_id: str) -> HTMLResponse:
        rec = manager.plugins.by_id.get(plugin_id)
        if rec is None or rec.manifest is None:
            known = ", ".join(sorted(r.id for r in manager.testable())) or "none"
            # Always the HTML error page: this URL is only ever opened by a person.
            return render(request, "error.html", 404, status=404,
                          detail=f"plugin_id: no testable plugin '{plugin_id}' "
                                 f"(known: {known})")
        plugin = {"id": rec.id, "name": rec.manifest.name, "version": rec.manifest.version,
                  "description": rec.manifest.description}
        return render(request, "tests_plugin.html", plugin=plugin, plugins=schedulable(),
                      selected_plugin=rec.id, timezones=_timezones(), presets=PRESETS)

    return router
