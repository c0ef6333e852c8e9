"""Migrations: empty database to head, and an older database with data upgraded in place."""

from __future__ import annotations

from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from db.engine import make_engine, make_sessionmaker
from db.labels import set_label
from db.migrate import current_revision, ensure_schema, head_revision, upgrade
from db.models import Base, LabelEvent
from db.review import claim_next, decide, undo
from tests.db.factory import add_run_with_suggestions, make_small


def _fresh(db_url: str) -> str:
    """An empty database next to the fixture's migrated one."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return str(url.set(database=url.database.replace("store.db", "old.db")))  # type: ignore[union-attr]
    name = f"{url.database}_old"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def test_empty_database_upgrades_to_a_schema_matching_the_models(db_url: str) -> None:
    engine = make_engine(_fresh(db_url))
    assert current_revision(engine) is None
    ensure_schema(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    for table in Base.metadata.tables.values():
        have = {i["name"] for i in inspect(engine).get_indexes(table.name)}
        want = {i.name for i in table.indexes}
        assert want <= have, (table.name, want - have)
    engine.dispose()


def test_older_database_with_data_upgrades_in_place(db_url: str) -> None:
    engine = make_engine(_fresh(db_url))
    upgrade(engine, "0001")
    sm = make_sessionmaker(engine)
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 0), (1, 1)])
        set_label(s, image_id=small.image_ids[2], class_id=small.class_ids[2], value=1, author="old",
                  source="import", reason="import old.csv")  # fmt: skip
    with sm.begin() as s:
        sugg = claim_next(s, small.dataset_id, "ann")
        assert sugg is not None
        decide(s, sugg.id, "accept", "ann")
    ensure_schema(engine)  # what every command does on start
    assert current_revision(engine) == head_revision()
    assert "ix_label_event_suggestion_id" in {i["name"] for i in inspect(engine).get_indexes("label_event")}
    with Session(engine) as s:
        events = [(e.author, e.after) for e in s.scalars(select(LabelEvent).order_by(LabelEvent.id))]
        assert events == [("old", 1), ("ann", 1)]
    with sm.begin() as s:  # the upgraded store keeps working: undo uses the new index
        undo(s, sugg.id, "ann")
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(LabelEvent)) == 3
    engine.dispose()
