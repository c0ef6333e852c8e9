"""Engines and sessions for the label store.

Configuration: an explicit URL, else ``LABELMEND_DB``, else a SQLite file
``$LABELMEND_HOME/labelmend.db`` (``LABELMEND_HOME`` defaults to ``./.labelmend``).

SQLite runs with WAL, foreign keys on, ``synchronous=NORMAL`` and a busy timeout
(``LABELMEND_SQLITE_BUSY_MS``, default 60000 ms). Write transactions start with
``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing with
"database is locked" when one upgrades a read lock; read-only sessions
(:func:`make_sessionmaker` with ``readonly=True``) use a plain deferred ``BEGIN`` and never block.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_READONLY = "labelmend_readonly"


def labelmend_home() -> Path:
    """The folder for the default database, caches and artifacts (``LABELMEND_HOME``)."""
    return Path(os.environ.get("LABELMEND_HOME", ".labelmend")).expanduser()


def resolve_url(url: str | None = None) -> str:
    """The database URL: ``url``, else ``LABELMEND_DB``, else SQLite under ``LABELMEND_HOME``."""
    if url:
        return url
    env = os.environ.get("LABELMEND_DB")
    if env:
        return env
    home = labelmend_home()
    return f"sqlite:///{(home / 'labelmend.db').resolve()}"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (see :func:`resolve_url`), configured for concurrent use.

    A SQLite file's parent folder is created if missing.
    """
    resolved = make_url(resolve_url(url))
    if resolved.get_backend_name() == "sqlite":
        return _sqlite_engine(resolved, **kwargs)
    if resolved.get_backend_name() == "postgresql" and resolved.get_driver_name() in ("", "psycopg2"):
        resolved = resolved.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(resolved, **kwargs)


def _sqlite_engine(url: Any, **kwargs: Any) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    busy_ms = int(os.environ.get("LABELMEND_SQLITE_BUSY_MS", "60000"))
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", busy_ms / 1000)
    connect_args.setdefault("check_same_thread", False)
    # Let SQLAlchemy, not the driver, emit BEGIN (see the "begin" listener below).
    connect_args["isolation_level"] = None
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    """A session factory; ``readonly=True`` sessions never take SQLite's write lock."""
    bind = engine.execution_options(**{_READONLY: True}) if readonly else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


__all__ = ["is_sqlite", "labelmend_home", "make_engine", "make_sessionmaker", "resolve_url"]
