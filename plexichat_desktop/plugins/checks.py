"""``plexichat-desktop plugins validate``: check a plugin folder without running its code."""

from __future__ import annotations

import importlib.util
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


def check_plugin_folder(path: Path) -> CheckResult:
    """Validate the manifest, the entry module's file, pages and the tests folder."""
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
    module_file = _module_file(root, manifest.module)
    if module_file is None:
        result.errors.append(f"{manifest_path}: entry: module '{manifest.module}' not found "
                             f"in {root} (expected {manifest.module.replace('.', '/')}"
                             "/__init__.py or .py)")
    else:
        source = module_file.read_text(encoding="utf-8", errors="replace")
        try:
            compile(source, str(module_file), "exec")
        except SyntaxError as exc:
            result.errors.append(f"{module_file}:{exc.lineno}: syntax error: {exc.msg}")
        if f"class {manifest.class_name}" not in source and manifest.module.count(".") == 0:
            result.warnings.append(f"{module_file}: no 'class {manifest.class_name}' found "
                                   "(fine if it is imported from elsewhere)")
    web = root / "web"
    for page in manifest.pages:
        target = web / page.path if page.path else web
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            result.errors.append(f"{manifest_path}: pages: '{page.title}' points to "
                                 f"{target}, which does not exist")
    tests = root / manifest.tests.path
    if not tests.is_dir():
        result.warnings.append(f"{root}: no tests folder '{manifest.tests.path}'")
    elif not any(tests.glob("test_*.py")) and not any(tests.glob("*_test.py")):
        result.warnings.append(f"{tests}: no test_*.py files")
    top = manifest.module.split(".", 1)[0]
    try:
        other = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        other = None
    if other is not None and other.origin and not Path(other.origin).resolve().is_relative_to(
            root.resolve()):
        result.errors.append(f"{manifest_path}: entry: module name '{top}' is already taken by "
                             f"{other.origin}; rename the plugin's package")
    return result
