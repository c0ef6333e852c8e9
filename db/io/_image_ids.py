"""The dataset's images during one import: registration, key → id look-ups and splits.

Image keys of a chunk are resolved with one indexed join per chunk against the staged distinct
keys (``stage_key``), so each distinct image costs one look-up, not each row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.bulk import create_temp_table, load_rows
from db.errors import LabelFileError
from db.io._keys import KeyTable
from db.io._sql import drop_temp, run_sql
from db.io._text import UNSAFE_PATH, ErrorText, NoteError, quote
from db.models import Split


def unknown_image_default(key: str) -> tuple[str, str]:
    return f"image {quote(key)} is not in the dataset", "register the image or remove the row"


class ImageTable(KeyTable):
    """The images of one dataset, as seen by one import.

    Args:
        split: split of images registered by this import (train / val / test).
        now: creation time of registered images.
        from_labels: when not None, image keys that are not in the dataset are registered, with
            path ``<key><from_labels>`` (e.g. ``".jpg"``); when None they are errors.
        match_paths: also resolve an image given as its path relative to the image root.
        session, dataset_id, unknown, note_error: as for :class:`~db.io._keys.KeyTable`.
    """

    def __init__(
        self,
        session: Session,
        dataset_id: int,
        *,
        split: str,
        now: dt.datetime,
        from_labels: str | None,
        match_paths: bool,
        unknown: ErrorText,
        note_error: NoteError,
    ) -> None:
        super().__init__(session, dataset_id, unknown=unknown, note_error=note_error)
        self.split = split
        self.now = now
        self.from_labels = from_labels
        self.match_paths = match_paths
        self.registered = 0  # images registered so far
        self._paths_staged = False
        create_temp_table(session, "stage_key", [("ord", "BIGINT"), ("k", "TEXT")])

    def register(self, records: Iterable[tuple[str, str, int | None, int | None]], source: str) -> int:
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
        dup = run_sql(
            self.session,
            "SELECT ext_id, MIN(path), MAX(path) FROM stage_image GROUP BY ext_id HAVING COUNT(*) > 1 "
            "ORDER BY MIN(ord) LIMIT 1",
        ).first()
        if dup is not None:
            raise LabelFileError(
                source,
                None,
                f"two image files share the id {quote(dup[0])}: {quote(dup[1])} and {quote(dup[2])}",
                "keep one of them",
            )
        done = int(
            run_sql(
                self.session,
                """
                INSERT INTO image (dataset_id, external_id, path, width, height, split, created_at)
                SELECT :d, s.ext_id, s.path, s.width, s.height, :split, :now FROM stage_image s
                WHERE NOT EXISTS (SELECT 1 FROM image i WHERE i.dataset_id = :d AND i.external_id = s.ext_id)
                ORDER BY s.ord
                """,
                d=self.dataset_id,
                split=self.split,
                now=self.now,
            ).rowcount
            or 0
        )
        if self.match_paths:
            self.session.connection().exec_driver_sql("CREATE INDEX stage_image_path ON stage_image (path)")
            self._paths_staged = True
        else:
            drop_temp(self.session, "stage_image")
        self.registered += done
        return done

    def _stage_keys(self, keys: np.ndarray) -> None:
        self.session.execute(text("DELETE FROM stage_key"))
        load_rows(self.session, "stage_key", ["ord", "k"], enumerate(keys.tolist()))

    def _lookup(self, *, by_path: bool = False) -> list[tuple[str, int]]:
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
        return [(r[0], r[1]) for r in run_sql(self.session, sql, d=self.dataset_id)]

    def _register_from_labels(self) -> list[tuple[str, int]]:
        """Register every staged key as a new image; returns (key, new image id)."""
        rows = run_sql(
            self.session,
            """
            INSERT INTO image (dataset_id, external_id, path, split, created_at)
            SELECT :d, s.k, s.k || :suffix, :split, :now FROM stage_key s ORDER BY s.ord
            RETURNING external_id, id
            """,
            d=self.dataset_id,
            suffix=self.from_labels,
            split=self.split,
            now=self.now,
        ).all()
        self.registered += len(rows)
        return [(r[0], r[1]) for r in rows]

    def ids_for(self, images: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """Database image ids for a chunk's image keys, shape (n,) int64; -1 where unresolved."""
        uniq = pd.unique(images)
        self._stage_keys(uniq)
        found = self._lookup()
        if len(found) < len(uniq):
            known = pd.Index([k for k, _ in found], dtype=object)
            missing = uniq[known.get_indexer(uniq) < 0] if len(known) else uniq
            if self.from_labels is not None:
                unsafe = (
                    pd.Series(missing, dtype=object)
                    .str.contains(UNSAFE_PATH, regex=True)
                    .to_numpy(dtype=bool)
                )
                if unsafe.any():
                    i = int(
                        np.flatnonzero(pd.Index(missing[unsafe], dtype=object).get_indexer(images) >= 0)[0]
                    )
                    self._note_error(
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
                found += self._lookup(by_path=True)
        index = pd.Index([k for k, _ in found], dtype=object)
        ids = np.array([v for _, v in found], dtype=np.int64)
        pos = index.get_indexer(images) if len(index) else np.full(len(images), -1)
        return self._ids_at(pos, ids, images, lines)

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
        missing = run_sql(
            self.session,
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
        done = run_sql(
            self.session,
            "UPDATE image SET split = s.split FROM stage_split s "
            "WHERE image.dataset_id = :d AND image.external_id = s.k AND image.split <> s.split",
            d=self.dataset_id,
        ).rowcount
        drop_temp(self.session, "stage_split")
        return int(done or 0)


__all__ = ["ImageTable", "unknown_image_default"]
