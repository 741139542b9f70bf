"""Alembic environment of the clue store (线索库).

Run programmatically: :func:`serving.clues.store.migrate` hands over an open connection in
``config.attributes["connection"]``; without one (e.g. the ``alembic`` command with ``-x url=...``)
an engine is made from ``sqlalchemy.url``. SQLite runs in batch mode so later migrations can alter
tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from serving.clues.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
