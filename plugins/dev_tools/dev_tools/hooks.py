"""The offline part of ``.pre-commit-config.yaml``: hooks of ``repo: local`` and ``repo: meta``.

pre-commit installs each hook's environment from its git repository, which needs the
network; local hooks run tools that are already installed. They run here the way
pre-commit runs them (entry split like a command line, the hook's ``args``, then the
matching file names, in batches) but on a copy of the workspace, so every change a hook
makes is shown as a diff and written only when the user applies it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dev_tools.errors import ApiError

CONFIG = ".pre-commit-config.yaml"
# Languages whose local hooks run an installed program directly. (pre-commit would make
# an environment for python/node/...; offline, the installed tool is what we have.)
RUNNABLE = {"system", "script", "python", "python_venv", "node", "ruby", "rust", "golang",
            "perl", "lua", "dotnet", "conda", "coursier", "dart", "haskell", "julia", "r",
            "swift", "unsupported", "unsupported_script"}
META = {"identity", "check-hooks-apply", "check-useless-excludes"}
BATCH = 2000  # file names per call, well below any command-line limit

# A small version of `identify`'s tags: enough for the types people write in local hooks.
EXT_TAGS = {
    ".py": {"python"}, ".pyi": {"python", "pyi"}, ".js": {"javascript"}, ".mjs": {"javascript"},
    ".ts": {"ts"}, ".tsx": {"tsx"}, ".jsx": {"jsx"}, ".json": {"json"}, ".toml": {"toml"},
    ".yaml": {"yaml"}, ".yml": {"yaml"}, ".md": {"markdown"}, ".rst": {"rst"},
    ".sh": {"shell", "bash"}, ".bash": {"shell", "bash"}, ".css": {"css"},
    ".html": {"html"}, ".txt": {"plain-text"}, ".cfg": {"ini"}, ".ini": {"ini"},
    ".c": {"c"}, ".h": {"c", "header"}, ".cpp": {"c++"}, ".go": {"go"}, ".rs": {"rust"},
    ".sql": {"sql"}, ".xml": {"xml"}, ".svg": {"svg", "xml"},
}


@dataclass
class Hook:
    id: str
    name: str
    repo: str
    language: str
    entry: str = ""
    args: list[str] = field(default_factory=list)
    files: str = ""
    exclude: str = "^$"
    types: list[str] = field(default_factory=lambda: ["file"])
    types_or: list[str] = field(default_factory=list)
    exclude_types: list[str] = field(default_factory=list)
    pass_filenames: bool = True
    always_run: bool = False
    runnable: bool = True
    why_not: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "repo": self.repo,
                "language": self.language, "entry": self.entry, "args": self.args,
                "runnable": self.runnable, "why_not": self.why_not}


@dataclass
class HookConfig:
    hooks: list[Hook]
    skipped_repos: list[str]
    files: str = ""
    exclude: str = "^$"


def load(root: Path) -> HookConfig:
    path = root / CONFIG
    if not path.is_file():
        raise ApiError(404, "workspace", f"{root.name} has no {CONFIG}")
    try:
        import yaml  # lazily: only pages that run hooks need it
    except ImportError:
        raise ApiError(409, None, "PyYAML is not installed, so hooks are off "
                                  "(install: pip install 'PyYAML>=6')") from None

    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ApiError(422, CONFIG, f"cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("repos"), list):
        raise ApiError(422, CONFIG, "must be a mapping with a 'repos' list")
    hooks: list[Hook] = []
    skipped: list[str] = []
    for r_index, repo in enumerate(data["repos"]):
        if not isinstance(repo, dict):
            raise ApiError(422, CONFIG, f"repos[{r_index}] is not a mapping")
        url = str(repo.get("repo", ""))
        if url not in ("local", "meta"):
            skipped.append(url)
            continue
        repo_hooks = repo.get("hooks") or []
        if not isinstance(repo_hooks, list):
            raise ApiError(422, CONFIG, f"repos[{r_index}].hooks must be a list")
        for h_index, raw in enumerate(repo_hooks):
            where = f"repos[{r_index}].hooks[{h_index}]"
            if not isinstance(raw, dict) or not raw.get("id"):
                raise ApiError(422, CONFIG, f"{where} needs an id")
            hooks.append(_hook(url, raw, where))
    return HookConfig(hooks, skipped, str(data.get("files") or ""),
                      str(data.get("exclude") or "^$"))


def _hook(repo: str, raw: dict[str, Any], where: str) -> Hook:
    def strings(key: str, default: list[str]) -> list[str]:
        value = raw.get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError(422, CONFIG, f"{where}.{key} must be a list of strings")
        return value

    hook_id = str(raw["id"])
    language = "meta" if repo == "meta" else str(raw.get("language", ""))
    hook = Hook(
        id=hook_id, name=str(raw.get("name", hook_id)), repo=repo, language=language,
        entry=str(raw.get("entry", "")), args=strings("args", []),
        files=str(raw.get("files", "")), exclude=str(raw.get("exclude", "^$")),
        types=strings("types", ["file"]), types_or=strings("types_or", []),
        exclude_types=strings("exclude_types", []),
        pass_filenames=bool(raw.get("pass_filenames", True)),
        always_run=bool(raw.get("always_run", False)))
    for key in ("files", "exclude"):
        try:
            re.compile(getattr(hook, key))
        except re.error as exc:
            raise ApiError(422, CONFIG, f"{where}.{key}: bad regular expression: {exc}") from None
    if repo == "meta":
        if hook_id not in META:
            hook.runnable, hook.why_not = False, f"meta hook {hook_id!r} is not known"
    elif language in ("pygrep", "fail"):
        pass
    elif language == "docker" or language == "docker_image":
        hook.runnable, hook.why_not = False, "docker hooks are not run (no containers here)"
    elif language not in RUNNABLE:
        hook.runnable, hook.why_not = False, f"language {language!r} is not supported"
    elif not hook.entry.strip():
        hook.runnable, hook.why_not = False, "the hook has no entry"
    return hook


def tags(path: Path) -> set[str]:
    found = {"file"}
    suffix = path.suffix.lower()
    found |= EXT_TAGS.get(suffix, set())
    if path.name in ("Makefile", "makefile", "GNUmakefile"):
        found.add("makefile")
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
        found.add("binary" if b"\x00" in head else "text")
        if head.startswith(b"#!"):
            first = head.split(b"\n", 1)[0]
            if b"python" in first:
                found.add("python")
            elif any(s in first for s in (b"sh", b"bash")):
                found |= {"shell", "bash"}
        if os.access(path, os.X_OK):
            found.add("executable")
        else:
            found.add("non-executable")
    except OSError:
        pass
    return found


def select(hook: Hook, config: HookConfig, root: Path, files: list[str],
           tag_cache: dict[str, set[str]]) -> list[str]:
    top_files, top_ex = re.compile(config.files), re.compile(config.exclude)
    inc, exc = re.compile(hook.files), re.compile(hook.exclude)
    chosen = []
    for name in files:
        if not top_files.search(name) or top_ex.search(name):
            continue
        if not inc.search(name) or exc.search(name):
            continue
        file_tags = tag_cache.get(name)
        if file_tags is None:
            file_tags = tag_cache[name] = tags(root / name)
        if not set(hook.types) <= file_tags:
            continue
        if hook.types_or and not set(hook.types_or) & file_tags:
            continue
        if set(hook.exclude_types) & file_tags:
            continue
        chosen.append(name)
    return chosen


def argv(hook: Hook, root: Path, tools_root: Path) -> list[str]:
    """The command of a runnable hook in the copy ``root``, without file names. Programs
    are looked up in the workspace ``tools_root``'s virtualenv, on PATH, then next to the
    app's interpreter; FileNotFoundError names one that is not installed."""
    try:
        parts = shlex.split(hook.entry)
    except ValueError as exc:
        raise ApiError(422, CONFIG, f"hook {hook.id}: entry cannot be split: {exc}") from None
    program = parts[0]
    if hook.language in ("script", "unsupported_script"):
        script = (root / program).resolve()
        if not script.is_relative_to(root.resolve()) or not script.is_file():
            raise FileNotFoundError(f"script {program!r} is not a file in the workspace")
        parts[0] = str(script)
    elif "/" not in program:
        found = _which(program, tools_root)
        if found is None:
            raise FileNotFoundError(f"{program!r} is not installed (not on PATH)")
        parts[0] = found
    return [*parts, *hook.args]


def _which(program: str, root: Path) -> str | None:
    # The workspace's own virtualenv first: that is where a project's tools live.
    for folder in (".venv", "venv"):
        candidate = root / folder / "bin" / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    # The app's own environment last: tools installed with it (ruff) are "installed"
    # even when the app was started without activating its virtualenv.
    return shutil.which(program) or shutil.which(program, path=str(Path(sys.executable).parent))


def pygrep(hook: Hook, root: Path, files: list[str]) -> tuple[int, str]:
    """pre-commit's pygrep language: a match is a failure (``--negate``: a file without
    one); ``--ignore-case`` and ``--multiline`` as in pre-commit."""
    flags = re.IGNORECASE if "--ignore-case" in hook.args or "-i" in hook.args else 0
    multiline = "--multiline" in hook.args
    negate = "--negate" in hook.args
    try:
        pattern = re.compile(hook.entry.encode(), flags | (re.MULTILINE | re.DOTALL
                                                           if multiline else 0))
    except re.error as exc:
        return 1, f"bad pattern {hook.entry!r}: {exc}\n"
    out: list[str] = []
    failed = False
    for name in files:
        try:
            data = (root / name).read_bytes()
        except OSError as exc:
            out.append(f"{name}: {exc}\n")
            failed = True
            continue
        if negate:
            if not pattern.search(data):
                out.append(f"{name}\n")
                failed = True
            continue
        if multiline:
            match = pattern.search(data)
            if match:
                number = data.count(b"\n", 0, match.start()) + 1
                out.append(f"{name}:{number}:{match.group().decode('utf-8', 'replace')}\n")
                failed = True
            continue
        for number, text in enumerate(data.splitlines(), 1):
            if pattern.search(text):
                out.append(f"{name}:{number}:{text.decode('utf-8', 'replace')}\n")
                failed = True
    return (1 if failed else 0), "".join(out)
