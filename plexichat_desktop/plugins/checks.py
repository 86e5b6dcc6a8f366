"""The one validator of a plugin folder, without running its code.

``plexichat-desktop plugins validate``, ``plugins list``, the running app and ``plugins
new`` all use it, so they agree: a plugin that fails here is shown as failed everywhere
(with the same reason) and never started. It checks the manifest (with "did you mean"
for misspelt keys), the ``[requires_python]``/``[requires_system]`` entries, that the
entry module's file exists and compiles, that its package name is not taken by another
module (``json``, ``test``, another plugin), and that every page's file exists. The
tests folder and the entry class are only warned about here (a class may be imported
from elsewhere; the import reports a missing one precisely).
"""

from __future__ import annotations

import importlib.util
import warnings as python_warnings  # 'warnings' is the list the checks return
from dataclasses import dataclass, field
from pathlib import Path

from plexichat_desktop.core.validation import ConfigError
from plexichat_desktop.plugins.manifest import MANIFEST_NAME, Manifest, load_manifest


@dataclass
class CheckResult:
    path: Path
    manifest: Manifest | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _compiled_before(source: Path) -> bool:
    """Whether Python's own cache holds a byte-code file of ``source`` as it is now.

    Python writes that file only after compiling the source without error, and its header
    records the source's mtime and size (PEP 552, timestamp form), so a matching header
    means the syntax check would pass again: a start-up with many plugins skips compiling
    them all a second time."""
    try:
        cached = Path(importlib.util.cache_from_source(str(source)))
        with cached.open("rb") as handle:
            header = handle.read(16)
        stat = source.stat()
    except (OSError, NotImplementedError, ValueError):
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(header[4:8], "little") != 0:  # hash-based: not worth checking here
        return False
    mtime = int.from_bytes(header[8:12], "little")
    size = int.from_bytes(header[12:16], "little")
    return (mtime == int(stat.st_mtime) & 0xFFFFFFFF
            and size == stat.st_size & 0xFFFFFFFF)


def _package_modules(folder: Path, regular: bool = True) -> list[tuple[Path, bool]]:
    """The modules under the package folder ``folder``, each with whether it is in a
    regular package all the way (every folder has an ``__init__.py``). Others can still
    be imported (namespace packages) but may be a vendored tree or a virtual environment
    that never is: their syntax errors are warnings."""
    if not folder.is_dir():
        return []
    regular = regular and (folder / "__init__.py").is_file()
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in ("__pycache__", "site-packages"):
            continue
        if path.is_dir():
            found += _package_modules(path, regular)
        elif path.suffix == ".py":
            found.append((path, regular))
    return found


def module_name_taken(top: str, root: Path) -> str | None:
    """Where ``top`` is found outside ``root`` when it is (the plugin's package name would
    be shadowed by, or shadow, another module), else None."""
    try:
        other = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if other is None:
        return None
    where = other.origin or next(iter(other.submodule_search_locations or []), None)
    if where is None or where in ("built-in", "frozen"):
        return str(where or "a namespace package")
    return None if Path(where).resolve().is_relative_to(root.resolve()) else where


def _leaves(web: Path, target: Path) -> bool:
    """Whether ``target`` (under ``web``) is, or lies in, a link that leads out of it."""
    return not target.resolve().is_relative_to(web.resolve())


def check_code(root: Path, manifest: Manifest, installed: bool = False, deep: bool = False
               ) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the folder's files: entry module, name, pages, tests.

    ``installed``: a pip-installed plugin, whose package is the folder itself and is
    imported from site-packages; its module file and name are not checked here.
    ``deep``: compile every module of the entry's package, not only the entry module
    (``plugins validate``: ~0.1 s for the bundled plugins, too much for every start,
    where importing the plugin reports the same error).
    """
    errors: list[str] = []
    warnings: list[str] = []
    manifest_path = root / MANIFEST_NAME
    if not installed:
        module_file = _module_file(root, manifest.module)
        if module_file is None:
            errors.append(f"{manifest_path}: entry: module '{manifest.module}' not found "
                          f"in {root} (expected {manifest.module.replace('.', '/')}"
                          "/__init__.py or .py)")
        else:
            raw = module_file.read_bytes()
            source = raw.decode("utf-8", errors="replace")
            # The entry module, and every other module of its package: a syntax error in
            # one the entry imports failed the plugin in the app while validate said OK.
            modules = [(module_file, True)]
            if deep:
                modules += [(path, regular) for path, regular in _package_modules(
                    root / manifest.module.split(".", 1)[0]) if path != module_file]
            for path, regular in modules:
                if _compiled_before(path):
                    continue
                problems = errors if regular else warnings
                with python_warnings.catch_warnings(record=True) as said:
                    python_warnings.simplefilter("always")
                    try:
                        # The bytes, as the import reads them: a file that is not UTF-8
                        # (nor declares its encoding) fails here as it would there.
                        compile(raw if path == module_file else path.read_bytes(), str(path),
                                "exec")
                    except SyntaxError as exc:
                        problems.append(f"{path}:{exc.lineno}: syntax error: {exc.msg}"
                                        + ("" if regular else " (in a folder without "
                                           "__init__.py: fine if it is never imported)"))
                    except (OSError, ValueError) as exc:  # unreadable, or a NUL byte
                        problems.append(f"{path}: cannot be compiled: {exc}")
                # Said here with the file, not printed over the command's own output.
                # (An invalid escape: a SyntaxWarning from Python 3.12, before that a
                # DeprecationWarning.)
                warnings.extend(f"{path}:{w.lineno}: {w.message}" for w in said
                                if issubclass(w.category, SyntaxWarning | DeprecationWarning))
            if (f"class {manifest.class_name}" not in source
                    and manifest.module.count(".") == 0):
                warnings.append(f"{module_file}: no 'class {manifest.class_name}' found "
                                "(fine if it is imported from elsewhere)")
        top = manifest.module.split(".", 1)[0]
        taken = module_name_taken(top, root)
        if taken is not None:
            errors.append(f"{manifest_path}: entry: module name '{top}' is already taken by "
                          f"{taken}; rename the plugin's package")
    web = root / "web"
    for page in manifest.pages:
        target = web / page.path if page.path else web
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            errors.append(f"{manifest_path}: pages: '{page.title}' points to "
                          f"{target}, which does not exist")
        elif _leaves(web, target):
            # The server follows no link out of web/ (a page there could read any file).
            errors.append(f"{manifest_path}: pages: '{page.title}' points to {target}, a "
                          f"link to {target.resolve()} outside {web}, which is never "
                          "served; copy the file into web/")
    tests = root / manifest.tests.path
    if not tests.is_dir():
        warnings.append(f"{root}: no tests folder '{manifest.tests.path}'")
    elif not any(tests.glob("test_*.py")) and not any(tests.glob("*_test.py")):
        warnings.append(f"{tests}: no test_*.py files")
    return errors, warnings


def check_plugin_folder(path: Path, installed: bool = False) -> CheckResult:
    """Validate the manifest, the requirements, the entry package's modules, pages and
    tests (what ``plugins validate`` says)."""
    root = path.parent if path.name == MANIFEST_NAME else path
    result = CheckResult(root)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        result.errors.append(f"{root}: not a plugin folder (no {MANIFEST_NAME})")
        return result
    try:
        manifest, warnings = load_manifest(manifest_path)
    except ConfigError as exc:
        result.errors.append(str(exc))
        return result
    result.manifest, result.warnings = manifest, list(warnings)
    for missing in manifest.missing_requirements():
        if missing.optional:
            result.warnings.append(f"{manifest_path}: optional requirement: {missing.reason}; "
                                   "the plugin will run degraded")
        else:
            result.errors.append(f"{manifest_path}: {missing.reason}")
    errors, warnings = check_code(root, manifest, installed, deep=True)
    result.errors += errors
    result.warnings += warnings
    return result
