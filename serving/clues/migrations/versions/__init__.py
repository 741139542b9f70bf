"""Migration scripts of the clue store, oldest first (Alembic skips this file)."""
