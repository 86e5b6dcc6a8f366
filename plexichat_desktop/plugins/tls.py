"""One certificate store for every HTTP client the app and its plugins make.

httpx loads the whole CA bundle into a new ``ssl.SSLContext`` for every client it makes,
even one that only ever talks plain HTTP to loopback: ~36 ms of the event loop's thread
each time (five clients made during a start cost 0.18 s of it). Pass the shared context
instead; it verifies as httpx's default does (hostname checks; certifi's bundle, or the
one ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name unless ``trust_env`` is false, which a
client made with ``trust_env=False`` passes too)::

    from plexichat_desktop.plugins.tls import shared_tls_context

    client = httpx.AsyncClient(timeout=10, verify=shared_tls_context())
    pinned = httpx.AsyncClient(trust_env=False, verify=shared_tls_context(trust_env=False))

Each context is made once, on first use, and shared: do not change it (load other
certificates or a client certificate, turn checks off). A client that needs other
settings makes a context of its own.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def shared_tls_context(trust_env: bool = True) -> ssl.SSLContext:
    """The app's shared client TLS context: httpx's default verification, made once
    (for each ``trust_env``: whether ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` count)."""
    import httpx

    return httpx.create_ssl_context(trust_env=trust_env)
