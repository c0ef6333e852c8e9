"""Review decisions: the one path the app and CLI share (claim, decide, undo, conflicts)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.errors import ConflictError
from db.labels import get_cell, set_label
from db.models import LabelEvent, Suggestion
from db.review import Decision, claim_class_page, claim_next, claim_one, decide, release_one, undo
from tests.db.factory import add_run_with_suggestions, make_small


def _events(s: Session) -> list[LabelEvent]:
    return list(s.scalars(select(LabelEvent).order_by(LabelEvent.id)))


def test_accept_reject_skip_write_labels_and_audit(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 0), (1, 1), (2, 2)])
    decided = {}
    with sm.begin() as s:
        for d in (Decision.ACCEPT, Decision.REJECT, Decision.SKIP):
            sugg = claim_next(s, small.dataset_id, "ann")
            assert sugg is not None
            decide(s, sugg.id, d, "ann")
            decided[d] = (sugg.image_id, sugg.class_id)
    with sm() as s:
        assert get_cell(s, *decided[Decision.ACCEPT]).value == 1
        assert get_cell(s, *decided[Decision.REJECT]).value == 0
        assert get_cell(s, *decided[Decision.SKIP]).value is None
        events = _events(s)
        assert [(e.before, e.after, e.author, e.source) for e in events] == [
            (None, 1, "ann", "review"),
            (None, 0, "ann", "review"),
        ]
        assert events[0].reason.startswith("accepted suggestion")
        statuses = sorted(s.scalars(select(Suggestion.status)))
        assert statuses == ["accepted", "rejected", "skipped"]


def test_two_annotators_never_hold_the_same_suggestion(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 0), (1, 1)])
    with sm.begin() as s:
        a = claim_next(s, small.dataset_id, "alice")
    with sm.begin() as s:
        b = claim_next(s, small.dataset_id, "bob")
    with sm.begin() as s:
        c = claim_next(s, small.dataset_id, "carol")
    assert a is not None and b is not None and a.id != b.id
    assert c is None
    with pytest.raises(ConflictError, match="being reviewed by alice"), sm.begin() as s:
        decide(s, a.id, "accept", "bob")
    with sm.begin() as s:
        decide(s, a.id, "accept", "alice")
    with pytest.raises(ConflictError, match="already accepted by alice"), sm.begin() as s:
        decide(s, a.id, "reject", "alice")
    with sm() as s:
        assert s.scalar(select(func.count()).select_from(LabelEvent)) == 1


def test_undo_restores_cell_and_requeues(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(3, 1)])
    with sm.begin() as s:
        sugg = claim_next(s, small.dataset_id, "ann")
        assert sugg is not None
        decide(s, sugg.id, "reject", "ann")
    with sm.begin() as s:
        undo(s, sugg.id, "ann")
    with sm() as s:
        assert get_cell(s, small.image_ids[3], small.class_ids[1]).value is None
        assert s.get(Suggestion, sugg.id).status == "pending"  # type: ignore[union-attr]
        assert [(e.before, e.after) for e in _events(s)] == [(None, 0), (0, None)]
    with sm.begin() as s:
        again = claim_next(s, small.dataset_id, "ann")
        assert again is not None and again.id == sugg.id


@pytest.mark.parametrize("decision", ["accept", "reject", "skip"])
def test_label_set_meanwhile_supersedes_the_suggestion(sm: sessionmaker[Session], decision: str) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 0)])
    with sm.begin() as s:
        sugg = claim_next(s, small.dataset_id, "ann")
        assert sugg is not None
    cell = {"image_id": small.image_ids[0], "class_id": small.class_ids[0]}
    with sm.begin() as s:  # e.g. on the Image page, while the suggestion is on ann's screen
        set_label(s, **cell, value=0, author="editor", source="edit", reason="image page", expected_version=0)
    message = (
        f"image {cell['image_id']}, class {cell['class_id']} was labelled negative meanwhile by editor "
        f"\\(suggestion {sugg.id} superseded\\); reload"
    )
    with pytest.raises(ConflictError, match=message), sm.begin() as s:
        decide(s, sugg.id, decision, "ann")  # the error leaves the unit of work: all rolled back
    with sm() as s:
        assert s.get(Suggestion, sugg.id).status == "pending"  # type: ignore[union-attr]
    # Caught inside the unit of work (as the app does): the superseded mark is committed.
    with sm.begin() as s, pytest.raises(ConflictError, match=message):
        decide(s, sugg.id, decision, "ann")
    with sm() as s:
        after = s.get(Suggestion, sugg.id)
        assert after is not None
        assert (after.status, after.reviewer, after.claimed_by) == ("superseded", None, None)
        assert (get_cell(s, **cell).value, get_cell(s, **cell).author) == (0, "editor")  # not overwritten
        assert [(e.author, e.after) for e in _events(s)] == [("editor", 0)]
    with sm.begin() as s:
        assert claim_next(s, small.dataset_id, "ann") is None  # the queue no longer offers it
    with pytest.raises(ConflictError, match="was superseded"), sm.begin() as s:
        decide(s, sugg.id, decision, "ann")


def test_same_label_meanwhile_also_supersedes(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(1, 2)])
        cell = {"image_id": small.image_ids[1], "class_id": small.class_ids[2]}
        set_label(s, **cell, value=1, author="importer", source="import", reason="import b.csv")
    with sm() as s:
        sid = s.scalars(select(Suggestion.id)).one()
    with sm.begin() as s, pytest.raises(ConflictError, match="labelled positive meanwhile by importer"):
        decide(s, sid, "accept", "ann")
    with sm() as s:
        assert s.get(Suggestion, sid).status == "superseded"  # type: ignore[union-attr]
        assert len(_events(s)) == 1  # only the import's


def test_a_lease_held_by_another_is_not_superseded(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 0)])
    with sm.begin() as s:
        held = claim_next(s, small.dataset_id, "alice")
        assert held is not None
        set_label(s, image_id=small.image_ids[0], class_id=small.class_ids[0], value=1, author="editor",
                  source="edit", reason="image page")  # fmt: skip
    with sm.begin() as s, pytest.raises(ConflictError, match="being reviewed by alice"):
        decide(s, held.id, "reject", "bob")
    with sm() as s:
        assert s.get(Suggestion, held.id).status == "pending"  # type: ignore[union-attr]


def test_claim_one_release_one_and_class_pages(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 1), (1, 1), (2, 1), (3, 1), (4, 0)])
    with sm.begin() as s:
        ann = claim_class_page(s, small.dataset_id, small.class_ids[1], "ann", limit=2)
    with sm.begin() as s:
        bob = claim_class_page(s, small.dataset_id, small.class_ids[1], "bob", limit=5)
    with sm() as s:
        by_score = list(
            s.scalars(
                select(Suggestion.id)
                .where(Suggestion.class_id == small.class_ids[1])
                .order_by(Suggestion.score.desc())
            )
        )
    assert ann == by_score[:2] and bob == by_score[2:]  # best first, never shared
    with sm.begin() as s:
        assert not claim_one(s, ann[0], "bob")
        assert not release_one(s, ann[0], "bob")
        assert release_one(s, ann[0], "ann")
        assert claim_one(s, ann[0], "bob")
        assert claim_one(s, ann[0], "bob")  # renewing one's own lease
    with sm.begin() as s:
        assert claim_one(s, ann[1], "ann", lease_s=-1.0)  # a lease that has already run out
    with sm.begin() as s:
        assert claim_one(s, ann[1], "carol")
        decide(s, ann[1], "accept", "carol")
    with sm.begin() as s:
        assert not claim_one(s, ann[1], "carol")  # decided: no longer pending
        assert not release_one(s, ann[1], "carol")
        assert claim_class_page(s, small.dataset_id, small.class_ids[1], "dave", limit=5) == []


def test_optimistic_concurrency_on_set_label(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
    cell = {"image_id": small.image_ids[0], "class_id": small.class_ids[0]}
    with sm.begin() as s:
        st = set_label(s, **cell, value=1, author="a", source="edit", reason="r", expected_version=0)
        assert st.version == 1
    with pytest.raises(ConflictError, match="changed meanwhile"), sm.begin() as s:
        set_label(s, **cell, value=0, author="b", source="edit", reason="r", expected_version=0)
    with sm.begin() as s:
        st = set_label(s, **cell, value=0, author="b", source="edit", reason="r", expected_version=1)
        assert st.version == 2
    with sm() as s:
        assert [(e.before, e.after, e.author) for e in _events(s)] == [(None, 1, "a"), (1, 0, "b")]


def test_new_run_skips_cells_decided_meanwhile(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 0), (1, 1)])
    with sm.begin() as s:
        first = claim_next(s, small.dataset_id, "ann")
        assert first is not None
        decide(s, first.id, "accept", "ann")
    with sm.begin() as s:
        add_run_with_suggestions(s, small, [(0, 0), (1, 1), (2, 2)])
    with sm() as s:
        pending = list(s.scalars(select(Suggestion).where(Suggestion.status == "pending")))
        assert {(p.image_id, p.class_id) for p in pending} == {
            (small.image_ids[1], small.class_ids[1]),
            (small.image_ids[2], small.class_ids[2]),
        }
        assert s.scalar(select(func.count()).where(Suggestion.status == "superseded")) == 1
