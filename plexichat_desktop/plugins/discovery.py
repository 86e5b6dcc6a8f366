"""Finding plugin folders: bundled, the user plugins dir, extra paths, installed packages.

A plugin folder is a directory with a ``plugin.toml``. Folders starting with ``.`` or
``_`` and folders without a manifest are skipped (logged at debug level). Installed
plugins register in the entry-point group ``plexichat_desktop.plugins``; the value names
a package whose folder holds ``plugin.toml`` (``my_plugin`` or ``my_plugin:plugin.toml``).
The package is located without being imported.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import tomllib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from plexichat_desktop.core.entry_points import may_declare

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "plexichat_desktop.plugins"
# Here, not with the manifest's model: discovery (and the desktop window's first pages, see
# runtime.early_files) need them without pydantic's build of that model.
MANIFEST_NAME = "plugin.toml"
ID_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"


class Source(StrEnum):
    BUNDLED = "bundled"
    INSTALLED = "installed"
    USER = "user"
    PATH = "path"


@dataclass(frozen=True)
class Candidate:
    root: Path
    source: Source

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME


def scan_folder(folder: Path, source: Source) -> list[Candidate]:
    """Plugin folders directly inside ``folder``, sorted by name."""
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir()):
        if not child.is_dir() or child.name.startswith((".", "_")):
            continue
        if (child / MANIFEST_NAME).is_file():
            found.append(Candidate(child.resolve(), source))
        else:
            log.debug("%s is not a plugin (no %s)", child, MANIFEST_NAME)
    return found


def installed_candidates() -> list[Candidate]:
    """Plugins registered by installed distributions in the entry-point group."""
    found: list[Candidate] = []
    if not may_declare(ENTRY_POINT_GROUP):  # nearly always: skips ~8 ms of CPU
        return found
    from importlib import metadata

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        package, _, manifest = ep.value.partition(":")
        try:
            spec = importlib.util.find_spec(package.strip())
        except (ImportError, ValueError) as exc:
            log.error("entry point %r (%s): cannot locate package %r: %s",
                      ep.name, ep.value, package, exc)
            continue
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            log.error("entry point %r (%s): %r is not a package", ep.name, ep.value, package)
            continue
        root = Path(locations[0]).resolve()
        if (root / (manifest.strip() or MANIFEST_NAME)).is_file():
            found.append(Candidate(root, Source.INSTALLED))
        else:
            log.error("entry point %r: no %s in %s", ep.name, MANIFEST_NAME, root)
    return found


def discover(
    bundled: Path | None,
    user_dir: Path | None,
    extra_dirs: list[Path],
    include_installed: bool = True,
) -> list[Candidate]:
    """All candidates in precedence order: bundled, installed, user dir, extra paths."""
    out: list[Candidate] = []
    if bundled is not None:
        out += scan_folder(bundled, Source.BUNDLED)
    if include_installed:
        out += installed_candidates()
    if user_dir is not None:
        out += scan_folder(user_dir, Source.USER)
    for folder in extra_dirs:
        if not folder.is_dir():
            # Named on purpose (PLEXICHAT_DESKTOP_PLUGINS_PATH, dev): a typo there left
            # the plugins out without a word.
            log.warning("plugin folder %s is %s: no plugin loaded from it (is "
                        "PLEXICHAT_DESKTOP_PLUGINS_PATH right?)", folder,
                        "not a folder" if folder.exists() else "missing")
            continue
        out += scan_folder(folder, Source.PATH)
    seen: set[Path] = set()
    unique = []
    for cand in out:  # the same folder reachable twice (e.g. also on the extra path)
        if cand.root not in seen:
            seen.add(cand.root)
            unique.append(cand)
    return unique


def read_disabled(path: Path) -> set[str]:
    """The ids of the plugins the user turned off, from the plugin states file ``path``;
    none when it is missing, or unreadable (logged)."""
    if not path.exists():
        return set()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(x) for x in data.get("disabled", [])}
    except (OSError, ValueError, AttributeError) as exc:
        log.error("%s is unreadable (%s); treating every plugin as enabled", path, exc)
        return set()


def declared_id(cand: Candidate) -> str | None:
    """The plugin id ``cand``'s manifest declares, read without validating the rest of
    the manifest; None when it cannot be read or is no plugin id."""
    try:
        with cand.manifest_path.open("rb") as manifest:
            pid = tomllib.load(manifest).get("id")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return pid if isinstance(pid, str) and re.fullmatch(ID_PATTERN, pid) else None


def web_folders(candidates: list[Candidate], disabled: Collection[str],
                only_bundled: Collection[str] | None = None) -> dict[str, Path]:
    """The web folder of each plugin id that one candidate alone declares (with two, the
    host uses the first and fails the other; the pages then wait for it), without the ids
    in ``disabled`` and, with ``only_bundled`` (safe mode), without every plugin but the
    bundled ones it names. What else stops a plugin is known only to the host's
    discovery, which validates the whole manifest."""
    declared = [(cand, declared_id(cand)) for cand in candidates]
    # A manifest the host cannot read makes a plugin of the folder's name (failed).
    claims = Counter(pid or cand.root.name for cand, pid in declared)
    folders: dict[str, Path] = {}
    for cand, pid in declared:
        if pid is None or claims[pid] > 1 or pid in disabled:
            continue
        if only_bundled is not None and not (cand.source is Source.BUNDLED
                                             and pid in only_bundled):
            continue
        folders[pid] = cand.root / "web"
    return folders
