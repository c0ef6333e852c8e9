"""Set-based validation and merge of the staged cells (``stage_cell``) into ``label``.

``stage_cell(image_id, class_id, value, line, bad)`` holds one row per distinct cell of the file:
its first value and line, and in ``bad`` the first line contradicting that value (NULL if none).
New cells are INSERTed, changed ones UPDATEd (``version + 1``), and one ``label_event`` per
changed cell is written with ``INSERT … SELECT``. Unchanged cells write nothing.

Label encoding: ``value`` 1 = positive, 0 = negative (unknown cells are absent).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from db.bulk import dialect
from db.io._sql import run_sql
from db.io._text import quote
from db.models import LabelSource

IMPORT_SOURCE = LabelSource.IMPORT.value

_INSERT_LABEL = (
    "INSERT INTO label (image_id, class_id, value, source, author, created_at, updated_at, version) "
)
_INSERT_EVENT = (
    'INSERT INTO label_event (dataset_id, image_id, class_id, "before", "after", author, source, '
    "reason, created_at) "
)


def build_cells_pg(session: Session) -> None:
    """PostgreSQL: ``stage_cell`` from the copied rows — first value and line per cell, and
    in ``bad`` the first line contradicting it (= the later of the first 1 and first 0)."""
    conn = session.connection()
    conn.exec_driver_sql("ANALYZE stage_row")
    conn.exec_driver_sql(
        """
        CREATE TEMP TABLE stage_cell ON COMMIT DROP AS
        SELECT image_id, class_id,
               CASE WHEN l0 IS NULL OR l1 < l0 THEN 1 ELSE 0 END AS value,
               LEAST(l1, l0) AS line,
               CASE WHEN l1 IS NOT NULL AND l0 IS NOT NULL THEN GREATEST(l1, l0) END AS bad
        FROM (SELECT image_id, class_id,
                     MIN(line) FILTER (WHERE value = 1) AS l1,
                     MIN(line) FILTER (WHERE value = 0) AS l0
              FROM stage_row GROUP BY image_id, class_id) t
        """
    )
    conn.exec_driver_sql("DROP TABLE stage_row")
    conn.exec_driver_sql("ANALYZE stage_cell")


def first_conflict(session: Session) -> tuple[int, str, str] | None:
    """A cell given as both 1 and 0: ``(line, problem, fix)`` of the first row contradicting its
    first value, or None when no cell is contradicted."""
    row = run_sql(
        session,
        "SELECT image_id, class_id, value, line, bad FROM stage_cell WHERE bad IS NOT NULL ORDER BY bad LIMIT 1",
    ).first()
    if row is None:
        return None
    image = run_sql(session, "SELECT external_id FROM image WHERE id = :i", i=row[0]).scalar_one()
    key = run_sql(session, 'SELECT "key" FROM label_class WHERE id = :c', c=row[1]).scalar_one()
    return (
        int(row[4]),
        f"image {quote(image)} class {quote(key)} is {1 - row[2]} here but {row[2]} on line {row[3]}",
        "keep one of the two rows",
    )


def merge_cells(
    session: Session,
    *,
    dataset_id: int,
    author: str,
    file: str,
    now: dt.datetime,
    new_images_above: int | None,
) -> tuple[int, int, int]:
    """Insert new cells, update changed ones, log one event per change.

    Args:
        new_images_above: SQLite: every image id above it was registered by this import, so
            its cells are all new and skip the look-ups; None (PostgreSQL) = no such bound.

    Returns:
        (distinct cells in the file, labels added, labels changed).
    """
    p = {"d": dataset_id, "author": author, "source": IMPORT_SOURCE, "reason": f"import {file}", "now": now}
    added = 0
    older = ""  # PostgreSQL: every cell takes the general path
    bound = new_images_above
    if bound is not None:  # cells of images registered by this import: all new, no look-ups
        added = int(
            run_sql(
                session,
                f"{_INSERT_LABEL}SELECT image_id, class_id, value, :source, :author, :now, :now, 1 "
                "FROM stage_cell WHERE image_id > :m",
                m=bound,
                **p,
            ).rowcount
            or 0
        )
        run_sql(
            session,
            f"{_INSERT_EVENT}SELECT :d, image_id, class_id, NULL, value, :author, :source, :reason, :now "
            "FROM stage_cell WHERE image_id > :m",
            m=bound,
            **p,
        )
        older = f" WHERE c.image_id <= {int(bound)}"
    n_older = int(run_sql(session, f"SELECT COUNT(*) FROM stage_cell c{older}").scalar_one())
    if n_older == 0:
        return added, added, 0
    pg = dialect(session) == "postgresql"
    tail = " ON COMMIT DROP" if pg else ""
    # PostgreSQL: stage_cell comes out of a hash aggregate in no order; writing stage_change in
    # (image, class) order makes the inserts below append to the label key and the event index
    # instead of splitting random pages. SQLite's stage_cell is a WITHOUT ROWID table in that
    # order already. (Speed only: nothing depends on the order.)
    order = " ORDER BY c.image_id, c.class_id" if pg else ""
    session.connection().exec_driver_sql(
        f"CREATE TEMP TABLE stage_change{tail} AS "
        'SELECT c.image_id, c.class_id, l.value AS "before", c.value AS "after" FROM stage_cell c '
        f"LEFT JOIN label l ON l.image_id = c.image_id AND l.class_id = c.class_id{older}"
        f"{' AND' if older else ' WHERE'} (l.value IS NULL OR l.value <> c.value){order}"
    )
    new = int(
        run_sql(
            session,
            f'{_INSERT_LABEL}SELECT image_id, class_id, "after", :source, :author, :now, :now, 1 '
            'FROM stage_change WHERE "before" IS NULL',
            **p,
        ).rowcount
        or 0
    )
    changed = int(
        run_sql(
            session,
            'UPDATE label SET value = ch."after", source = :source, author = :author, updated_at = :now, '
            "version = label.version + 1 FROM stage_change ch "
            'WHERE label.image_id = ch.image_id AND label.class_id = ch.class_id AND ch."before" IS NOT NULL',
            **p,
        ).rowcount
        or 0
    )
    run_sql(
        session,
        f'{_INSERT_EVENT}SELECT :d, image_id, class_id, "before", "after", :author, :source, :reason, :now '
        "FROM stage_change",
        **p,
    )
    return added + n_older, added + new, changed


__all__ = ["IMPORT_SOURCE", "build_cells_pg", "first_conflict", "merge_cells"]
