"""The desktop shell (PySide6). The only layer that imports Qt."""
