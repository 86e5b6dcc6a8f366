"""The embedded PlexiChat v1 REST API, mounted at ``/api/v1`` (contract: docs/api-v1.md).

:class:`ApiV1` owns its SQLite store, uploaded files, realtime hub, webhook dispatcher,
performance sampler and backups; the runtime starts and stops it with the web server.
"""

from plexichat_desktop.server.v1.service import ApiV1

__all__ = ["ApiV1"]
