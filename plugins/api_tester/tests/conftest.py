"""Shared set-up of the API tester's tests: the plugin folder on the path.

Run directly (``pytest plugins/api_tester/tests``) the folder is put on the path here;
the helpers (a loopback server, the real app core) are in ``api_tester.testing``.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
if str(PLUGIN_ROOT) not in sys.path:
    # Appended: first on the path, the plugin folder's "tests" would shadow the project's.
    sys.path.append(str(PLUGIN_ROOT))


def _share_default_ssl_context() -> None:
    # Every httpx client loads the CA bundle into a new SSL context (~50 ms of CPU); the
    # suite makes some forty (its own clients and the plugin's senders) and every request
    # goes to plain http on loopback. Clients asking for the default verification share one
    # context, made the same way; anything else still gets its own.
    import os

    from httpx._transports import default

    make = default.create_ssl_context
    made: dict[tuple[object, ...], object] = {}

    def shared(verify: object = True, cert: object = None, trust_env: bool = True) -> object:
        if verify is not True or cert is not None:
            return make(verify=verify, cert=cert, trust_env=trust_env)  # type: ignore[arg-type]
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in made:
            made[key] = make(verify=verify, cert=cert, trust_env=trust_env)
        return made[key]

    default.create_ssl_context = shared  # type: ignore[assignment]


_share_default_ssl_context()
