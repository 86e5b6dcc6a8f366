"""The native test dashboard: a dock of Qt widgets fed by the event bridge."""
