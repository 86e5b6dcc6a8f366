"""Network Scanner: scan your own hosts, see what changed, get told when it does.

Modules: ``targets`` (the scanner's target policy and rate limit), ``ports`` (port
specs), ``scanner`` (the async connect scan), ``probes`` (service detection), ``tls``
(certificate and protocol checks), ``findings`` (offline rules), ``engine`` (one scan end
to end), ``diff`` (ndiff-style changes), ``store`` (history), ``profiles`` (scheduled
rescans), ``nmap`` (the optional back end and XML import). This module wires routes to
them and sends the change alerts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator

from network_scanner.diff import diff_scans
from network_scanner.engine import Prepared, ScanContext, ScanOptions, prepare, run_scan
from network_scanner.findings import evaluate, load_rules, summarize
from network_scanner.nmap import NmapProblem, nmap_path, parse_xml
from network_scanner.ports import PortSpecError, compact, parse_ports
from network_scanner.profiles import ProfileProblem, Profiles, ProfileSpec
from network_scanner.store import History, UnknownScan
from network_scanner.targets import (
    HARD_MAX_HOSTS,
    Policy,
    RateLimiter,
    Resolver,
    TargetRefused,
    system_resolver,
)
from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.settings import PluginSettings

# Scans running at once (by hand, profiles and schedules together): each may hold up to
# a quarter of the descriptor limit in sockets, and every one more is another such share.
MAX_RUNNING_SCANS = 4

# What the routes answer as 4xx (each names its field and carries its status).
Problem = (TargetRefused, PortSpecError, ProfileProblem, NmapProblem, UnknownScan)


class ScannerSettings(PluginSettings):
    allowed_targets: list[str] = Field(default_factory=list)
    max_hosts: int = Field(256, ge=1, le=HARD_MAX_HOSTS)
    rate_limit: float = Field(300.0, ge=0, le=100_000)
    concurrency: int = Field(200, ge=1, le=2000)
    connect_timeout: float = Field(1.0, gt=0, le=30)
    probe_timeout: float = Field(2.0, gt=0, le=60)
    trusted_ca_file: str = ""
    keep_scans: int = Field(300, ge=1, le=100_000)
    cert_warn_days: int = Field(30, ge=0, le=3650)

    @field_validator("allowed_targets")
    @classmethod
    def _allowed(cls, value: list[str]) -> list[str]:
        Policy.from_entries(value)  # TargetRefused is a ValueError: pydantic reports it
        return value


def problem(exc: Exception) -> JSONResponse:
    """A 4xx answer whose ``field`` names the input at fault."""
    status = getattr(exc, "status", 422)
    field = getattr(exc, "field", None) or str(exc).split(":", 1)[0]
    return JSONResponse({"detail": str(exc), "field": field}, status_code=status)


class ScanBody(ScanOptions):
    name: str = Field("", max_length=100)


class CheckBody(BaseModel):
    targets: str = Field("", max_length=4000)
    ports: str = Field("", max_length=10_000)


class ImportBody(BaseModel):
    xml: str = Field(max_length=50_000_000)
    name: str = Field("", max_length=100)


def baseline_key(options: ScanOptions, profile_id: str | None) -> str:
    """Which earlier scans a scan is compared with: its profile's, else the last one of
    the same targets and ports (so repeating an ad hoc scan shows what changed too)."""
    if profile_id:
        return f"profile:{profile_id}"
    digest = hashlib.sha256(f"{options.targets.strip()}|{options.ports.strip()}".encode())
    return "adhoc:" + digest.hexdigest()[:16]


class NetworkScannerPlugin(Plugin):
    settings_model = ScannerSettings
    #: Tests replace it with a stub; the scanner never looks up names not allowed.
    resolver: Resolver = staticmethod(system_resolver)

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: ScannerSettings = ctx.config
        self.policy = Policy.from_entries(self.config.allowed_targets, self.config.max_hosts)
        self.limiter = RateLimiter(self.config.rate_limit)
        self.hub = EventHub(maxsize=2048)
        self.history = History(ctx.data_dir / "history.sqlite3", self.config.keep_scans)
        ctx.on_teardown(self.history.close)
        self.running: dict[str, dict[str, Any]] = {}

        add = ctx.add_route
        add("/info", self.info)
        add("/check", self.check, methods=["POST"])
        add("/scans", self.start_scan, methods=["POST"])
        add("/scans", self.list_scans)
        add("/scans/{scan_id}", self.get_scan)
        add("/scans/{scan_id}", self.delete_scan, methods=["DELETE"])
        add("/scans/{scan_id}/export.json", self.export_json)
        add("/scans/{scan_id}/export.csv", self.export_csv)
        add("/diff", self.diff)
        add("/alerts", self.alerts)
        add("/import", self.import_xml, methods=["POST"])
        add("/profiles", self.list_profiles)
        add("/profiles", self.create_profile, methods=["POST"])
        add("/profiles/{profile_id}", self.update_profile, methods=["PUT"])
        add("/profiles/{profile_id}", self.delete_profile, methods=["DELETE"])
        add("/profiles/{profile_id}/run", self.run_profile, methods=["POST"])
        add("/stream", self.stream)
        self.profiles = Profiles(ctx.data_dir / "profiles.json", ctx.schedule,
                                 self._scheduled)
        for text in self.profiles.start():
            ctx.logger.error("a profile could not be scheduled: %s", text)

    # -- helpers ---------------------------------------------------------------------
    def scan_context(self) -> ScanContext:
        return ScanContext(self.policy, self.limiter, type(self).resolver,
                           ca_file=self.config.trusted_ca_file or None,
                           warn_days=self.config.cert_warn_days, publish=self.hub.publish)

    def defaults(self) -> dict[str, Any]:
        return {"concurrency": self.config.concurrency,
                "connect_timeout": self.config.connect_timeout,
                "probe_timeout": self.config.probe_timeout}

    async def stream(self) -> Any:
        return self.ctx.event_stream(self.hub.events(
            first=[("running", {"scans": list(self.running.values())})]))

    async def info(self) -> dict[str, Any]:
        rules, checks = load_rules()
        api = self._api()
        return {"allowed_targets": self.policy.describe(), "max_hosts": self.policy.max_hosts,
                "rate_limit": self.config.rate_limit, "defaults": self.defaults(),
                "nmap": nmap_path(), "rules": len(rules), "checks": len(checks),
                "notify_user": (api.user or {}).get("username") if api else None,
                "running": list(self.running.values())}

    def _api(self) -> Any:
        try:
            return self.ctx.api
        except Exception:  # the layer is not running: alerts stay on the page and bus
            return None

    # -- checking and scanning -------------------------------------------------------
    async def check(self, body: CheckBody) -> dict[str, Any]:
        """The form's live status: which hosts a scan would reach, or why not (200 with
        ``ok`` false: the page shows it in red while the user types)."""
        out: dict[str, Any] = {"ok": True, "hosts": [], "problems": [], "port_count": None}
        if body.targets.strip():
            try:
                # Targets alone here; the ports are judged on their own below.
                prepared = await prepare(ScanOptions(targets=body.targets, ports="1"),
                                         self.scan_context())
                out["hosts"] = [h.to_dict() for h in prepared.targets.hosts]
            except TargetRefused as exc:
                out["problems"].append({"field": exc.field, "detail": str(exc)})
        else:
            out["problems"].append({"field": "targets", "detail": "targets: none given"})
        if body.ports.strip():
            try:
                out["port_count"] = len(parse_ports(body.ports))
            except PortSpecError as exc:
                out["problems"].append({"field": exc.field, "detail": str(exc)})
        out["ok"] = not out["problems"]
        return out

    async def start_scan(self, body: ScanBody) -> Any:
        """Check the input (422/403 before anything is sent), then scan as a job."""
        options = ScanOptions.model_validate(body.model_dump(exclude={"name"}))
        try:
            prepared = await self._prepare(options)
            info = self._launch(prepared, None, body.name)
        except Problem as exc:
            return problem(exc)
        return JSONResponse(info, status_code=202)

    async def _prepare(self, options: ScanOptions) -> Prepared:
        if options.backend == "nmap" and nmap_path() is None:
            raise NmapProblem("nmap is not installed here; use the built-in scanner",
                              field="backend", status=409)
        return await prepare(options, self.scan_context())

    def _launch(self, prepared: Prepared, profile_id: str | None, name: str) -> dict[str, Any]:
        if len(self.running) >= MAX_RUNNING_SCANS:
            raise ProfileProblem("scans", f"{len(self.running)} scans are running; at most "
                                          f"{MAX_RUNNING_SCANS} at once: wait for one or "
                                          "cancel it", 429)
        job = self.ctx.jobs.start("scan", self._scan_job, prepared, profile_id, name)
        info = {"job": job.id, "scan_id": job.id, "name": name, "profile_id": profile_id,
                "targets": prepared.options.targets, "ports": prepared.options.ports,
                "hosts": [h.to_dict() for h in prepared.targets.hosts],
                "port_count": len(prepared.ports)}
        # A page opened while the scan runs gets this in its stream's first event and
        # draws the grid (the list only when the grid can show it).
        self.running[job.id] = {**info, "ports": prepared.ports
                                if len(prepared.ports) <= 4096 else None}
        return info

    async def _scan_job(self, job: Any, prepared: Prepared, profile_id: str | None,
                        name: str) -> dict[str, Any]:
        try:
            scan = await run_scan(prepared, self.scan_context(), job.progress,
                                  scan_id=job.id, profile_id=profile_id, name=name)
        except BaseException as exc:
            state = "failed" if isinstance(exc, Exception) else "cancelled"
            self.hub.publish("scan", {"id": job.id, "state": state, "error": str(exc)})
            raise
        finally:
            self.running.pop(job.id, None)
        scan["baseline"] = baseline_key(prepared.options, profile_id)
        previous = self.history.latest(scan["baseline"], before=scan["started"])
        diff = diff_scans(previous, scan) if previous else None
        self.history.save(scan, diff)
        summary = {"id": scan["id"], "state": "done", "counts": scan["counts"],
                   "findings": len(scan["findings"]), "severity": scan["severity"],
                   "diff": diff, "duration": scan["duration"]}
        self.hub.publish("scan", summary)
        if profile_id:
            self.profiles.record(profile_id, scan["id"], bool(diff and diff["changes"]))
            spec = self.profiles.items.get(profile_id, {}).get("spec", {})
            if diff and diff["changes"] and spec.get("notify", True):
                await self._alert(spec.get("name", profile_id), scan, diff)
            self.hub.publish("profiles", {"profiles": self.profiles.list()})
        return summary

    async def _alert(self, profile: str, scan: dict[str, Any], diff: dict[str, Any]) -> None:
        """Tell the person: the page (live), the app's event bus (window, /events) and a
        v1 notification to the logged-in user."""
        title = f"Network scan '{profile}': {diff['summary']}"
        lines = [c["detail"] for c in diff["changes"][:8]]
        if len(diff["changes"]) > 8:
            lines.append(f"... and {len(diff['changes']) - 8} more")
        data = {"profile": profile, "scan": scan["id"], "summary": diff["summary"],
                "counts": diff["counts"], "changes": diff["changes"][:50], "notified": None}
        api = self._api()
        if api is not None and api.user:
            try:
                await api.notifications.send(
                    api.user["id"], title[:200], "\n".join(lines)[:2000], type="warning",
                    priority="high", action_url=f"/plugins/{self.ctx.plugin_id}/",
                    metadata={"scan": scan["id"], "counts": diff["counts"]})
                data["notified"] = api.user.get("username")
            except Exception as exc:  # the alert still reaches the page and the bus
                self.ctx.logger.warning("v1 notification failed: %s", exc)
        self.ctx.publish("scan.changes", data)
        self.hub.publish("alert", data)
        self.ctx.logger.warning("%s", title)

    # -- history -----------------------------------------------------------------------
    async def list_scans(self, limit: int = 100, profile_id: str | None = None) -> Any:
        return {"scans": self.history.list(max(1, min(limit, 1000)), profile_id)}

    async def get_scan(self, scan_id: str) -> Any:
        try:
            return self.history.get(scan_id)
        except UnknownScan as exc:
            return problem(exc)

    async def delete_scan(self, scan_id: str) -> Any:
        try:
            self.history.delete(scan_id)
        except UnknownScan as exc:
            return problem(exc)
        return Response(status_code=204)

    async def diff(self, old: str, new: str) -> Any:
        scans = []
        for field, scan_id in (("old", old), ("new", new)):
            try:
                scans.append(self.history.get(scan_id))
            except UnknownScan:  # named as the parameter that was given (was "scan_id")
                return JSONResponse({"detail": f"{field}: no scan {scan_id!r} in the "
                                               "history", "field": field}, status_code=404)
        return diff_scans(*scans)

    async def alerts(self) -> Any:
        return {"alerts": self.history.alerts()}

    async def export_json(self, scan_id: str) -> Any:
        try:
            scan = self.history.get(scan_id)
        except UnknownScan as exc:
            return problem(exc)
        return JSONResponse(scan, headers={
            "Content-Disposition": f'attachment; filename="scan-{scan_id}.json"'})

    async def export_csv(self, scan_id: str) -> Any:
        try:
            scan = self.history.get(scan_id)
        except UnknownScan as exc:
            return problem(exc)
        return Response(to_csv(scan), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="scan-{scan_id}.csv"'})

    async def import_xml(self, body: ImportBody) -> Any:
        """Store an nmap XML report as a scan of the history (no connection is made)."""
        try:
            report = parse_xml(body.xml)
        except NmapProblem as exc:
            return problem(exc)
        listed = [p["port"] for p in report["ports"]]
        try:  # nmap's own list of what it scanned; else only the ports it listed
            ports = parse_ports(report["scanned"]) if report["scanned"] else listed
        except PortSpecError:
            ports = listed
        ports = sorted(set(ports) | set(listed)) or [1]
        found = [f.to_dict() for p in report["ports"] for f in evaluate(p)]
        started = report["started"] or time.time()
        scan = {"id": "imp-" + hashlib.sha256(body.xml.encode()).hexdigest()[:10],
                "profile_id": None, "name": body.name or "nmap import",
                "status": "done", "backend": "nmap-import", "started": started,
                "finished": report["finished"], "duration": None,
                "options": {"args": report["args"], "version": report["version"]},
                "targets": " ".join(h["address"] for h in report["hosts"]),
                "ports_spec": compact(ports), "scanned_ports": compact(ports),
                "port_count": len(set(ports)), "hosts": report["hosts"], "resolved": {},
                "counts": report["counts"], "ports": report["ports"], "truncated": False,
                "findings": found, "severity": summarize(found),
                "baseline": "import:" + (body.name or "nmap")}
        self.history.save(scan, None)
        return JSONResponse({"id": scan["id"], "hosts": len(report["hosts"]),
                             "ports": len(report["ports"]), "findings": len(found)},
                            status_code=201)

    # -- profiles ----------------------------------------------------------------------
    async def list_profiles(self) -> Any:
        return {"profiles": self.profiles.list()}

    async def create_profile(self, spec: ProfileSpec) -> Any:
        try:
            await self._prepare(spec.options)  # refuse now, not at 3 am
            created = self.profiles.create(spec)
        except Problem as exc:
            return problem(_prefixed(exc, "options"))
        self.hub.publish("profiles", {"profiles": self.profiles.list()})
        return JSONResponse(created, status_code=201)

    async def update_profile(self, profile_id: str, spec: ProfileSpec) -> Any:
        try:
            self.profiles.get(profile_id)
            await self._prepare(spec.options)
            updated = self.profiles.update(profile_id, spec)
        except Problem as exc:
            return problem(_prefixed(exc, "options"))
        self.hub.publish("profiles", {"profiles": self.profiles.list()})
        return updated

    async def delete_profile(self, profile_id: str) -> Any:
        try:
            self.profiles.delete(profile_id)
        except ProfileProblem as exc:
            return problem(exc)
        self.hub.publish("profiles", {"profiles": self.profiles.list()})
        return Response(status_code=204)

    async def run_profile(self, profile_id: str) -> Any:
        try:
            spec = self.profiles.spec(profile_id)
            prepared = await self._prepare(spec.options)
            info = self._launch(prepared, profile_id, spec.name)
        except Problem as exc:
            return problem(exc)
        return JSONResponse(info, status_code=202)

    async def _scheduled(self, profile_id: str) -> None:
        """A profile's scheduled rescan: the job runs to its end (the schedule's run
        lasts as long as the scan, so a slow scan is never started twice)."""
        spec = self.profiles.spec(profile_id)
        prepared = await self._prepare(spec.options)
        info = self._launch(prepared, profile_id, spec.name)
        job = await self.ctx.jobs.wait(info["job"])
        if job.error:
            raise RuntimeError(job.error)


def _prefixed(exc: Exception, prefix: str) -> Exception:
    """Errors about scan options inside a profile name the nested field."""
    field = getattr(exc, "field", None)
    if field in ("targets", "ports", "backend"):
        exc.field = f"{prefix}.{field}"  # type: ignore[attr-defined]
    return exc


def to_csv(scan: dict[str, Any]) -> str:
    """One row per listed port with its service and findings (spreadsheet-ready)."""
    by_port: dict[tuple[str, int], list[str]] = {}
    for f in scan.get("findings", []):
        by_port.setdefault((f["address"], f["port"]), []).append(
            f"{f['severity']}:{f['rule']}({f['confidence']})")
    names = {h["address"]: h.get("name") or "" for h in scan.get("hosts", [])}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["scan", "started", "address", "name", "port", "state", "reason",
                     "service", "product", "version", "tls", "cert_not_after", "banner",
                     "findings"])
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(scan["started"]))
    for p in scan.get("ports", []):
        svc = p.get("service") or {}
        tls = p.get("tls") or {}
        chain = tls.get("chain") or [{}]
        # Every text cell is defused: besides banners, names, products, versions and
        # reasons come from the scanned services or an imported (untrusted) report.
        writer.writerow([_cell(str(value)) for value in (
            scan["id"], started, p["address"], names.get(p["address"], ""),
            p["port"], p["state"], p.get("reason", ""), svc.get("name") or "",
            svc.get("product") or "", svc.get("version") or "",
            tls.get("negotiated") or ("yes" if svc.get("tls") else ""),
            chain[0].get("not_after", ""), svc.get("banner") or "",
            "; ".join(by_port.get((p["address"], p["port"]), [])))])
    return out.getvalue()


def _cell(text: str) -> str:
    """A spreadsheet must not run a banner as a formula (CSV injection)."""
    text = text.replace("\r", " ").replace("\n", " ")
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "|", "%") else text


__all__ = ["NetworkScannerPlugin", "ScannerSettings", "to_csv"]
