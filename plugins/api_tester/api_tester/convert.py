"""Requests in and out: curl commands, OpenAPI 3, Postman v2.1 and HAR in; curl and httpx
code out. Importers return ``(relative path, RequestSpec)`` pairs; the caller writes them
(moving literal secrets out on the way) into a collection."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any
from urllib.parse import quote_plus, unquote, unquote_plus, urlsplit

from api_tester.models import METHODS, Auth, Body, FormField, Pair, RequestSpec

Imported = list[tuple[str, RequestSpec]]
MAX_ITEMS = 5000


class ConvertProblem(ValueError):
    """Input an importer cannot take; names the field (``text`` or an option)."""

    def __init__(self, field: str, message: str, status: int = 422):
        self.field = field
        self.status = status
        super().__init__(message if message.startswith(field) else f"{field}: {message}")


def file_name(text: str, taken: set[str], folder: str = "") -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "request"
    prefix = f"{folder}/" if folder else ""
    name, n = f"{prefix}{stem}.request.json", 2
    while name in taken:
        name, n = f"{prefix}{stem}-{n}.request.json", n + 1
    taken.add(name)
    return name


def folder_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 _.-]+", "-", text).strip(" -.")[:60] or "other"


# -- curl ------------------------------------------------------------------------------
_NO_VALUE = {"-s", "--silent", "-S", "--show-error", "-L", "--location", "-k", "--insecure",
             "-v", "--verbose", "-i", "--include", "--compressed", "-g", "--globoff",
             "--http1.1", "--http2", "-f", "--fail", "-N", "--no-buffer", "-#",
             "--progress-bar", "--location-trusted", "-G", "--get", "-I", "--head"}
_VALUE = {"-X", "--request", "-H", "--header", "-d", "--data", "--data-ascii",
          "--data-binary", "--data-raw", "--data-urlencode", "--json", "-F", "--form",
          "--form-string", "-u", "--user", "-A", "--user-agent", "-e", "--referer", "-b",
          "--cookie", "--url", "-m", "--max-time", "--connect-timeout", "-o", "--output",
          "-w", "--write-out", "--oauth2-bearer"}
_FILE_DATA = {"-d", "--data", "--data-ascii", "--data-binary", "--data-urlencode", "--json"}


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a",
            "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v", "?": "?"}


def _ansi_c_words(text: str) -> str:
    """``text`` with each bash ``$'...'`` word (what browsers' "Copy as cURL" writes)
    decoded and quoted for shlex, which knows no such quoting ("No closing quotation", or
    a body that kept the '$'). Only a ``$'`` outside other quotes starts one: a '$' that
    ends a quoted word ('pa$') is the word's own."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote is None and text.startswith("$'", i):
            decoded, i = _decode_ansi_c(text, i + 2)
            out.append(shlex.quote(decoded))
            continue
        if quote != "'" and char == "\\" and i + 1 < len(text):  # an escape, kept whole
            out.append(text[i:i + 2])
            i += 2
            continue
        if quote is None and char in "'\"":
            quote = char
        elif quote == char:
            quote = None
        out.append(char)
        i += 1
    return "".join(out)


def _decode_ansi_c(text: str, i: int) -> tuple[str, int]:
    """The text of a ``$'...'`` word whose body starts at ``i``, and where it ends."""
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == "'":
            return "".join(out), i + 1
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(nxt)
            digits = re.match(r"[0-9A-Fa-f]+", text[i + 2:i + 2 + width]) if width else None
            if digits:
                out.append(chr(int(digits.group(0), 16)))
                i += 2 + len(digits.group(0))
                continue
        out.append(char)
        i += 1
    raise ConvertProblem("text", "the curl command does not parse: a $'...' word is not "
                                 "closed")


def _tokens(text: str) -> list[str]:
    text = re.sub(r"\\\r?\n", " ", text.strip())
    text = _ansi_c_words(text)
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ConvertProblem("text", f"the curl command does not parse: {exc}") from None
    if not words or words[0] != "curl":
        raise ConvertProblem("text", "a curl command starts with 'curl'")
    out: list[str] = []
    for word in words[1:]:
        # -XPOST, -H'A: b' and -sSL are written together; split them as curl does.
        if re.match(r"^-[A-Za-z#]{2,}$", word) and all(f"-{c}" in _NO_VALUE for c in word[1:]):
            out.extend(f"-{c}" for c in word[1:])
        elif re.match(r"^-[A-Za-z]", word) and len(word) > 2 and word[:2] in _VALUE:
            out.extend([word[:2], word[2:]])
        elif word.startswith("--") and "=" in word and word.split("=", 1)[0] in _VALUE:
            out.extend(word.split("=", 1))
        else:
            out.append(word)
    return out


def from_curl(text: str) -> RequestSpec:
    """A request from a curl command line; reading files (``-d @file``, ``-F x=@file``)
    is refused, since an import must not read the user's files."""
    words = _tokens(text)
    method: str | None = None
    url: str | None = None
    headers: list[Pair] = []
    data: list[str] = []
    query: list[Pair] = []  # what -G sends, decoded (the request's params encode it)
    form: list[FormField] = []
    auth = Auth()
    get = head = False
    json_body = False
    i = 0
    while i < len(words):
        word = words[i]
        if word in _NO_VALUE:
            get = get or word in ("-G", "--get")
            head = head or word in ("-I", "--head")
            i += 1
            continue
        if word.startswith("-") and word not in _VALUE:
            raise ConvertProblem("text", f"curl option {word!r} is not supported")
        if not word.startswith("-"):
            if url is not None:
                raise ConvertProblem("text", f"two URLs ({url!r} and {word!r}); import one "
                                     "request at a time")
            url = word
            i += 1
            continue
        if i + 1 >= len(words):
            raise ConvertProblem("text", f"curl option {word!r} needs a value")
        value = words[i + 1]
        i += 2
        if word in ("-X", "--request"):
            method = value.upper()
        elif word in ("-H", "--header"):
            if value.rstrip().endswith(";") and ":" not in value:
                # curl's way to send a header with no value: -H 'X-Empty;'.
                headers.append(Pair(name=value.rstrip()[:-1].strip(), value=""))
                continue
            name, _, val = value.partition(":")
            headers.append(Pair(name=name.strip(), value=val.strip()))
        elif word in _FILE_DATA or word == "--data-raw":
            if word in _FILE_DATA and value.startswith("@"):
                raise ConvertProblem("text", f"{word} {value} reads a local file; paste the "
                                     "body itself (or use --data-raw)", 400)
            if word == "--data-urlencode":
                name, eq, val = value.partition("=")
                query.append(Pair(name=name, value=val) if eq else Pair(name=value, value=""))
                value = f"{name}={quote_plus(val)}" if eq else quote_plus(value)
            else:
                query.extend(Pair(name=unquote_plus(k), value=unquote_plus(v))
                             for k, _, v in (p.partition("=") for p in value.split("&")))
            if word == "--json":
                json_body = True
            data.append(value)
        elif word in ("-F", "--form", "--form-string"):
            name, _, val = value.partition("=")
            if word != "--form-string" and val[:1] in ("@", "<"):
                raise ConvertProblem("text", f"{word} {value} reads a local file; an import "
                                     "does not read files", 400)
            form.append(FormField(name=name, value=val))
        elif word in ("-u", "--user"):
            user, _, password = value.partition(":")
            auth = Auth(type="basic", username=user, password=password)
        elif word == "--oauth2-bearer":
            auth = Auth(type="bearer", token=value)
        elif word in ("-A", "--user-agent"):
            headers.append(Pair(name="User-Agent", value=value))
        elif word in ("-e", "--referer"):
            headers.append(Pair(name="Referer", value=value))
        elif word in ("-b", "--cookie"):
            if "=" not in value:
                raise ConvertProblem("text", f"{word} {value} reads a cookie file; an import "
                                     "does not read files", 400)
            headers.append(Pair(name="Cookie", value=value))
        elif word == "--url":
            url = value
    if url is None:
        raise ConvertProblem("text", "the curl command has no URL")
    if "://" not in url:
        url = "http://" + url
    url, auth = _userinfo_as_auth(url, auth)
    params: list[Pair] = []
    body = Body()
    if get and data:
        # Decoded: they were encoded twice (the params table encodes what it holds).
        params = query
    elif form:
        body = Body(mode="multipart", fields=form)
    elif data:
        text_body = "&".join(data)
        ctype = next((h.value for h in headers if h.name.lower() == "content-type"), "")
        if json_body or "json" in ctype.lower():
            body = Body(mode="json", text=text_body)
            if json_body and not ctype:
                headers.append(Pair(name="Content-Type", value="application/json"))
        else:
            body = Body(mode="raw", text=text_body,
                        content_type=None if ctype else "application/x-www-form-urlencoded")
    if method is None:
        method = "HEAD" if head else ("POST" if (data and not get) or form else "GET")
    if method not in METHODS:
        raise ConvertProblem("text", f"method {method!r} is not one of {', '.join(METHODS)}")
    path = urlsplit(url).path or "/"
    return RequestSpec(name=f"{method} {path}"[:200], method=method, url=url, params=params,
                       headers=headers, body=body, auth=auth)


def _userinfo_as_auth(url: str, auth: Auth) -> tuple[str, Auth]:
    """``http://user:pw@host/`` as the URL without them and Basic auth (unless ``-u``
    gave one): kept in the URL, the password went into the collection file, which is
    meant for git, and the request was refused when sent."""
    # By hand, not through urlsplit: the host and port stay as written ({{apiHost}}
    # lower-cased by urlsplit no longer resolved, and a {{port}} failed the import).
    scheme, sep, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    if not sep or not at:
        return url, auth
    bare = f"{scheme}://{hostport}{path}"
    if auth.type != "none":
        return bare, auth
    user, _, password = userinfo.partition(":")
    return bare, Auth(type="basic", username=unquote(user), password=unquote(password))


# -- OpenAPI 3 -------------------------------------------------------------------------
def _ref(doc: dict[str, Any], node: Any, depth: int = 0) -> Any:
    if isinstance(node, dict) and "$ref" in node and depth < 20:
        target: Any = doc
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _ref(doc, target, depth + 1)
    return node


def example(doc: dict[str, Any], schema: Any, depth: int = 0) -> Any:
    """A small value that fits ``schema``: its example or default, else a placeholder."""
    schema = _ref(doc, schema)
    if not isinstance(schema, dict) or depth > 6:
        return None
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    if schema.get("examples") and isinstance(schema["examples"], list):
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [o for o in (_ref(doc, o) for o in schema[key])
                       if not (isinstance(o, dict) and o.get("type") == "null")]
            if key == "allOf":
                merged: dict[str, Any] = {}
                for option in options:
                    value = example(doc, option, depth + 1)
                    if isinstance(value, dict):
                        merged.update(value)
                return merged
            return example(doc, options[0] if options else {}, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        props = schema.get("properties", {})
        return {k: example(doc, v, depth + 1) for k, v in props.items()
                if k in required or not required}
    if kind == "array":
        return [example(doc, schema.get("items", {}), depth + 1)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = schema.get("format", "")
        return {"email": "ann@example.org", "date-time": "2026-01-01T00:00:00Z",
                "uuid": "00000000-0000-0000-0000-000000000000"}.get(
            fmt, "x" * max(1, int(schema.get("minLength", 1))) if "minLength" in schema
            else "text")
    return None


def from_openapi(doc: Any, *, v1_login: bool = False, app_token: bool = False) -> tuple[
        str, str, Imported, dict[str, str]]:
    """``(title, server URL, requests, path variables)``: one folder per first tag; each
    path parameter becomes a ``{{variable}}`` with an example value. ``v1_login`` gives
    operations that need a bearer token the PlexiChat v1 login helper; ``app_token``
    gives every operation the app-token helper (the app's own routes)."""
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3"):
        raise ConvertProblem("text", "not an OpenAPI 3 document (no 'openapi: 3.x' field)")
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        raise ConvertProblem("text", "the OpenAPI document has no 'paths' object")
    title = str(doc.get("info", {}).get("title") or "Imported API")
    servers = doc.get("servers") or [{}]
    server = str(servers[0].get("url", "")) if isinstance(servers[0], dict) else ""
    global_security = doc.get("security")
    schemes = doc.get("components", {}).get("securitySchemes", {})
    out: Imported = []
    taken: set[str] = set()
    path_vars: dict[str, str] = {}
    for path, item in paths.items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method.upper() not in METHODS or not isinstance(op, dict):
                continue
            if len(out) >= MAX_ITEMS:
                raise ConvertProblem("text", f"more than {MAX_ITEMS} operations", 413)
            url = "{{baseUrl}}" + re.sub(r"\{([^}/]+)\}", r"{{\1}}", path)
            params: list[Pair] = []
            headers: list[Pair] = []
            for raw in [*shared, *op.get("parameters", [])]:
                param = _ref(doc, raw)
                if not isinstance(param, dict) or "name" not in param:
                    continue
                value = example(doc, param.get("schema", {}))
                text = "" if value is None else (
                    value if isinstance(value, str) else json.dumps(value))
                pair = Pair(name=param["name"], value=text,
                            enabled=bool(param.get("required")))
                if param.get("in") == "path":
                    if re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$", str(param["name"])):
                        path_vars.setdefault(str(param["name"]), text or "1")
                elif param.get("in") == "query":
                    params.append(pair)
                elif param.get("in") == "header":
                    headers.append(pair)
            body = _openapi_body(doc, op.get("requestBody"))
            security = op.get("security", global_security) or []
            needs: set[str] = set()
            for requirement in security:
                needs.update(requirement)
            auth = Auth()
            if app_token:
                auth = Auth(type="app")
            elif needs:
                scheme = _ref(doc, schemes.get(sorted(needs)[0], {}))
                if v1_login and scheme.get("scheme", "").lower() == "bearer":
                    auth = Auth(type="plexichat", username="{{username}}",
                                password="{{password}}", base="{{baseUrl}}")
                elif scheme.get("type") == "http" and scheme.get("scheme") == "basic":
                    auth = Auth(type="basic", username="{{username}}", password="{{password}}")
                elif scheme.get("type") == "apiKey":
                    auth = Auth(type="apikey", key=str(scheme.get("name", "X-Api-Key")),
                                value="{{apiKey}}",
                                where="query" if scheme.get("in") == "query" else "header")
                else:
                    auth = Auth(type="bearer", token="{{token}}")
            tags = op.get("tags") or ["other"]
            folder = folder_name(str(tags[0]))
            name = str(op.get("summary") or op.get("operationId") or f"{method.upper()} {path}")
            spec = RequestSpec(
                name=name[:200], method=method.upper(), url=url, params=params,
                headers=headers, body=body, auth=auth,
                description=str(op.get("description", ""))[:100_000],
                asserts=[{"source": "status", "op": "lt", "value": 400}])  # type: ignore[list-item]
            # Reads first, deletes last: a run of a folder must not delete what the
            # requests after it read (files are run in name order).
            order = {"get": 1, "head": 1, "options": 1, "post": 2, "put": 3, "patch": 3}.get(
                method, 9)
            stem = f"{order}-{op.get('operationId') or f'{method}-{path}'}"
            out.append((file_name(stem, taken, folder), spec))
    return title, server, out, path_vars


def _openapi_body(doc: dict[str, Any], request_body: Any) -> Body:
    request_body = _ref(doc, request_body)
    if not isinstance(request_body, dict):
        return Body()
    content = request_body.get("content", {})
    for media, spec in content.items():
        schema = (spec or {}).get("schema", {})
        sample = (spec or {}).get("example")
        if sample is None:
            sample = example(doc, schema)
        if "json" in media:
            return Body(mode="json", text=json.dumps(sample, indent=2, ensure_ascii=False))
        if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
            props = _ref(doc, schema).get("properties", {}) if isinstance(
                _ref(doc, schema), dict) else {}
            fields = []
            for key, prop in props.items():
                prop = _ref(doc, prop)
                binary = isinstance(prop, dict) and prop.get("format") == "binary"
                value = example(doc, prop)
                fields.append(FormField(
                    name=key, value="" if binary or value is None else str(value),
                    filename="file.txt" if binary and media.startswith("multipart") else None))
            return Body(mode="form" if media.endswith("urlencoded") else "multipart",
                        fields=fields)
        if media.startswith("text/"):
            return Body(mode="raw", text="" if sample is None else str(sample),
                        content_type=media)
    return Body()


# -- Postman v2.1 ----------------------------------------------------------------------
def from_postman(doc: Any) -> tuple[str, list[dict[str, Any]], Imported, int]:
    """``(name, variables, requests, scripts skipped)``; folders become folders. Each
    variable is ``{name, value, secret}`` (Postman's ``type: secret``; disabled ones are
    left out); a request without auth of its own gets its folder's or the collection's,
    as Postman sends it."""
    if not isinstance(doc, dict) or "item" not in doc:
        raise ConvertProblem("text", "not a Postman collection (no 'item' list)")
    schema = str(doc.get("info", {}).get("schema", ""))
    if schema and "v2.1" not in schema and "v2.0" not in schema:
        raise ConvertProblem("text", f"Postman schema {schema!r} is not v2.x")
    out: Imported = []
    taken: set[str] = set()
    skipped = 0

    def walk(items: Any, folder: str, depth: int, inherited: Any) -> None:
        nonlocal skipped
        listed = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        width = len(str(len(listed)))
        for position, item in enumerate(listed, 1):
            if depth > 20:
                continue
            skipped += len(item.get("event") or [])
            # Numbered in Postman's order: a run goes through files by name, and a
            # login-then-use chain ran alphabetically ("get-profile" before "login").
            order = f"{position:0{width}d}-"
            if "item" in item:
                sub = f"{folder}/{order}{folder_name(str(item.get('name', 'folder')))}"
                walk(item["item"], sub.strip("/"), depth + 1, item.get("auth") or inherited)
            elif "request" in item:
                if len(out) >= MAX_ITEMS:
                    raise ConvertProblem("text", f"more than {MAX_ITEMS} requests", 413)
                name = str(item.get("name") or "request")
                out.append((file_name(order + name, taken, folder), _postman_request(
                    name, item["request"], inherited)))

    skipped += len(doc.get("event") or [])  # the collection's own scripts count too
    walk(doc["item"], "", 0, doc.get("auth"))
    variables = [{"name": str(v.get("key")), "value": str(v.get("value", "")),
                  "secret": v.get("type") == "secret"}
                 for v in doc.get("variable", [])
                 if isinstance(v, dict) and v.get("key") and not v.get("disabled")]
    return str(doc.get("info", {}).get("name") or "Postman import"), variables, out, skipped


def _kv(items: Any, key: str = "key") -> list[Pair]:
    return [Pair(name=str(h.get(key, "")), value=str(h.get("value", "")),
                 enabled=not h.get("disabled", False))
            for h in items or [] if isinstance(h, dict)]


def _postman_auth(raw_auth: Any) -> Auth:
    """Postman's auth object (v2.1: a list of ``{key, value}``; v2.0: an object)."""
    if not isinstance(raw_auth, dict):
        return Auth()
    kind = str(raw_auth.get("type", ""))
    found = raw_auth.get(kind)
    if isinstance(found, dict):
        values = {str(k): str(v) for k, v in found.items()}
    else:
        values = {str(a.get("key")): str(a.get("value", ""))
                  for a in found or [] if isinstance(a, dict)}
    if kind == "bearer":
        return Auth(type="bearer", token=values.get("token", ""))
    if kind == "basic":
        return Auth(type="basic", username=values.get("username", ""),
                    password=values.get("password", ""))
    if kind == "apikey":
        return Auth(type="apikey", key=values.get("key", ""), value=values.get("value", ""),
                    where="query" if values.get("in") == "query" else "header")
    return Auth()  # "noauth", or a kind this tester does not send


def _postman_url(url: Any) -> str:
    """The raw URL with its path variables (``/users/:id`` and ``url.variable``) filled
    in: left as ``:id`` the URL was broken and the value lost."""
    if not isinstance(url, dict):
        return str(url or "")
    raw = str(url.get("raw", ""))
    for var in url.get("variable") or []:
        if isinstance(var, dict) and var.get("key"):
            key = str(var["key"])
            value = str(var.get("value", "")) or "{{" + key + "}}"
            raw = re.sub(rf"(?<=/):{re.escape(key)}(?=[/?#]|$)", lambda _m, v=value: v, raw)
    return raw


def _postman_request(name: str, request: Any, inherited: Any = None) -> RequestSpec:
    if isinstance(request, str):
        return RequestSpec(name=name[:200], url=request, auth=_postman_auth(inherited))
    url = _postman_url(request.get("url", ""))
    body = Body()
    raw_body = request.get("body") or {}
    mode = raw_body.get("mode")
    if mode == "graphql":
        graphql = raw_body.get("graphql") or {}
        variables = graphql.get("variables") or "{}"
        try:
            parsed = json.loads(variables) if isinstance(variables, str) else variables
        except ValueError:
            parsed = {}
        body = Body(mode="json", text=json.dumps({"query": str(graphql.get("query", "")),
                                                  "variables": parsed}, indent=2))
    elif mode == "raw":
        language = raw_body.get("options", {}).get("raw", {}).get("language", "")
        body = Body(mode="json" if language == "json" else "raw", text=raw_body.get("raw", ""))
    elif mode == "urlencoded":
        body = Body(mode="form", fields=[FormField(name=p.name, value=p.value,
                                                   enabled=p.enabled)
                                         for p in _kv(raw_body.get("urlencoded"))])
    elif mode == "formdata":
        body = Body(mode="multipart", fields=[
            FormField(name=str(f.get("key", "")), value=str(f.get("value", "")),
                      filename=(str(f.get("src")).rsplit("/", 1)[-1] if f.get("type") == "file"
                                and f.get("src") else None),
                      enabled=not f.get("disabled", False))
            for f in raw_body.get("formdata", []) if isinstance(f, dict)])
    # No auth of its own: its folder's or the collection's, as Postman sends it.
    auth = _postman_auth(request.get("auth") or inherited)
    method = str(request.get("method", "GET")).upper()
    return RequestSpec(name=name[:200], method=method if method in METHODS else "GET",
                       url=str(url), headers=_kv(request.get("header")), body=body, auth=auth,
                       description=str(request.get("description") or "")[:100_000])


# -- HAR -------------------------------------------------------------------------------
_HAR_SKIP = {"host", "content-length", "connection", "accept-encoding"}


def from_har(doc: Any) -> Imported:
    entries = doc.get("log", {}).get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ConvertProblem("text", "not a HAR file (no log.entries list)")
    out: Imported = []
    taken: set[str] = set()
    for entry in entries[:MAX_ITEMS]:
        request = entry.get("request", {}) if isinstance(entry, dict) else {}
        url = str(request.get("url", ""))
        if not url:
            continue
        method = str(request.get("method", "GET")).upper()
        headers = [Pair(name=str(h.get("name", "")), value=str(h.get("value", "")))
                   for h in request.get("headers", [])
                   if isinstance(h, dict) and not str(h.get("name", "")).startswith(":")
                   and str(h.get("name", "")).lower() not in _HAR_SKIP]
        post = request.get("postData") or {}
        body = Body()
        if post:
            mime = str(post.get("mimeType", ""))
            if post.get("params") and "multipart" in mime:
                body = Body(mode="multipart", fields=[
                    FormField(name=str(p.get("name", "")), value=str(p.get("value", "")),
                              filename=p.get("fileName")) for p in post["params"]])
                headers = [h for h in headers if h.name.lower() != "content-type"]
            elif "json" in mime:
                body = Body(mode="json", text=str(post.get("text", "")))
            else:
                body = Body(mode="raw", text=str(post.get("text", "")),
                            content_type=mime or None)
                headers = [h for h in headers if h.name.lower() != "content-type"]
        name = f"{method} {urlsplit(url).path or '/'}"
        out.append((file_name(name, taken), RequestSpec(
            name=name[:200], method=method if method in METHODS else "GET", url=url,
            headers=headers, body=body)))
    return out


# -- export ----------------------------------------------------------------------------
def _enabled(pairs: list[Pair]) -> list[tuple[str, str]]:
    return [(p.name, p.value) for p in pairs if p.enabled]


def to_curl(spec: RequestSpec) -> str:
    from api_tester.sender import with_params

    q = shlex.quote
    parts = ["curl"]
    if spec.method != "GET" or spec.body.mode != "none":
        parts += ["-X", spec.method]
    parts.append(q(with_params(spec.url, _enabled(spec.params))))
    for name, value in _enabled(spec.headers):
        parts += ["-H", q(f"{name}: {value}")]
    auth = spec.auth
    if auth.type == "bearer":
        parts += ["-H", q(f"Authorization: Bearer {auth.token}")]
    elif auth.type == "basic":
        parts += ["-u", q(f"{auth.username}:{auth.password}")]
    elif auth.type == "apikey" and auth.where == "header":
        parts += ["-H", q(f"{auth.key}: {auth.value}")]
    elif auth.type in ("plexichat", "app"):
        parts += ["-H", q("Authorization: Bearer {{token}}")]
    body = spec.body
    if body.mode == "json":
        has_type = any(n.lower() == "content-type" for n, _ in _enabled(spec.headers))
        if not has_type:
            parts += ["-H", q("Content-Type: application/json")]
        parts += ["--data-raw", q(body.text)]
    elif body.mode == "raw":
        if body.content_type:
            parts += ["-H", q(f"Content-Type: {body.content_type}")]
        parts += ["--data-raw", q(body.text)]
    elif body.mode == "form":
        for f in body.fields:
            if f.enabled:
                parts += ["--data-urlencode", q(f"{f.name}={f.value}")]
    elif body.mode == "multipart":
        for f in body.fields:
            if f.enabled:
                value = f"{f.name}={f.value}" if not f.filename else (
                    f"{f.name}=@{f.filename}")
                parts += ["--form-string" if not f.filename else "-F", q(value)]
    text = " ".join(parts)
    if auth.type == "apikey" and auth.where == "query":
        text = text.replace(q(with_params(spec.url, _enabled(spec.params))), q(with_params(
            spec.url, [*_enabled(spec.params), (auth.key, auth.value)])), 1)
    return text


def to_httpx(spec: RequestSpec) -> str:
    """Python code sending the same request with httpx."""
    lines = ["import httpx", "", "response = httpx.request(", f"    {spec.method!r},",
             f"    {spec.url!r},"]
    params = _enabled(spec.params)
    headers = dict(_enabled(spec.headers))
    auth = spec.auth
    if auth.type == "bearer":
        headers["Authorization"] = f"Bearer {auth.token}"
    elif auth.type == "apikey" and auth.where == "header":
        headers[auth.key] = auth.value
    elif auth.type == "apikey":
        params.append((auth.key, auth.value))
    elif auth.type in ("plexichat", "app"):
        headers["Authorization"] = "Bearer {{token}}"
    if params:
        lines.append(f"    params={params!r},")
    if headers:
        lines.append(f"    headers={headers!r},")
    if auth.type == "basic":
        lines.append(f"    auth=({auth.username!r}, {auth.password!r}),")
    body = spec.body
    if body.mode == "json":
        try:
            lines.append(f"    json={json.loads(body.text)!r},")
        except ValueError:
            lines.append(f"    content={body.text!r},")
    elif body.mode == "raw":
        lines.append(f"    content={body.text.encode()!r},")
        if body.content_type and "Content-Type" not in headers:
            headers["Content-Type"] = body.content_type
            lines = [line if not line.startswith("    headers=") else
                     f"    headers={headers!r}," for line in lines]
            if not any(line.startswith("    headers=") for line in lines):
                lines.append(f"    headers={headers!r},")
    elif body.mode == "form":
        lines.append(f"    data={[(f.name, f.value) for f in body.fields if f.enabled]!r},")
    elif body.mode == "multipart":
        files = [(f.name, (f.filename, f.value.encode()) if f.filename else (None, f.value))
                 for f in body.fields if f.enabled]
        lines.append(f"    files={files!r},")
    lines += ["    timeout=30,", ")", "print(response.status_code)", "print(response.text)", ""]
    return "\n".join(lines)
