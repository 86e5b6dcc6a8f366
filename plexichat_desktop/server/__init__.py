"""The in-process HTTP server: host pages, plugin pages and routes, live push."""
