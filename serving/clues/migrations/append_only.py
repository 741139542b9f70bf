"""Database triggers that make a clue-store table append-only (used by the migrations).

PostgreSQL: a trigger function rejects UPDATE, DELETE and TRUNCATE; SQLite: triggers reject UPDATE and
DELETE. The ORM refuses the same changes first (:mod:`serving.clues.models`).
"""

from __future__ import annotations

from alembic import op

__all__ = ["protect", "unprotect", "create_function", "drop_function"]


def create_function() -> None:
    """PostgreSQL's trigger function (once, in the first migration)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    # No colons or percent signs below: the text goes through SQLAlchemy and the driver as is.
    op.execute("""
        CREATE FUNCTION clue_store_append_only() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            RAISE EXCEPTION USING
                ERRCODE = 'insufficient_privilege',
                MESSAGE = TG_TABLE_NAME || ' 只能追加 (is append-only), ' || TG_OP || ' rejected';
        END
        $body$""")


def drop_function() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS clue_store_append_only()")


def protect(table: str) -> None:
    """Reject UPDATE and DELETE (and on PostgreSQL TRUNCATE) on ``table``."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION clue_store_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION clue_store_append_only()")
    elif dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} BEGIN "
                       f"SELECT RAISE(ABORT, '{table} 只能追加 (is append-only), {verb} rejected'); END")


def unprotect(table: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    elif dialect == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
