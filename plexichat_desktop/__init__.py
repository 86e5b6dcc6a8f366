"""PlexiChat Desktop: a desktop host for web-UI plugins and their tests."""

__version__ = "0.1.0"
