"""FastAPI's refusal of pydantic.v1 models, without importing pydantic.v1 to make it.

FastAPI asks, for every parameter, body and response model of every route it builds,
whether the annotation is a ``pydantic.v1`` model, and imports ``pydantic.v1`` to find out:
about 20 ms of CPU at every start, paid by the first route with a parameter, for an answer
that is always "no" in this app. A ``pydantic.v1`` model class can only exist once
``pydantic.v1`` has been imported, so while it is not in ``sys.modules`` the answer is "no"
without the import; once it is (a plugin using it), FastAPI's own check runs as before and
such a model is still refused with FastAPI's error.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

_V1 = "pydantic.v1"


def _unless_v1_unimported(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    @functools.wraps(check)
    def wrapper(obj: Any) -> bool:
        if _V1 not in sys.modules:
            return False
        return check(obj)

    wrapper.plexichat_lazy_v1 = True  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Make FastAPI's pydantic.v1 checks skip the import while nothing imported it.
    Idempotent; does nothing on a FastAPI without these checks."""
    try:
        from fastapi import encoders
        from fastapi._compat import shared
    except ImportError:  # pragma: no cover - a FastAPI that moved its internals
        return
    # annotation_is_pydantic_v1 (route building) calls the class check through the module
    # ``shared``; jsonable_encoder calls the instance check by the name it imported.
    for module, name in ((shared, "is_pydantic_v1_model_class"),
                         (shared, "is_pydantic_v1_model_instance"),
                         (encoders, "is_pydantic_v1_model_instance")):
        check = getattr(module, name, None)
        if callable(check) and not getattr(check, "plexichat_lazy_v1", False):
            setattr(module, name, _unless_v1_unimported(check))
