"""What must be decided before Qt is imported: display, sandbox, Chromium flags."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)
HEADLESS_PLATFORMS = {"offscreen", "minimal", "vnc"}


def has_display(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """True when a window can be shown (or an offscreen platform was asked for)."""
    env = os.environ if environ is None else environ
    if env.get("QT_QPA_PLATFORM", "").split(":", 1)[0] in HEADLESS_PLATFORMS:
        return True
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def webengine_problem() -> str | None:
    """Why QtWebEngine cannot be used, or None when it can."""
    if importlib.util.find_spec("PySide6") is None:
        return "PySide6 is not installed"
    try:
        import PySide6.QtWebEngineWidgets  # noqa: F401
    except ImportError as exc:
        return f"QtWebEngine is not available ({exc})"
    return None


# PySide6's own check, kept by spare_feature_scan for the modules it answers itself.
_pyside_check: Callable[[object], bool] | None = None


def spare_feature_scan() -> None:
    """Make PySide6's check of every later import cheap; call it once PySide6 is imported.

    For ``from __feature__ import snake_case``, shiboken6 replaces ``__import__`` and, after
    each module's import, decides whether the module uses PySide6: it asks
    ``inspect.getsource`` for the module's whole text (file look-ups, encoding detection,
    lines cached in linecache for good) and looks for "PySide6" in it. After the window
    starts, the app's core, its web stack and the plugins are imported that way: ~15% more
    CPU for each of those imports (napari/napari#8584). Here a module loaded from a ``.py``
    file is answered from the file's bytes, with the same answer; any other module (from a
    zip, without source, an extension) by PySide6's own check. Does nothing on a PySide6
    without that check, or when called again."""
    global _pyside_check
    feature = sys.modules.get("shibokensupport.feature")
    check = getattr(feature, "_mod_uses_pyside", None)
    if feature is None or not callable(check) or check is module_mentions_pyside:
        return
    _pyside_check = check
    feature._mod_uses_pyside = module_mentions_pyside  # type: ignore[attr-defined]


def module_mentions_pyside(module: object) -> bool:
    """Whether ``module``'s source mentions PySide6: read from its ``.py`` file, else
    PySide6's own answer (False before spare_feature_scan found that check)."""
    path = getattr(module, "__file__", None)
    if isinstance(path, str) and path.endswith(".py"):
        try:
            with open(path, "rb") as source:
                return b"PySide6" in source.read()
        except OSError:
            pass  # e.g. loaded from __spec__.origin while __file__ names no file
    elif path is not None and not isinstance(path, str):
        return False  # PySide6's check raises here, and the import with it
    return _pyside_check(module) if _pyside_check is not None else False


def prepare_qt_environment() -> None:
    """Chromium as root needs its sandbox off; offscreen needs no GPU. A user's own
    QTWEBENGINE_CHROMIUM_FLAGS are kept as they are."""
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not os.environ.get(
            "QTWEBENGINE_DISABLE_SANDBOX"):
        os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
        log.warning("running as root: QtWebEngine's sandbox is disabled (Chromium refuses "
                    "to start as root with it)")
    if "QTWEBENGINE_CHROMIUM_FLAGS" not in os.environ:
        flags = ["--log-level=3"]
        if os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"):
            flags.append("--disable-gpu")
        os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(flags)
