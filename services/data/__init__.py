"""ModelStore: the only process that opens PostgreSQL (catalog, attempts, statistics, history)."""
