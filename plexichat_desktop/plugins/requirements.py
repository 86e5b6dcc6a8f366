"""What a plugin needs outside the host: Python packages and programs on ``PATH``.

Declared in ``plugin.toml``::

    [requires_python]
    packages = ["radon>=6", "lizard>=1.17"]      # needed: the plugin cannot run without them
    optional = ["semgrep>=1.100"]                # wanted: some features are off without them

    [requires_system]
    binaries = ["git"]
    optional = ["nmap"]

Entries of ``packages``/``optional`` under ``[requires_python]`` are PEP 508 requirement
strings (``name``, a version range, extras, an environment marker such as
``; sys_platform == 'linux'``); entries under ``[requires_system]`` are program names
looked up on ``PATH`` (no paths, no arguments).

The check runs at validation, before any plugin code is imported: an installed
distribution is found with :mod:`importlib.metadata` (by its distribution name, as
``pip install`` takes it) and its version compared with :mod:`packaging`; a program with
:func:`shutil.which`. A requirement whose environment marker does not apply to this
machine is not needed here. A missing (or too old) required entry makes the plugin
``incompatible`` with ``missing radon>=6 (install: pip install 'radon>=6')``; a missing
optional one makes it ``degraded``: it still runs, and its context says what is missing
(``ctx.missing``, ``ctx.degraded``) so its page can tell the user. Extras
(``pkg[extra]``) are not resolved: only ``pkg`` itself is checked.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from packaging.requirements import Requirement

Kind = Literal["python", "system"]

# "radon", "radon>=6", "tree-sitter-javascript >= 0.23": a PEP 508 name, at most a lowest
# release, no extras or marker. What plugins declare almost always, and read without
# packaging.requirements (its import and parser: ~8 ms of every start's discovery).
_PLAIN = re.compile(
    r"[ \t]*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)[ \t]*"
    r"(?:>=[ \t]*([0-9]+(?:\.[0-9]+)*))?[ \t]*")
_RELEASE = re.compile(r"[0-9]+(?:\.[0-9]+)*")  # a version that is only a release: "1.17.0"


@dataclass(frozen=True)
class MissingRequirement:
    """One declared requirement that this machine does not satisfy.

    Attributes:
        kind: ``"python"`` (a distribution) or ``"system"`` (a program on PATH).
        requirement: as declared, e.g. ``"radon>=6"`` or ``"git"``.
        optional: True when declared under ``optional`` (the plugin runs degraded).
        found: what is installed instead (``"radon 5.1.0"``), None when nothing is.
        install: a command that installs it, e.g. ``pip install 'radon>=6'``.
    """

    kind: Kind
    requirement: str
    optional: bool
    found: str | None
    install: str

    @property
    def reason(self) -> str:
        """``missing radon>=6 (install: pip install 'radon>=6')``, with what was found."""
        what = self.requirement if self.kind == "python" else f"program '{self.requirement}'"
        have = f", {self.found} is installed" if self.found else ""
        return f"missing {what}{have} (install: {self.install})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason}


def parse_python_requirement(text: str) -> Requirement:
    """A PEP 508 requirement; ``ValueError`` naming the entry when it is not one."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{text!r} is not a requirement like 'radon>=6' ({exc})") from None


def validate_python_requirement(text: str) -> None:
    """``ValueError`` naming the entry when ``text`` is not a PEP 508 requirement."""
    if _PLAIN.fullmatch(text) is None:
        parse_python_requirement(text)


def _release(version: str) -> tuple[int, ...]:
    # PEP 440 pads releases with zeros: 1.17 == 1.17.0.
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


_INDEX_TTL = 1.0  # seconds: one scan serves a whole discovery, a later Enable sees installs
_index: tuple[float, dict[str, str]] | None = None


def _installed_versions() -> dict[str, str]:
    """Canonical distribution name -> version of everything importable, from one scan of
    sys.path (each importlib.metadata.version() call scans it again: ~5 ms apiece).

    Names and versions come from the ``name-version.dist-info`` folder names, as pip reads
    them: parsing every METADATA file instead costs ~0.2 s for a few hundred packages.
    Only folders that do not say their version are asked through importlib.metadata."""
    global _index
    now = time.monotonic()
    if _index is not None and now - _index[0] <= _INDEX_TTL:
        return _index[1]
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for folder in names:
            stem, dot, suffix = folder.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            name, dash, version = stem.partition("-")
            key = canonicalize_name(name)
            if key in found:
                continue  # the first one on sys.path wins, as for imports
            if dash and version and suffix == "dist-info":
                found[key] = version
                continue
            try:
                found[key] = importlib.metadata.Distribution.at(
                    os.path.join(entry or ".", folder)).version
            except Exception:  # a broken metadata folder is no installed package
                continue
    _index = (now, found)
    return found


def _installed_version(name: str) -> str | None:
    # Metadata may spell the name differently (Foo_Bar vs foo-bar); compare canonically.
    return _installed_versions().get(canonicalize_name(name))


def check_python(text: str, optional: bool,
                 installed: Callable[[str], str | None] = _installed_version
                 ) -> MissingRequirement | None:
    """None when ``text`` is satisfied here (or its marker excludes this machine)."""
    plain = _PLAIN.fullmatch(text)
    if plain is not None:
        name, lowest = plain.groups()
        version = installed(name)
        # Compared here when packaging would compare releases alone; else packaging says.
        if version is None or lowest is None or _RELEASE.fullmatch(version):
            if version is not None and (lowest is None
                                        or _release(version) >= _release(lowest)):
                return None
            found = f"{name} {version}" if version is not None else None
            return MissingRequirement("python", text, optional, found,
                                      f"pip install '{text}'")
        return _check_parsed(text, optional, lambda _name: version)  # looked up once
    return _check_parsed(text, optional, installed)


def _check_parsed(text: str, optional: bool, installed: Callable[[str], str | None]
                  ) -> MissingRequirement | None:
    req = parse_python_requirement(text)
    if req.marker is not None and not req.marker.evaluate():
        return None
    version = installed(req.name)
    if version is not None and (not req.specifier
                                or req.specifier.contains(version, prereleases=True)):
        return None
    found = f"{req.name} {version}" if version is not None else None
    return MissingRequirement("python", text, optional, found, f"pip install '{text}'")


def check_binary(name: str, optional: bool,
                 which: Callable[[str], str | None] = shutil.which
                 ) -> MissingRequirement | None:
    """None when the program ``name`` is on PATH."""
    if which(name) is not None:
        return None
    return MissingRequirement("system", name, optional, None,
                              f"your system's package manager, e.g. 'sudo apt install {name}'")


def check_requirements(python_required: list[str], python_optional: list[str],
                       binaries_required: list[str], binaries_optional: list[str]
                       ) -> list[MissingRequirement]:
    """Everything declared and missing, required entries first."""
    out: list[MissingRequirement] = []
    for optional, packages, binaries in ((False, python_required, binaries_required),
                                         (True, python_optional, binaries_optional)):
        out += [m for m in (check_python(p, optional) for p in packages) if m]
        out += [m for m in (check_binary(b, optional) for b in binaries) if m]
    return out


__all__ = ["MissingRequirement", "check_binary", "check_python", "check_requirements",
           "parse_python_requirement", "validate_python_requirement"]
