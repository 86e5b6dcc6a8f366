"""The plugin host: manifests, discovery, dependency order, lifecycle and the plugin API.

Plugin authors import from :mod:`plexichat_desktop.plugins.api`.
"""
