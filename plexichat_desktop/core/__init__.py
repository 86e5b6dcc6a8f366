"""Core services shared by every layer: paths, settings, logging, the event bus."""
