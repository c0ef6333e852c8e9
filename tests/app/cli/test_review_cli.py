"""`labelmend suggestions` and `labelmend review` through the real CLI on a real store."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import app
from app.store import open_store
from db.labels import get_cell
from db.models import LabelEvent, Suggestion
from tests.db.factory import add_run_with_suggestions, make_small

runner = CliRunner()


@pytest.fixture
def seeded(db_url: str) -> tuple[str, object]:
    store = open_store(db_url)
    with store.write() as s:
        small = make_small(s, name="cli")
        add_run_with_suggestions(s, small, [(0, 0), (1, 1), (2, 2), (3, 3)])
    return db_url, small


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_suggestions_then_review_round_trip(seeded: tuple[str, object], tmp_path: Path) -> None:
    url, small = seeded
    out = tmp_path / "sugg.csv"
    res = runner.invoke(app, ["suggestions", "--dataset", "cli", "--out", str(out), "--db", url])
    assert res.exit_code == 0, res.output
    rows = _read(out)
    assert [r["Rank"] for r in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == ["ImageID", "LabelName", "Score", "Prior", "Rank"]
    assert [float(r["Score"]) for r in rows] == sorted((float(r["Score"]) for r in rows), reverse=True)

    decisions = tmp_path / "decisions.csv"
    with decisions.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ImageID", "LabelName", "Decision"])
        w.writerow([rows[0]["ImageID"], rows[0]["LabelName"], "accept"])
        w.writerow([rows[1]["ImageID"], rows[1]["LabelName"], "reject"])
        w.writerow([rows[2]["ImageID"], rows[2]["LabelName"], "skip"])
    res = runner.invoke(
        app, ["review", "--dataset", "cli", "--decisions", str(decisions), "--annotator", "dana", "--db", url]
    )
    assert res.exit_code == 0, res.output
    assert "3 decisions applied: 1 accepted, 1 rejected, 1 skipped" in res.output
    store = open_store(url)
    with store.read() as s:
        assert get_cell(s, small.image_ids[0], small.class_ids[0]).value == 1  # type: ignore[attr-defined]
        assert get_cell(s, small.image_ids[1], small.class_ids[1]).value == 0  # type: ignore[attr-defined]
        events = list(s.scalars(select(LabelEvent).order_by(LabelEvent.id)))
        assert [(e.after, e.author, e.source) for e in events] == [
            (1, "dana", "review"),
            (0, "dana", "review"),
        ]
        assert s.scalar(select(func.count()).where(Suggestion.status == "pending")) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("ImageID,LabelName\nimg000,/m/c0\n", "decisions.csv:1: missing column(s) Decision"),
        ("ImageID,LabelName,Decision\nimg000,/m/c0,maybe\n", "decisions.csv:2: decision 'maybe' is not one of"),
        ("ImageID,LabelName,Decision\nimg000,/m/c0,accept\nimg009,/m/c1,accept\n",
         "decisions.csv:3: no pending suggestion for image 'img009'"),
    ],
)  # fmt: skip
def test_bad_decisions_file_is_one_line_and_changes_nothing(
    seeded: tuple[str, object], tmp_path: Path, body: str, message: str
) -> None:
    url, _small = seeded
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(body)
    res = runner.invoke(
        app, ["review", "--dataset", "cli", "--decisions", str(decisions), "--annotator", "dana", "--db", url]
    )
    assert res.exit_code != 0
    err = str(res.exception) if res.exception else res.output
    assert message in err, err
    with open_store(url).read() as s:
        assert s.scalar(select(func.count()).select_from(LabelEvent)) == 0
        assert s.scalar(select(func.count()).where(Suggestion.status == "pending")) == 4


def test_console_entry_point_prints_one_line_error(seeded: tuple[str, object], tmp_path: Path) -> None:
    import subprocess
    import sys

    url, _small = seeded
    decisions = tmp_path / "decisions.csv"
    decisions.write_text("ImageID,LabelName,Decision\nimg000,/m/nope,accept\n")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "review", "--dataset", "cli", "--decisions", str(decisions),
         "--annotator", "dana", "--db", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: decisions.csv:2: no pending suggestion for image 'img000'")
