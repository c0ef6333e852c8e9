"""Staging shared by every label importer: one :class:`LabelImport` per imported file.

An importer opens one :class:`LabelImport` inside the caller's transaction, registers classes
(:mod:`db.io._classes`) and images (:mod:`db.io._image_ids`), streams label rows in chunks with
:meth:`LabelImport.add_chunk` / :meth:`LabelImport.add_chunks`, then calls
:meth:`LabelImport.finish`. Class keys are mapped to ids in pandas; image ids with one indexed
join per chunk (one look-up per distinct image, not per row). Rows land in a TEMP table
``stage_cell(image_id, class_id, value, line, bad)`` with one row per distinct cell:

- SQLite: ``executemany`` with ``ON CONFLICT (image_id, class_id) DO UPDATE`` — a repeated cell
  keeps its first line, and a row contradicting it records its line in ``bad``;
- PostgreSQL: binary ``COPY`` (:func:`db.bulk.copy_arrays`) into ``stage_row``, then one ``GROUP BY`` builds the same table.

Then, in :meth:`LabelImport.finish`:

- the first bad row (unknown class or image, unsafe path, bad value, a cell given as both 1
  and 0) becomes one :class:`~db.errors.LabelFileError` naming ``file:line``; the caller's
  transaction rolls back and nothing changes;
- the cells are merged into the store with an audit event per changed cell (:mod:`db.io._merge`).
  Unchanged cells write nothing, so importing the same file twice changes nothing the second time.

Label encoding: ``value`` 1 = positive, 0 = negative (unknown cells are absent).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from db.bulk import copy_arrays, create_temp_table, dialect
from db.datasets import get_or_create_dataset
from db.errors import LabelFileError
from db.io._classes import ClassTable, unknown_class_default
from db.io._image_ids import ImageTable, unknown_image_default
from db.io._merge import IMPORT_SOURCE, build_cells_pg, first_conflict, merge_cells
from db.io._report import ImportReport, ProgressFn
from db.io._sql import drop_temp, run_sql
from db.io._text import UNSAFE_PATH, VALUE_TEXT, ErrorText, is_unsafe_path, parse_values, quote
from db.io.images import IdFrom, ImageScan, scan_with_progress
from db.models import Split, utcnow

_SQLITE_CACHE_KIB = 262_144  # 256 MiB page cache for the import's transaction (main and temp)

# One chunk of label rows, the arguments of :meth:`LabelImport.add_chunk`.
Chunk = tuple[np.ndarray, pd.Series, pd.Series, np.ndarray, pd.Series | None]


@dataclass(frozen=True)
class _RowError:
    line: int
    problem: str
    fix: str


def _objects(values: pd.Series) -> np.ndarray:
    """A text column as a NumPy object array of str, shape (n,)."""
    return values.to_numpy(dtype=object)


class LabelImport:
    """One import of one label file into one dataset, inside the caller's transaction.

    Use it as a context manager: leaving the block restores the connection settings changed for
    the import, however the import ends.

    Args:
        session: an open write session; nothing is committed here.
        file: the label file; its name is shown in messages (e.g. ``labels.csv``).
        dataset: dataset name (created if missing).
        images: the image folder image paths are relative to (None = none); a dataset with a
            different folder is refused.
        split: split of images registered by this import (train / val / test).
        author: recorded on labels and audit events.
        images_from_labels: when not None, image ids in rows that are not in the dataset are
            registered, with path ``<id><images_from_labels>`` (e.g. ``".jpg"``); when None
            they are errors.
        classes_from_labels: register unknown class keys (display name = key) instead of failing.
        match_paths: also resolve an image given as its path relative to the image root.
        value_column: the value column's name in messages (e.g. ``Confidence``).
        unknown_class, unknown_image: ``key -> (problem, fix)`` wording of those errors.

    Example:
        >>> with LabelImport(s, Path("l.csv"), dataset="d", images=None, split="train",
        ...                  author="me", images_from_labels=".jpg") as imp:  # doctest: +SKIP
        ...     imp.add_chunks(chunks)
        ...     report = imp.finish()
    """

    def __init__(
        self,
        session: Session,
        file: Path,
        *,
        dataset: str,
        images: Path | None,
        split: str,
        author: str,
        images_from_labels: str | None = None,
        classes_from_labels: bool = False,
        match_paths: bool = False,
        value_column: str = "value",
        unknown_class: ErrorText = unknown_class_default,
        unknown_image: ErrorText = unknown_image_default,
    ) -> None:
        if split not in {s.value for s in Split}:
            raise ValueError(f"split {split!r} is not one of train, val, test")
        self.t0 = time.perf_counter()
        self.session = session
        self.file = file.name
        self.author = author
        self.value_column = value_column
        self.rows_read = 0
        self.images_skipped: list[tuple[str, str]] = []
        self._error: _RowError | None = None
        self._now = utcnow()
        self._sqlite = dialect(session) == "sqlite"
        self._pragmas: dict[str, int] = {}

        image_root = str(images.resolve()) if images is not None else ""
        ds = get_or_create_dataset(session, dataset, image_root)
        if image_root and ds.image_root and ds.image_root != image_root:
            raise LabelFileError(
                image_root,
                None,
                f"dataset {quote(dataset)} keeps its images under {quote(ds.image_root)}",
                "pass that folder as --images or import into a new --dataset",
            )
        self.dataset_id = ds.id
        self.dataset = dataset
        self._tune(True)
        # Images created from here on in this transaction cannot have labels yet. On SQLite the
        # transaction is the only writer, so ids above this bound are exactly those; PostgreSQL
        # (concurrent writers) takes the general path for every cell.
        self._new_images_above = (
            int(run_sql(session, "SELECT COALESCE(MAX(id), 0) FROM image").scalar_one())
            if self._sqlite
            else None
        )
        if self._sqlite:  # one row per cell, in (image, class) order: merging needs no sort
            drop_temp(session, "stage_cell")
            session.connection().exec_driver_sql(
                "CREATE TEMP TABLE stage_cell (image_id INTEGER, class_id INTEGER, value INTEGER, "
                "line INTEGER, bad INTEGER, PRIMARY KEY (image_id, class_id)) WITHOUT ROWID"
            )
        else:
            create_temp_table(
                session,
                "stage_row",
                [("image_id", "BIGINT"), ("class_id", "BIGINT"), ("value", "SMALLINT"), ("line", "BIGINT")],
            )
        self._images = ImageTable(
            session,
            self.dataset_id,
            split=split,
            now=self._now,
            from_labels=images_from_labels,
            match_paths=match_paths,
            unknown=unknown_image,
            note_error=self.note_error,
        )
        self._classes = ClassTable(
            session,
            self.dataset_id,
            from_labels=classes_from_labels,
            unknown=unknown_class,
            note_error=self.note_error,
        )

    # ----------------------------------------------------------------- state and errors

    def __enter__(self) -> LabelImport:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Restore the connection settings changed for the import (safe to call twice)."""
        self._tune(False)
        self._pragmas.clear()

    @property
    def failed(self) -> bool:
        """True once a bad row was seen; the importer may stop reading (no later line can win)."""
        return self._error is not None

    def note_error(self, line: int, problem: str, fix: str) -> None:
        """Remember a bad row; :meth:`finish` raises the one with the smallest line."""
        if self._error is None or line < self._error.line:
            self._error = _RowError(line, problem, fix)

    def _tune(self, on: bool) -> None:
        """SQLite only: a large page cache (main and temp schema) for the import's duration."""
        if not self._sqlite:
            return
        conn = self.session.connection()
        for schema in ("main", "temp"):
            if on:
                self._pragmas[schema] = int(conn.exec_driver_sql(f"PRAGMA {schema}.cache_size").scalar_one())
                conn.exec_driver_sql(f"PRAGMA {schema}.cache_size=-{_SQLITE_CACHE_KIB}")
            elif schema in self._pragmas:
                conn.exec_driver_sql(f"PRAGMA {schema}.cache_size={self._pragmas[schema]}")

    # ----------------------------------------------------------------- classes and images

    def add_classes(self, path: str, rows: Sequence[tuple[int, str, str]]) -> int:
        """Register classes ``(line, key, display_name)`` from ``path`` (see :meth:`ClassTable.add`)."""
        return self._classes.add(path, rows)

    def register_images(self, records: Iterable[tuple[str, str, int | None, int | None]], source: str) -> int:
        """Register images ``(external_id, path, width, height)`` (see :meth:`ImageTable.register`)."""
        return self._images.register(records, source)

    def register_folder(
        self, folder: Path, id_from: IdFrom, progress: ProgressFn | None = None
    ) -> list[tuple[str, str]]:
        """Register every image under ``folder`` (scanned with :class:`~db.io.images.ImageScan`).

        Returns:
            ``(relative path, reason)`` of the files skipped (also kept in ``images_skipped``).
        """
        scan = ImageScan(folder, id_from=id_from)
        self.register_images((f.record() for f in scan_with_progress(scan, progress)), str(folder))
        self.images_skipped.extend(scan.skipped)
        return scan.skipped

    def set_splits(self, path: str, rows: Iterable[tuple[int, str, str]]) -> int:
        """Set the split of listed images (see :meth:`ImageTable.set_splits`)."""
        return self._images.set_splits(path, rows)

    # ----------------------------------------------------------------- rows

    def add_chunk(
        self,
        lines: np.ndarray,
        images: pd.Series,
        labels: pd.Series,
        values: np.ndarray,
        raw_values: pd.Series | None = None,
    ) -> None:
        """Stage one chunk of label rows.

        Args:
            lines: file line (or row) number of each row, shape (n,) int64, increasing.
            images: image external ids (or paths when ``match_paths``), shape (n,), str.
            labels: class keys, shape (n,), str.
            values: int8, shape (n,): 1 positive, 0 negative, -1 = invalid (reported).
            raw_values: the values as written, shape (n,), quoted in the message of a bad one.
        """
        n = len(lines)
        if n == 0:
            return
        self.rows_read += n
        img, lab = _objects(images), _objects(labels)
        for col, what in ((img, "image id"), (lab, "class id")):
            empty = col == ""
            if empty.any():
                self.note_error(int(lines[np.argmax(empty)]), f"empty {what}", "fill it in or delete the row")
            uniq = pd.Series(pd.unique(col), dtype=object)
            broken = uniq[uniq.str.contains("[\r\n]", regex=True).to_numpy(dtype=bool)]
            if len(broken):
                i = int(np.flatnonzero(pd.Index(broken, dtype=object).get_indexer(col) >= 0)[0])
                self.note_error(
                    int(lines[i]), f"{what} {quote(col[i])} contains a line break", "remove the line break"
                )
        bad = values < 0
        if bad.any():
            i = int(np.argmax(bad))
            shown = f" {quote(raw_values.iloc[i])}" if raw_values is not None else ""
            self.note_error(
                int(lines[i]), f"{self.value_column}{shown} is not 0 or 1", "write 1 (present) or 0 (absent)"
            )
        class_ids = self._classes.ids_for(lab, lines)
        image_ids = self._images.ids_for(img, lines)
        keep = (class_ids >= 0) & (image_ids >= 0) & ~bad
        if self._error is not None:  # only rows above the bad line can still matter (conflicts)
            keep &= lines < self._error.line
        if not self._sqlite:  # binary COPY straight from the arrays
            copy_arrays(
                self.session,
                "stage_row",
                ["image_id", "class_id", "value", "line"],
                [
                    image_ids[keep].astype(np.int64),
                    class_ids[keep].astype(np.int64),
                    values[keep].astype(np.int16),
                    lines[keep].astype(np.int64),
                ],
            )
            return
        rows = zip(
            image_ids[keep].tolist(),
            class_ids[keep].tolist(),
            values[keep].tolist(),
            lines[keep].tolist(),
            strict=True,
        )
        raw = self.session.connection().connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        try:  # a repeated cell keeps its first line; the first contradicting row's line goes to `bad`
            cur.executemany(
                "INSERT INTO stage_cell (image_id, class_id, value, line) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (image_id, class_id) DO UPDATE SET bad = excluded.line "
                "WHERE stage_cell.value <> excluded.value AND stage_cell.bad IS NULL",
                rows,
            )
        finally:
            cur.close()

    def add_chunks(self, chunks: Iterable[Chunk]) -> None:
        """Stage chunks with :meth:`add_chunk` until they end or a bad row was seen (no later
        line can win, so the rest of the file is not read)."""
        for chunk in chunks:
            self.add_chunk(*chunk)
            if self.failed:
                break

    # ----------------------------------------------------------------- validate and merge

    def finish(self, progress: ProgressFn | None = None) -> ImportReport:
        """Validate the staged rows as a set and merge them into the store.

        Args:
            progress: told ``("merge", 0, None)`` before the merge starts.

        Raises:
            LabelFileError: the first bad line of the file (nothing is written; the caller's
                transaction must roll back, which :meth:`app.store.Store.write` does).
        """
        if progress is not None:
            progress("merge", 0, None)
        try:
            if not self._sqlite:
                build_cells_pg(self.session)
            conflict = first_conflict(self.session)
            if conflict is not None:
                self.note_error(*conflict)
            if self._error is not None:
                raise LabelFileError(self.file, self._error.line, self._error.problem, self._error.fix)
            n_cells, added, changed = merge_cells(
                self.session,
                dataset_id=self.dataset_id,
                author=self.author,
                file=self.file,
                now=self._now,
                new_images_above=self._new_images_above,
            )
            for name in ("stage_cell", "stage_row", "stage_key", "stage_change", "stage_image"):
                drop_temp(self.session, name)  # on failure the caller's rollback drops them
        finally:
            self.close()
        return ImportReport(
            dataset=self.dataset,
            file=self.file,
            rows_read=self.rows_read,
            labels_added=added,
            labels_changed=changed,
            labels_unchanged=n_cells - added - changed,
            images_registered=self._images.registered,
            classes_added=self._classes.added,
            seconds=time.perf_counter() - self.t0,
            duplicate_rows=self.rows_read - n_cells,
            images_skipped=tuple(self.images_skipped),
        )


# The names importers (and older code) take from here; each is defined in its own module.
__all__ = [
    "IMPORT_SOURCE",
    "UNSAFE_PATH",
    "VALUE_TEXT",
    "Chunk",
    "ImportReport",
    "LabelImport",
    "is_unsafe_path",
    "parse_values",
    "quote",
]
