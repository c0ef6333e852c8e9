"""Alembic environment for labelmend.

Online mode reuses a connection passed in ``config.attributes["connection"]`` (how
``db.migrate.upgrade`` runs it) or builds a NullPool engine from ``LABELMEND_DB`` /
``-x url=...``. SQLite migrations use batch mode so ALTERs work.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from db.engine import make_engine, resolve_url
from db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or resolve_url(
        config.get_main_option("sqlalchemy.url") or None
    )


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
