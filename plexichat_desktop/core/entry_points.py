"""Whether any installed distribution can declare entry points in a group, answered
without :mod:`importlib.metadata` parsing every distribution's entry points.

``importlib.metadata.entry_points()`` reads and parses the entry points of every
distribution on ``sys.path`` (~8 ms of CPU for the ~140 of the app's environment) to find
the few of one group. Two such look-ups run at every start and almost always find
nothing: installed plugins (``plexichat_desktop.plugins``) and pydantic's plugins
(``pydantic``, looked up with the first model built). Reading the ``entry_points.txt``
files for the group's section header takes ~2 ms.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

PYDANTIC_GROUP = "pydantic"  # pydantic.plugin._loader.PYDANTIC_ENTRY_POINT_GROUP


def may_declare(group: str) -> bool:
    """False only when no distribution that :mod:`importlib.metadata` sees declares an
    entry point in ``group``: it lists them through the path finder alone, and no metadata
    folder on ``sys.path`` has an ``entry_points.txt`` with a ``[group]`` header (any line
    that importlib reads as that group's header contains it). Anything this cannot look
    into (a zip on sys.path, another finder listing distributions, an unreadable file)
    counts as "may": the full look-up decides then."""
    for finder in sys.meta_path:
        if (getattr(finder, "find_distributions", None) is not None
                and finder is not importlib.machinery.PathFinder):
            return True
    needle = f"[{group}]".encode()
    for entry in sys.path:
        if not isinstance(entry, str):
            return True
        root = entry or "."
        try:
            children = os.listdir(root)
        except OSError:
            if os.path.exists(root):
                return True  # a zip file: importlib.metadata reads its members
            continue
        for child in children:
            # The names importlib.metadata takes as metadata (".egg" entries: "EGG-INFO").
            if not child.lower().endswith(("dist-info", "egg-info")):
                continue
            try:
                with open(os.path.join(root, child, "entry_points.txt"), "rb") as fh:
                    if needle in fh.read():
                        return True
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                return True
    return False


def spare_pydantic_plugin_scan() -> None:
    """When no distribution declares a pydantic plugin, tell pydantic so before its first
    model is built (it would find out with a full ``entry_points()`` look-up); its result
    is the same: no plugins. Does nothing once pydantic has looked, or on a pydantic that
    keeps no such cache."""
    try:
        from pydantic.plugin import _loader
    except ImportError:  # pragma: no cover - a pydantic that moved it
        return
    if (getattr(_loader, "_plugins", False) is None
            and getattr(_loader, "PYDANTIC_ENTRY_POINT_GROUP", None) == PYDANTIC_GROUP
            and not may_declare(PYDANTIC_GROUP)):
        _loader._plugins = {}
