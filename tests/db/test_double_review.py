"""Double review: a share of decisions gets a blind second look, disagreements are adjudicated,
and the adjudicated value is the label (and the export's) with both decisions in the audit log."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.double_review import (
    adjudicate,
    chosen,
    claim_next_second,
    disagreement_count,
    disagreements,
    record_second,
    release_second,
    second_review_of,
    undo_second,
    waiting_count,
)
from db.errors import ConflictError
from db.io import export_labels
from db.labels import get_cell, set_label
from db.models import LabelEvent, SecondReview, Suggestion
from db.review import claim_next, decide, undo
from db.runs import create_run, finish_run, write_suggestions
from tests.db.factory import Small, add_run_with_suggestions, make_small


def _all_chosen(sm: sessionmaker[Session], cells: list[tuple[int, int]]) -> Small:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, cells)
    return small


def _first(
    sm: sessionmaker[Session], small: Small, decision: str, who: str = "ann", share: float = 1.0
) -> int:
    """``who`` claims and decides the next suggestion with ``share``; returns its id."""
    with sm.begin() as s:
        sugg = claim_next(s, small.dataset_id, who)
        assert sugg is not None
        decide(s, sugg.id, decision, who, second_review_share=share)
        return sugg.id


def test_choice_is_deterministic_nested_and_near_the_share() -> None:
    ids = np.arange(1, 20_001)
    at10 = np.array([chosen(int(i), 0.10) for i in ids])
    at5 = np.array([chosen(int(i), 0.05) for i in ids])
    assert abs(at10.mean() - 0.10) < 0.01 and abs(at5.mean() - 0.05) < 0.008  # ~4 and ~3 std errors
    assert not (at5 & ~at10).any()  # chosen at 5 % => chosen at 10 %
    assert [chosen(int(i), 0.10) for i in ids[:200]] == at10[:200].tolist()
    assert not any(chosen(int(i), 0.0) for i in ids[:500]) and all(chosen(int(i), 1.0) for i in ids[:500])
    with pytest.raises(ValueError, match="not a fraction in"):
        chosen(1, 1.5)


def test_share_selects_accepts_and_rejects_never_skips(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s, n_images=40, n_classes=5)
        run = create_run(s, small.dataset_id, "target", {})
        img, cls = np.divmod(np.arange(200), 5)
        write_suggestions(
            s, run.id,
            image_ids=np.array(small.image_ids)[img], class_ids=np.array(small.class_ids)[cls],
            scores=np.linspace(1, 0, 200), probs=np.linspace(1, 0, 200),
        )  # fmt: skip
        finish_run(s, run.id)
    decisions = ["accept", "reject", "skip"]
    made: dict[int, str] = {}
    with sm.begin() as s:
        for k in range(200):
            sugg = claim_next(s, small.dataset_id, "ann")
            assert sugg is not None
            made[sugg.id] = decisions[k % 3]
            decide(s, sugg.id, made[sugg.id], "ann", second_review_share=0.3)
    with sm() as s:
        rows = {r.suggestion_id: r for r in s.scalars(select(SecondReview))}
    want = {i for i, d in made.items() if d != "skip" and chosen(i, 0.3)}
    assert set(rows) == want and 20 < len(want) < 70
    for sid, row in rows.items():
        assert (row.first_reviewer, row.first_value, row.status) == (
            "ann",
            int(made[sid] == "accept"),
            "pending",
        )


def test_second_reviewer_is_never_the_first_and_agreement_keeps_the_label(sm: sessionmaker[Session]) -> None:
    small = _all_chosen(sm, [(0, 0), (1, 1)])
    sid = _first(sm, small, "accept", "ann")
    with sm.begin() as s:
        assert claim_next_second(s, small.dataset_id, "ann") is None  # never their own decision
        assert (
            waiting_count(s, small.dataset_id, "ann") == 0 and waiting_count(s, small.dataset_id, "bob") == 1
        )
        row = second_review_of(s, sid)
        assert row is not None
        with pytest.raises(ConflictError, match="ann made the first decision"):
            record_second(s, row.id, 1, "ann")
    with sm.begin() as s:
        look = claim_next_second(s, small.dataset_id, "bob")
        assert look is not None and look.suggestion_id == sid
        record_second(s, look.id, 1, "bob")
    with sm() as s:
        row = s.get(SecondReview, look.id)
        assert (row.status, row.second_reviewer, row.second_value) == ("agreed", "bob", 1)
        sugg = s.get(Suggestion, sid)
        cell = get_cell(s, sugg.image_id, sugg.class_id)
        assert (cell.value, cell.author, cell.source) == (1, "ann", "review")  # unchanged
        events = list(
            s.scalars(select(LabelEvent).where(LabelEvent.suggestion_id == sid).order_by(LabelEvent.id))
        )
        assert [(e.before, e.after, e.author) for e in events] == [(None, 1, "ann"), (1, 1, "bob")]
        assert events[1].reason == f"second review of suggestion {sid}: agree (accept)"
    with pytest.raises(ConflictError, match="reviewed a second time"), sm.begin() as s:
        undo(s, sid, "ann")  # the first decision is confirmed now


def test_concurrent_claims_never_double_assign(sm: sessionmaker[Session]) -> None:
    cells = [(i, j) for i in range(6) for j in range(4)]
    small = _all_chosen(sm, cells)
    with sm.begin() as s:
        for _ in cells:
            sugg = claim_next(s, small.dataset_id, "ann")
            assert sugg is not None
            decide(s, sugg.id, "reject", "ann", second_review_share=1.0)
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def take(name: str) -> None:
        mine: list[int] = []
        try:
            barrier.wait()
            while True:
                with sm.begin() as s:
                    look = claim_next_second(s, small.dataset_id, name, lease_s=60)
                    if look is None:
                        break
                    look_id = look.id
                with sm.begin() as s:
                    record_second(s, look_id, 0, name)
                mine.append(look_id)
        except BaseException as err:  # any error reaching a reviewer fails the test
            errors.append(err)
        got[name] = mine

    threads = [threading.Thread(target=take, args=(f"rev{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    taken = [i for ids in got.values() for i in ids]
    assert len(taken) == len(set(taken)) == len(cells)
    with sm() as s:
        assert s.scalar(select(func.count()).where(SecondReview.status == "agreed")) == len(cells)


def test_lease_pass_and_undo_of_a_second_decision(sm: sessionmaker[Session]) -> None:
    small = _all_chosen(sm, [(0, 0), (1, 1)])
    first = _first(sm, small, "accept")
    second = _first(sm, small, "reject")
    with sm.begin() as s:
        a = claim_next_second(s, small.dataset_id, "bob")
        b = claim_next_second(s, small.dataset_id, "carol")
        assert a is not None and b is not None and a.id != b.id
        assert claim_next_second(s, small.dataset_id, "dave") is None  # both leased
        with pytest.raises(ConflictError, match="being reviewed by bob"):
            record_second(s, a.id, 1, "carol")
        assert release_second(s, a.id, "bob")
        again = claim_next_second(s, small.dataset_id, "bob", exclude=(a.suggestion_id,))
        assert again is None  # passed over, and carol holds the other
    with sm.begin() as s:
        record_second(s, a.id, 0, "bob")  # an unleased look may be decided
        undo_second(s, a.id, "bob")
        row = s.get(SecondReview, a.id)
        assert (row.status, row.claimed_by, row.second_value) == ("pending", "bob", None)
        assert {first, second} == {a.suggestion_id, b.suggestion_id}


def test_undo_of_the_first_decision_drops_a_pending_look(sm: sessionmaker[Session]) -> None:
    small = _all_chosen(sm, [(0, 0)])
    sid = _first(sm, small, "accept")
    with sm.begin() as s:
        undo(s, sid, "ann")
        assert second_review_of(s, sid) is None
        decide(s, sid, "reject", "ann", second_review_share=1.0)
        row = second_review_of(s, sid)
        assert row is not None and row.first_value == 0


def _disagree(sm: sessionmaker[Session], small: Small, first: str) -> tuple[int, int]:
    sid = _first(sm, small, first, "ann")
    with sm.begin() as s:
        look = claim_next_second(s, small.dataset_id, "bob")
        assert look is not None and look.suggestion_id == sid
        record_second(s, look.id, 0 if first == "accept" else 1, "bob")
        return sid, look.id


@pytest.mark.parametrize(("first", "verdict"), [("accept", 0), ("accept", 1), ("reject", 1)])
def test_adjudication_writes_the_label_and_both_decisions(
    sm: sessionmaker[Session], tmp_path: Path, first: str, verdict: int
) -> None:
    small = _all_chosen(sm, [(0, 0), (1, 1)])
    sid, look_id = _disagree(sm, small, first)
    first_value = int(first == "accept")
    with sm() as s:
        assert disagreement_count(s, small.dataset_id) == 1
        (d,) = disagreements(s, small.dataset_id)
        assert (d.first_reviewer, d.first_value, d.second_reviewer, d.second_value, d.current) == (
            "ann", first_value, "bob", 1 - first_value, first_value,
        )  # fmt: skip
        sugg = s.get(Suggestion, sid)
        image_id, class_id = sugg.image_id, sugg.class_id
    with sm.begin() as s:
        adjudicate(s, look_id, verdict, "meg")
    with pytest.raises(ConflictError, match="not a disagreement now"), sm.begin() as s:
        adjudicate(s, look_id, 1 - verdict, "max")
    with sm() as s:
        assert disagreement_count(s, small.dataset_id) == 0
        row = s.get(SecondReview, look_id)
        assert (row.status, row.adjudicator, row.adjudicated_value) == ("adjudicated", "meg", verdict)
        cell = get_cell(s, image_id, class_id)
        assert (cell.value, cell.author, cell.source) == (verdict, "meg", "adjudication")
        events = list(
            s.scalars(select(LabelEvent).where(LabelEvent.suggestion_id == sid).order_by(LabelEvent.id))
        )
        assert [(e.author, e.before, e.after) for e in events] == [
            ("ann", None, first_value),
            ("bob", first_value, first_value),
            ("meg", first_value, verdict),
        ]
        words = {1: "accept", 0: "reject"}
        assert (
            f"first {words[first_value]} by ann, second {words[1 - first_value]} by bob" in events[2].reason
        )
        assert "disagree" in events[1].reason and f"first {words[first_value]} by ann" in events[1].reason
    with sm() as s:  # the export carries the adjudicated value and its provenance
        export_labels(s, dataset="small", fmt="csv", out=tmp_path / "out.csv")
        export_labels(s, dataset="small", fmt="json", out=tmp_path / "out.json")
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    ext = f"img{small.image_ids.index(image_id):03d}"
    key = f"/m/c{small.class_ids.index(class_id)}"
    (row,) = [r for r in rows if r["image"] == ext and r["label"] == key]
    assert (row["value"], row["source"], row["author"]) == (str(verdict), "adjudication", "meg")
    doc = json.loads((tmp_path / "out.json").read_text())
    (img,) = [i for i in doc["images"] if i["image"] == ext]
    assert key in (img["positives"] if verdict else img["negatives"])
    assert img["provenance"][key]["source"] == "adjudication" and img["provenance"][key]["author"] == "meg"


def test_adjudication_wins_over_an_edit_made_meanwhile(sm: sessionmaker[Session]) -> None:
    small = _all_chosen(sm, [(0, 0)])
    sid, look_id = _disagree(sm, small, "accept")
    with sm.begin() as s:
        sugg = s.get(Suggestion, sid)
        set_label(s, image_id=sugg.image_id, class_id=sugg.class_id, value=None, author="carol",
                  source="edit", reason="unsure")  # fmt: skip
    with sm.begin() as s:
        assert disagreements(s, small.dataset_id)[0].current is None
        adjudicate(s, look_id, 1, "meg")
        assert get_cell(s, sugg.image_id, sugg.class_id).value == 1


def test_bad_values_are_refused(sm: sessionmaker[Session]) -> None:
    small = _all_chosen(sm, [(0, 0)])
    with sm.begin() as s, pytest.raises(ValueError, match="not a fraction"):
        sugg = claim_next(s, small.dataset_id, "ann")
        assert sugg is not None
        decide(s, sugg.id, "accept", "ann", second_review_share=2.0)
    _, look_id = _disagree(sm, small, "accept")
    with sm.begin() as s:
        with pytest.raises(ValueError, match="must be 1 \\(present\\) or 0"):
            adjudicate(s, look_id, 2, "meg")
        with pytest.raises(ValueError, match="adjudicator name"):
            adjudicate(s, look_id, 1, "  ")
