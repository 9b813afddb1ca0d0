"""The SQLite engine of the storage interface (`gateway.pool.storage`)."""

from gateway.pool.sqlite.store import Store

__all__ = ["Store"]
