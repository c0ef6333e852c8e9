"""`labelmend cycle` and `labelmend predict` (app/commands/cycle.py) through the real CLI on a real store."""

from __future__ import annotations

import csv
import getpass
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app
from app.store import Store, open_store
from db import jobs
from db.datasets import get_dataset
from db.models import Image, LabelClass, Suggestion
from tests.app.seed import Seeded, seed_store

runner = CliRunner()
TINY = ["--backbone", "resnet10t", "--pretrained", "none", "--image-size", "40", "--epochs", "5",
        "--batch-size", "32", "--workers", "0", "--device", "cpu"]  # fmt: skip


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    return open_store(db_url)


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_cycle_then_predict_scores_every_class_of_every_readable_image(store: Store, tmp_path: Path) -> None:
    seeded: Seeded = seed_store(store, tmp_path / "data", n_images=80)
    res = runner.invoke(
        app,
        ["cycle", "--dataset", "toy", *TINY, "--top-suggestions", "400", "--loss", "csl", "--db", store.url],
    )
    assert res.exit_code == 0, res.output
    assert "cycle done: target run" in res.output and "400 suggestions stored" in res.output

    with store.read() as s:
        image_root = Path(get_dataset(s, "toy").image_root)
        stored = {
            (ext, key): prob
            for ext, key, prob in s.execute(
                select(Image.external_id, LabelClass.key, Suggestion.prob)
                .join(Image, Image.id == Suggestion.image_id)
                .join(LabelClass, LabelClass.id == Suggestion.class_id)
            )
        }
    folder = tmp_path / "new"
    folder.mkdir()
    picked = seeded.image_ids[:6]
    for image_id in picked:
        shutil.copy(image_root / f"{image_id}.jpg", folder / f"{image_id}.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "scores.csv"

    res = runner.invoke(
        app, ["predict", "--dataset", "toy", "--images", str(folder), "--out", str(out), "--device", "cpu",
              "--db", store.url]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    n_classes = len(seeded.class_keys)
    assert f"{6 * n_classes} scores for 6 images written to {out}" in res.output
    assert "1 unreadable images skipped: broken" in res.output
    rows = _read(out)
    assert rows[0] == ["ImageID", "LabelName", "Score"]
    assert sorted((r[0], r[1]) for r in rows[1:]) == sorted((i, k) for i in picked for k in seeded.class_keys)
    scores = {(r[0], r[1]): float(r[2]) for r in rows[1:]}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # The same head on the same images: the scores of suggested cells are the cycle's probabilities.
    common = [cell for cell in scores if cell in stored]
    assert common, "no suggested cell among the picked images"
    for cell in common:
        assert scores[cell] == pytest.approx(stored[cell], abs=1e-4)


def test_predict_without_a_finished_run_says_what_to_do(store: Store, tmp_path: Path) -> None:
    seed_store(store, tmp_path / "data", n_images=40)
    res = runner.invoke(app, ["predict", "-d", "toy", "--images", str(tmp_path), "--out", str(tmp_path / "o.csv"),
                              "--db", store.url])  # fmt: skip
    assert res.exit_code != 0
    assert "has no finished target run; run `labelmend cycle` first" in str(res.exception)


@pytest.mark.parametrize("spelling", [["--prior", "file:{path}"], ["--prior-file", "{path}"],
                                      ["--prior", "file", "--prior-file", "{path}"]])  # fmt: skip
def test_prior_file_spellings_queue_the_same_config(
    store: Store, tmp_path: Path, spelling: list[str]
) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=40)
    path = tmp_path / "prior.csv"
    args = [a.format(path=path) for a in spelling]
    res = runner.invoke(app, ["cycle", "-d", "toy", *args, "--pretrained", str(tmp_path / "w.pt"), "--queue",
                              "--db", store.url])  # fmt: skip
    assert res.exit_code == 0, res.output
    with store.read() as s:
        (job,) = jobs.recent_jobs(s, dataset_id=seeded.dataset_id)
    assert (job.payload["prior"], job.payload["prior_file"]) == ("file", str(path))
    assert (job.payload["pretrained"], job.payload["pretrained_file"]) == ("file", str(tmp_path / "w.pt"))
    assert (job.payload["loss"], job.payload["mode"]) == ("csl", "head")
    assert job.created_by == getpass.getuser()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prior", "naive", "--prior-file", "p.csv"], "prior_file 'p.csv' is given but prior is 'naive'"),
        (["--prior", "file:a.csv", "--prior-file", "b.csv"], "both name a file; give one"),
        (["--prior", "file"], "prior is 'file' but no prior_file is given"),
        (["--prior", "mean"], "unknown prior 'mean'; valid: model, naive, file"),
    ],
)
def test_bad_prior_options_fail_before_any_work(store: Store, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["cycle", "-d", "toy", *args, "--db", store.url])
    assert isinstance(res.exception, ValueError) and message in str(res.exception)


def test_choices_come_from_the_enums() -> None:
    res = runner.invoke(app, ["cycle", "-d", "toy", "--loss", "focal"])
    assert res.exit_code == 2 and "focal" in res.output
    assert "ignore" in res.output and "ll-r" in res.output  # every LossName value offered
    res = runner.invoke(app, ["cycle", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for text in (
        "--prior-file",
        "model, naive, file",
        "'hub', 'packaged', 'none'",
        "head",
        "finetune",
    ):
        assert text in res.output, text
