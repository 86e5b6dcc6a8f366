"""Analytics Dashboard: PlexiChat usage analytics with reports, subscriptions and alerts.

* KPI cards over 7/30/90/365 days, each against the period before;
* trends with a moving average, % change, anomalies explained in words, a forecast band;
* reports (activity, files, messaging, top users) as tables and charts, CSV and PDF;
* report subscriptions and alert rules (threshold or anomaly) that notify through a v1
  notification or a webhook: no mail server, no separate service.

Data comes from the v1 analytics API through ``ctx.api`` (the API integration layer,
acting as the signed-in user). Routes are under ``/plugins/analytics_dashboard/api/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from analytics_dashboard import analysis, delivery, exports, stats
from analytics_dashboard.automation import (
    OPERATORS,
    AutomationStore,
    RuleIn,
    SubscriptionIn,
    next_run,
    public,
    step,
)
from analytics_dashboard.metrics import KPI_KEYS, METRICS, PERIODS, SERIES_KEYS
from plexichat_desktop.plugins.api import Plugin, PluginContext, PluginProblem
from plexichat_desktop.plugins.guards import UnsafePath, safe_path
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.settings import PluginSettings

Days = Annotated[int, Query(ge=1, le=365, description="UTC days back, today included")]
PAGE = "/plugins/analytics_dashboard/"
SIGN_IN = ("not signed in to PlexiChat: sign in on the API Integration page "
           "(/plugins/api_integration_layer/), then reload")
ADMIN_NEEDED = "administrator needed: this report is for PlexiChat's administrator"
#: A failed subscription run is tried again this much later, this many times in a row,
#: before it waits for its next slot (the sign-in may simply not be restored yet).
RETRY_SECONDS = 600.0
RETRIES = 3


class DashboardSettings(PluginSettings):
    """``[plugin.analytics_dashboard]`` in settings.toml."""

    alert_check_minutes: int = Field(15, ge=1, le=1440)
    keep_reports: int = Field(30, ge=1, le=1000)
    forecast_days: int = Field(14, ge=1, le=90)
    anomaly_threshold: float = Field(stats.DEFAULT_THRESHOLD, ge=2.0, le=20.0)
    #: Seconds after start before missed subscriptions run (the sign-in is restored first).
    start_delay: float = Field(5.0, ge=0, le=600)
    #: Private, link-local or other non-public hosts webhooks may reach (addresses,
    #: networks like "192.168.1.0/24", names); public hosts and loopback need no entry.
    webhook_allowed_hosts: list[str] = Field(default_factory=list)


def _sign_in_needed() -> PluginProblem:
    return PluginProblem(401, None, SIGN_IN, sign_in_needed=True)


def _problem(exc: Exception) -> PluginProblem:
    """The v1 client's errors as answers the page can show (``detail`` and the flags it
    acts on: ``sign_in_needed``, ``admin_needed``); raised, the host answers them."""
    from api_integration_layer.errors import ApiHTTPError, ApiUnavailable, NotAuthenticated

    if isinstance(exc, PluginProblem):
        return exc
    if isinstance(exc, NotAuthenticated):
        return _sign_in_needed()
    if isinstance(exc, ApiHTTPError):
        if exc.status == 403:
            return PluginProblem(403, None, f"{ADMIN_NEEDED} ({exc.detail})",
                                 admin_needed=True)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return PluginProblem(exc.status if 400 <= exc.status < 500 else 502, None,
                             f"PlexiChat answered {exc.status}: {detail}")
    if isinstance(exc, ApiUnavailable):
        return PluginProblem(502, None, f"PlexiChat is unreachable: {exc}")
    if isinstance(exc, delivery.DeliveryError):
        return PluginProblem(502, None, str(exc))
    raise exc


def _failure_text(exc: Exception, logger: Any, what: str) -> str:
    """What a background run records on its subscription or rule: the client's errors
    as the page shows them, anything else by its type and words, logged with its
    traceback (re-raised, one unexpected error ended the timer running them all)."""
    try:
        return str(_problem(exc))
    except Exception:
        logger.error("%s failed", what, exc_info=exc)
        return f"unexpected error: {type(exc).__name__}: {exc}"


def _csv_list(text: str, field: str, known: tuple[str, ...]) -> list[str]:
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in known]
    if unknown or not wanted:
        raise PluginProblem(422, field, f"unknown {', '.join(unknown) or '(none given)'}; "
                                        f"known: {', '.join(known)}")
    return list(dict.fromkeys(wanted))


# Times a failed alert is sent again (one per check) before it is left to the next fire.
MAX_RESENDS = 5


class AnalyticsDashboardPlugin(Plugin):
    """Routes, the alert schedule and the subscription timer."""

    settings_model = DashboardSettings

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: DashboardSettings = ctx.config
        self.api = ctx.api
        self.store = AutomationStore(ctx.data_dir / "automation.json")
        self.reports_dir = ctx.data_dir / "reports"
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        self._check_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._admin: dict[str, bool] = {}
        # Live updates for open pages: a fire, a resolution, a report sent, a change.
        self.hub = EventHub()

        route = ctx.add_route
        route("/status", self.status_route)
        route("/overview", self.overview_route)
        route("/trends", self.trends_route)
        route("/reports/{report_type}", self.report_route)
        route("/reports/{report_type}/export", self.export_route)
        route("/rules", self.rules_route)
        route("/rules", self.add_rule_route, methods=["POST"])
        route("/rules/check", self.check_rules_route, methods=["POST"])
        route("/rules/{rule_id}/test", self.test_rule_route, methods=["POST"])
        route("/stream", self.stream_route)
        route("/rules/{rule_id}", self.update_rule_route, methods=["PUT"])
        route("/rules/{rule_id}", self.delete_rule_route, methods=["DELETE"])
        route("/subscriptions", self.subscriptions_route)
        route("/subscriptions", self.add_subscription_route, methods=["POST"])
        route("/subscriptions/{sub_id}", self.update_subscription_route, methods=["PUT"])
        route("/subscriptions/{sub_id}", self.delete_subscription_route, methods=["DELETE"])
        route("/subscriptions/{sub_id}/run", self.run_subscription_route, methods=["POST"])
        route("/events", self.events_route)
        route("/files", self.files_route)
        route("/files/{name}", self.file_route)

        minutes = self.config.alert_check_minutes
        every = (f"every_{minutes // 60}_hours" if minutes % 60 == 0
                 else f"every_{minutes}_minutes")
        ctx.schedule(every, self.check_rules, "alert rules")
        self._timer = ctx.create_task(self._subscription_timer(),
                                      name="analytics subscriptions")

    # -- helpers -----------------------------------------------------------------------
    async def _guard(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``work``; the v1 client's errors become answers naming the problem."""
        if not self.api.user:
            raise _sign_in_needed()
        try:
            return await work()
        except PluginProblem:
            raise
        except Exception as exc:  # _problem re-raises what it does not know
            raise _problem(exc) from exc

    async def is_admin(self) -> bool:
        user = self.api.user or {}
        uid = str(user.get("id", ""))
        if uid not in self._admin:
            me = await self.api.auth.me()
            self._admin[uid] = bool(getattr(me, "is_admin", False))
        return self._admin[uid]

    def firing(self) -> int:
        """How many enabled rules are firing now."""
        return sum(1 for r in self.store.rules.values()
                   if r.get("enabled") and r["state"]["status"] == "firing")

    def changed(self, why: str) -> None:
        """Tell open pages that rules, subscriptions or the event log changed."""
        self.hub.publish("automation", {"why": why, "firing": self.firing(),
                                        "events": len(self.store.events)})

    async def stream_route(self) -> Any:
        """Server-Sent Events: ``automation`` (``{why, firing, events}``) on every change,
        the current state first."""
        first = [("automation", {"why": "connected", "firing": self.firing(),
                                 "events": len(self.store.events)})]
        return self.ctx.event_stream(self.hub.events(first=first))

    # -- dashboard routes --------------------------------------------------------------
    async def status_route(self) -> dict[str, Any]:
        """Who is signed in, the metrics, periods and reports the page offers."""
        user = self.api.user
        admin = None
        if user:
            try:
                admin = await self.is_admin()
            except Exception:  # the page still works; admin stays unknown
                admin = None
        return {
            "signed_in": bool(user), "user": user, "is_admin": admin,
            "sign_in_hint": None if user else SIGN_IN,
            "periods": list(PERIODS), "kpis": list(KPI_KEYS),
            "metrics": [{"key": k, "label": m.label, "unit": m.unit, "help": m.help,
                         "series": m.series is not None} for k, m in METRICS.items()],
            "series_metrics": list(SERIES_KEYS),
            "reports": [{"type": t, "admin_only": t == "top_users"}
                        for t in analysis.REPORT_CHARTS],
            "settings": self.config.model_dump(),
        }

    async def overview_route(self, days: Days = 30, fresh: bool = False) -> Any:
        """KPI cards for the last ``days`` days against the ``days`` before."""
        async def work() -> Any:
            with self._cache(fresh):
                return await analysis.overview(self.api, days)
        return await self._guard(work)

    async def trends_route(
        self, days: Days = 30,
        metrics: Annotated[str, Query(max_length=300)] = "messages,active_users",
        forecast: Annotated[int, Query(ge=0, le=90, description="days to forecast")] = 0,
        window: Annotated[int | None, Query(ge=1, le=90)] = None,
        threshold: Annotated[float | None, Query(ge=2.0, le=20.0)] = None,
        compare: bool = True,
        fresh: bool = False,
    ) -> Any:
        """Daily series with moving average, anomalies (explained), a forecast and (with
        ``compare``) the previous period day by day."""
        keys = _csv_list(metrics, "metrics", SERIES_KEYS)

        async def work() -> Any:
            limit = threshold or self.config.anomaly_threshold
            options = {"window": window, "threshold": limit, "forecast_days": forecast,
                       "compare": compare}
            with self._cache(fresh):
                return await analysis.trends(self.api, keys, days, **options)
        return await self._guard(work)

    def _cache(self, fresh: bool) -> Any:
        """Around a read: the API layer's cache bypassed when ``fresh`` (the page's
        Refresh), else as it is."""
        return self.api.bypass_cache() if fresh else contextlib.nullcontext()

    def _known_report(self, report_type: str) -> None:
        if report_type not in analysis.REPORT_CHARTS:
            raise PluginProblem(404, "report_type", f"no report {report_type!r}; known: "
                                                   f"{', '.join(analysis.REPORT_CHARTS)}")

    async def report_route(self, report_type: str, days: Days = 30,
                           fresh: bool = False) -> Any:
        """A report as columns, rows, summary and what to chart (``fresh``: not from the
        API layer's cache, as the page's Refresh asks)."""
        async def work() -> Any:
            self._known_report(report_type)
            with self._cache(fresh):
                return await analysis.report(self.api, report_type, days)
        return await self._guard(work)

    async def export_route(
        self, report_type: str, days: Days = 30,
        format: Annotated[str, Query(pattern="^(csv|pdf)$")] = "csv",
    ) -> Any:
        """The report as a CSV (formula-safe) or PDF download, of the figures as they are
        now (a file kept for later was up to the cache's 30 s old)."""
        async def work() -> Any:
            self._known_report(report_type)
            with self.api.bypass_cache():
                data = await analysis.report(self.api, report_type, days)
            # A PDF takes fpdf2 0.1-5 s (its first import and font parsing): off the loop.
            content, media, name = await asyncio.to_thread(self.render, data, format)
            return Response(content, media_type=media, headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store"})
        return await self._guard(work)

    def render(self, data: dict[str, Any], fmt: str) -> tuple[bytes, str, str]:
        """``(bytes, media type, file name)`` of a report in ``fmt`` (csv or pdf)."""
        base = f"{data['type']}-{data['period_days']}d-{exports.stamp()}"
        if fmt == "csv":
            text = exports.to_csv(data["columns"], data["rows"])
            return text.encode("utf-8"), "text/csv; charset=utf-8", base + ".csv"
        subtitle = (f"Last {data['period_days']} days (UTC) from "
                    f"{exports.day_text(data.get('since'))} · generated "
                    f"{exports.moment_text(data.get('generated_at'))}")
        pdf = exports.to_pdf(data["title"], subtitle, data["columns"], data["rows"],
                             data["summary"])
        return pdf, "application/pdf", base + ".pdf"

    # -- alert rules -------------------------------------------------------------------
    async def rules_route(self) -> dict[str, Any]:
        """Every rule with its state and condition in words."""
        return {"rules": [self._rule_view(r) for r in self.store.rules.values()],
                "check_every_minutes": self.config.alert_check_minutes}

    def _rule_view(self, record: dict[str, Any]) -> dict[str, Any]:
        rule = RuleIn.model_validate({k: record[k] for k in RuleIn.model_fields})
        return {**public(record), "condition": rule.describe()}

    async def _refused_webhook(self, target: RuleIn | SubscriptionIn) -> JSONResponse | None:
        """A 422 for a webhook address every delivery would refuse (a private or
        link-local address not on the allow-list): said now, not at the first alert or
        report."""
        if target.channel != "webhook" or not target.webhook_url:
            return None
        why = await delivery.refused_now(target.webhook_url,
                                         self.config.webhook_allowed_hosts)
        return (None if why is None else
                JSONResponse({"detail": why, "field": "webhook_url"}, status_code=422))

    async def add_rule_route(self, rule: RuleIn) -> Any:
        """Create a rule and check it at once (so the page shows its state)."""
        if refused := await self._refused_webhook(rule):
            return refused
        record = self.store.add_rule(rule)
        if self.api.user:
            await self.check_rules([record["id"]])
        self.changed("rule added")
        return JSONResponse(self._rule_view(record), status_code=201)

    async def update_rule_route(self, rule_id: str, rule: RuleIn) -> Any:
        """Change a rule; its state is kept, so the next check reports a transition."""
        if rule_id not in self.store.rules:
            return JSONResponse({"detail": f"rule_id: no rule {rule_id!r}"}, status_code=404)
        before = self.store.rules[rule_id]
        # Judged when the address changes: a rule saved before the check (or whose
        # allow-list entry went away) must still be paused and edited otherwise.
        moved = (rule.channel, rule.webhook_url) != (before.get("channel"),
                                                     before.get("webhook_url"))
        if moved and (refused := await self._refused_webhook(rule)):
            return refused
        record = self.store.update_rule(rule_id, rule)
        if moved:
            record["state"]["resends"] = 0  # a new address gets its own tries
        self.changed("rule changed")
        return self._rule_view(record)

    async def delete_rule_route(self, rule_id: str) -> Any:
        record = self.store.rules.pop(rule_id, None)
        if record is None:
            return JSONResponse({"detail": f"rule_id: no rule {rule_id!r}"}, status_code=404)
        self.store.save()
        self.changed("rule deleted")
        return {"deleted": rule_id}

    async def check_rules_route(self) -> Any:
        """Check every enabled rule now; the events this produced."""
        if not self.api.user:
            raise _sign_in_needed()
        events = await self.check_rules()
        return {"events": events,
                "rules": [self._rule_view(r) for r in self.store.rules.values()]}

    async def test_rule_route(self, rule_id: str) -> Any:
        """Send a test message through the rule's channel now (its state is unchanged),
        so a webhook or the notification can be checked before anything fires."""
        record = self.store.rules.get(rule_id)
        if record is None:
            return JSONResponse({"detail": f"rule_id: no rule {rule_id!r}"}, status_code=404)
        message = (f"Test of the rule “{record['name']}”: when it fires, a message like "
                   "this one arrives here.")
        logged = self.store.log("alert.test", message, rule_id=rule_id,
                                rule_name=record["name"], sent=True)
        if await self._send_alert(record, "test", message, None, logged):
            # The channel works again: an undelivered fire gets its tries back (after
            # MAX_RESENDS it waited for the condition to clear and fire anew).
            record["state"]["resends"] = 0
        self.store.save()
        self.changed("test")
        if not logged.get("delivered"):
            return JSONResponse({"detail": logged.get("delivery_error"), "delivered": False},
                                status_code=502)
        return {"delivered": True, "channel": record["channel"]}

    async def check_rules(self, only: list[str] | None = None) -> list[dict[str, Any]]:
        """Check the enabled rules (or ``only`` these) once; fire and resolve on
        transitions. Returns the events logged. Run by the schedule, too."""
        async with self._check_lock:
            events: list[dict[str, Any]] = []
            if not self.api.user:
                return events
            cache: dict[Any, Any] = {}
            now = time.time()
            for rule_id, record in list(self.store.rules.items()):
                if (only is not None and rule_id not in only) or not record.get("enabled"):
                    continue
                state = record["state"]
                state["last_checked_at"] = now
                try:
                    # Fresh figures: a cached answer could miss a change or a recovery.
                    with self.api.bypass_cache():
                        breached, value, message = await self._condition(record, cache)
                except Exception as exc:  # recorded on the rule, next goes on
                    state["last_error"] = _failure_text(exc, self.ctx.logger,
                                                        f"rule {record['name']!r}")
                    continue
                state.update(last_value=value, last_message=message)
                if not state.get("undelivered"):  # a failed delivery stays shown until sent
                    state["last_error"] = None
                change = step(record, breached, now)
                if change.event is None:
                    if (state.get("undelivered") and state["status"] == "firing"
                            and state.get("resends", 0) < MAX_RESENDS):
                        # Its delivery failed: sent again on each check until one arrives
                        # (without it the alert counted as sent and started the cooldown).
                        event = self.store.log("alert.fired", message, rule_id=rule_id,
                                               rule_name=record["name"], value=value,
                                               sent=True, note="sent again: the last "
                                               "delivery failed")
                        await self._deliver_fire(record, message, value, event, now,
                                                 state.get("last_fired_sent_at"), resend=True)
                        events.append(event)
                    continue
                event = self.store.log(f"alert.{change.event}", message, rule_id=rule_id,
                                       rule_name=record["name"], value=value,
                                       sent=change.send, note=change.note)
                if change.send and change.event == "fired":
                    await self._deliver_fire(record, message, value, event, now,
                                             change.previous_sent_at)
                elif change.send:
                    await self._send_alert(record, change.event, message, value, event)
                events.append(event)
            self.store.save()
            if events:
                self.changed("alerts")
            return events

    async def _condition(self, record: dict[str, Any], cache: dict[Any, Any]
                         ) -> tuple[bool, float | None, str]:
        rule = RuleIn.model_validate({k: record[k] for k in RuleIn.model_fields})
        metric = METRICS[rule.metric]
        if rule.kind == "threshold":
            key = ("usage", rule.window_days)
            if key not in cache:
                cache[key] = await analysis.metric_values(self.api, list(METRICS),
                                                          rule.window_days)
            value = cache[key][rule.metric]
            if value is None:
                return False, None, f"{metric.label}: no data in the window, nothing to compare"
            assert rule.value is not None
            breached = OPERATORS[rule.operator](value, rule.value)
            shown = f"{value:.1f} %" if rule.metric == "webhook_delivery_rate" else f"{value:,.0f}"
            verdict = "breaks" if breached else "within"
            return breached, value, (f"{metric.label}: {shown} — {verdict} the rule "
                                     f"“{rule.describe()}”.")
        key = ("series", rule.metric)
        if key not in cache:
            cache[key] = (await analysis.gather_series(self.api, [rule.metric], 60))[rule.metric]
        points = cache[key]
        dates = [p["date"] for p in points]
        values = [float(p["count"]) for p in points]
        checks = []  # (index, side): spikes show today; drops need a whole day
        if rule.direction in ("up", "both"):
            checks.append((len(values) - 1, "up"))
        if rule.direction in ("down", "both"):
            checks.append((len(values) - 2, "down"))
        for index, side in checks:
            found = stats.anomalies(dates[:index + 1], values[:index + 1], label=metric.unit,
                                    threshold=rule.sensitivity, start=index,
                                    direction=side)  # type: ignore[arg-type]
            if found:
                return True, found[0].value, found[0].explanation
        parts = []
        for index, side in checks:
            z, mid, _ = stats.robust_z(values[index], values[max(0, index - 28):index])
            day = "today so far" if side == "up" else f"yesterday ({dates[index]})"
            parts.append(f"no {'spike' if side == 'up' else 'drop'}: {values[index]:,.0f} "
                         f"{day}, usually {mid:,.0f} (robust z {z:+.1f}; "
                         f"{'+' if side == 'up' else '-'}{rule.sensitivity:g} needed)")
        return False, values[checks[0][0]], f"{metric.label}: {'; '.join(parts)}."

    async def _deliver_fire(self, record: dict[str, Any], message: str, value: float | None,
                            logged: dict[str, Any], now: float,
                            previous_sent_at: float | None, resend: bool = False) -> None:
        """Send a fire; only a delivered one counts as sent (it starts the cooldown and
        lets the resolution be sent). A failed one is sent again on the next check."""
        state = record["state"]
        if await self._send_alert(record, "fired", message, value, logged):
            state.update(fire_sent=True, last_fired_sent_at=now, undelivered=False,
                         last_error=None, resends=0)
        else:
            # Counted: an address that keeps refusing (a name that resolves to a private
            # address) must not fill the event log with a resend per check for good.
            state.update(fire_sent=False, last_fired_sent_at=previous_sent_at,
                         undelivered=True,
                         resends=state.get("resends", 0) + 1 if resend else 0)

    async def _send_alert(self, record: dict[str, Any], event: str, message: str,
                          value: float | None, logged: dict[str, Any]) -> bool:
        title = {"fired": "Alert", "resolved": "Resolved", "test": "Test"}[event] + \
            f": {record['name']}"
        try:
            if record["channel"] == "webhook":
                await delivery.post_webhook(record["webhook_url"], record["secret"],
                                            f"analytics.alert.{event}", {
                                                "rule_id": record["id"],
                                                "rule": record["name"], "value": value,
                                                "message": message, "title": title},
                                            allow=self.config.webhook_allowed_hosts)
            else:
                await delivery.notify(self.api, title, message,
                                      kind={"fired": "warning", "resolved": "success"}.get(
                                          event, "info"),
                                      priority="high" if event == "fired" else "normal",
                                      action_url=PAGE + "#alerts",
                                      metadata={"rule_id": record["id"], "event": event})
            logged["delivered"] = True
            return True
        except delivery.DeliveryError as exc:
            logged["delivered"] = False
            logged["delivery_error"] = str(exc)
            record["state"]["last_error"] = f"delivery failed: {exc}"
            return False

    # -- subscriptions -----------------------------------------------------------------
    async def subscriptions_route(self) -> dict[str, Any]:
        return {"subscriptions": [public(s) for s in self.store.subscriptions.values()]}

    async def _refuse_admin_report(self, sub: SubscriptionIn) -> None:
        """403 for an administrator's report subscribed by someone else: it was saved and
        then failed on every run."""
        if sub.report != "top_users" or not self.api.user:
            return
        try:
            admin = await self.is_admin()
        except Exception:  # the server away: the first run will say so
            return
        if not admin:
            raise PluginProblem(403, "report", ADMIN_NEEDED, admin_needed=True)

    async def add_subscription_route(self, sub: SubscriptionIn) -> Any:
        """Create a subscription; it first runs at its next scheduled time."""
        if sub.upload and not self.api.allows("files:write"):
            return JSONResponse({"detail": "upload: this plugin may not upload files"},
                                status_code=422)
        if refused := await self._refused_webhook(sub):
            return refused
        await self._refuse_admin_report(sub)
        record = self.store.add_subscription(sub, time.time())
        self._wake.set()
        self.changed("subscription added")
        return JSONResponse(public(record), status_code=201)

    async def update_subscription_route(self, sub_id: str, sub: SubscriptionIn) -> Any:
        if sub_id not in self.store.subscriptions:
            return JSONResponse({"detail": f"sub_id: no subscription {sub_id!r}"},
                                status_code=404)
        before = self.store.subscriptions[sub_id]
        # As for rules: judged when the address changes, so an old subscription whose
        # address is refused now can still be paused or moved to the notification.
        if (sub.channel, sub.webhook_url) != (before.get("channel"), before.get("webhook_url")
                                              ) and (refused := await self._refused_webhook(sub)):
            return refused
        if sub.report != before.get("report"):
            await self._refuse_admin_report(sub)
        record = self.store.update_subscription(sub_id, sub, time.time())
        self._wake.set()
        self.changed("subscription changed")
        return public(record)

    async def delete_subscription_route(self, sub_id: str) -> Any:
        """Delete a subscription and the report files it kept (they stayed in "Kept
        reports" for good: pruning only looks after subscriptions that exist)."""
        if self.store.subscriptions.pop(sub_id, None) is None:
            return JSONResponse({"detail": f"sub_id: no subscription {sub_id!r}"},
                                status_code=404)
        self.store.save()
        removed = 0
        for kept in self.reports_dir.glob(f"{sub_id}-*"):
            kept.unlink(missing_ok=True)
            removed += 1
        self._wake.set()
        self.changed("subscription deleted")
        return {"deleted": sub_id, "files_deleted": removed}

    async def run_subscription_route(self, sub_id: str) -> Any:
        """Run a subscription now (its schedule is unchanged)."""
        if sub_id not in self.store.subscriptions:
            return JSONResponse({"detail": f"sub_id: no subscription {sub_id!r}"},
                                status_code=404)
        if not self.api.user:
            raise _sign_in_needed()
        record = await self.run_subscription(sub_id, scheduled=False)
        status = 200 if record["last_status"] == "ok" else 502
        if record["last_status"] != "ok" and str(record["last_error"]).startswith(
                "administrator needed"):
            status = 403
        return JSONResponse(public(record), status_code=status)

    async def run_subscription(self, sub_id: str, *, scheduled: bool = True
                               ) -> dict[str, Any]:
        """Render the report, keep the file, deliver it; record the outcome. A scheduled
        run that fails is retried :data:`RETRIES` times, :data:`RETRY_SECONDS` apart."""
        record = self.store.subscriptions[sub_id]
        now = time.time()
        try:
            if not self.api.user:
                raise delivery.DeliveryError(SIGN_IN)
            with self.api.bypass_cache():
                data = await analysis.report(self.api, record["report"], record["days"])
            content, _media, name = await asyncio.to_thread(self.render, data,
                                                            record["format"])
            name = f"{record['id']}-{name}"
            # The folder may have been moved away by hand since the start: made again.
            self.reports_dir.mkdir(parents=True, exist_ok=True)
            (self.reports_dir / name).write_bytes(content)
            self._prune(record["id"])
            uploaded = None
            if record.get("upload"):
                info = await self.api.files.upload(content, name,
                                                   description=f"Report: {record['name']}")
                uploaded = info.id
            await self._deliver_report(record, data, name, uploaded)
        except Exception as exc:  # recorded and shown on the subscription
            detail = _failure_text(exc, self.ctx.logger, f"report {record['name']!r}")
            record.update(last_status="failed", last_error=detail, last_run_at=now)
            record["failures"] = int(record.get("failures") or 0) + 1
            if scheduled:
                slot = next_run(record["schedule"], now)
                record["next_run_at"] = (min(slot, now + RETRY_SECONDS)
                                         if record["failures"] <= RETRIES else slot)
            self.store.log("report.failed", f"{record['name']}: {detail}",
                           subscription_id=sub_id)
        else:
            record.update(last_status="ok", last_error=None, last_run_at=now, last_file=name,
                          runs=int(record.get("runs") or 0) + 1, failures=0)
            if scheduled:
                record["next_run_at"] = next_run(record["schedule"], now)
            self.store.log("report.sent", f"{record['name']}: {name}",
                           subscription_id=sub_id, file=name, uploaded_file_id=uploaded)
        self.store.save()
        self.changed("report")
        return record

    async def _deliver_report(self, record: dict[str, Any], data: dict[str, Any], name: str,
                              uploaded: str | None) -> None:
        link = f"{PAGE}api/files/{name}"
        if record["channel"] == "webhook":
            await delivery.post_webhook(record["webhook_url"], record["secret"],
                                        "analytics.report", {
                                            "subscription": record["name"], "file": name,
                                            "report": {k: data[k] for k in (
                                                "type", "title", "period_days", "since",
                                                "columns", "rows", "summary")}},
                                        allow=self.config.webhook_allowed_hosts)
            return
        rows = len(data["rows"])
        extra = " It is also in your PlexiChat files." if uploaded else ""
        await delivery.notify(self.api, f"Report: {record['name']}",
                              f"{data['title']}, last {data['period_days']} days: {rows} "
                              f"rows, {record['format'].upper()} ready.{extra}",
                              action_url=link, metadata={"file": name,
                                                         "subscription_id": record["id"]})

    def _prune(self, sub_id: str) -> None:
        mine = sorted(self.reports_dir.glob(f"{sub_id}-*"), key=lambda p: p.stat().st_mtime)
        for old in mine[:-self.config.keep_reports]:
            old.unlink(missing_ok=True)

    async def _subscription_timer(self) -> None:
        """Sleep until the earliest enabled subscription is due (or a change), run what
        is due. A slot missed while the app was closed runs once at start. The sleep is
        capped so a machine waking from suspend catches up within five minutes."""
        await asyncio.sleep(self.config.start_delay)
        while True:
            now = time.time()
            for sub_id, record in list(self.store.subscriptions.items()):
                if record.get("enabled") and record["next_run_at"] <= now:
                    try:
                        await self.run_subscription(sub_id)
                    except Exception:  # the record could not be saved: the rest still run
                        self.ctx.logger.exception("subscription %s", sub_id)
                        record["next_run_at"] = now + RETRY_SECONDS
            upcoming = [r["next_run_at"] for r in self.store.subscriptions.values()
                        if r.get("enabled")]
            wait = min(upcoming) - time.time() if upcoming else 300.0
            self._wake.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel (the
            # plugin's teardown) that meets a wake in the same turn: this loop would go on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, min(wait, 300.0))):
                    await self._wake.wait()

    # -- events and files --------------------------------------------------------------
    async def events_route(self, limit: Annotated[int, Query(ge=1, le=300)] = 50
                           ) -> dict[str, Any]:
        """The newest alert and report events first."""
        return {"events": list(reversed(self.store.events[-limit:]))}

    async def files_route(self) -> dict[str, Any]:
        """Reports kept by subscriptions, newest first."""
        files = sorted(self.reports_dir.glob("*.*"), key=lambda p: p.stat().st_mtime,
                       reverse=True)
        return {"files": [{"name": p.name, "size": p.stat().st_size,
                           "modified": p.stat().st_mtime} for p in files]}

    async def file_route(self, name: str) -> Any:
        """One kept report, as a download."""
        try:
            path: Path = safe_path(self.reports_dir, name, field="name")
        except UnsafePath as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        if path.parent != self.reports_dir.resolve() or not path.is_file():
            return JSONResponse({"detail": f"name: no kept report {name!r}"}, status_code=404)
        media = "application/pdf" if path.suffix == ".pdf" else "text/csv; charset=utf-8"
        return Response(path.read_bytes(), media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{path.name}"',
            "Cache-Control": "no-store"})
