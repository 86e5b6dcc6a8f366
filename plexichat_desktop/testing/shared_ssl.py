"""One SSL context for every httpx client of a test session that asks for the default one.

httpx loads the CA bundle into a new SSL context for each client (~50 ms of CPU). A plugin
suite that starts the app core several times, each with its own clients and senders, pays
that dozens of times although its requests go to plain http on loopback. A suite opts in
from its conftest with :func:`share_default_ssl_context`; a client asking for anything but
the default verification still gets a context of its own.

This replaces a function of httpx's private transport module, so it is opt-in for a test
session and never done by the app itself.
"""

from __future__ import annotations

import os
from typing import Any


def share_default_ssl_context() -> None:
    """Make httpx clients with the default verification share one context per CA setting
    (``trust_env`` and the ``SSL_CERT_FILE``/``SSL_CERT_DIR`` variables). Idempotent."""
    from httpx._transports import default

    make = default.create_ssl_context
    if getattr(make, "_plexichat_shared", False):
        return
    made: dict[tuple[object, ...], Any] = {}

    def shared(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return make(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in made:
            made[key] = make(verify=verify, cert=cert, trust_env=trust_env)
        return made[key]

    shared._plexichat_shared = True  # type: ignore[attr-defined]
    default.create_ssl_context = shared
