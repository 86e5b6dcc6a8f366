"""PlexiChat Desktop: a desktop host for web-UI plugins and their tests."""

from plexichat_desktop.core import lazy_clis

__version__ = "0.1.0"

# Before anything imports httpx or uvicorn: their command lines, which no process of the
# app runs, are imported only if called (see core/lazy_clis.py).
lazy_clis.defer()
