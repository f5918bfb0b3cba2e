"""The durable store: one schema over SQLite (embedded) or PostgreSQL (several nodes)."""
