"""AppTest: the Team page — figures per annotator (pace over active time, acceptance, agreement,
adjudication, audit precision), managers see everyone, annotators only themselves, CSV download."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from sqlalchemy import select, update

from app.auth import Identity
from app.store import Store
from app.web import guarded
from db.double_review import adjudicate, claim_next_second, record_second, second_review_of
from db.models import Role, SecondReview, Suggestion
from db.review import claim_next, decide
from tests.app.web.seed import Seeded
from tests.app.web.signin import add_accounts, ok, signed_in, texts

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def worked(seeded: tuple[Store, Seeded]) -> tuple[Store, Seeded]:
    """alice decides 4 suggestions (accept, accept, reject, accept) at 0, 10, 30, 40 s; bob takes
    each second look 2 h later at 10 s intervals (agree, agree, disagree, disagree); meg
    adjudicates the two disagreements (present, present). alice's first accept is an audit cell."""
    store, sd = seeded
    add_accounts(store, alice=Role.ANNOTATOR, bob=Role.ANNOTATOR, meg=Role.MANAGER)
    with store.write() as s:
        ids = []
        for k, decision in enumerate(("accept", "accept", "reject", "accept")):
            sugg = claim_next(s, sd.dataset_id, "alice")
            assert sugg is not None
            decide(s, sugg.id, decision, "alice", second_review_share=1.0)
            s.execute(
                update(Suggestion).where(Suggestion.id == sugg.id).values(reviewed_at=_at((0, 10, 30, 40)[k]))
            )
            ids.append(sugg.id)
        s.execute(update(Suggestion).where(Suggestion.id == ids[0]).values(audit=True))
        for k, value in enumerate((1, 1, 1, 0)):  # agree, agree, disagree (alice rejected), disagree
            look = claim_next_second(s, sd.dataset_id, "bob")
            assert look is not None and look.suggestion_id == ids[k]
            record_second(s, look.id, value, "bob")
            s.execute(
                update(SecondReview).where(SecondReview.id == look.id).values(second_at=_at(7200 + 10 * k))
            )
        for sid in ids[2:]:
            row = second_review_of(s, sid)
            assert row is not None
            adjudicate(s, row.id, 1, "meg")
    return store, sd


def _table(at: object) -> list[dict[str, object]]:
    (frame,) = [d for d in at.dataframe if "Annotator" in d.value.columns]  # type: ignore[attr-defined]
    return frame.value.to_dict("records")


def test_figures_per_annotator(worked: tuple[Store, Seeded]) -> None:
    store, sd = worked
    figures = guarded.team_figures(store, Identity("meg", Role.MANAGER), sd.dataset_id)
    rows = {r.annotator: r for r in figures.rows}
    assert set(rows) == {"alice", "bob", "seed-reviewer"}
    alice, bob = rows["alice"], rows["bob"]
    assert (alice.decisions, alice.accepted, alice.rejected, alice.second_decisions) == (4, 3, 1, 0)
    assert alice.acceptance_rate == 0.75
    assert alice.decisions_per_hour == pytest.approx(3 * 3600 / 40) and alice.median_s_per_decision == 10.0
    assert (alice.double_reviewed, alice.agreement_with_others) == (4, 0.5)
    assert (alice.adjudicated, alice.agreement_with_adjudication) == (2, 0.5)  # her reject lost, accept won
    assert (bob.decisions, bob.second_decisions, bob.acceptance_rate) == (4, 4, 0.75)
    assert (bob.adjudicated, bob.agreement_with_adjudication) == (2, 0.5)
    assert bob.decisions_per_hour == pytest.approx(3 * 3600 / 30) and bob.median_s_per_decision == 10.0
    assert (alice.audit_accepts, alice.audit_accepts_settled, alice.audit_accept_precision) == (1, 1, 1.0)
    (pair,) = figures.pairs
    assert (pair.key, pair.n, pair.percent) == ("alice & bob", 4, 50.0)
    assert pair.kappa == pytest.approx(-1 / 3)  # both accept 3 of 4: p_o 0.5, p_e 0.625
    assert sum(c.n for c in figures.classes) == 4


def test_manager_sees_everyone_with_charts_and_csv(worked: tuple[Store, Seeded]) -> None:
    at = signed_in("meg", "team")
    assert {r["Annotator"] for r in _table(at)} == {"alice", "bob", "seed-reviewer"}
    assert len(at.get("plotly_chart")) == 2  # decisions per hour, acceptance rate
    assert "Agreement per annotator pair" in texts(at)
    (button,) = at.get("download_button")
    assert (button.key, button.label) == ("team-csv", "Download CSV")


def test_annotator_sees_only_their_own(worked: tuple[Store, Seeded]) -> None:
    store, sd = worked
    figures = guarded.team_figures(store, Identity("bob", Role.ANNOTATOR), sd.dataset_id)
    assert [r.annotator for r in figures.rows] == ["bob"] and figures.pairs == [] and not figures.everyone
    at = signed_in("alice", "team")
    ok(at)
    assert [r["Annotator"] for r in _table(at)] == ["alice"]
    shown = texts(at)
    assert "bob" not in shown and "seed-reviewer" not in shown
    assert "Agreement per annotator pair" not in shown


def test_csv_holds_the_table(worked: tuple[Store, Seeded]) -> None:
    from app.team import to_csv

    store, sd = worked
    rows = guarded.team_figures(store, Identity("meg", Role.MANAGER), sd.dataset_id).rows
    parsed = {r["annotator"]: r for r in csv.DictReader(io.StringIO(to_csv(rows)))}
    assert parsed["alice"]["decisions"] == "4" and float(parsed["alice"]["acceptance_rate"]) == 0.75
    with store.read() as s:
        assert s.scalars(select(SecondReview.status)).all().count("adjudicated") == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("page", ["team", "adjudicate"])
def test_pages_render_in_single_person_mode(make_app: object, page: str) -> None:
    at = make_app(annotator="solo", page=page)  # type: ignore[operator]
    ok(at)
    assert "## Team" in texts(at) or "No disagreements to settle." in texts(at)
