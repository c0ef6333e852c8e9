"""Writing under ``LABELMEND_HOME`` (embedding cache, checkpoints): OS errors become one clear line.

A full disk, a file-size limit, a read-only mount or a ``LABELMEND_HOME`` that cannot be created
raise :class:`HomeError`, whose message says what failed, where, and what to do, e.g.::

    no space left on device: cannot write /data/lm/cache/embeddings/…/data.bin; free space on that
    disk or set LABELMEND_HOME to a folder on a disk with room
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# errno → (what happened, what to do)
_SPACE = "free space on that disk or set LABELMEND_HOME to a folder on a disk with room"
_ACCESS = "make it writable or set LABELMEND_HOME to a writable folder"
_REASONS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on device", _SPACE),
    errno.EDQUOT: ("disk quota exceeded", _SPACE),
    errno.EFBIG: ("file too large for the disk or the file-size limit (ulimit -f)", _SPACE),
    errno.EROFS: ("read-only file system", _ACCESS),
    errno.EACCES: ("permission denied", _ACCESS),
    errno.EPERM: ("operation not permitted", _ACCESS),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", _ACCESS),
    errno.EEXIST: ("a file is in the way of a folder", _ACCESS),
}


class HomeError(OSError):
    """``LABELMEND_HOME`` cannot be written; ``str()`` is one line (what, where, what to do).

    ``errno`` and ``filename`` are those of the original error (``filename`` may be a folder).
    """

    def __init__(self, message: str, code: int | None, path: str | None) -> None:
        super().__init__(message)
        self.errno = code  # type: ignore[assignment]
        self.filename = path
        self.message = message

    def __str__(self) -> str:
        return self.message


def home_error(err: OSError, home: Path) -> HomeError | None:
    """The :class:`HomeError` for ``err`` if it is a write problem of the disk; None otherwise."""
    if isinstance(err, HomeError):
        return err
    if err.errno not in _REASONS:
        return None
    what, fix = _REASONS[err.errno]
    where = str(err.filename) if err.filename else f"under LABELMEND_HOME {home}"
    return HomeError(f"{what}: cannot write {where}; {fix}", err.errno, str(err.filename or home))


@contextmanager
def writing_home(home: Path) -> Iterator[None]:
    """Turn disk-write ``OSError``s raised in the block into :class:`HomeError`; others pass through."""
    try:
        yield
    except OSError as err:
        clear = home_error(err, home)
        if clear is None or clear is err:
            raise
        raise clear from err


__all__ = ["HomeError", "home_error", "writing_home"]
