"""Review decisions: the one path the app and CLI share (claim, decide, undo, conflicts)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.errors import ConflictError
from db.labels import get_cell, set_label
from db.models import LabelEvent, Suggestion
from db.review import Decision, claim_next, decide, undo
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


def test_conflicting_label_meanwhile_is_a_clear_conflict(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        add_run_with_suggestions(s, small, [(0, 0)])
    with sm.begin() as s:
        sugg = claim_next(s, small.dataset_id, "ann")
        assert sugg is not None
    with sm.begin() as s:
        set_label(
            s,
            image_id=small.image_ids[0],
            class_id=small.class_ids[0],
            value=0,
            author="editor",
            source="edit",
            reason="image page",
            expected_version=0,
        )
    with pytest.raises(ConflictError, match="labelled negative by editor"), sm.begin() as s:
        decide(s, sugg.id, "accept", "ann")
    with sm() as s:
        assert s.get(Suggestion, sugg.id).status == "pending"  # type: ignore[union-attr]
        assert len(_events(s)) == 1


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
