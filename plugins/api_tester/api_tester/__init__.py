"""API Tester: send HTTP requests, keep them as plain-text collections, check and chain
them, run them (from CSV, with JUnit reports), monitor them on the host's schedule and
load-test loopback or allowed hosts.

Modules: ``models`` (requests, collections, settings), ``sender`` (guarded sending, the
response view), ``checks`` (captures and assertions), ``storage`` (files and secrets),
``engine`` (one request end to end, the runner, reports), ``monitors``, ``convert``
(curl, OpenAPI, Postman, HAR in; curl and httpx out) and ``load``. This module only wires
routes to them.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from api_tester.engine import Engine, StepResult, junit, parse_csv, run
from api_tester.models import (
    VARIABLE_NAME,
    CollectionInfo,
    Environment,
    RequestSpec,
    TesterSettings,
    Variable,
)
from api_tester.monitors import MonitorProblem, Monitors, MonitorSpec
from api_tester.sender import RequestProblem, Sender, build, guard
from api_tester.storage import (
    AppTokenGrants,
    Collections,
    SecretStore,
    StorageProblem,
    externalize,
)
from api_tester.variables import with_values
from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.tls import shared_tls_context

KEEP_REPORTS = 50
RUN_INDEX = "index.json"  # the kept runs' summaries, beside their reports
RUN_SUMMARY = ("id", "name", "total", "executed", "passed", "failed", "stopped_early",
               "started_at")


def run_summary(report: dict[str, Any]) -> dict[str, Any]:
    """What the list of runs shows of a run's report."""
    return {k: report.get(k) for k in RUN_SUMMARY}


def problem(exc: Exception) -> JSONResponse:
    """A 4xx answer naming the field, for the errors the modules raise on bad input."""
    status = getattr(exc, "status", 422)
    field = getattr(exc, "field", None) or str(exc).split(":", 1)[0]
    return JSONResponse({"detail": str(exc), "field": field}, status_code=status)


class SendBody(BaseModel):
    request: RequestSpec
    collection: str | None = None
    environment: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)


class NewCollection(BaseModel):
    name: str
    description: str = ""


class RunBody(BaseModel):
    collection: str
    folder: str = ""
    environment: str | None = None
    csv: str = Field("", max_length=5_000_000)
    stop_on_fail: bool = False
    variables: dict[str, str] = Field(default_factory=dict)


class ImportBody(BaseModel):
    kind: Literal["curl", "openapi", "postman", "har"]
    text: str = Field(max_length=20_000_000)
    collection: str = Field(max_length=100)


class GrantBody(BaseModel):
    enabled: bool


class BuiltinBody(BaseModel):
    which: Literal["v1", "app"] = "v1"


class ExportBody(BaseModel):
    request: RequestSpec
    kind: Literal["curl", "httpx"]


class LoadBody(BaseModel):
    request: RequestSpec
    collection: str | None = None
    environment: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    users: int = Field(5, ge=1)
    duration: float = Field(10.0, gt=0)
    max_requests: int | None = Field(None, ge=1)


class ApiTesterPlugin(Plugin):
    settings_model = TesterSettings

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: TesterSettings = ctx.config
        root = (Path(self.config.collections_dir).expanduser() if self.config.collections_dir
                else ctx.data_dir / "collections")
        root.mkdir(parents=True, exist_ok=True)
        self.collections = Collections(root)
        self.secrets = SecretStore(ctx.data_dir, self.config.secrets_storage)
        self.sender = Sender(self.config.allowed_hosts, timeout=self.config.timeout,
                             max_body_bytes=self.config.max_body_bytes,
                             follow_redirects=self.config.follow_redirects)
        ctx.on_teardown(self.sender.aclose)
        self.grants = AppTokenGrants(ctx.data_dir)
        self.engine = Engine(self.collections, self.secrets, self.sender,
                             app_url=ctx.server_url, app_token=ctx.app_token,
                             preview_bytes=self.config.preview_bytes, grants=self.grants)
        self.hub = EventHub(maxsize=512)
        self.reports: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.reports_dir = ctx.data_dir / "reports"
        self._index_lock = threading.Lock()  # runs that end together update it in turn

        add = ctx.add_route
        add("/info", self.info)
        add("/send", self.send, methods=["POST"])
        add("/collections", self.list_collections)
        add("/collections", self.create_collection, methods=["POST"])
        add("/collections/{collection}", self.collection_tree)
        add("/collections/{collection}/app-token", self.get_grant)
        add("/collections/{collection}/app-token", self.put_grant, methods=["PUT"])
        add("/collections/{collection}/request", self.get_request)
        add("/collections/{collection}/request", self.put_request, methods=["PUT"])
        add("/collections/{collection}/request", self.delete_request, methods=["DELETE"])
        add("/collections/{collection}/environments/{name}", self.get_env)
        add("/collections/{collection}/environments/{name}", self.put_env, methods=["PUT"])
        add("/run", self.start_run, methods=["POST"])
        add("/runs", self.list_runs)
        add("/runs/{run_id}", self.get_run)
        add("/runs/{run_id}/junit.xml", self.get_junit)
        add("/stream", self.stream)
        add("/import", self.import_requests, methods=["POST"])
        add("/import/builtin", self.import_builtin, methods=["POST"])
        add("/export", self.export, methods=["POST"])
        add("/load", self.start_load, methods=["POST"])
        add("/monitors", self.list_monitors)
        add("/monitors", self.create_monitor, methods=["POST"])
        add("/monitors/{monitor_id}", self.update_monitor, methods=["PUT"])
        add("/monitors/{monitor_id}", self.delete_monitor, methods=["DELETE"])
        add("/monitors/{monitor_id}/run", self.run_monitor, methods=["POST"])
        self.monitors = Monitors(ctx.data_dir / "monitors.json", self._monitor_run,
                                 ctx.schedule, self._notify)
        self.monitors.start()
        for text in self.monitors.problems:  # a hand-edited file: say so, keep the rest
            ctx.logger.error("monitors: %s", text)

    # -- basics ----------------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        return {"collections_dir": str(self.collections.root),
                "allowed_hosts": list(self.config.allowed_hosts),
                "secrets_backend": self.secrets.backend,
                # As {{app_url}} expands: without the trailing slash.
                "app_url": (self.ctx.server_url or "").rstrip("/") or None,
                "limits": {"users": self.config.load_max_users,
                           "seconds": self.config.load_max_seconds,
                           "requests": self.config.load_max_requests}}

    async def stream(self) -> Any:
        return self.ctx.event_stream(self.hub.events())

    def _scope(self, collection: str | None, environment: str | None,
               extra: dict[str, str]) -> dict[str, str]:
        return with_values(self.engine.scope(collection, environment), extra)

    # -- sending ---------------------------------------------------------------------
    async def send(self, body: SendBody) -> Any:
        """Send one request; the answer's view, the captures and the assertion results."""
        try:
            scope = self._scope(body.collection, body.environment, body.variables)
            outcome = await self.engine.execute(body.request, scope, body.collection)
        except (RequestProblem, StorageProblem) as exc:
            return problem(exc)
        assert outcome.exchange is not None
        return {"response": outcome.exchange.view(self.config.preview_bytes),
                "captures": outcome.captures, "assertions": outcome.assertions,
                "passed": outcome.passed, "error": outcome.error}

    # -- collections -----------------------------------------------------------------
    def _tree(self, collection: str) -> dict[str, Any]:
        return {**self.collections.tree(collection),
                "app_token": self.grants.allowed(collection)}

    async def list_collections(self) -> Any:
        try:
            return {"root": str(self.collections.root),
                    "collections": [self._tree(n) for n in self.collections.names()]}
        except StorageProblem as exc:
            return problem(exc)

    async def create_collection(self, body: NewCollection) -> Any:
        try:
            info = self.collections.create(body.name, CollectionInfo(
                name=body.name, description=body.description))
        except StorageProblem as exc:
            return problem(exc)
        return JSONResponse(info.model_dump(mode="json"), status_code=201)

    async def collection_tree(self, collection: str) -> Any:
        try:
            return self._tree(collection)
        except StorageProblem as exc:
            return problem(exc)

    async def get_grant(self, collection: str) -> Any:
        """Whether the collection's requests may use the app token (``auth.type`` app)."""
        try:
            self.collections.info(collection)
        except StorageProblem as exc:
            return problem(exc)
        return {"collection": collection, "enabled": self.grants.allowed(collection)}

    async def put_grant(self, collection: str, body: GrantBody) -> Any:
        """Let (or stop) the collection's requests use the app token, still only towards
        this app's own address. Only the page sets it: no file can."""
        try:
            self.collections.info(collection)
            self.grants.set(collection, body.enabled)
        except StorageProblem as exc:
            return problem(exc)
        return {"collection": collection, "enabled": body.enabled}

    async def get_request(self, collection: str, path: str = Query(max_length=1000)) -> Any:
        try:
            return {"path": path, "request": self.collections.read(collection, path)
                    .model_dump(mode="json"), "text": self.collections.read_text(collection, path)}
        except StorageProblem as exc:
            return problem(exc)

    async def put_request(self, collection: str, spec: RequestSpec,
                          path: str = Query(max_length=1000)) -> Any:
        """Save a request; literal secrets go to the secret store, the file gets
        ``{{secret.<name>}}`` references (listed in ``secrets_moved``)."""
        try:
            self.collections.check(collection, path)
            clean, moved = externalize(spec, path.removesuffix(".request.json"),
                                       self.collections.secret_refs(collection, path))
            # Secrets first: the file must never refer to a secret that is not stored.
            for name, value in moved.items():
                self.secrets.set(f"{collection}:{name}", value)
            self.collections.write(collection, path, clean)
        except StorageProblem as exc:
            return problem(exc)
        return {"path": path, "request": clean.model_dump(mode="json"),
                "secrets_moved": sorted(moved)}

    async def delete_request(self, collection: str, path: str = Query(max_length=1000)) -> Any:
        try:
            self.collections.delete(collection, path)
        except StorageProblem as exc:
            return problem(exc)
        return Response(status_code=204)

    async def get_env(self, collection: str, name: str) -> Any:
        try:
            env = self.collections.read_env(collection, name)
        except StorageProblem as exc:
            return problem(exc)
        data = env.model_dump(mode="json")
        for var in data["variables"]:
            if var["secret"]:
                stored = self.secrets.get(f"{collection}:env.{name}.{var['name']}")
                var["value"] = ""
                var["stored"] = stored is not None
        return data

    async def put_env(self, collection: str, name: str, request: Request) -> Any:
        """Save an environment; a secret variable's value goes to the secret store (an
        empty value keeps the stored one), the file keeps it empty."""
        try:
            env = Environment.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            # A body that is no object at all ([] or not JSON) has an empty location.
            loc = tuple(first["loc"]) or ("body",)
            return JSONResponse({"detail": f"{'.'.join(str(p) for p in loc)}: "
                                           f"{first['msg']}", "field": loc[0]},
                                status_code=422)
        if env.name != name:
            return JSONResponse({"detail": f"name: {env.name!r} differs from the URL's "
                                           f"{name!r}", "field": "name"}, status_code=422)
        clean = env.model_copy(deep=True)
        secrets: dict[str, str] = {}
        for var in clean.variables:
            if var.secret:
                if var.value:
                    secrets[f"{collection}:env.{name}.{var.name}"] = var.value
                var.value = ""
        try:
            self.collections.info(collection)
            for key, value in secrets.items():
                self.secrets.set(key, value)
            self.collections.write_env(collection, clean)
        except StorageProblem as exc:
            return problem(exc)
        return await self.get_env(collection, name)

    # -- import and export -----------------------------------------------------------
    def _write_imported(self, collection: str, items: list[tuple[str, RequestSpec]],
                        variables: list[Variable] | None = None,
                        hidden: dict[str, str] | None = None) -> list[str]:
        if collection not in self.collections.names():
            self.collections.create(collection, CollectionInfo(
                name=collection, variables=variables or []))
            for key, value in (hidden or {}).items():
                self.secrets.set(key, value)
        existing = {p for p, _ in self.collections.requests(collection)}
        taken = self.collections.secret_refs(collection)
        written = []
        for path, spec in items:
            stem, n = path.removesuffix(".request.json"), 2
            while path in existing:
                path, n = f"{stem}-{n}.request.json", n + 1
            existing.add(path)
            clean, moved = externalize(spec, path.removesuffix(".request.json"), taken)
            taken |= set(moved)
            self.collections.write(collection, path, clean)
            for name, value in moved.items():
                self.secrets.set(f"{collection}:{name}", value)
            written.append(path)
        return written

    async def import_requests(self, body: ImportBody) -> Any:
        """Import into ``collection`` (made if needed); ``created`` lists the files."""
        from api_tester import convert  # on first use: keeps the app's start-up lean

        skipped = 0
        skipped_names: list[str] = []
        variables: list[Variable] = []
        hidden: dict[str, str] = {}  # secret variables' values, for the secret store
        try:
            if body.kind == "curl":
                spec = convert.from_curl(body.text)
                items = [(convert.file_name(spec.name, set()), spec)]
            else:
                try:
                    doc = json.loads(body.text)
                except ValueError:
                    if body.kind != "openapi":
                        raise convert.ConvertProblem("text", "not valid JSON") from None
                    try:
                        import yaml  # OpenAPI documents are often YAML
                    except ImportError:
                        raise convert.ConvertProblem(
                            "text", "not valid JSON (YAML needs PyYAML)") from None
                    try:
                        doc = yaml.safe_load(body.text)
                    except yaml.YAMLError as exc:
                        raise convert.ConvertProblem(
                            "text", f"neither JSON nor YAML: {exc}") from None
                if body.kind == "openapi":
                    _, server, items, path_vars = convert.from_openapi(doc)
                    variables = [Variable(name="baseUrl", value=server), *(
                        Variable(name=k, value=v) for k, v in path_vars.items())]
                elif body.kind == "postman":
                    _, found, items, skipped = convert.from_postman(doc)
                    # Postman's secret variables go to the secret store as the page's do
                    # (the token was written into collection.json, meant for git).
                    # A name this tester's {{variables}} cannot spell (Postman allows
                    # "base url") is left out and said: it failed the whole import.
                    skipped_names = [v["name"] for v in found
                                     if not VARIABLE_NAME.fullmatch(v["name"])]
                    found = [v for v in found if v["name"] not in skipped_names]
                    for v in found:
                        if v["secret"] and v["value"]:
                            hidden[f"{body.collection}:var.{v['name']}"] = v["value"]
                    variables = [Variable(name=v["name"], secret=v["secret"],
                                          value="" if v["secret"] else v["value"])
                                 for v in found]
                else:
                    items = convert.from_har(doc)
            created = self._write_imported(body.collection, items, variables, hidden)
        except (convert.ConvertProblem, StorageProblem) as exc:
            return problem(exc)
        except ValidationError as exc:
            first = exc.errors()[0]
            return JSONResponse({"detail": f"text: an imported item is not a valid request: "
                                           f"{'.'.join(str(p) for p in first['loc'])}: "
                                           f"{first['msg']}", "field": "text"},
                                status_code=422)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # A document of the right kind in an unexpected shape ("info" a string...).
            return JSONResponse({"detail": f"text: not a {body.kind} document this importer "
                                           f"reads ({type(exc).__name__}: {exc})",
                                 "field": "text"}, status_code=422)
        return {"collection": body.collection, "created": created,
                "scripts_skipped": skipped, "variables_skipped": skipped_names}

    async def import_builtin(self, body: BuiltinBody) -> Any:
        """A ready collection for the app's own API: ``v1`` (the PlexiChat v1 API, with a
        ``local`` environment and the v1 login helper) or ``app`` (the host's routes,
        sent with the app token)."""
        from api_tester import convert

        if not self.ctx.server_url:
            return JSONResponse({"detail": "which: the app's server is not running",
                                 "field": "which"}, status_code=409)
        base = self.ctx.server_url.rstrip("/")
        name = "PlexiChat v1" if body.which == "v1" else "PlexiChat app"
        if name in self.collections.names():
            return JSONResponse({"detail": f"which: collection {name!r} exists already; "
                                           "delete its folder to import it again",
                                 "field": "which"}, status_code=409)
        url = f"{base}/api/v1/openapi.json" if body.which == "v1" else f"{base}/openapi.json"
        headers = {} if body.which == "v1" else {"Authorization": f"Bearer {self.ctx.app_token}"}
        try:
            async with httpx.AsyncClient(timeout=30, trust_env=False,
                                         verify=shared_tls_context(trust_env=False)) as client:
                answer = await client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            return JSONResponse({"detail": f"which: {url} cannot be fetched: "
                                           f"{type(exc).__name__}: {exc}",
                                 "field": "which"}, status_code=409)
        if answer.status_code != 200:
            return JSONResponse({"detail": f"which: {url} answered {answer.status_code}",
                                 "field": "which"}, status_code=502)
        try:
            document = answer.json()
        except ValueError as exc:  # not JSON (or not UTF-8): said, naming the file
            return JSONResponse({"detail": f"which: {url} is not a JSON OpenAPI document "
                                           f"({exc})", "field": "which"}, status_code=422)
        try:
            _, _server, items, path_vars = convert.from_openapi(
                document, v1_login=body.which == "v1", app_token=body.which == "app")
        except convert.ConvertProblem as exc:
            return problem(exc)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"detail": f"which: {url} is not an OpenAPI document this "
                                           f"importer reads ({type(exc).__name__}: {exc})",
                                 "field": "which"}, status_code=422)
        # Through {{app_url}}, not this start's address: the port may differ next time
        # (port 0, or the configured one taken), and the collection must still run.
        root = "{{app_url}}/api/v1" if body.which == "v1" else "{{app_url}}"
        created = self._write_imported(name, items, [
            Variable(name="baseUrl", value=root),
            *(Variable(name=k, value=v) for k, v in path_vars.items())])
        if body.which == "app":
            self.grants.set(name, True)  # the user asked for this collection of the app
        if body.which == "v1":
            self.collections.write_env(name, Environment(name="local", variables=[
                Variable(name="username", value=""),
                Variable(name="password", secret=True)]))
        return {"collection": name, "created": created}

    async def export(self, body: ExportBody) -> Any:
        from api_tester import convert

        code = (convert.to_curl(body.request) if body.kind == "curl"
                else convert.to_httpx(body.request))
        return {"kind": body.kind, "code": code}

    # -- load test -------------------------------------------------------------------
    async def start_load(self, body: LoadBody) -> Any:
        """Start a load test job; refused beyond the caps of the settings and for targets
        the network guard refuses."""
        config = self.config
        caps = (("users", body.users, config.load_max_users, "load_max_users"),
                ("duration", body.duration, config.load_max_seconds, "load_max_seconds"),
                ("max_requests", body.max_requests or 0, config.load_max_requests,
                 "load_max_requests"))
        for field, value, cap, setting in caps:
            if value > cap:
                return JSONResponse({"detail": f"{field}: {value:g} is over the cap of "
                                               f"{cap:g} (plugin setting {setting})",
                                     "field": field}, status_code=422)
        try:
            scope = self._scope(body.collection, body.environment, body.variables)
            resolved = await self.engine.prepare(body.request, scope, body.collection)
            target = await guard(resolved.url, self.config.allowed_hosts)
            # Built once here, as each request of the test will be: a header no request
            # can carry (a name beyond ASCII) is a 422 naming it, not a failed job.
            build(self.sender.client, resolved, target)
        except (RequestProblem, StorageProblem) as exc:
            return problem(exc)
        job = self.ctx.jobs.start("load", self._load_job, resolved, target, body)
        return JSONResponse(job.to_dict(), status_code=202)

    async def _load_job(self, job: Any, resolved: Any, target: Any, body: LoadBody
                        ) -> dict[str, Any]:
        from api_tester.load import load_test

        started = asyncio.get_running_loop().time()

        def progress(figures: dict[str, Any]) -> None:
            elapsed = asyncio.get_running_loop().time() - started
            job.progress(min(elapsed, body.duration), body.duration,
                         f"{figures['requests']} requests, {figures['rps']:.0f}/s, "
                         f"p95 {figures['p95_ms'] or 0:.1f} ms, errors {figures['errors']}")
            self.hub.publish("load", {"job": job.id, **figures})

        result = await load_test(
            resolved, target, users=body.users, duration=body.duration,
            max_requests=body.max_requests or self.config.load_max_requests,
            timeout=self.config.timeout, progress=progress)
        progress(result)  # the job's last word is the final count (it said the last tick's)
        self.hub.publish("load", {"job": job.id, "final": True, **result})
        return result

    # -- monitors --------------------------------------------------------------------
    def _notify(self, name: str, data: dict[str, Any]) -> None:
        """Every run refreshes the page's list; a pass/fail transition also goes on the
        app's event bus (the desktop window and every page's /events stream)."""
        if name != "monitor.transition":
            self.hub.publish("monitors", {"monitors": self.monitors.list(),
                                          "problems": self.monitors.problems})
            return
        self.ctx.publish(name, data)
        self.hub.publish("monitor", data)
        self.ctx.logger.warning("monitor %s went from %s to %s %s", data["name"],
                                data["from"] or "(never run)", data["to"], data["detail"])

    async def _monitor_run(self, spec: MonitorSpec) -> dict[str, Any]:
        items = self.collections.requests(spec.collection, spec.folder)
        scope = self.engine.scope(spec.collection, spec.environment)
        return await run(self.engine, items, scope, collection=spec.collection)

    async def list_monitors(self) -> dict[str, Any]:
        """The monitors, and ``problems``: what a hand-edited file held that could not
        be loaded or scheduled (the file as it was is kept aside)."""
        return {"monitors": self.monitors.list(), "problems": self.monitors.problems}

    async def create_monitor(self, spec: MonitorSpec) -> Any:
        try:
            return JSONResponse(self.monitors.create(spec, self.collections), status_code=201)
        except MonitorProblem as exc:
            return problem(exc)

    async def update_monitor(self, monitor_id: str, spec: MonitorSpec) -> Any:
        try:
            return self.monitors.update(monitor_id, spec, self.collections)
        except MonitorProblem as exc:
            return problem(exc)

    async def delete_monitor(self, monitor_id: str) -> Any:
        try:
            self.monitors.delete(monitor_id)
        except MonitorProblem as exc:
            return problem(exc)
        return Response(status_code=204)

    async def run_monitor(self, monitor_id: str) -> Any:
        """Run a monitor now (as its schedule would); its run and any transition."""
        try:
            self.monitors.get(monitor_id)
        except MonitorProblem as exc:
            return problem(exc)
        return await self.monitors.run(monitor_id)

    # -- runner ----------------------------------------------------------------------
    async def start_run(self, body: RunBody) -> Any:
        """Start a run as a job; results are streamed as ``result`` events and the
        report is kept under ``/runs/<job id>``."""
        try:
            items = self.collections.requests(body.collection, body.folder)
            if not items:
                raise StorageProblem(f"folder: no request in {body.collection!r}"
                                     + (f"/{body.folder}" if body.folder else ""), 404)
            rows = parse_csv(body.csv)
            scope = self._scope(body.collection, body.environment, body.variables)
        except (RequestProblem, StorageProblem) as exc:
            return problem(exc)
        name = body.collection + (f"/{body.folder}" if body.folder else "")
        job = self.ctx.jobs.start("run", self._run_job, name, items, scope, rows,
                                  body.stop_on_fail, body.collection)
        return JSONResponse(job.to_dict(), status_code=202)

    async def _run_job(self, job: Any, name: str, items: list[tuple[str, RequestSpec]],
                       scope: dict[str, str], rows: list[dict[str, str]],
                       stop_on_fail: bool, collection: str) -> dict[str, Any]:
        def report_step(result: StepResult, done: int, total: int) -> None:
            job.progress(done, total, f"{result.method} {result.name}: "
                         + ("passed" if result.passed else "FAILED"))
            self.hub.publish("result", {"run": job.id, "done": done, "total": total,
                                        "result": result.__dict__})

        report = await run(self.engine, items, scope, rows, collection=collection,
                           stop_on_fail=stop_on_fail, on_result=report_step)
        report.update({"id": job.id, "name": name})
        await asyncio.to_thread(self._keep_report, job.id, report)
        self.hub.publish("run", {key: report[key] for key in (
            "id", "name", "total", "executed", "passed", "failed", "stopped_early")})
        return {key: report[key] for key in ("id", "name", "total", "executed", "passed",
                                             "failed", "stopped_early")}

    def _keep_report(self, run_id: str, report: dict[str, Any]) -> None:
        self.reports[run_id] = report
        while len(self.reports) > KEEP_REPORTS:
            self.reports.popitem(last=False)
        # Owner-only: a report holds the requests' URLs and answers (secrets masked, but
        # what an API returns is still the user's business).
        self.reports_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.reports_dir / f"{run_id}.json", json.dumps(report, indent=1))
        with self._index_lock:
            index = [r for r in self._run_index() if r["id"] != run_id]
            index.append(run_summary(report))
            write_atomic(self.reports_dir / RUN_INDEX, json.dumps(index[-KEEP_REPORTS:]))

    def _run_index(self) -> list[dict[str, Any]]:
        """The newest runs' summaries, oldest first, from the reports folder: they outlive
        a restart with their reports (the list was memory only, the reports on disk). Made
        from the report files when there is no index yet (reports kept before it)."""
        try:
            index = json.loads((self.reports_dir / RUN_INDEX).read_text("utf-8"))
            if isinstance(index, list) and all(isinstance(r, dict) and "id" in r
                                               for r in index):
                return index
        except (OSError, ValueError):
            pass
        try:
            files = sorted((f for f in self.reports_dir.glob("*.json") if f.name != RUN_INDEX),
                           key=lambda f: f.stat().st_mtime)[-KEEP_REPORTS:]
        except OSError:
            return []
        rebuilt = []
        for file in files:
            try:
                report = self._report(file.stem)
            except StorageProblem:
                continue
            if report is not None:
                rebuilt.append(run_summary(report))
        return rebuilt

    def _report(self, run_id: str) -> dict[str, Any] | None:
        """The report of ``run_id``; None when there is none, :class:`StorageProblem`
        (a 422 naming the file) when its file is not a report."""
        if run_id in self.reports:
            return self.reports[run_id]
        if not run_id.replace("-", "").replace("_", "").isalnum():
            return None
        file = self.reports_dir / f"{run_id}.json"
        if not file.is_file():
            return None
        try:
            loaded = json.loads(file.read_text("utf-8"))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise StorageProblem(f"run_id: the report file {file} cannot be read: "
                                 f"{exc}") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("results"), list):
            raise StorageProblem(f"run_id: the report file {file} holds no report")
        return loaded

    async def list_runs(self) -> dict[str, Any]:
        return {"runs": list(reversed(await asyncio.to_thread(self._run_index)))}

    async def get_run(self, run_id: str) -> Any:
        try:
            report = self._report(run_id)
        except StorageProblem as exc:
            return problem(exc)
        if report is None:
            return JSONResponse({"detail": f"run_id: no report {run_id!r}", "field": "run_id"},
                                status_code=404)
        return report

    async def get_junit(self, run_id: str) -> Any:
        try:
            report = self._report(run_id)
        except StorageProblem as exc:
            return problem(exc)
        if report is None:
            return JSONResponse({"detail": f"run_id: no report {run_id!r}", "field": "run_id"},
                                status_code=404)
        try:
            xml = junit(report, str(report.get("name", run_id)))
        except (KeyError, TypeError, ValueError) as exc:
            return problem(StorageProblem(f"run_id: the report of {run_id!r} is incomplete "
                                          f"({type(exc).__name__}: {exc})"))
        return Response(xml, media_type="application/xml")


__all__ = ["ApiTesterPlugin"]
