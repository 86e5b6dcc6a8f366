"""One router module per v1 group; ``app.py`` mounts them all."""
