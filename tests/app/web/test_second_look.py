"""AppTest: the Review page's second pair of eyes — a second look is shown first to another
annotator, exactly like a suggestion and with no hint of the first decision; never to the first
reviewer; not at all in single-person mode."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.store import Store
from app.web.components import md_escape
from db.labels import get_cell
from db.models import LabelEvent, Role, SecondReview, Suggestion
from tests.app.web.conftest import AppFactory
from tests.app.web.seed import Seeded
from tests.app.web.signin import add_accounts, ok, signed_in, texts


def _leased(store: Store, name: str) -> Suggestion:
    with store.read() as s:
        return s.scalars(
            select(Suggestion).where(Suggestion.claimed_by == name, Suggestion.status == "pending")
        ).one()


def _card(at: object, sid: int) -> bool:
    return any(c.value.endswith(f"suggestion {sid}") for c in at.caption)  # type: ignore[attr-defined]


@pytest.fixture
def team(seeded: tuple[Store, Seeded], monkeypatch: pytest.MonkeyPatch) -> tuple[Store, Seeded]:
    monkeypatch.setenv("LABELMEND_DOUBLE_REVIEW_SHARE", "1")  # every accept / reject gets a second look
    store, sd = seeded
    add_accounts(store, alice=Role.ANNOTATOR, bob=Role.ANNOTATOR)
    return store, sd


def test_second_annotator_sees_the_look_first_and_blind(team: tuple[Store, Seeded]) -> None:
    store, sd = team
    alice = signed_in("alice")
    first = _leased(store, "alice")
    class_name = sd.class_names[sd.class_ids.index(first.class_id)]
    ok(alice.button(key="review-accept").click().run())
    with store.read() as s:
        look = s.scalars(select(SecondReview).where(SecondReview.suggestion_id == first.id)).one()
        assert (look.first_reviewer, look.first_value, look.status) == ("alice", 1, "pending")
    assert not _card(alice, first.id)  # never back to the first reviewer
    alice.run()
    assert not _card(alice, first.id)

    bob = signed_in("bob")
    assert _card(bob, first.id)  # shown first, before the higher-scored pending suggestions
    shown = texts(bob)
    assert f"## Is there a {md_escape(class_name)}?" in shown
    positives = next(m.value for m in bob.markdown if m.value.startswith("**Positive ("))
    assert md_escape(class_name) not in positives  # the first decision's label does not show
    for hint in ("alice", "accepted", "second", "first", "agree", "decided by"):
        assert hint not in shown.lower(), hint
    assert {b.key for b in bob.button} >= {
        f"review-{a}" for a in ("accept", "reject", "skip", "undo", "back", "pass")
    }
    assert [m.label for m in bob.metric] == ["Class prior"]
    with store.read() as s:
        assert s.get(SecondReview, look.id).claimed_by == "bob"

    ok(bob.button(key="review-reject").click().run())  # a second decision: the label stays
    with store.read() as s:
        row = s.get(SecondReview, look.id)
        assert (row.status, row.second_reviewer, row.second_value) == ("disagreed", "bob", 0)
        assert get_cell(s, first.image_id, first.class_id).value == 1
        assert s.get(Suggestion, first.id).reviewer == "alice"
        events = list(s.scalars(select(LabelEvent).where(LabelEvent.suggestion_id == first.id)))
        assert [(e.author, e.before, e.after) for e in events] == [("alice", None, 1), ("bob", 1, 1)]
    assert not _card(bob, first.id)

    ok(bob.button(key="review-undo").click().run())  # undo takes the second decision back
    assert _card(bob, first.id)
    with store.read() as s:
        row = s.get(SecondReview, look.id)
        assert (row.status, row.second_value, row.claimed_by) == ("pending", None, "bob")
    ok(bob.button(key="review-skip").click().run())  # not sure: passed over, left for others
    assert not _card(bob, first.id)
    with store.read() as s:
        row = s.get(SecondReview, look.id)
        assert (row.status, row.claimed_by) == ("pending", None)
    ok(bob.button(key="review-back").click().run())
    assert _card(bob, first.id)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_single_person_mode_has_no_second_look(
    make_app: AppFactory, seeded: tuple[Store, Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELMEND_DOUBLE_REVIEW_SHARE", "1")
    store, _ = seeded
    at = make_app(annotator="solo")
    for action in ("accept", "reject", "accept"):
        ok(at.button(key=f"review-{action}").click().run())
    with store.read() as s:
        assert s.scalars(select(SecondReview)).first() is None
