"""Collections as plain-text files, and the secrets kept out of them.

Layout of the collections folder (put it in a git repository to version it)::

    <collection>/collection.json          name, description, collection variables
    <collection>/<folder>/.../<name>.request.json
    <collection>/environments/<env>.json  environment variables (secret ones empty)

Files are JSON written one way only (2-space indent, fields in model order, defaults left
out, a final newline), so loading and saving a file gives the same bytes and a change in
the page is a one-line diff. Secrets never reach these files: a literal token, password,
API key or secret header typed in a request is moved to the secret store on save and the
file gets ``{{secret.<name>}}`` in its place; a secret environment variable is stored
with an empty value in the file.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from pydantic import BaseModel, ValidationError

from api_tester.models import CollectionInfo, Environment, RequestSpec
from api_tester.redact import is_secret_field, is_secret_name
from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.plugins.guards import UnsafePath, safe_path

REQUEST_SUFFIX = ".request.json"
COLLECTION_FILE = "collection.json"
ENV_DIR = "environments"
# Collection files are meant to be versioned and shared (they hold no secrets); the
# plugin's own state (secret store, indexes, reports) stays 0600.
SHARED_MODE = 0o644
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")
M = TypeVar("M", bound=BaseModel)


class StorageProblem(ValueError):
    """A bad collection, folder or file name, or a file that does not parse; names the
    field (or the file) and why. ``status`` is the HTTP answer (404 for a missing one)."""

    def __init__(self, message: str, status: int = 422):
        self.status = status
        super().__init__(message)


def dumps(model: BaseModel) -> str:
    """The one text a model is written as."""
    data = model.model_dump(mode="json", exclude_defaults=True)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def loads(model: type[M], text: str, where: str) -> M:
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise StorageProblem(f"{where}: {problems}") from None


def check_name(name: str, field: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith("."):
        raise StorageProblem(f"{field}: {name!r} must be 1-100 letters, digits, spaces, "
                             "'_', '-' or '.', starting with a letter or digit")
    return name


class Collections:
    """The collections under one root folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, collection: str) -> Path:
        check_name(collection, "collection")
        return self.root / collection

    def _existing(self, collection: str) -> Path:
        folder = self._dir(collection)
        if not (folder / COLLECTION_FILE).is_file():
            raise StorageProblem(f"collection: {collection!r} does not exist", 404)
        return folder

    def _request_path(self, collection: str, path: str) -> Path:
        folder = self._existing(collection)
        if not isinstance(path, str) or not path.endswith(REQUEST_SUFFIX):
            raise StorageProblem(f"path: {path!r} must end with {REQUEST_SUFFIX}")
        try:
            resolved = safe_path(folder, path, field="path")
        except UnsafePath as exc:
            raise StorageProblem(str(exc)) from None
        parts = Path(path).parts
        if parts[0] == ENV_DIR or any(p.startswith(".") for p in parts):
            raise StorageProblem(f"path: {path!r} is inside a reserved or hidden folder")
        for part in parts[:-1]:
            check_name(part, "path")
        return resolved

    def check(self, collection: str, path: str) -> Path:
        """The file a request path names, after every check (the file need not exist)."""
        return self._request_path(collection, path)

    def secret_refs(self, collection: str, except_path: str | None = None) -> set[str]:
        """The ``secret.<name>`` names the collection's request files refer to (all but
        ``except_path``'s), read from their text, so a file that no longer validates still
        keeps its names: a new secret must not take one of them."""
        folder = self._existing(collection)
        skip = self._request_path(collection, except_path).resolve() if except_path else None
        found: set[str] = set()
        for file in folder.rglob("*" + REQUEST_SUFFIX):
            # Resolved both: through a linked collections folder the request's own file
            # did not match, its names counted as another's and each edit made a new one.
            if file.is_symlink() or file.resolve() == skip:
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                found.update(SECRET_REF.findall(file.read_text("utf-8")))
        return found

    # -- collections -----------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if (p / COLLECTION_FILE).is_file() and _NAME.match(p.name))

    def create(self, collection: str, info: CollectionInfo | None = None) -> CollectionInfo:
        folder = self._dir(collection)
        if (folder / COLLECTION_FILE).exists():
            raise StorageProblem(f"collection: {collection!r} exists already", 409)
        info = info or CollectionInfo(name=collection)
        write_atomic(folder / COLLECTION_FILE, dumps(info), mode=SHARED_MODE)
        return info

    def info(self, collection: str) -> CollectionInfo:
        path = self._existing(collection) / COLLECTION_FILE
        return loads(CollectionInfo, path.read_text("utf-8"), str(path))

    def save_info(self, collection: str, info: CollectionInfo) -> None:
        write_atomic(self._existing(collection) / COLLECTION_FILE, dumps(info),
                     mode=SHARED_MODE)

    def tree(self, collection: str) -> dict[str, Any]:
        """``{"name", "info", "items", "environments"}``; items are folders (with items)
        and requests (name, method, path), in file-name order."""
        folder = self._existing(collection)

        def walk(directory: Path, prefix: str) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            for entry in sorted(directory.iterdir(), key=lambda p: p.name):
                if entry.name.startswith(".") or entry.is_symlink():
                    continue
                rel = f"{prefix}{entry.name}"
                if entry.is_dir():
                    if prefix == "" and entry.name == ENV_DIR:
                        continue
                    items.append({"type": "folder", "name": entry.name, "path": rel,
                                  "items": walk(entry, rel + "/")})
                elif entry.name.endswith(REQUEST_SUFFIX):
                    try:
                        spec = self.read(collection, rel)
                        items.append({"type": "request", "name": spec.name,
                                      "method": spec.method, "path": rel})
                    except StorageProblem as exc:
                        items.append({"type": "request", "name": entry.name, "path": rel,
                                      "method": "?", "error": str(exc)})
            return items

        return {"name": collection, "info": self.info(collection).model_dump(mode="json"),
                "items": walk(folder, ""), "environments": self.environments(collection)}

    def requests(self, collection: str, folder: str = "") -> list[tuple[str, RequestSpec]]:
        """Every request of the collection (or under ``folder``), in run order."""
        found: list[tuple[str, RequestSpec]] = []

        def walk(items: list[dict[str, Any]]) -> None:
            for item in items:
                if item["type"] == "folder":
                    walk(item["items"])
                elif not folder or item["path"].startswith(folder.rstrip("/") + "/"):
                    found.append((item["path"], self.read(collection, item["path"])))

        if folder:
            self._request_path(collection, folder.rstrip("/") + "/x" + REQUEST_SUFFIX)
        walk(self.tree(collection)["items"])
        return found

    # -- requests --------------------------------------------------------------------
    def read(self, collection: str, path: str) -> RequestSpec:
        file = self._request_path(collection, path)
        if not file.is_file():
            raise StorageProblem(f"path: {path!r} does not exist in {collection!r}", 404)
        return loads(RequestSpec, file.read_text("utf-8"), f"{collection}/{path}")

    def read_text(self, collection: str, path: str) -> str:
        return self._request_path(collection, path).read_text("utf-8")

    def write(self, collection: str, path: str, spec: RequestSpec) -> Path:
        file = self._request_path(collection, path)
        write_atomic(file, dumps(spec), mode=SHARED_MODE)
        return file

    def delete(self, collection: str, path: str) -> None:
        file = self._request_path(collection, path)
        if not file.is_file():
            raise StorageProblem(f"path: {path!r} does not exist in {collection!r}", 404)
        file.unlink()

    # -- environments ----------------------------------------------------------------
    def environments(self, collection: str) -> list[str]:
        folder = self._existing(collection) / ENV_DIR
        if not folder.is_dir():
            return []
        return sorted(p.name[:-5] for p in folder.glob("*.json") if _NAME.match(p.name[:-5]))

    def read_env(self, collection: str, name: str) -> Environment:
        file = self._existing(collection) / ENV_DIR / f"{check_name(name, 'environment')}.json"
        if not file.is_file():
            raise StorageProblem(f"environment: {name!r} does not exist in {collection!r}", 404)
        return loads(Environment, file.read_text("utf-8"), str(file))

    def write_env(self, collection: str, env: Environment) -> None:
        check_name(env.name, "environment")
        write_atomic(self._existing(collection) / ENV_DIR / f"{env.name}.json", dumps(env),
                     mode=SHARED_MODE)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")[:60] or "value"


SECRET_REF = re.compile(r"\{\{\s*(secret\.[A-Za-z0-9_.-]+)\s*\}\}")


def externalize(spec: RequestSpec, prefix: str, taken: Iterable[str] = ()
                ) -> tuple[RequestSpec, dict[str, str]]:
    """``spec`` with every literal secret replaced by ``{{secret.<name>}}``, and the
    secrets by name. ``prefix`` (the request's file stem) keeps names apart; ``taken``
    are names other requests of the collection use (see ``Collections.secret_refs``):
    "users/get" and "users-get" both make "users_get", and the second request's token
    replaced the first's in the store."""
    secrets: dict[str, str] = {}
    data = spec.model_copy(deep=True)
    # Names the request already refers to belong to the values it keeps: a new value must
    # not take one (editing the second of ?token=A&token=B overwrote A's secret).
    kept = set(SECRET_REF.findall(spec.model_dump_json())) | set(taken)

    def move(value: str, field: str) -> str:
        if not value or "{{" in value:
            return value
        name = base = f"secret.{slug(prefix)}.{field}"
        n = 1
        while (name in secrets and secrets[name] != value) or name in kept:
            n += 1  # ?token=a&token=b: both kept, each under its own name
            name = f"{base}.{n}"
        secrets[name] = value
        return "{{" + name + "}}"

    auth = data.auth
    if auth.type == "bearer":
        auth.token = move(auth.token, "token")
    elif auth.type in ("basic", "plexichat"):
        auth.password = move(auth.password, "password")
    elif auth.type == "apikey":
        auth.value = move(auth.value, "apikey")
    # A header or query parameter is a secret by its name (the same rule that masks it
    # when shown: X-Auth-Token, Api-Key, access_token...) or when it is the one the API
    # key helper names (a custom auth.key typed as a plain header too).
    custom = auth.key.lower() if auth.type == "apikey" and auth.key else None
    for header in data.headers:
        if is_secret_name(header.name) or header.name.lower() == custom:
            header.value = move(header.value, slug(header.name.lower()))
    for param in data.params:
        if is_secret_name(param.name) or param.name.lower() == custom:
            param.value = move(param.value, "query." + slug(param.name.lower()))
    # The same names in the URL's own query (a pasted or curl-imported URL keeps it
    # there): the value, as written in the URL, goes to the secret store too.
    base, question, rest = data.url.partition("?")
    if question:
        query, hash_sign, fragment = rest.partition("#")
        pieces = []
        for piece in query.split("&"):
            name, equals, value = piece.partition("=")
            key = unquote_plus(name).lower()
            if equals and (is_secret_name(key) or key == custom):
                value = move(value, "url.query." + slug(key))
            pieces.append(name + equals + value)
        data.url = base + question + "&".join(pieces) + hash_sign + fragment
    # Form and multipart fields by the same rule (password=, client_secret=...), and the
    # string values of such keys at the top of a JSON body: they went into the file meant
    # for git as they were.
    body = data.body
    if body.mode in ("form", "multipart"):
        for item in body.fields:
            if is_secret_field(item.name) and not getattr(item, "filename", None):
                item.value = move(item.value, "body." + slug(item.name.lower()))
    elif body.mode == "json" and body.text and "{{" not in body.text:
        body.text = _externalize_json(body.text, move)
    return data, secrets


_JSON_MEMBER = re.compile(r'("(?:[^"\\]|\\.)*")(\s*:\s*)("(?:[^"\\]|\\.)*")')


def _externalize_json(text: str, move: Callable[[str, str], str]) -> str:
    """A JSON body with the string values of its top-level credential keys replaced by
    secret references, in place: the rest of the text stays as the user wrote it (read and
    written again, JSON lost duplicate keys, number spellings and 1e400). A key written
    twice at the top is left alone (parsers differ on which one counts)."""
    try:
        pairs = json.loads(text, object_pairs_hook=_Members)
    except ValueError:
        return text
    if not isinstance(pairs, _Members):  # not an object at the top
        return text
    times = Counter(name for name, _ in pairs)
    for key, value in pairs:
        if not (is_secret_field(key) and isinstance(value, str) and value
                and times[key] == 1):
            continue
        # The same key may sit in nested objects too, or inside a string: the member to
        # replace is the one whose change changes the top-level value.
        probe = "{{probe}}"
        for member in _JSON_MEMBER.finditer(text):
            if _json_str(member.group(1)) != key or _json_str(member.group(3)) != value:
                continue
            start, end = member.span(3)
            if json.loads(text[:start] + json.dumps(probe) + text[end:]).get(key) == probe:
                reference = move(value, "body." + slug(key.lower()))
                text = text[:start] + json.dumps(reference) + text[end:]
                break
    return text


class _Members(list[tuple[str, Any]]):
    """A JSON object's members in order, duplicates kept (an array parses as a list)."""


def _json_str(literal: str) -> str | None:
    try:
        value = json.loads(literal)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


class AppTokenGrants:
    """The collections the user let use the app's own token (``auth.type = "app"``).

    Kept in the plugin's data dir, never in the collections folder: a collection someone
    hands over (a shared folder, a git clone, an import) cannot grant itself the token.
    The user enables it per collection in the page; importing the built-in "PlexiChat
    app" collection (a click of the user's) enables it for that one."""

    def __init__(self, data_dir: Path):
        self.file = Path(data_dir) / "app-token-collections.json"

    def names(self) -> set[str]:
        try:
            data = json.loads(self.file.read_text("utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError):
            return set()  # unreadable: nothing granted (fail closed)
        names = data.get("collections", []) if isinstance(data, dict) else []
        return {n for n in names if isinstance(n, str)}

    def allowed(self, collection: str | None) -> bool:
        return collection is not None and collection in self.names()

    def set(self, collection: str, enabled: bool) -> None:
        names = self.names()
        (names.add if enabled else names.discard)(collection)
        write_atomic(self.file, json.dumps({"collections": sorted(names)}) + "\n")


class SecretStore:
    """Secrets by name: in the keyring when usable, else a 0600 JSON file.

    The names (never the values) are indexed in the plugin's data dir, because the
    keyring cannot list what it holds.
    """

    SERVICE = "plexichat-desktop-api-tester"

    def __init__(self, data_dir: Path, mode: str = "auto"):
        self.file = Path(data_dir) / "secrets.json"
        self.index_file = Path(data_dir) / "secret-names.json"
        self.mode = mode
        self._chosen = False
        self._keyring_module: Any = None

    @property
    def _keyring(self) -> Any:
        # Chosen on first use: importing keyring probes its backends (D-Bus and the
        # like), which the app's start-up should not wait for.
        if not self._chosen:
            if self.mode in ("auto", "keyring"):
                self._keyring_module = self._usable_keyring()
                if self._keyring_module is None and self.mode == "keyring":
                    raise StorageProblem("secrets_storage: 'keyring' is set but no usable "
                                         "keyring backend is installed; install keyring or "
                                         "use 'file'", 503)
            self._chosen = True
        return self._keyring_module

    @property
    def backend(self) -> str:
        return "keyring" if self._keyring is not None else "file"

    @staticmethod
    def _usable_keyring() -> Any:
        try:
            import keyring
            from keyring.backends import fail
        except ImportError:
            return None
        try:
            backend = keyring.get_keyring()
        except Exception:
            return None
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return None
        return keyring

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise StorageProblem(f"{path}: not valid JSON ({exc}); fix or delete it") from None
        return data if isinstance(data, dict) else {}

    def names(self, prefix: str = "") -> list[str]:
        source = (self._read(self.index_file).get("names", []) if self._keyring
                  else list(self._read(self.file)))
        return sorted(n for n in source if n.startswith(prefix))

    def get(self, name: str) -> str | None:
        if self._keyring is not None:
            value = self._keyring.get_password(self.SERVICE, name)
            return None if value is None else str(value)
        value = self._read(self.file).get(name)
        return None if value is None else str(value)

    def set(self, name: str, value: str) -> None:
        if self._keyring is not None:
            self._keyring.set_password(self.SERVICE, name, value)
            names = set(self.names())
            names.add(name)
            write_atomic(self.index_file, json.dumps({"names": sorted(names)}) + "\n")
            return
        data = self._read(self.file)
        data[name] = value
        write_atomic(self.file, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def delete(self, name: str) -> None:
        if self._keyring is not None:
            with contextlib.suppress(Exception):
                self._keyring.delete_password(self.SERVICE, name)
            names = [n for n in self.names() if n != name]
            write_atomic(self.index_file, json.dumps({"names": names}) + "\n")
            return
        data = self._read(self.file)
        if data.pop(name, None) is not None:
            write_atomic(self.file, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def values(self, prefix: str) -> dict[str, str]:
        """Every secret whose name starts with ``prefix``, with the prefix removed."""
        out: dict[str, str] = {}
        for name in self.names(prefix):
            value = self.get(name)
            if value is not None:
                out[name[len(prefix):]] = value
        return out
