"""suggestion counts per run, class and status, kept by triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The suggestion statuses, each a column of ``suggestion_count`` (the CHECK on suggestion.status).
STATUSES = ("pending", "accepted", "rejected", "skipped", "superseded")
COLUMNS = ", ".join(STATUSES)
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _per_status(row: str) -> list[str]:
    """One 0/1 term per status: 1 where ``row``'s status is that status."""
    return [f"CASE WHEN {row}.status = '{s}' THEN 1 ELSE 0 END" for s in STATUSES]


def _sqlite_triggers() -> list[str]:
    """Row triggers: SQLite has a single writer, so updating the counter row in place is safe."""
    plus = ", ".join(f"{s} = {s} + excluded.{s}" for s in STATUSES)
    change = ", ".join(f"{s} = {s} + (NEW.status = '{s}') - (OLD.status = '{s}')" for s in STATUSES)
    minus = ", ".join(f"{s} = {s} - (OLD.status = '{s}')" for s in STATUSES)
    return [
        f"""
        CREATE TRIGGER suggestion_count_insert AFTER INSERT ON suggestion
        BEGIN
            INSERT INTO suggestion_count (run_id, class_id, {COLUMNS})
            VALUES (NEW.run_id, NEW.class_id, {", ".join(_per_status("NEW"))})
            ON CONFLICT (run_id, class_id) DO UPDATE SET {plus};
        END
        """,
        f"""
        CREATE TRIGGER suggestion_count_update AFTER UPDATE OF status ON suggestion
        WHEN OLD.status IS NOT NEW.status
        BEGIN
            UPDATE suggestion_count SET {change}
            WHERE run_id = NEW.run_id AND class_id = NEW.class_id;
        END
        """,
        f"""
        CREATE TRIGGER suggestion_count_delete AFTER DELETE ON suggestion
        BEGIN
            UPDATE suggestion_count SET {minus}
            WHERE run_id = OLD.run_id AND class_id = OLD.class_id;
        END
        """,
    ]


def _pg_triggers() -> list[str]:
    """Statement triggers over transition tables: one aggregated write per statement, in key order.

    Rows are created by INSERTs only; status changes and deletes update rows that exist (a
    cascade may have removed the row of a deleted run or class first: then nothing is left to
    count).
    """
    sums = ", ".join(f"sum(CASE WHEN status = '{s}' THEN sign ELSE 0 END) AS {s}" for s in STATUSES)
    nonzero = " OR ".join(f"{s} <> 0" for s in STATUSES)
    plus = ", ".join(f"{s} = c.{s} + EXCLUDED.{s}" for s in STATUSES)
    add = ", ".join(f"{s} = c.{s} + d.{s}" for s in STATUSES)

    def delta(source: str) -> str:
        grouped = f"SELECT run_id, class_id, {sums} FROM ({source}) AS t GROUP BY run_id, class_id"
        return f"SELECT * FROM ({grouped}) AS g WHERE {nonzero} ORDER BY run_id, class_id"

    inserted = "SELECT run_id, class_id, status, 1 AS sign FROM new_rows"
    deleted = "SELECT run_id, class_id, status, -1 AS sign FROM old_rows"
    update_sql = (
        f"UPDATE suggestion_count AS c SET {add} FROM ({{delta}}) AS d "
        "WHERE c.run_id = d.run_id AND c.class_id = d.class_id"
    )
    functions = {
        "insert": (
            f"INSERT INTO suggestion_count AS c (run_id, class_id, {COLUMNS}) {delta(inserted)} "
            f"ON CONFLICT (run_id, class_id) DO UPDATE SET {plus}"
        ),
        "update": update_sql.format(delta=delta(f"{inserted} UNION ALL {deleted}")),
        "delete": update_sql.format(delta=delta(deleted)),
    }
    tables = {
        "insert": "NEW TABLE AS new_rows",
        "update": "NEW TABLE AS new_rows OLD TABLE AS old_rows",
        "delete": "OLD TABLE AS old_rows",
    }
    out = []
    for event, body in functions.items():
        out.append(
            f"""
            CREATE FUNCTION suggestion_count_{event}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {body};
                RETURN NULL;
            END
            $$
            """
        )
        out.append(
            f"""
            CREATE TRIGGER suggestion_count_{event} AFTER {event.upper()} ON suggestion
            REFERENCING {tables[event]} FOR EACH STATEMENT
            EXECUTE FUNCTION suggestion_count_{event}()
            """
        )
    return out


def upgrade() -> None:
    """Table suggestion_count, filled from the suggestions there are, and the triggers that keep it."""
    zero = sa.text("0")
    op.create_table(
        "suggestion_count",
        sa.Column("run_id", BIG, nullable=False),
        sa.Column("class_id", BIG, nullable=False),
        *(sa.Column(s, sa.BigInteger(), server_default=zero, nullable=False) for s in STATUSES),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["label_class.id"],
            name=op.f("fk_suggestion_count_class_id_label_class"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["model_run.id"],
            name=op.f("fk_suggestion_count_run_id_model_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "class_id", name=op.f("pk_suggestion_count")),
    )
    sums = ", ".join(f"sum({term})" for term in _per_status("s"))
    op.execute(
        f"INSERT INTO suggestion_count (run_id, class_id, {COLUMNS}) "
        f"SELECT s.run_id, s.class_id, {sums} FROM suggestion s GROUP BY s.run_id, s.class_id"
    )
    for ddl in _sqlite_triggers() if op.get_bind().dialect.name == "sqlite" else _pg_triggers():
        op.execute(ddl)


def downgrade() -> None:
    """Undo: drop the triggers (and their PostgreSQL functions), then the table."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    for event in ("insert", "update", "delete"):
        if sqlite:
            op.execute(f"DROP TRIGGER IF EXISTS suggestion_count_{event}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS suggestion_count_{event} ON suggestion")
            op.execute(f"DROP FUNCTION IF EXISTS suggestion_count_{event}()")
    op.drop_table("suggestion_count")
