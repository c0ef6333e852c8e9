"""Text SQL for the importers' staging tables, inside the caller's transaction (never commits)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.orm import Session

from db.bulk import dialect


def run_sql(session: Session, sql: str, **params: Any) -> Any:
    """Execute ``sql`` with ``params``; a ``:now`` parameter is bound as a timezone-aware time."""
    stmt = text(sql)
    if "now" in params:
        stmt = stmt.bindparams(bindparam("now", type_=DateTime(timezone=True)))
    return session.execute(stmt, params)


def drop_temp(session: Session, name: str) -> None:
    """Drop the temporary table ``name`` if it exists."""
    schema = "temp." if dialect(session) == "sqlite" else ""
    session.connection().exec_driver_sql(f"DROP TABLE IF EXISTS {schema}{name}")


__all__ = ["drop_temp", "run_sql"]
