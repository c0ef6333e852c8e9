"""AppTest: the Adjudicate page — managers settle disagreements (both decisions shown), the verdict
is the label and the export's value; annotators cannot open it nor call its action."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from app.auth import Identity, PermissionDenied
from app.store import Store
from app.web import guarded
from app.web.components import md_escape
from db.double_review import claim_next_second, record_second
from db.io import export_labels
from db.labels import get_cell
from db.models import LabelEvent, Role, SecondReview, Suggestion
from db.review import claim_next, decide
from tests.app.web.seed import Seeded
from tests.app.web.signin import add_accounts, ok, signed_in, texts


def _disagreement(store: Store, dataset_id: int) -> Suggestion:
    """alice accepts the top suggestion, bob rejects its second look."""
    with store.write() as s:
        sugg = claim_next(s, dataset_id, "alice")
        assert sugg is not None
        decide(s, sugg.id, "accept", "alice", second_review_share=1.0)
        look = claim_next_second(s, dataset_id, "bob")
        assert look is not None and look.suggestion_id == sugg.id
        record_second(s, look.id, 0, "bob")
        return sugg


@pytest.fixture
def team(seeded: tuple[Store, Seeded]) -> tuple[Store, Seeded]:
    store, sd = seeded
    add_accounts(store, alice=Role.ANNOTATOR, bob=Role.ANNOTATOR, meg=Role.MANAGER)
    return store, sd


def test_manager_adjudicates_and_the_verdict_is_exported(team: tuple[Store, Seeded], tmp_path: Path) -> None:
    store, sd = team
    sugg = _disagreement(store, sd.dataset_id)
    at = signed_in("meg", "adjudicate")
    shown = texts(at)
    assert "**1** waiting" in shown
    assert "**First:** alice — accept (present)" in shown and "**Second:** bob — reject (absent)" in shown
    name = sd.class_names[sd.class_ids.index(sugg.class_id)]
    assert f"#### Is there a {md_escape(name)}?" in shown
    look_id = next(int(b.key.rsplit("-", 1)[1]) for b in at.button if b.key.startswith("adjudicate-absent-"))
    ok(at.button(key=f"adjudicate-absent-{look_id}").click().run())
    assert "No disagreements to settle." in texts(at)
    with store.read() as s:
        row = s.get(SecondReview, look_id)
        assert (row.status, row.adjudicator, row.adjudicated_value) == ("adjudicated", "meg", 0)
        cell = get_cell(s, sugg.image_id, sugg.class_id)
        assert (cell.value, cell.source, cell.author) == (0, "adjudication", "meg")
        reasons = [e.reason for e in s.scalars(select(LabelEvent).where(LabelEvent.suggestion_id == sugg.id))]
        assert reasons[-1].endswith("absent (first accept by alice, second reject by bob)")
        export_labels(s, dataset=sd.name, fmt="csv", out=tmp_path / "labels.csv")
        external_id = sd.external_ids[sd.image_ids.index(sugg.image_id)]
    rows = [r for r in csv.DictReader((tmp_path / "labels.csv").open()) if r["image"] == external_id]
    (row,) = [r for r in rows if r["label"] == f"/m/c{sd.class_ids.index(sugg.class_id)}"]
    assert (row["value"], row["source"], row["author"]) == ("0", "adjudication", "meg")


def test_annotators_cannot_adjudicate(team: tuple[Store, Seeded]) -> None:
    store, sd = team
    _disagreement(store, sd.dataset_id)
    at = signed_in("alice")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/adjudicate.py").run()
    with store.read() as s:
        look_id = s.scalars(select(SecondReview.id)).one()
    alice = Identity("alice", Role.ANNOTATOR)
    with pytest.raises(PermissionDenied, match="may not adjudicate"):
        guarded.adjudicate(store, alice, look_id, 1)
    with pytest.raises(PermissionDenied, match="may not adjudicate"):
        guarded.disagreement_queue(store, alice, sd.dataset_id)
    with store.read() as s:
        assert s.get(SecondReview, look_id).status == "disagreed"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_verdict_given_meanwhile_is_refused(team: tuple[Store, Seeded]) -> None:
    store, sd = team
    _disagreement(store, sd.dataset_id)
    at = signed_in("meg", "adjudicate")
    with store.read() as s:
        look_id = s.scalars(select(SecondReview.id)).one()
    guarded.adjudicate(store, Identity("max", Role.ADMIN), look_id, 1)  # another manager, first
    ok(at.button(key=f"adjudicate-absent-{look_id}").click().run())
    assert any(md_escape("not a disagreement now (adjudicated by max)") in w.value for w in at.warning)
    with store.read() as s:
        assert s.get(SecondReview, look_id).adjudicated_value == 1
