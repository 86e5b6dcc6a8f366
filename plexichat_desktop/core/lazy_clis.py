"""The command lines of httpx and uvicorn, imported when called instead of with their
packages.

``import httpx`` imports ``httpx._main``, its command line, whenever rich, pygments and
click are installed (they are here: schemathesis and bandit need them): ~50 ms of CPU of
the ~130 that ``import httpx`` takes (encode/httpx#3547). ``import uvicorn`` imports
``uvicorn.main`` for ``uvicorn.main``/``uvicorn.run``, and with it click: ~15 ms. No
process of the app runs either command line, yet every one paid for both: the window
(uvicorn is imported before its first page is served), ``serve``, each pytest fork server
and each CLI command.

:func:`defer` puts a stand-in for each of the two modules into ``sys.modules`` before the
package is imported. It has what the package's ``__init__`` takes from it (``main`` and
``run`` import the real module at their first call; uvicorn's ``Server`` comes from
``uvicorn.server``, where it is defined); any other attribute imports the real module, which
then replaces the stand-in.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

# module -> (functions its package's __init__ imports from it, {attribute: its home module})
DEFERRED: Mapping[str, tuple[tuple[str, ...], Mapping[str, str]]] = {
    "httpx._main": (("main",), {}),
    "uvicorn.main": (("main", "run"), {"Server": "uvicorn.server"}),
}


def defer() -> None:
    """Install the stand-ins for the packages not imported yet (a package already imported
    has its command line already; nothing changes for it). Calling it again changes
    nothing."""
    for name, (functions, elsewhere) in DEFERRED.items():
        package = name.rpartition(".")[0]
        if package not in sys.modules and name not in sys.modules:
            sys.modules[name] = _stand_in(name, functions, elsewhere)


def _stand_in(name: str, functions: tuple[str, ...], elsewhere: Mapping[str, str]
              ) -> types.ModuleType:
    stand_in = types.ModuleType(name, f"Stand-in for {name}, imported at first use "
                                      f"(plexichat_desktop.core.lazy_clis).")

    def real() -> types.ModuleType:
        if sys.modules.get(name) is stand_in:
            sys.modules.pop(name, None)
        try:
            return importlib.import_module(name)
        except BaseException:
            sys.modules.setdefault(name, stand_in)  # the next use tries again
            raise

    def forward(function: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(real(), function)(*args, **kwargs)

        call.__name__ = call.__qualname__ = function
        call.__doc__ = f"{name}.{function}, imported at its first call."
        return call

    def attribute(attr: str) -> Any:
        if attr in elsewhere:
            return getattr(importlib.import_module(elsewhere[attr]), attr)
        if attr.startswith("__"):  # e.g. __path__, __spec__ asked by importlib or inspect
            raise AttributeError(attr)
        return getattr(real(), attr)

    for function in functions:
        setattr(stand_in, function, forward(function))
    stand_in.__dict__["__getattr__"] = attribute  # PEP 562: for the names not set here
    return stand_in
