"""Fast bulk loading inside the caller's transaction: COPY on PostgreSQL, executemany on SQLite.

Used by importers (stage a file's rows, then validate and merge them with set-based SQL) and by
the suggestion writer. Rows are tuples in column order; nothing is committed here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

#: NumPy dtypes :func:`copy_arrays` sends as PostgreSQL binary fields (smallint, integer, bigint,
#: double precision), each with its big-endian wire type.
_BINARY = {
    np.dtype(np.int16): ">i2",
    np.dtype(np.int32): ">i4",
    np.dtype(np.int64): ">i8",
    np.dtype(np.float64): ">f8",
}
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_PGCOPY_TRAILER = b"\xff\xff"


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def create_temp_table(session: Session, name: str, columns: Sequence[tuple[str, str]]) -> None:
    """Create (or empty) a per-connection temporary table ``name`` with ``(column, sql type)`` pairs.

    On PostgreSQL it is dropped at commit; on SQLite it lives in the connection's temp schema.
    """
    cols = ", ".join(f"{c} {t}" for c, t in columns)
    conn = session.connection()
    if dialect(session) == "postgresql":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({cols}) ON COMMIT DROP")
    else:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({cols})")


def load_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Append ``rows`` to ``table``: COPY … FROM STDIN on PostgreSQL, executemany on SQLite.

    Returns:
        The number of rows written.
    """
    conn = session.connection()
    raw = conn.connection.dbapi_connection
    assert raw is not None
    n = 0
    if dialect(session) == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        return n
    rows = _sqlite_datetimes(rows)
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    cur = raw.cursor()
    try:
        batch: list[Sequence[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 50_000:
                cur.executemany(sql, batch)
                n += len(batch)
                batch = []
        if batch:
            cur.executemany(sql, batch)
            n += len(batch)
    finally:
        cur.close()
    return n


def copy_arrays(session: Session, table: str, columns: Sequence[str], arrays: Sequence[np.ndarray]) -> int:
    """Append rows given column by column as 1-D NumPy arrays: binary COPY on PostgreSQL.

    Each array is one column, all of the same length n, dtype int16, int32, int64 or float64
    matching the column's SQL type (smallint, integer, bigint, double precision); no NULLs. On
    PostgreSQL the rows go as one ``COPY … (FORMAT BINARY)`` built with NumPy (no Python object
    per value); on SQLite they go through :func:`load_rows`.

    Returns:
        n, the number of rows written.

    Raises:
        ValueError: arrays of different lengths, not 1-D, or of another dtype.
    """
    if len(arrays) != len(columns) or not arrays:
        raise ValueError(f"{len(columns)} columns need as many arrays, got {len(arrays)}")
    n = len(arrays[0])
    for name, a in zip(columns, arrays, strict=True):
        if a.ndim != 1 or len(a) != n:
            raise ValueError(f"column {name}: need a 1-D array of {n} values, got shape {a.shape}")
        if a.dtype not in _BINARY:
            raise ValueError(f"column {name}: dtype {a.dtype} is not one of int16, int32, int64, float64")
    if n == 0:
        return 0
    if dialect(session) != "postgresql":
        return load_rows(session, table, columns, zip(*(a.tolist() for a in arrays), strict=True))
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, a in enumerate(arrays):
        fields += [(f"size{i}", ">i4"), (f"value{i}", _BINARY[a.dtype])]
    rows = np.empty(n, dtype=fields)
    rows["count"] = len(arrays)
    for i, a in enumerate(arrays):
        rows[f"size{i}"] = a.dtype.itemsize
        rows[f"value{i}"] = a
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with raw.cursor() as cur, cur.copy(sql) as copy:
        copy.write(_PGCOPY_HEADER)
        copy.write(rows.tobytes())
        copy.write(_PGCOPY_TRAILER)
    return n


def _sqlite_datetimes(rows: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    """Write datetimes as SQLAlchemy's SQLite DateTime does (naive UTC text), not sqlite3's default."""
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return
    at = [i for i, v in enumerate(first) if isinstance(v, dt.datetime)]
    if not at:
        yield first
        yield from it
        return

    seen: dict[dt.datetime, str] = {}  # bulk rows usually share one timestamp: format it once

    def text(v: dt.datetime) -> str:
        out = seen.get(v)
        if out is None:
            naive = v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo is not None else v
            out = seen[v] = naive.strftime("%Y-%m-%d %H:%M:%S.%f")
            if len(seen) > 10_000:
                seen.clear()
        return out

    def fix(row: Sequence[Any]) -> Sequence[Any]:
        out = list(row)
        for i in at:
            if isinstance(out[i], dt.datetime):
                out[i] = text(out[i])
        return out

    yield fix(first)
    for row in it:
        yield fix(row)


__all__ = ["copy_arrays", "create_temp_table", "dialect", "load_rows"]
