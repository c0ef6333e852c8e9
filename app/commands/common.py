"""Options and helpers shared by CLI commands."""

from __future__ import annotations

from typing import Annotated

import typer

from app.store import Store, open_store

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="LABELMEND_DB", help="Database URL (default: SQLite under LABELMEND_HOME)."),
]
DatasetOption = Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")]


def store_for(db: str | None) -> Store:
    return open_store(db)
