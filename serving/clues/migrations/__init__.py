"""Alembic migrations of the clue store; run by :func:`serving.clues.store.open_store`, no alembic.ini needed."""
