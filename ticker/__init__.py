"""ticker: a live stock-ticker server and dashboard.

Kept import-light so that ``feeds`` can import ``ticker.model`` without pulling in the server.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
