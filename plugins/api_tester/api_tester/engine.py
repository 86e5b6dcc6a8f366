"""One request end to end (variables, auth, guard, send, captures, assertions) and the
runner of a collection, with its JUnit and JSON reports."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from api_tester.checks import CheckProblem, capture, check, describe
from api_tester.models import RequestSpec
from api_tester.redact import Redactor, is_secret_name, mask
from api_tester.sender import (
    Exchange,
    RequestProblem,
    Resolved,
    Sender,
    apply_auth,
    guard,
    resolve,
)
from api_tester.storage import AppTokenGrants, Collections, SecretStore
from api_tester.variables import (
    Scope,
    UndefinedVariable,
    references,
    resolve_nested,
    substitute,
    with_values,
)

MAX_CSV_ROWS = 10_000


@dataclass
class Outcome:
    """What one request did: the exchange (None when it could not be sent), the values
    captured, the assertion results and an error."""

    exchange: Exchange | None
    captures: dict[str, str] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    # Secret values this request sent (auth helper values, secret-named headers and
    # parameters, tokens) or captured under a secret name: masked in reports.
    secrets: set[str] = field(default_factory=set)

    @property
    def passed(self) -> bool:
        return self.error is None and all(a["passed"] for a in self.assertions)


class Engine:
    def __init__(self, collections: Collections, secrets: SecretStore, sender: Sender, *,
                 app_url: str | None = None, app_token: str | None = None,
                 preview_bytes: int = 256 * 1024, grants: AppTokenGrants | None = None):
        self.collections = collections
        self.grants = grants
        self.secrets = secrets
        self.sender = sender
        self.app_url = app_url
        self._app_token = app_token
        self.preview_bytes = preview_bytes
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    # -- variables -------------------------------------------------------------------
    def scope(self, collection: str | None, environment: str | None) -> dict[str, str]:
        """Collection variables, then the environment's (they win), then the collection's
        secrets as ``secret.<name>``."""
        variables: dict[str, str] = {}
        if self.app_url:
            variables["app_url"] = self.app_url.rstrip("/")
        if not collection:
            return variables
        info = self.collections.info(collection)
        secret_names = {v.name for v in info.variables if v.secret}
        values: dict[str, str | None] = {}
        for var in info.variables:
            values[var.name] = (self.secrets.get(f"{collection}:var.{var.name}")
                                if var.secret else var.value)
        if environment:
            env = self.collections.read_env(collection, environment)
            secret_names = (secret_names - {v.name for v in env.variables}) | {
                v.name for v in env.variables if v.secret}
            for var in env.variables:
                values[var.name] = (
                    self.secrets.get(f"{collection}:env.{environment}.{var.name}")
                    if var.secret else var.value)
        unset = frozenset(n for n, v in values.items() if v is None or
                          (n in secret_names and v == ""))
        variables.update({n: v for n, v in values.items() if n not in unset and v is not None})
        # Plain variables may refer to others (the ready v1 collection's baseUrl is
        # "{{app_url}}/api/v1": the app's port changes between starts); secrets are taken
        # as they are.
        variables = resolve_nested(variables, {n for n, v in variables.items()
                                               if "{{" in v and n not in secret_names})
        lacking = {name: name for name in unset}
        templates: dict[str, str] = {}
        for name, value in list(variables.items()):
            missing = [ref for ref in references(value) if ref in unset]
            if missing and name not in secret_names:
                lacking[name] = missing[0]
                templates[name] = str(values.get(name, value))
                del variables[name]
        for name, value in self.secrets.values(f"{collection}:secret.").items():
            variables[f"secret.{name}"] = value
        scope = Scope(variables)
        scope.unset_secrets = lacking
        scope.unset_templates = templates
        return scope

    # -- auth ------------------------------------------------------------------------
    async def v1_token(self, base: str, username: str, password: str) -> str:
        """An access token of the PlexiChat v1 API at ``base`` (the app's own when
        empty), from ``POST <base>/auth/login``; reused until shortly before it expires."""
        root = (base or (self.app_url or "")).rstrip("/")
        if not root:
            raise RequestProblem("auth.base", "no v1 API address: the app's server is not "
                                 "known here; give the base URL")
        if not root.endswith("/api/v1"):
            root += "/api/v1"
        if not username or not password:
            raise RequestProblem("auth.username", "the PlexiChat v1 login needs a username "
                                 "and a password")
        # The password is part of the key: a wrong one must fail, not reuse a token.
        key = (root, username, hashlib.sha256(password.encode()).hexdigest())
        cached = self._tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        import json

        login = Resolved("POST", root + "/auth/login", [],
                         [("Content-Type", "application/json")],
                         json.dumps({"username": username, "password": password}).encode())
        exchange = await self.sender.send(login, await guard(login.url, self.sender.allow,
                                                             "auth.base"))
        if exchange.status != 200:
            detail = exchange.text()[:300]
            raise RequestProblem("auth.username", f"PlexiChat v1 login at {root} answered "
                                 f"{exchange.status}: {detail}", 422)
        try:
            body = exchange.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RequestProblem("auth.base", f"{root}/auth/login answered 200 without an "
                                 "access_token: is this a PlexiChat v1 API?", 502) from None
        self._tokens[key] = (token, time.monotonic() + max(1.0, lifetime - 30))
        return token

    # -- one request -----------------------------------------------------------------
    async def prepare(self, spec: RequestSpec, variables: Mapping[str, str],
                      collection: str | None = None) -> Resolved:
        """``spec`` resolved and authenticated. ``collection`` is where the request
        comes from (None: typed in the page's editor, outside any collection)."""
        resolved = resolve(spec, variables)
        token = None
        if resolved.auth.type == "plexichat":
            token = await self.v1_token(resolved.auth.base, resolved.auth.username,
                                        resolved.auth.password)
        if resolved.auth.type == "app":
            token = self._app_token_for(resolved.url, collection)
        apply_auth(resolved, token)
        return resolved

    def _app_token_for(self, url: str, collection: str | None) -> str:
        """The app's token, only for a URL on the app's own server (it opens every host
        route, so it must never leave for another address), and for a request of a
        collection only when the user enabled it for that collection in the page: a
        collection file someone hands over cannot send it on its own (run, monitor)."""
        if not self.app_url or not self._app_token:
            raise RequestProblem("auth.type", "the app token is not available here")
        if collection is not None and (self.grants is None
                                       or not self.grants.allowed(collection)):
            raise RequestProblem("auth.type", f"collection {collection!r} may not use the "
                                 "app token: enable \"Use the app token\" for it in the page "
                                 "(only for collections you trust)", 403)
        mine, theirs = urlsplit(self.app_url), urlsplit(url)
        local = {"127.0.0.1", "localhost", mine.hostname}
        if (theirs.scheme != mine.scheme or theirs.port != mine.port
                or theirs.hostname not in local):
            raise RequestProblem("auth.type", f"the app token is only sent to this app "
                                 f"({self.app_url}), not to {url[:200]}", 403)
        return self._app_token

    def secret_values(self, collection: str | None) -> list[str]:
        """Every secret value known for ``collection`` (the secret store's values of its
        variables, environments and moved secrets) and the app's token."""
        values = [self._app_token] if self._app_token else []
        if collection:
            values += self.secrets.values(f"{collection}:").values()
        return values

    async def execute(self, spec: RequestSpec, variables: Mapping[str, str],
                      collection: str | None = None) -> Outcome:
        """Send ``spec``; problems with the request itself raise :class:`RequestProblem`.
        ``collection``: see :meth:`prepare`."""
        resolved = await self.prepare(spec, variables, collection)
        sent = {resolved.auth.token, resolved.auth.password, resolved.auth.value}
        sent |= {value for name, value in resolved.headers if is_secret_name(name)}
        sent |= {value.split(" ", 1)[-1] for name, value in resolved.headers
                 if is_secret_name(name)}  # the token of "Bearer <token>"
        sent |= {value for name, value in resolved.params if is_secret_name(name)}
        exchange = await self.sender.send(resolved)
        outcome = Outcome(exchange, secrets={v for v in sent if v})
        for cap in spec.captures:
            try:
                outcome.captures[cap.name] = capture(exchange, cap)
            except CheckProblem as exc:
                outcome.error = str(exc)
                continue
            if is_secret_name(cap.name) or is_secret_name(cap.expr):
                outcome.secrets.add(outcome.captures[cap.name])
        # Expected values may use variables, this request's captures included.
        scope = with_values(variables, outcome.captures)
        for assertion in spec.asserts:
            if isinstance(assertion.value, str) and "{{" in assertion.value:
                try:
                    value = substitute(assertion.value, scope, "asserts.value")
                except UndefinedVariable as exc:
                    outcome.assertions.append({"assertion": describe(assertion),
                                               "passed": False, "actual": None,
                                               "message": str(exc)})
                    continue
                assertion = assertion.model_copy(update={"value": value})
            outcome.assertions.append(check(exchange, assertion))
        return outcome


def parse_csv(text: str) -> list[dict[str, str]]:
    """Rows of a CSV with a header line; a BOM and ``;`` separators are accepted."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return []
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    rows: list[dict[str, str]] = []
    try:
        for row in reader:
            if None in row:
                raise RequestProblem("csv", f"line {reader.line_num}: more values than the "
                                     f"{len(reader.fieldnames or [])} columns of the header")
            rows.append({k: v or "" for k, v in row.items()})
            if len(rows) > MAX_CSV_ROWS:
                raise RequestProblem("csv", f"more than {MAX_CSV_ROWS} rows", 413)
    except csv.Error as exc:
        raise RequestProblem("csv", f"line {reader.line_num}: {exc}") from None
    return rows


@dataclass
class StepResult:
    iteration: int
    path: str
    name: str
    method: str
    url: str
    passed: bool
    status: int | None
    duration_ms: float | None
    size: int | None
    error: str | None
    assertions: list[dict[str, Any]]
    captures: dict[str, str]


async def run(engine: Engine, items: Sequence[tuple[str, RequestSpec]],
              variables: Mapping[str, str], rows: Sequence[Mapping[str, str]] = (), *,
              collection: str = "", stop_on_fail: bool = False,
              on_result: Callable[[StepResult, int, int], Awaitable[None] | None] | None = None
              ) -> dict[str, Any]:
    """Run ``items`` (of ``collection``) once per CSV row (once without rows); captures
    chain forward within an iteration. Returns the JSON report."""
    iterations = list(rows) or [{}]
    total = len(iterations) * len(items)
    results: list[StepResult] = []
    # What the report (kept, written, streamed, a monitor's detail, logs) may not show.
    redactor = Redactor(engine.secret_values(collection))
    started = time.time()
    stopped = False
    for number, row in enumerate(iterations, 1):
        scope = with_values(variables, row)
        for path, spec in items:
            try:
                outcome = await engine.execute(spec, scope, collection)
            except RequestProblem as exc:
                outcome = Outcome(None, error=str(exc))
            ex = outcome.exchange
            redactor.add(outcome.secrets)
            result = StepResult(
                iteration=number, path=path, name=spec.name, method=spec.method,
                url=redactor.text(ex.url if ex else spec.url), passed=outcome.passed,
                status=ex.status if ex else None,
                duration_ms=round(ex.total_ms, 2) if ex else None,
                size=len(ex.body) if ex else None,
                error=None if outcome.error is None else redactor.text(outcome.error),
                assertions=redactor.value(outcome.assertions),
                captures={name: mask(value) if value in outcome.secrets
                          else redactor.text(value)
                          for name, value in outcome.captures.items()})
            scope = with_values(scope, outcome.captures)
            results.append(result)
            if on_result is not None:
                maybe = on_result(result, len(results), total)
                if maybe is not None:
                    await maybe
            if stop_on_fail and not result.passed:
                stopped = True
                break
        if stopped:
            break
    failed = sum(1 for r in results if not r.passed)
    return {"started_at": started, "finished_at": time.time(), "total": total,
            "executed": len(results), "passed": len(results) - failed, "failed": failed,
            "stopped_early": stopped, "iterations": len(iterations),
            "results": [asdict(r) for r in results]}


def junit(report: Mapping[str, Any], suite_name: str) -> str:
    """The report as JUnit XML: one test case per request and iteration."""
    results = report["results"]
    suite = ET.Element("testsuite", {
        "name": suite_name, "tests": str(len(results)),
        "failures": str(sum(1 for r in results if not r["passed"] and not r["error"])),
        "errors": str(sum(1 for r in results if r["error"])),
        "time": f"{sum((r['duration_ms'] or 0) for r in results) / 1000:.3f}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report["started_at"]))})
    for r in results:
        name = r["name"] if report["iterations"] == 1 else f"{r['name']} [{r['iteration']}]"
        case = ET.SubElement(suite, "testcase", {
            "classname": f"{suite_name}.{r['path'].removesuffix('.request.json')}",
            "name": name, "time": f"{(r['duration_ms'] or 0) / 1000:.3f}"})
        if r["error"]:
            error = ET.SubElement(case, "error", {"message": r["error"][:1000]})
            error.text = r["error"]
        elif not r["passed"]:
            bad = [a for a in r["assertions"] if not a["passed"]]
            failure = ET.SubElement(case, "failure", {
                "message": bad[0]["message"][:1000] if bad else "failed"})
            failure.text = "\n".join(f"{a['assertion']}: {a['message']}" for a in bad)
    xml: str = ET.tostring(suite, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n"
