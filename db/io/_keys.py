"""What the class and image tables of an import share: mapping a file's keys to database ids."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from db.io._text import ErrorText, NoteError


class KeyTable:
    """Base of a per-import table that maps keys of one dataset's rows (class keys, image ids)
    to database ids.

    Args:
        session: an open write session; nothing is committed here.
        dataset_id: the dataset's id.
        unknown: ``key -> (problem, fix)`` wording of a key that is not found.
        note_error: where a bad row is reported.
    """

    def __init__(
        self, session: Session, dataset_id: int, *, unknown: ErrorText, note_error: NoteError
    ) -> None:
        self.session = session
        self.dataset_id = dataset_id
        self._unknown = unknown
        self._note_error = note_error

    def _ids_at(self, pos: np.ndarray, ids: np.ndarray, keys: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """``ids`` at positions ``pos`` (shape (n,), -1 = not found), reporting the first key not found.

        Returns:
            int64 ids, shape (n,); -1 where the key was not found.
        """
        if (pos < 0).any():
            i = int(np.flatnonzero(pos < 0)[0])
            problem, fix = self._unknown(str(keys[i]))
            self._note_error(int(lines[i]), problem, fix)
        return np.where(pos >= 0, ids[np.maximum(pos, 0)] if len(ids) else -1, -1)


__all__ = ["KeyTable"]
