"""The plugin test manager: discovery, isolated pytest runs, results and statistics."""
