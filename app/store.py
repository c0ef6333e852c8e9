"""Opening the store from the app: one engine and session factories per URL, schema upgraded.

Sessions are opened only in app/: ``with store.write() as s:`` is one unit of work (commit on
success, rollback on error); ``with store.read() as s:`` never takes SQLite's write lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.engine import labelmend_home, make_engine, make_sessionmaker, resolve_url
from db.migrate import ensure_schema


@dataclass
class Store:
    """The engine and session factories for one database URL."""

    url: str
    engine: Engine
    writer: sessionmaker[Session]
    reader: sessionmaker[Session]

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        with self.writer.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.reader() as session:
            yield session

    @property
    def home(self) -> Path:
        return labelmend_home()

    def dispose(self) -> None:
        self.engine.dispose()


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """The store at ``url`` (``--db``/``LABELMEND_DB``/SQLite under ``LABELMEND_HOME``), migrated to head.

    Cached per URL for the process, so the app and CLI share one engine.
    """
    resolved = resolve_url(url)
    with _lock:
        store = _stores.get(resolved)
        if store is None:
            engine = make_engine(resolved)
            if migrate:
                ensure_schema(engine)
            store = Store(
                resolved, engine, make_sessionmaker(engine), make_sessionmaker(engine, readonly=True)
            )
            _stores[resolved] = store
        return store


def close_stores() -> None:
    with _lock:
        for store in _stores.values():
            store.dispose()
        _stores.clear()


__all__ = ["Store", "close_stores", "open_store"]
