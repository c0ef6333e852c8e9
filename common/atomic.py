"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Everything here writes to a temporary file next to the destination (same folder, so same file
system), named ``.<name>.<random>.part``, and only once that is complete and (by default) flushed
to disk moves it into place with ``os.replace``, then best-effort syncs the folder so the rename
itself survives a crash. If anything fails, in the caller's code or ours, the temporary file is
removed and the exception re-raised: the destination keeps its old content (or stays absent) and
nothing is left behind. A process killed outright (``SIGKILL``, power loss) can still leave a
``.part`` file, but never a half-written destination.

- :func:`atomic_path` — yields the temporary path, for writers that want a path (``ParquetWriter``).
- :func:`atomic_open` — yields an open file, for streaming writers (``csv.writer``, ``np.save``).
- :func:`atomic_write_bytes` / :func:`atomic_write_text` — the whole content at once.

The parent folder is created when missing. The new file gets the usual permissions of a newly
created file (``0o666`` less the umask), not those of the file it replaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_TEMP_SUFFIX = ".part"


def _create_temp(dest: Path) -> Path:
    """Create an empty, new file ``.<name>.<random>.part`` next to ``dest`` (mode 0o666 & ~umask)."""
    for _ in range(100):
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name next to {dest}")  # pragma: no cover


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Sync ``folder``'s entries (the rename) to disk; skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the data itself is synced
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    The temporary file exists (empty) when yielded, in ``path``'s folder; write it by path in
    the block and close it before the block ends. On a normal exit it is fsync'ed (if ``fsync``),
    moved onto ``path`` with ``os.replace``, and the folder is synced (best effort). On any
    exception, the caller's or ours, it is removed and the exception re-raised; ``path`` is
    untouched.

    Args:
        path: The destination file; its parent folder is created if missing.
        fsync: Flush the data to disk before the rename (durable across a crash). False suits
            caches that can be rebuilt: the replace is still atomic for other processes.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(dest)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(dest.parent)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", *, fsync: bool = True, **kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it replaces ``path`` atomically.

    Same guarantee as :func:`atomic_path`: readers of ``path`` see the old file or the whole new
    one, and on any exception in the block the temporary file is removed and nothing changes.

    Args:
        path: The destination file; its parent folder is created if missing.
        mode: A write mode: ``"w"``, ``"wt"`` or ``"wb"`` (``"+"`` allowed).
        fsync: As in :func:`atomic_path`.
        **kwargs: Passed to :func:`open` (``encoding``, ``newline``, ``errors``, ``buffering``).
    """
    if "w" not in mode or any(c in mode for c in "rax"):
        raise ValueError(f"atomic_open needs a write mode ('w', 'wt', 'wb'), got {mode!r}")
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_open(path, "wb", fsync=fsync) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    newline: str | None = None,
    fsync: bool = True,
) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns the path.

    ``newline`` as in :func:`open` (None: ``"\\n"`` becomes the platform's line end).
    """
    with atomic_open(path, "w", encoding=encoding, newline=newline, fsync=fsync) as handle:
        handle.write(text)
    return Path(path)


__all__ = ["atomic_open", "atomic_path", "atomic_write_bytes", "atomic_write_text"]
