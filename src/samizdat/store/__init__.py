"""Event storage. :class:`SQLiteStore` is the embedded default; it alone owns SQL."""

from .sqlite import SaveResult, SQLiteStore, StoreError

__all__ = ["SQLiteStore", "SaveResult", "StoreError"]
