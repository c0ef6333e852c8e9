"""Per-class label counts after imports and reviews; trigger-kept suggestion counts against the truth."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.bulk import load_rows
from db.datasets import get_dataset
from db.errors import ConflictError
from db.io import import_openimages, write_class_counts_csv
from db.labels import set_label
from db.models import Image, LabelClass, ModelRun, Suggestion, SuggestionCount
from db.review import claim_next, decide, release_claims, undo
from db.runs import create_run
from db.stats import class_counts, label_version, n_images, n_labels, run_suggestion_counts, suggestion_counts
from tests.db.factory import add_run_with_suggestions, make_small
from tests.db.test_import_openimages import CLASSES, HEADER, make_images, write


def test_counts_follow_imports_and_reviews(sm: sessionmaker[Session], tmp_path: Path) -> None:
    folder = make_images(tmp_path / "img", ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])
    labels = write(
        tmp_path / "l.csv",
        HEADER
        + "a,v,/m/c0,1\nb,v,/m/c0,1\nc,v,/m/c0,0\na,v,/m/c1,0\nb,v,/m/c1,0\nc,v,/m/c1,0\nd,v,/m/c1,1\n",
    )
    with sm.begin() as s:
        import_openimages(
            s, labels=labels, classes=write(tmp_path / "c.csv", CLASSES), images=folder, dataset="st"
        )
    with sm() as s:
        ds = get_dataset(s, "st")
        got = [(c.key, c.display_name, c.positive, c.negative, c.unknown) for c in class_counts(s, ds.id)]
    assert n_images_of(sm, "st") == 5
    assert got == [("/m/c0", "Cat", 2, 1, 2), ("/m/c1", "Dog", 1, 3, 1), ("/m/c2", "Hat, top", 0, 0, 5)]
    with sm.begin() as s:
        e = s.scalar(select(Image.id).where(Image.external_id == "e"))
        c2 = s.scalar(select(LabelClass.id).where(LabelClass.key == "/m/c2"))
        assert e is not None and c2 is not None
        set_label(s, image_id=e, class_id=c2, value=1, author="ann", source="review", reason="accepted")
    with sm() as s:
        counts = class_counts(s, get_dataset(s, "st").id)
    assert (counts[2].positive, counts[2].negative, counts[2].unknown) == (1, 0, 4)
    out = tmp_path / "stats.csv"
    write_class_counts_csv(counts, out)
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["key", "display_name", "position", "positive", "negative", "unknown"],
        ["/m/c0", "Cat", "0", "2", "1", "2"],
        ["/m/c1", "Dog", "1", "1", "3", "1"],
        ["/m/c2", "Hat, top", "2", "1", "0", "4"],
    ]


def n_images_of(sm: sessionmaker[Session], name: str) -> int:
    with sm() as s:
        return n_images(s, get_dataset(s, name).id)


def _truth(s: Session, key: Any) -> dict[int, dict[str, int]]:
    """{key value: {status: count}} by a GROUP BY over the suggestions themselves."""
    out: dict[int, dict[str, int]] = {}
    for k, status, n in s.execute(
        select(key, Suggestion.status, func.count()).group_by(key, Suggestion.status)
    ):
        out.setdefault(k, {})[status] = n
    return out


def _check_counts(sm: sessionmaker[Session], dataset_id: int) -> dict[int, dict[str, int]]:
    """The trigger-kept counts equal the suggestions' own GROUP BY, per class and per run."""
    with sm() as s:
        by_class = suggestion_counts(s, dataset_id)
        assert by_class == _truth(s, Suggestion.class_id)
        runs = list(s.scalars(select(ModelRun.id)))
        assert run_suggestion_counts(s, runs) == _truth(s, Suggestion.run_id)
    return by_class


def test_suggestion_counts_follow_every_kind_of_write(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s, n_images=6, n_classes=4)
        first = add_run_with_suggestions(s, small, [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 3)])
    assert _check_counts(sm, small.dataset_id) == {
        small.class_ids[0]: {"pending": 2},
        small.class_ids[1]: {"pending": 2},
        small.class_ids[2]: {"pending": 1},
        small.class_ids[3]: {"pending": 1},
    }
    decided = []
    with sm.begin() as s:  # claims change no status; decisions do
        for d in ("accept", "reject", "skip"):
            sugg = claim_next(s, small.dataset_id, "ann")
            assert sugg is not None
            decide(s, sugg.id, d, "ann")
            decided.append(sugg.id)
        claim_next(s, small.dataset_id, "bob")
        release_claims(s, "bob")
    _check_counts(sm, small.dataset_id)
    with sm.begin() as s:
        undo(s, decided[1], "ann")
    with sm.begin() as s:  # a cell labelled meanwhile: its suggestion is superseded
        sugg = claim_next(s, small.dataset_id, "ann")
        assert sugg is not None
        set_label(
            s, image_id=sugg.image_id, class_id=sugg.class_id, value=1, author="ed", source="edit", reason="r"
        )
        with pytest.raises(ConflictError):
            decide(s, sugg.id, "reject", "ann")
    counts = _check_counts(sm, small.dataset_id)
    assert sum(c.get("superseded", 0) for c in counts.values()) == 1
    with sm.begin() as s:  # a new run supersedes every pending suggestion of the old one
        second = add_run_with_suggestions(s, small, [(0, 3), (1, 3)])
    _check_counts(sm, small.dataset_id)
    with sm.begin() as s:  # a bulk load (COPY on PostgreSQL), as the benchmark seeds
        bulk = create_run(s, small.dataset_id, "target", {})
        load_rows(
            s,
            "suggestion",
            ["run_id", "dataset_id", "image_id", "class_id", "score", "prob", "rank", "status", "version"],
            [(bulk.id, small.dataset_id, small.image_ids[i], small.class_ids[2], 0.5, 0.5, i + 1, "pending", 1)
             for i in range(3)],
        )  # fmt: skip
    _check_counts(sm, small.dataset_id)
    with sm.begin() as s:  # cascades: an image, then a whole run, go with their suggestions
        s.execute(delete(Image).where(Image.id == small.image_ids[0]))
    _check_counts(sm, small.dataset_id)
    with sm.begin() as s:
        s.execute(delete(ModelRun).where(ModelRun.id == first.id))
    _check_counts(sm, small.dataset_id)
    with sm() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(SuggestionCount).where(SuggestionCount.run_id == first.id)
            )
            == 0
        )
        assert run_suggestion_counts(s, [second.id, bulk.id]) == {
            second.id: {"pending": 1},  # image 0's suggestion went with the image
            bulk.id: {"pending": 2},
        }


def test_label_version_moves_with_labels_and_images(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
    with sm() as s:
        v0 = label_version(s, small.dataset_id)
    with sm.begin() as s:
        set_label(s, image_id=small.image_ids[0], class_id=small.class_ids[0], value=1, author="a",
                  source="edit", reason="r")  # fmt: skip
    with sm() as s:
        v1 = label_version(s, small.dataset_id)
    with sm.begin() as s:
        s.add(Image(dataset_id=small.dataset_id, external_id="late", path="late.jpg"))
    with sm() as s:
        v2 = label_version(s, small.dataset_id)
        assert n_labels(s, small.dataset_id) == 1
    assert v0[0] < v1[0] and v1[1] == v0[1]
    assert v2[0] == v1[0] and v2[1] > v1[1]
