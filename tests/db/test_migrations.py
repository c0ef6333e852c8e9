"""Migrations: empty database to head, and an older database with data upgraded in place."""

from __future__ import annotations

from pprint import pformat

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, case, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from db.engine import make_engine, make_sessionmaker
from db.labels import set_label
from db.migrate import alembic_config, current_revision, ensure_schema, head_revision, upgrade
from db.models import Base, LabelEvent, Suggestion, SuggestionCount
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


def test_suggestion_counts_are_backfilled_and_kept(db_url: str) -> None:
    engine = make_engine(_fresh(db_url))
    upgrade(engine, "0002")
    sm = make_sessionmaker(engine)
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 0), (1, 1)])
        add_run_with_suggestions(s, small, [(2, 2), (3, 2), (4, 3)])  # supersedes the first two
    with sm.begin() as s:
        sugg = claim_next(s, small.dataset_id, "ann")
        assert sugg is not None
        decide(s, sugg.id, "reject", "ann")
    ensure_schema(engine)
    want = {
        (run, cls): (pending, accepted, rejected, skipped, superseded)
        for run, cls, pending, accepted, rejected, skipped, superseded in _count_by_status(engine)
    }
    with Session(engine) as s:
        have = {
            (c.run_id, c.class_id): (c.pending, c.accepted, c.rejected, c.skipped, c.superseded)
            for c in s.scalars(select(SuggestionCount))
        }
    assert have == want and sum(v[0] for v in have.values()) == 2
    with sm.begin() as s:  # the triggers keep it from here on
        add_run_with_suggestions(s, small, [(5, 0)])
    with Session(engine) as s:
        assert s.scalar(select(func.sum(SuggestionCount.pending))) == 1
        assert s.scalar(select(func.sum(SuggestionCount.superseded))) == 4
    cfg = alembic_config(engine)
    with engine.begin() as conn:  # and the migration undoes cleanly
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert "suggestion_count" not in inspect(engine).get_table_names()
    with sm.begin() as s:
        add_run_with_suggestions(s, small, [(4, 1)])  # no trigger left behind
    engine.dispose()


def _count_by_status(engine: Engine) -> list[tuple[int, ...]]:
    """(run, class, pending, accepted, rejected, skipped, superseded) from the suggestions themselves."""
    statuses = ("pending", "accepted", "rejected", "skipped", "superseded")
    sums = [func.sum(case((Suggestion.status == st, 1), else_=0)) for st in statuses]
    with Session(engine) as s:
        rows = s.execute(
            select(Suggestion.run_id, Suggestion.class_id, *sums).group_by(
                Suggestion.run_id, Suggestion.class_id
            )
        ).all()
    return [tuple(int(v) for v in r) for r in rows]


#: Indexes on ``score DESC``: SQLite reflects their columns without the sort order, so Alembic
#: cannot compare them there; their whole CREATE INDEX is compared instead (PostgreSQL compares them).
_SQLITE_ORDERED_INDEXES = frozenset({"ix_suggestion_queue", "ix_suggestion_class_queue"})


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_migrations_and_models_have_no_difference(db_url: str) -> None:
    """A fresh database upgraded to head is what the models declare (Alembic's autogenerate)."""
    engine = make_engine(_fresh(db_url))
    ensure_schema(engine)
    sqlite = engine.dialect.name == "sqlite"

    def include(name: str | None, type_: str, parent: object) -> bool:
        if type_ == "table" and name == "alembic_version":
            return False
        return not (sqlite and type_ == "index" and name in _SQLITE_ORDERED_INDEXES)

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True, "include_name": include}
        )
        diff = compare_metadata(context, Base.metadata)
        if sqlite:
            stored = {
                name: sql
                for name, sql in conn.execute(
                    text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
                )
                if name in _SQLITE_ORDERED_INDEXES
            }
    engine.dispose()
    assert not diff, "migrations and models differ:\n" + pformat(diff, width=110)
    if sqlite:
        want = {
            i.name: str(CreateIndex(i).compile(dialect=engine.dialect)).strip()
            for i in Suggestion.__table__.indexes
            if i.name in _SQLITE_ORDERED_INDEXES
        }
        assert stored == want
