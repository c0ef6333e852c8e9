"""The dataset's classes during one import: registration and key → id look-ups."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db.errors import LabelFileError
from db.io._keys import KeyTable
from db.io._text import ErrorText, NoteError, quote
from db.models import LabelClass


def unknown_class_default(key: str) -> tuple[str, str]:
    return f"class {quote(key)} is not in the dataset", "add it to the classes file or remove the row"


class ClassTable(KeyTable):
    """The classes of one dataset, kept in memory for one import.

    Args:
        from_labels: register unknown class keys (display name = key) instead of failing.
        session, dataset_id, unknown, note_error: as for :class:`~db.io._keys.KeyTable`.
    """

    def __init__(
        self,
        session: Session,
        dataset_id: int,
        *,
        from_labels: bool,
        unknown: ErrorText,
        note_error: NoteError,
    ) -> None:
        super().__init__(session, dataset_id, unknown=unknown, note_error=note_error)
        self.from_labels = from_labels
        self.added = 0  # classes registered so far
        self._load()

    def _load(self) -> None:
        rows = self.session.execute(
            select(LabelClass.key, LabelClass.id, LabelClass.position).where(
                LabelClass.dataset_id == self.dataset_id
            )
        ).all()
        self._keys = pd.Index([r[0] for r in rows], dtype=object)
        self._ids = np.array([r[1] for r in rows], dtype=np.int64)
        self._next_position = max((r[2] for r in rows), default=-1) + 1

    def add(self, path: str, rows: Sequence[tuple[int, str, str]]) -> int:
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
        return self._insert([(k, v[1]) for k, v in seen.items()])

    def _insert(self, rows: Sequence[tuple[str, str]]) -> int:
        existing = set(self._keys)
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
        self._load()
        self.added += len(new)
        return len(new)

    def ids_for(self, labels: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """Class ids for a chunk's keys, shape (n,) int64; -1 where unknown (reported)."""
        pos = self._keys.get_indexer(labels) if len(self._keys) else np.full(len(labels), -1)
        if (pos < 0).any() and self.from_labels:
            self._insert([(k, k) for k in pd.unique(labels[pos < 0]) if k])
            pos = self._keys.get_indexer(labels)
        return self._ids_at(pos, self._ids, labels, lines)


__all__ = ["ClassTable", "unknown_class_default"]
