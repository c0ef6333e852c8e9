"""`labelmend init`: create or upgrade the database schema."""

from __future__ import annotations

import typer

from app.commands.common import DbOption, store_for
from db.migrate import current_revision


def init(db: DbOption = None) -> None:
    """Create the database, or upgrade it to the newest schema (every command also does this)."""
    store = store_for(db)
    typer.echo(f"database ready at revision {current_revision(store.engine)}: {store.url}")


def register(app: typer.Typer) -> None:
    app.command()(init)
