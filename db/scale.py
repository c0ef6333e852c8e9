"""Store inspection for work at scale (benchmarks): image ids in bulk, and query plans.

Functions take ``session`` first and never commit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Image


def image_ids(session: Session, dataset_id: int) -> np.ndarray:
    """Ids of the dataset's images, ascending: int64 array of shape (N,)."""
    rows = session.scalars(select(Image.id).where(Image.dataset_id == dataset_id).order_by(Image.id))
    return np.fromiter(rows, dtype=np.int64)


def explain(session: Session, statement: str, parameters: Any) -> list[str]:
    """The database's plan of one driver-level ``statement`` with its driver ``parameters``.

    ``EXPLAIN`` on PostgreSQL (one line per plan row, as psql prints them), ``EXPLAIN QUERY PLAN``
    on SQLite (the ``detail`` column of each row). Use a statement captured from a
    ``before_cursor_execute`` event, so the plan is that of the exact text the code sends.
    """
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
    return [str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]


__all__ = ["explain", "image_ids"]
