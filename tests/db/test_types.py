"""Status and kind columns: VARCHAR in the database, enum members in Python (db.types.StrEnumType)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.schema import CreateTable

from db.labels import set_label
from db.models import Image, Job, JobStatus, Label, LabelSource, ModelRun, RunKind, RunStatus, Split
from db.runs import create_run
from db.types import StrEnumType
from tests.db.factory import make_small


def test_loaded_values_are_members_and_strings_still_compare(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        create_run(s, small.dataset_id, "target", {})  # a plain string binds
        set_label(s, image_id=small.image_ids[0], class_id=small.class_ids[0], value=1, author="a",
                  source=LabelSource.EDIT, reason="r")  # fmt: skip
        s.add(Job(kind="cycle"))
    with sm() as s:
        run = s.scalars(
            select(ModelRun).where(ModelRun.status == "running", ModelRun.kind == RunKind.TARGET)
        ).one()
        assert type(run.kind) is RunKind and type(run.status) is RunStatus
        assert run.status is RunStatus.RUNNING and run.status == "running" and f"{run.status}" == "running"
        assert s.scalars(select(Label.source)).one() is LabelSource.EDIT
        assert s.scalars(select(Image.split)).first() is Split.TRAIN
        assert s.scalars(select(Job.status)).one() is JobStatus.QUEUED


def test_a_value_outside_the_enum_is_refused_when_bound(sm: sessionmaker[Session]) -> None:
    with (
        sm() as s,
        pytest.raises(StatementError, match=r"'finished' is not a RunStatus \(one of running, succeeded"),
    ):
        s.execute(select(ModelRun).where(ModelRun.status == "finished"))


def test_an_unknown_stored_value_is_a_clear_error_on_load(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        s.execute(  # written behind the ORM's back (label.source has no CHECK constraint)
            text(
                "INSERT INTO label (image_id, class_id, value, source, author, created_at, updated_at, version) "
                "VALUES (:i, :c, 1, 'scanner', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
            ),
            {"i": small.image_ids[0], "c": small.class_ids[0]},
        )
    with sm() as s, pytest.raises(ValueError, match="stored value 'scanner' is not a LabelSource"):
        s.scalars(select(Label)).all()


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "pg"])
def test_the_ddl_is_the_plain_varchar_it_was(dialect: object) -> None:
    ddl = str(CreateTable(ModelRun.__table__).compile(dialect=dialect))  # type: ignore[arg-type]
    assert "kind VARCHAR(16) NOT NULL" in ddl and "status VARCHAR(16) NOT NULL" in ddl
    assert "CONSTRAINT ck_model_run_status CHECK (status IN ('running', 'succeeded', 'failed'))" in ddl
    assert repr(ModelRun.__table__.c.status.type) == "StrEnumType(RunStatus, 16)"
    assert StrEnumType(RunStatus, 16).process_bind_param(RunStatus.FAILED, None) == "failed"
