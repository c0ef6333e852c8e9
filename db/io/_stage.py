"""Staging, set-based validation and merge shared by every label importer.

An importer opens one :class:`LabelImport` inside the caller's transaction, registers classes
and images, streams label rows in chunks with :meth:`LabelImport.add_chunk`, then calls
:meth:`LabelImport.finish`. Class keys are mapped to ids in pandas; image ids with one indexed
join per chunk (one look-up per distinct image, not per row). Rows land in a TEMP table
``stage_cell(image_id, class_id, value, line, bad)`` with one row per distinct cell:

- SQLite: ``executemany`` with ``ON CONFLICT (image_id, class_id) DO UPDATE`` — a repeated cell
  keeps its first line, and a row contradicting it records its line in ``bad``;
- PostgreSQL: ``COPY`` into ``stage_row``, then one ``GROUP BY`` builds the same table.

Then, in :meth:`LabelImport.finish`:

- the first bad row (unknown class or image, unsafe path, bad value, a cell given as both 1
  and 0) becomes one :class:`~db.errors.LabelFileError` naming ``file:line``; the caller's
  transaction rolls back and nothing changes;
- new cells are INSERTed, changed ones UPDATEd (``version + 1``), and one ``label_event`` per
  changed cell is written with ``INSERT … SELECT``. Unchanged cells write nothing, so importing
  the same file twice changes nothing the second time.

Label encoding: ``value`` 1 = positive, 0 = negative (unknown cells are absent).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import DateTime, bindparam, insert, select, text
from sqlalchemy.orm import Session

from db.bulk import create_temp_table, dialect, load_rows
from db.datasets import get_or_create_dataset
from db.errors import LabelFileError
from db.models import LabelClass, LabelSource, Split, utcnow

# Accepted spellings of a label value (after stripping spaces) → 1 positive / 0 negative.
VALUE_TEXT: dict[str, int] = {"1": 1, "0": 0, "1.0": 1, "0.0": 0}
IMPORT_SOURCE = LabelSource.IMPORT.value
UNSAFE_PATH = r"(?:^[/\\])|(?:(?:^|[/\\])\.\.(?:[/\\]|$))|(?:^[A-Za-z]:)|\x00"
_UNSAFE = re.compile(UNSAFE_PATH)
_SQLITE_CACHE_KIB = 262_144  # 256 MiB page cache for the import's transaction (main and temp)

ErrorText = Callable[[str], tuple[str, str]]


def quote(value: object) -> str:
    """A user value for a one-line message: JSON-quoted, so quotes and line breaks are escaped."""
    return json.dumps(str(value), ensure_ascii=False)


def is_unsafe_path(path: str) -> bool:
    """True when a relative image path is absolute or climbs out of the image root (``..``)."""
    return bool(_UNSAFE.search(path))


def parse_values(raw: pd.Series) -> np.ndarray:
    """Label values from text: ``"1"``/``"0"`` (also ``"1.0"``/``"0.0"``, spaces ignored).

    Returns:
        int8 array, shape (n,): 1, 0, or -1 where the text is not a valid value.
    """
    out = np.full(len(raw), -1, dtype=np.int8)
    out[(raw == "1").to_numpy(dtype=bool)] = 1
    out[(raw == "0").to_numpy(dtype=bool)] = 0
    rest = out == -1
    if rest.any():
        mapped = raw[rest].astype(str).str.strip().map(VALUE_TEXT)
        out[rest] = mapped.fillna(-1).to_numpy(dtype=np.int8)
    return out


@dataclass(frozen=True)
class ImportReport:
    """What one import did. ``seconds`` is wall time; label counts are cells."""

    dataset: str
    file: str
    rows_read: int
    labels_added: int
    labels_changed: int
    labels_unchanged: int
    images_registered: int
    classes_added: int
    seconds: float
    duplicate_rows: int = 0
    images_skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One line for people: rows read, cells added/changed/unchanged, registrations, time."""
        return (
            f"{self.file}: {self.rows_read:,} rows read; labels {self.labels_added:,} added, "
            f"{self.labels_changed:,} changed, {self.labels_unchanged:,} unchanged; "
            f"{self.images_registered:,} images and {self.classes_added:,} classes registered; "
            f"{self.seconds:.2f} s"
        )


@dataclass(frozen=True)
class _RowError:
    line: int
    problem: str
    fix: str


def _unknown_class_default(key: str) -> tuple[str, str]:
    return f"class {quote(key)} is not in the dataset", "add it to the classes file or remove the row"


def _unknown_image_default(key: str) -> tuple[str, str]:
    return f"image {quote(key)} is not in the dataset", "register the image or remove the row"


def _objects(values: pd.Series) -> np.ndarray:
    """A text column as a NumPy object array of str, shape (n,)."""
    return values.to_numpy(dtype=object)


class LabelImport:
    """One import of one label file into one dataset, inside the caller's transaction.

    Args:
        session: an open write session; nothing is committed here.
        dataset: dataset name (created if missing).
        file: the label file's name as shown in messages (e.g. ``labels.csv``).
        author: recorded on labels and audit events.
        split: split of images registered by this import (train / val / test).
        image_root: the folder image paths are relative to ("" = none); a dataset with a
            different root is refused.
        images_from_labels: when not None, image ids in rows that are not in the dataset are
            registered, with path ``<id><images_from_labels>`` (e.g. ``".jpg"``); when None
            they are errors.
        classes_from_labels: register unknown class keys (display name = key) instead of failing.
        match_paths: also resolve an image given as its path relative to the image root.
        value_column: the value column's name in messages (e.g. ``Confidence``).
        unknown_class, unknown_image: ``key -> (problem, fix)`` wording of those errors.
    """

    def __init__(
        self,
        session: Session,
        *,
        dataset: str,
        file: str,
        author: str,
        split: str = Split.TRAIN.value,
        image_root: str = "",
        images_from_labels: str | None = None,
        classes_from_labels: bool = False,
        match_paths: bool = False,
        value_column: str = "value",
        unknown_class: ErrorText = _unknown_class_default,
        unknown_image: ErrorText = _unknown_image_default,
    ) -> None:
        if split not in {s.value for s in Split}:
            raise ValueError(f"split {split!r} is not one of train, val, test")
        self.t0 = time.perf_counter()
        self.session = session
        self.file = file
        self.author = author
        self.split = split
        self.images_from_labels = images_from_labels
        self.classes_from_labels = classes_from_labels
        self.match_paths = match_paths
        self.value_column = value_column
        self._unknown_class = unknown_class
        self._unknown_image = unknown_image
        self.rows_read = 0
        self.images_registered = 0
        self.classes_added = 0
        self.images_skipped: list[tuple[str, str]] = []
        self._error: _RowError | None = None
        self._now = utcnow()
        self._sqlite = dialect(session) == "sqlite"
        self._pragmas: dict[str, int] = {}
        self._paths_staged = False

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
            int(self._sql("SELECT COALESCE(MAX(id), 0) FROM image").scalar_one()) if self._sqlite else None
        )
        conn = session.connection()
        if self._sqlite:  # one row per cell, in (image, class) order: merging needs no sort
            self._drop("stage_cell")
            conn.exec_driver_sql(
                "CREATE TEMP TABLE stage_cell (image_id INTEGER, class_id INTEGER, value INTEGER, "
                "line INTEGER, bad INTEGER, PRIMARY KEY (image_id, class_id)) WITHOUT ROWID"
            )
        else:
            create_temp_table(
                session,
                "stage_row",
                [("image_id", "BIGINT"), ("class_id", "BIGINT"), ("value", "SMALLINT"), ("line", "BIGINT")],
            )
        create_temp_table(session, "stage_key", [("ord", "BIGINT"), ("k", "TEXT")])
        self._load_classes()

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

    def _sql(self, sql: str, **params: Any) -> Any:
        stmt = text(sql)
        if "now" in params:
            stmt = stmt.bindparams(bindparam("now", type_=DateTime(timezone=True)))
        return self.session.execute(stmt, params)

    def _drop(self, name: str) -> None:
        schema = "temp." if self._sqlite else ""
        self.session.connection().exec_driver_sql(f"DROP TABLE IF EXISTS {schema}{name}")

    # ----------------------------------------------------------------- classes

    def _load_classes(self) -> None:
        rows = self.session.execute(
            select(LabelClass.key, LabelClass.id, LabelClass.position).where(
                LabelClass.dataset_id == self.dataset_id
            )
        ).all()
        self._class_keys = pd.Index([r[0] for r in rows], dtype=object)
        self._class_ids = np.array([r[1] for r in rows], dtype=np.int64)
        self._next_position = max((r[2] for r in rows), default=-1) + 1

    def add_classes(self, path: str, rows: Sequence[tuple[int, str, str]]) -> int:
        """Register classes ``(line, key, display_name)`` from a classes file, in file order.

        Existing classes keep their display name and position; a key listed twice with the same
        name is fine, with two different names it is an error.

        Returns:
            The number of classes added.

        Raises:
            LabelFileError: an empty key, or one key with two display names (``path:line``).
        """
        seen: dict[str, tuple[int, str]] = {}
        for line, key, name in rows:
            if not key:
                raise LabelFileError(path, line, "empty class id", "fill in the class id or delete the row")
            if key in seen and seen[key][1] != name:
                raise LabelFileError(
                    path,
                    line,
                    f"class {quote(key)} is named {quote(name)} here but {quote(seen[key][1])} "
                    f"on line {seen[key][0]}",
                    "keep one of the two rows",
                )
            seen.setdefault(key, (line, name))
        return self._insert_classes([(k, v[1]) for k, v in seen.items()])

    def _insert_classes(self, rows: Sequence[tuple[str, str]]) -> int:
        existing = set(self._class_keys)
        new = [(k, n) for k, n in rows if k not in existing]
        if not new:
            return 0
        pos = self._next_position
        self.session.execute(
            insert(LabelClass),
            [
                {"dataset_id": self.dataset_id, "key": k, "display_name": n, "position": pos + i}
                for i, (k, n) in enumerate(new)
            ],
        )
        self._load_classes()
        self.classes_added += len(new)
        return len(new)

    def _class_ids_for(self, labels: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """Class ids for a chunk's keys, shape (n,) int64; -1 where unknown (reported)."""
        pos = self._class_keys.get_indexer(labels) if len(self._class_keys) else np.full(len(labels), -1)
        if (pos < 0).any() and self.classes_from_labels:
            self._insert_classes([(k, k) for k in pd.unique(labels[pos < 0]) if k])
            pos = self._class_keys.get_indexer(labels)
        if (pos < 0).any():
            i = int(np.flatnonzero(pos < 0)[0])
            problem, fix = self._unknown_class(str(labels[i]))
            self.note_error(int(lines[i]), problem, fix)
        return np.where(pos >= 0, self._class_ids[np.maximum(pos, 0)] if len(self._class_ids) else -1, -1)

    # ----------------------------------------------------------------- images

    def register_images(self, records: Iterable[tuple[str, str, int | None, int | None]], source: str) -> int:
        """Register images ``(external_id, path, width, height)`` not yet in the dataset.

        Args:
            records: streamed; ``path`` is relative to the image root, sizes in px or None.
            source: the folder or file they came from, for messages.

        Returns:
            The number of images registered.

        Raises:
            LabelFileError: two files share one image id.
        """
        create_temp_table(
            self.session,
            "stage_image",
            [
                ("ord", "BIGINT"),
                ("ext_id", "TEXT"),
                ("path", "TEXT"),
                ("width", "INTEGER"),
                ("height", "INTEGER"),
            ],
        )
        load_rows(
            self.session,
            "stage_image",
            ["ord", "ext_id", "path", "width", "height"],
            ((i, *r) for i, r in enumerate(records)),
        )
        dup = self._sql(
            "SELECT ext_id, MIN(path), MAX(path) FROM stage_image GROUP BY ext_id HAVING COUNT(*) > 1 "
            "ORDER BY MIN(ord) LIMIT 1"
        ).first()
        if dup is not None:
            raise LabelFileError(
                source,
                None,
                f"two image files share the id {quote(dup[0])}: {quote(dup[1])} and {quote(dup[2])}",
                "keep one of them",
            )
        done = int(
            self._sql(
                """
                INSERT INTO image (dataset_id, external_id, path, width, height, split, created_at)
                SELECT :d, s.ext_id, s.path, s.width, s.height, :split, :now FROM stage_image s
                WHERE NOT EXISTS (SELECT 1 FROM image i WHERE i.dataset_id = :d AND i.external_id = s.ext_id)
                ORDER BY s.ord
                """,
                d=self.dataset_id,
                split=self.split,
                now=self._now,
            ).rowcount
            or 0
        )
        if self.match_paths:
            self.session.connection().exec_driver_sql("CREATE INDEX stage_image_path ON stage_image (path)")
            self._paths_staged = True
        else:
            self._drop("stage_image")
        self.images_registered += done
        return done

    def _stage_keys(self, keys: np.ndarray) -> None:
        self.session.execute(text("DELETE FROM stage_key"))
        load_rows(self.session, "stage_key", ["ord", "k"], enumerate(keys.tolist()))

    def _lookup_images(self, *, by_path: bool = False) -> list[tuple[str, int]]:
        """(key, image id) for the staged keys found in the dataset (by external id or path)."""
        if by_path:
            sql = (
                "SELECT s.k, i.id FROM stage_key s JOIN stage_image p ON p.path = s.k "
                "JOIN image i ON i.dataset_id = :d AND i.external_id = p.ext_id"
            )
        else:
            sql = (
                "SELECT s.k, i.id FROM stage_key s JOIN image i ON i.dataset_id = :d AND i.external_id = s.k"
            )
        return [(r[0], r[1]) for r in self._sql(sql, d=self.dataset_id)]

    def _register_from_labels(self) -> list[tuple[str, int]]:
        """Register every staged key as a new image; returns (key, new image id)."""
        rows = self._sql(
            """
            INSERT INTO image (dataset_id, external_id, path, split, created_at)
            SELECT :d, s.k, s.k || :suffix, :split, :now FROM stage_key s ORDER BY s.ord
            RETURNING external_id, id
            """,
            d=self.dataset_id,
            suffix=self.images_from_labels,
            split=self.split,
            now=self._now,
        ).all()
        self.images_registered += len(rows)
        return [(r[0], r[1]) for r in rows]

    def _image_ids(self, images: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """Database image ids for a chunk's image keys, shape (n,) int64; -1 where unresolved."""
        uniq = pd.unique(images)
        self._stage_keys(uniq)
        found = self._lookup_images()
        if len(found) < len(uniq):
            known = pd.Index([k for k, _ in found], dtype=object)
            missing = uniq[known.get_indexer(uniq) < 0] if len(known) else uniq
            if self.images_from_labels is not None:
                unsafe = (
                    pd.Series(missing, dtype=object)
                    .str.contains(UNSAFE_PATH, regex=True)
                    .to_numpy(dtype=bool)
                )
                if unsafe.any():
                    i = int(
                        np.flatnonzero(pd.Index(missing[unsafe], dtype=object).get_indexer(images) >= 0)[0]
                    )
                    self.note_error(
                        int(lines[i]),
                        f"image id {quote(images[i])} would point outside the image folder",
                        "use a plain image id or a path inside the image folder",
                    )
                    missing = missing[~unsafe]
                if len(missing):
                    self._stage_keys(missing)
                    found += self._register_from_labels()
            elif self._paths_staged:
                self._stage_keys(missing)
                found += self._lookup_images(by_path=True)
        index = pd.Index([k for k, _ in found], dtype=object)
        ids = np.array([v for _, v in found], dtype=np.int64)
        pos = index.get_indexer(images) if len(index) else np.full(len(images), -1)
        if (pos < 0).any():
            i = int(np.flatnonzero(pos < 0)[0])
            problem, fix = self._unknown_image(str(images[i]))
            self.note_error(int(lines[i]), problem, fix)
        return np.where(pos >= 0, ids[np.maximum(pos, 0)] if len(ids) else -1, -1)

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
        class_ids = self._class_ids_for(lab, lines)
        image_ids = self._image_ids(img, lines)
        keep = (class_ids >= 0) & (image_ids >= 0) & ~bad
        if self._error is not None:  # only rows above the bad line can still matter (conflicts)
            keep &= lines < self._error.line
        rows = zip(
            image_ids[keep].tolist(),
            class_ids[keep].tolist(),
            values[keep].tolist(),
            lines[keep].tolist(),
            strict=True,
        )
        if not self._sqlite:
            load_rows(self.session, "stage_row", ["image_id", "class_id", "value", "line"], rows)
            return
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

    def set_splits(self, path: str, rows: Iterable[tuple[int, str, str]]) -> int:
        """Set the split of listed images from rows ``(line, external_id, split)``.

        Returns:
            The number of images whose split changed.

        Raises:
            LabelFileError: a split other than train/val/test, or an image not in the dataset.
        """
        valid = {s.value for s in Split}

        def checked() -> Iterable[tuple[int, str, str]]:
            for line, ext, split in rows:
                if split not in valid:
                    raise LabelFileError(
                        path, line, f"split {quote(split)} is not train, val or test", "fix or delete the row"
                    )
                yield line, ext, split

        create_temp_table(self.session, "stage_split", [("line", "BIGINT"), ("k", "TEXT"), ("split", "TEXT")])
        load_rows(self.session, "stage_split", ["line", "k", "split"], checked())
        missing = self._sql(
            "SELECT s.line, s.k FROM stage_split s WHERE NOT EXISTS "
            "(SELECT 1 FROM image i WHERE i.dataset_id = :d AND i.external_id = s.k) ORDER BY s.line LIMIT 1",
            d=self.dataset_id,
        ).first()
        if missing is not None:
            raise LabelFileError(
                path,
                int(missing[0]),
                f"image {quote(missing[1])} is neither in the label file nor in the image folder",
                "remove the row or add the image",
            )
        done = self._sql(
            "UPDATE image SET split = s.split FROM stage_split s "
            "WHERE image.dataset_id = :d AND image.external_id = s.k AND image.split <> s.split",
            d=self.dataset_id,
        ).rowcount
        self._drop("stage_split")
        return int(done or 0)

    # ----------------------------------------------------------------- validate and merge

    def finish(self) -> ImportReport:
        """Validate the staged rows as a set and merge them into the store.

        Raises:
            LabelFileError: the first bad line of the file (nothing is written; the caller's
                transaction must roll back, which :meth:`app.store.Store.write` does).
        """
        try:
            if not self._sqlite:
                self._build_cells_pg()
            self._check_conflicts()
            if self._error is not None:
                raise LabelFileError(self.file, self._error.line, self._error.problem, self._error.fix)
            n_cells, added, changed = self._merge()
            for name in ("stage_cell", "stage_row", "stage_key", "stage_change", "stage_image"):
                self._drop(name)  # on failure the caller's rollback drops them
        finally:
            self.close()
        return ImportReport(
            dataset=self.dataset,
            file=self.file,
            rows_read=self.rows_read,
            labels_added=added,
            labels_changed=changed,
            labels_unchanged=n_cells - added - changed,
            images_registered=self.images_registered,
            classes_added=self.classes_added,
            seconds=time.perf_counter() - self.t0,
            duplicate_rows=self.rows_read - n_cells,
            images_skipped=tuple(self.images_skipped),
        )

    def _build_cells_pg(self) -> None:
        """PostgreSQL: ``stage_cell`` from the copied rows — first value and line per cell, and
        in ``bad`` the first line contradicting it (= the later of the first 1 and first 0)."""
        conn = self.session.connection()
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

    def _check_conflicts(self) -> None:
        """A cell given as both 1 and 0 → an error on the first row contradicting its first value."""
        row = self._sql(
            "SELECT image_id, class_id, value, line, bad FROM stage_cell WHERE bad IS NOT NULL ORDER BY bad LIMIT 1"
        ).first()
        if row is None:
            return
        image = self._sql("SELECT external_id FROM image WHERE id = :i", i=row[0]).scalar_one()
        key = self._sql('SELECT "key" FROM label_class WHERE id = :c', c=row[1]).scalar_one()
        self.note_error(
            int(row[4]),
            f"image {quote(image)} class {quote(key)} is {1 - row[2]} here but {row[2]} on line {row[3]}",
            "keep one of the two rows",
        )

    def _merge(self) -> tuple[int, int, int]:
        """Insert new cells, update changed ones, log one event per change.

        Returns:
            (distinct cells in the file, labels added, labels changed).
        """
        p = {
            "d": self.dataset_id,
            "author": self.author,
            "source": IMPORT_SOURCE,
            "reason": f"import {self.file}",
            "now": self._now,
        }
        insert_label = (
            "INSERT INTO label (image_id, class_id, value, source, author, created_at, updated_at, version) "
        )
        insert_event = (
            'INSERT INTO label_event (dataset_id, image_id, class_id, "before", "after", author, source, '
            "reason, created_at) "
        )
        added = 0
        older = ""  # PostgreSQL: every cell takes the general path
        bound = self._new_images_above
        if bound is not None:  # cells of images registered by this import: all new, no look-ups
            added = int(
                self._sql(
                    f"{insert_label}SELECT image_id, class_id, value, :source, :author, :now, :now, 1 "
                    "FROM stage_cell WHERE image_id > :m",
                    m=bound,
                    **p,
                ).rowcount
                or 0
            )
            self._sql(
                f"{insert_event}SELECT :d, image_id, class_id, NULL, value, :author, :source, :reason, :now "
                "FROM stage_cell WHERE image_id > :m",
                m=bound,
                **p,
            )
            older = f" WHERE c.image_id <= {int(bound)}"
        n_older = int(self._sql(f"SELECT COUNT(*) FROM stage_cell c{older}").scalar_one())
        if n_older == 0:
            return added, added, 0
        tail = "" if self._sqlite else " ON COMMIT DROP"
        self.session.connection().exec_driver_sql(
            f"CREATE TEMP TABLE stage_change{tail} AS "
            'SELECT c.image_id, c.class_id, l.value AS "before", c.value AS "after" FROM stage_cell c '
            f"LEFT JOIN label l ON l.image_id = c.image_id AND l.class_id = c.class_id{older}"
            f"{' AND' if older else ' WHERE'} (l.value IS NULL OR l.value <> c.value)"
        )
        new = int(
            self._sql(
                f'{insert_label}SELECT image_id, class_id, "after", :source, :author, :now, :now, 1 '
                'FROM stage_change WHERE "before" IS NULL',
                **p,
            ).rowcount
            or 0
        )
        changed = int(
            self._sql(
                'UPDATE label SET value = ch."after", source = :source, author = :author, updated_at = :now, '
                "version = label.version + 1 FROM stage_change ch "
                'WHERE label.image_id = ch.image_id AND label.class_id = ch.class_id AND ch."before" IS NOT NULL',
                **p,
            ).rowcount
            or 0
        )
        self._sql(
            f'{insert_event}SELECT :d, image_id, class_id, "before", "after", :author, :source, :reason, :now '
            "FROM stage_change",
            **p,
        )
        return added + n_older, added + new, changed


__all__ = [
    "IMPORT_SOURCE",
    "UNSAFE_PATH",
    "VALUE_TEXT",
    "ImportReport",
    "LabelImport",
    "is_unsafe_path",
    "parse_values",
    "quote",
]
