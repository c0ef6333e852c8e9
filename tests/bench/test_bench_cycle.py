"""`labelmend bench cycle` on a small generated store, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import app
from app.store import open_store
from db.models import ModelRun, Suggestion, SuggestionCount


def test_bench_cycle_prints_every_stage_and_stores_the_suggestions(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))  # the bench points it at its work folder
    args = ["bench", "cycle", "--images", "400", "--classes", "12", "--annotated", "4", "--top", "150"]
    result = CliRunner().invoke(
        app, [*args, "--epochs", "2", "--workdir", str(tmp_path / "w"), "--db", db_url]
    )
    assert result.exit_code == 0, result.output
    for stage in ("load", "features", "prior", "target", "evaluate", "suggest", "store", "total"):
        assert any(line.startswith(stage) for line in result.output.splitlines()), stage
    assert "150 suggestions stored" in result.output
    assert "calibration: matmul 2048³ float32" in result.output  # the yardstick the × column divides by
    store = open_store(db_url)
    with store.read() as s:
        assert [r.status for r in s.scalars(select(ModelRun))] == ["succeeded", "succeeded"]
        assert s.scalar(select(func.count()).select_from(Suggestion)) == 150
        assert s.scalar(select(func.sum(SuggestionCount.pending))) == 150
    store.dispose()
