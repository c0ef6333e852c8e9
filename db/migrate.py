"""Schema migrations (Alembic) run from Python: ``labelmend init`` and every command's auto-upgrade."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import migrations

log = logging.getLogger(__name__)


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the ``migrations`` package (and at ``engine``'s URL)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package always ships at least one revision
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (default: the newest)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def ensure_schema(engine: Engine) -> None:
    """Upgrade to head when the database is behind (an empty database gets the whole schema)."""
    if current_revision(engine) != head_revision():
        log.info("upgrading database schema to %s", head_revision())
        upgrade(engine)


__all__ = ["alembic_config", "current_revision", "ensure_schema", "head_revision", "upgrade"]
