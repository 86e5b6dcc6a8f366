"""One certificate store for every HTTP client the app and its plugins make.

httpx loads the whole CA bundle into a new ``ssl.SSLContext`` for every client it makes,
even one that only ever talks plain HTTP to loopback: ~36 ms of the event loop's thread
each time (five clients made during a start cost 0.18 s of it). Pass the shared context
instead; it verifies exactly as httpx's default does (certifi's bundle, hostname checks)::

    from plexichat_desktop.plugins.tls import shared_tls_context

    client = httpx.AsyncClient(timeout=10, verify=shared_tls_context())

The context is made once, on first use, and shared: do not change it (load other
certificates, turn checks off). A client that needs other settings (a private CA, a
client certificate) makes a context of its own.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """The app's shared client TLS context: httpx's default verification, made once."""
    import httpx

    return httpx.create_ssl_context()
