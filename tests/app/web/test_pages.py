"""AppTest: every page renders on a seeded store, and page actions change the store as they should."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from app.store import Store
from app.web.components import md_escape
from db.labels import get_cell, set_label
from db.models import Job, Label, LabelEvent, Suggestion
from db.runs import create_run, finish_run, write_suggestions
from tests.app.web.conftest import AppFactory
from tests.app.web.seed import HOSTILE, Seeded


def _shown(store: Store, reviewer: str) -> Suggestion:
    """The one pending suggestion leased to ``reviewer`` (what the Review page shows)."""
    with store.read() as s:
        rows = list(
            s.scalars(
                select(Suggestion).where(Suggestion.claimed_by == reviewer, Suggestion.status == "pending")
            )
        )
    assert len(rows) == 1, [r.id for r in rows]
    return rows[0]


def _texts(at: AppTest) -> list[str]:
    return [e.value for e in (*at.markdown, *at.caption)]


#: Pure rendering tests run on SQLite only; tests that write (claims, decisions, conflicts) run on both.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@sqlite_only
@pytest.mark.parametrize("page", ["review", "class_grid", "image", "dataset", "models", "import_export"])
def test_every_page_renders(make_app: AppFactory, page: str) -> None:
    at = make_app(annotator="ann", page=None if page == "review" else page)
    _no_exception(at)
    assert at.selectbox(key="dataset_picker").value == "alpha"
    assert len(at.markdown) + len(at.caption) > 0


def test_review_shows_question_prior_and_labels_but_no_model_score(
    make_app: AppFactory, seeded: tuple[Store, Seeded]
) -> None:
    store, sd = seeded
    at = make_app(annotator="ann")
    _no_exception(at)
    sugg = _shown(store, "ann")
    with store.read() as s:
        best = s.scalars(
            select(Suggestion)
            .where(Suggestion.status == "pending")
            .order_by(Suggestion.score.desc())
            .limit(1)
        ).one()
        n_pos = s.scalar(
            select(func.count()).select_from(Label).where(Label.image_id == sugg.image_id, Label.value == 1)
        )
    assert sugg.id == best.id  # highest class-aware likelihood first
    name = sd.class_names[sd.class_ids.index(sugg.class_id)]
    assert f"## Is there a {md_escape(name)}?" in _texts(at)
    assert any(t.startswith(f"**Positive ({n_pos}):**") for t in _texts(at))
    labels = {m.label: m.value for m in at.metric}
    assert labels == {"Class prior": f"{sugg.prior:.3f}"}  # blind: no probability, score or rank
    assert not any(f"rank {sugg.rank}" in c.value for c in at.caption)


def test_review_buttons_decide_undo_and_audit(make_app: AppFactory, seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    at = make_app(annotator="ann")
    decided: dict[str, Suggestion] = {}
    for action in ("accept", "reject", "skip"):
        decided[action] = _shown(store, "ann")
        at.button(key=f"review-{action}").click().run()
        _no_exception(at)
    with store.read() as s:
        for action, expect_status, expect_value in (("accept", "accepted", 1), ("reject", "rejected", 0)):
            sugg = s.get(Suggestion, decided[action].id)
            assert (sugg.status, sugg.reviewer) == (expect_status, "ann")
            cell = get_cell(s, sugg.image_id, sugg.class_id)
            assert (cell.value, cell.author, cell.source) == (expect_value, "ann", "review")
            events = list(s.scalars(select(LabelEvent).where(LabelEvent.suggestion_id == sugg.id)))
            assert [(e.before, e.after, e.author) for e in events] == [(None, expect_value, "ann")]
        skipped = s.get(Suggestion, decided["skip"].id)
        assert skipped.status == "skipped"
        assert get_cell(s, skipped.image_id, skipped.class_id).value is None
        assert (
            s.scalar(
                select(func.count()).select_from(LabelEvent).where(LabelEvent.suggestion_id == skipped.id)
            )
            == 0
        )
    assert any(f"suggestion {decided['skip'].id}" not in t for t in _texts(at))

    at.button(key="review-undo").click().run()  # undo the skip: it is shown again
    assert _shown(store, "ann").id == decided["skip"].id
    assert any(t.endswith(f"suggestion {decided['skip'].id}") for t in _texts(at))
    at.button(key="review-undo").click().run()  # undo the reject: the cell is unknown again, audited
    with store.read() as s:
        rejected = s.get(Suggestion, decided["reject"].id)
        assert rejected.status == "pending"
        assert get_cell(s, rejected.image_id, rejected.class_id).value is None
        events = list(
            s.scalars(
                select(LabelEvent).where(LabelEvent.suggestion_id == rejected.id).order_by(LabelEvent.id)
            )
        )
        assert [(e.before, e.after) for e in events] == [(None, 0), (0, None)]


def test_review_pass_and_back(make_app: AppFactory, seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    at = make_app(annotator="ann")
    first = _shown(store, "ann")
    at.button(key="review-pass").click().run()
    second = _shown(store, "ann")
    assert second.id != first.id
    with store.read() as s:
        assert s.get(Suggestion, first.id).claimed_by is None  # passed-over suggestions are released
    at.button(key="review-back").click().run()
    with store.read() as s:
        mine = set(s.scalars(select(Suggestion.id).where(Suggestion.claimed_by == "ann")))
    assert first.id in mine
    assert any(t.endswith(f"suggestion {first.id}") for t in _texts(at))


def test_two_annotators_never_share_and_conflicts_move_on(
    make_app: AppFactory, seeded: tuple[Store, Seeded]
) -> None:
    store, _ = seeded
    at1 = make_app(annotator="ann1")
    make_app(annotator="ann2")
    s1, s2 = _shown(store, "ann1"), _shown(store, "ann2")
    assert s1.id != s2.id
    with store.write() as s:  # someone labels ann1's cell negative meanwhile (e.g. on the Image page)
        set_label(
            s, image_id=s1.image_id, class_id=s1.class_id, value=0, author="carol", source="edit", reason="t"
        )
    at1.button(key="review-accept").click().run()
    _no_exception(at1)
    assert any("negative meanwhile by carol" in w.value for w in at1.warning)
    with store.read() as s:
        assert get_cell(s, s1.image_id, s1.class_id).value == 0  # carol's label kept, not overwritten
        assert s.get(Suggestion, s1.id).status == "superseded"  # and never offered again
    assert _shown(store, "ann1").id not in (s1.id, s2.id)  # moved on, and not to ann2's suggestion


def test_hostile_names_render_escaped(make_app: AppFactory, seeded: tuple[Store, Seeded]) -> None:
    store, sd = seeded
    hostile_class = sd.class_ids[1]
    with store.write() as s:
        known = set(s.execute(select(Label.image_id).where(Label.class_id == hostile_class)).scalars())
        image = next(i for i in sd.image_ids if i not in known)
        run = create_run(s, sd.dataset_id, "target", {})
        write_suggestions(
            s, run.id, image_ids=np.array([image]), class_ids=np.array([hostile_class]),
            scores=np.array([0.9]), probs=np.array([0.9]),
        )  # fmt: skip
        finish_run(s, run.id)
    at = make_app(annotator=HOSTILE)
    _no_exception(at)
    texts = _texts(at)
    assert f"## Is there a {md_escape(HOSTILE)}?" in texts
    assert any(md_escape(HOSTILE) in t for t in texts)  # the annotator's name, escaped
    for text in texts:
        assert all(text[i - 1] == "\\" for i, ch in enumerate(text) if ch in "<["), text
    at.button(key="review-accept").click().run()
    with store.read() as s:
        assert get_cell(s, image, hostile_class).author == HOSTILE  # recorded as given


def test_image_page_conflict_between_two_annotators(
    make_app: AppFactory, seeded: tuple[Store, Seeded]
) -> None:
    store, sd = seeded
    with store.read() as s:
        label = s.scalars(select(Label).where(Label.value == 1).order_by(Label.image_id).limit(1)).one()
    ext = sd.external_ids[sd.image_ids.index(label.image_id)]
    at1 = make_app(annotator="ann1", page="image", image_current=ext)
    at2 = make_app(annotator="ann2", page="image", image_current=ext)
    _no_exception(at1)
    key = f"image-set-{label.class_id}-0"
    at1.button(key=key).click().run()
    assert any("now negative" in s.value for s in at1.success)
    at2.button(key=key).click().run()  # ann2 still saw version 1
    assert any(e.value.startswith(md_escape("Conflict, nothing changed: label of image")) for e in at2.error)
    with store.read() as s:
        cell = get_cell(s, label.image_id, label.class_id)
        assert (cell.value, cell.author, cell.version) == (0, "ann1", 2)
        authors = list(
            s.scalars(
                select(LabelEvent.author).where(
                    LabelEvent.image_id == label.image_id, LabelEvent.class_id == label.class_id
                )
            )
        )
    assert authors == ["importer", "ann1"]


def test_image_page_labels_an_unknown_class(make_app: AppFactory, seeded: tuple[Store, Seeded]) -> None:
    store, sd = seeded
    with store.read() as s:
        known = set(s.execute(select(Label.class_id).where(Label.image_id == sd.image_ids[0])).scalars())
    unknown = next(c for c in sd.class_ids if c not in known)
    name = sd.class_names[sd.class_ids.index(unknown)]
    at = make_app(annotator="ann", page="image", image_current=sd.external_ids[0])
    at.text_input(key="image_class_search").input(f"/m/c{sd.class_ids.index(unknown)}").run()
    at.button(key=f"image-new-{unknown}-1").click().run()
    _no_exception(at)
    with store.read() as s:
        cell = get_cell(s, sd.image_ids[0], unknown)
    assert (cell.value, cell.author, cell.source) == (1, "ann", "edit")
    assert any(md_escape(name) in m.value for m in at.markdown)


def test_class_grid_toggle_and_submit(make_app: AppFactory, seeded: tuple[Store, Seeded]) -> None:
    store, _ = seeded
    at = make_app(annotator="ann", page="class_grid")
    _no_exception(at)
    class_id = at.selectbox(key="grid_class").value
    with store.read() as s:
        page = list(
            s.scalars(
                select(Suggestion.id)
                .where(Suggestion.class_id == class_id, Suggestion.status == "pending")
                .order_by(Suggestion.score.desc(), Suggestion.id)
            )
        )
    toggles = [b for b in at.button if (b.key or "").startswith("grid-toggle-")]
    assert [int(b.key.rsplit("-", 1)[1]) for b in toggles] == page
    at.button(key=f"grid-toggle-{page[0]}").click().run()
    assert at.button(key=f"grid-toggle-{page[0]}").label == "reject"
    at.button(key="grid-submit").click().run()
    _no_exception(at)
    with store.read() as s:
        status = {i: s.get(Suggestion, i).status for i in page}
        events = s.scalar(
            select(func.count()).select_from(LabelEvent).where(LabelEvent.suggestion_id.in_(page))
        )
    assert status == {i: "rejected" if i == page[0] else "accepted" for i in page}
    assert events == len(page)
    assert any(f"{len(page) - 1} accepted, 1 rejected" in m.value for m in at.success)


def test_class_grid_page_with_a_cell_labelled_meanwhile(
    make_app: AppFactory, seeded: tuple[Store, Seeded]
) -> None:
    store, _ = seeded
    at = make_app(annotator="ann", page="class_grid")
    page = [int(b.key.rsplit("-", 1)[1]) for b in at.button if (b.key or "").startswith("grid-toggle-")]
    assert len(page) >= 2
    with store.write() as s:  # someone labels the first thumbnail's cell on the Image page
        taken = s.get(Suggestion, page[0])
        set_label(s, image_id=taken.image_id, class_id=taken.class_id, value=1, author="carol",
                  source="edit", reason="image page")  # fmt: skip
    at.button(key="grid-submit").click().run()
    _no_exception(at)
    assert any(f"{len(page) - 1} accepted, 0 rejected" in m.value for m in at.success)
    assert any("labelled positive meanwhile by carol" in w.value for w in at.warning)
    with store.read() as s:
        status = {i: s.get(Suggestion, i).status for i in page}
        events = s.scalar(
            select(func.count()).select_from(LabelEvent).where(LabelEvent.suggestion_id.in_(page))
        )
    assert status == {i: "superseded" if i == page[0] else "accepted" for i in page}
    assert events == len(page) - 1


def test_dataset_page_counts(make_app: AppFactory, seeded: tuple[Store, Seeded]) -> None:
    store, sd = seeded
    at = make_app(annotator="ann", page="dataset")
    _no_exception(at)

    def truth() -> tuple[int, int, dict[str, int]]:
        with store.read() as s:
            pos = s.scalar(select(func.count()).select_from(Label).where(Label.value == 1))
            neg = s.scalar(select(func.count()).select_from(Label).where(Label.value == 0))
            by_status = dict(
                s.execute(
                    select(Suggestion.status, func.count())
                    .where(Suggestion.class_id == sd.class_ids[2])
                    .group_by(Suggestion.status)
                ).all()
            )
        return pos, neg, by_status

    pos, neg, by_status = truth()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == str(len(sd.image_ids))
    assert metrics["Positive labels"] == str(pos)
    assert metrics["Negative labels"] == str(neg)
    assert metrics["Coverage"] == f"{(pos + neg) / (len(sd.image_ids) * len(sd.class_ids)):.2%}"
    at.text_input(key="dataset-class-search").input("/m/c2").run()
    found = at.dataframe[0].value
    assert list(found["key"]) == ["/m/c2"]
    row = found.iloc[0]
    assert [int(row[k]) for k in ("pending", "accepted", "rejected")] == [
        by_status.get(k, 0) for k in ("pending", "accepted", "rejected")
    ]
    with store.write() as s:  # a label written elsewhere shows on the next visit (the cache is versioned)
        image = next(i for i in sd.image_ids if get_cell(s, i, sd.class_ids[2]).value is None)
        set_label(s, image_id=image, class_id=sd.class_ids[2], value=1, author="b", source="edit", reason="r")
    at.switch_page("views/models.py").run()
    at.switch_page("views/dataset.py").run()
    assert {m.label: m.value for m in at.metric}["Positive labels"] == str(pos + 1)


@sqlite_only
def test_models_page_acceptance_rate(make_app: AppFactory, seeded: tuple[Store, Seeded]) -> None:
    _, sd = seeded
    at = make_app(annotator="ann", page="models")
    _no_exception(at)
    runs = at.dataframe[0].value.set_index("run")
    assert list(runs.index) == sd.run_ids[::-1]
    assert runs.loc[sd.run_ids[1], "acceptance"] == pytest.approx(2 / 3)  # seeded: 2 accepted, 1 rejected
    assert runs.loc[sd.run_ids[2], "partial mAP"] == pytest.approx(66.5)


@sqlite_only
def test_train_page_queues_cycle_job(make_app: AppFactory, seeded: tuple[Store, Seeded]) -> None:
    store, sd = seeded
    at = make_app(annotator="ann", page="train")
    _no_exception(at)
    at.number_input(key="train-epochs").set_value(2)
    at.text_input(key="train-backbone").input("resnet10t")
    at.button(key="train-submit").click().run()
    _no_exception(at)
    with store.read() as s:
        job = s.scalars(select(Job)).one()
    assert (job.kind, job.status, job.dataset_id) == ("cycle", "queued", sd.dataset_id)
    assert (job.payload["dataset"], job.payload["epochs"], job.payload["backbone"]) == (
        "alpha",
        2,
        "resnet10t",
    )
    assert any(f"job {job.id}" in m.value for m in at.success)
    assert any("no worker is running" in w.value for w in at.warning)
    assert at.button(key="train-start-worker").label.startswith("Run the next job")
