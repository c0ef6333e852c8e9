"""Roles on the server side: every manager-only action refused for an annotator's identity (and for
nobody), the annotator's own actions recorded under their name, and sign-in throttling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from app.auth import (
    ROLE_PERMISSIONS,
    Identity,
    Permission,
    PermissionDenied,
    SignInThrottle,
    require,
    session_hours,
    single_person,
)
from app.pipeline.config import CycleConfig
from app.store import Store, close_stores, open_store
from app.web import guarded
from db.io import ExportFormat, ImportFormat, recent_exports
from db.labels import get_cell
from db.models import Job, Label, LabelEvent, Role, Suggestion
from tests.app.web.seed import Seeded, seed_dataset

ANNOTATOR = Identity("ann", Role.ANNOTATOR)
MANAGER = Identity("meg", Role.MANAGER)
ADMIN = Identity("ada", Role.ADMIN)


def test_roles_build_on_each_other() -> None:
    annotator, manager, admin = (ROLE_PERMISSIONS[r] for r in (Role.ANNOTATOR, Role.MANAGER, Role.ADMIN))
    assert annotator == {
        Permission.REVIEW,
        Permission.VIEW_IMAGES,
        Permission.EDIT_LABELS,
        Permission.VIEW_OWN_FIGURES,
    }
    assert annotator < manager < admin
    assert manager - annotator == {
        Permission.TRAIN,
        Permission.IMPORT,
        Permission.EXPORT,
        Permission.VIEW_DATASET,
        Permission.VIEW_MODELS,
        Permission.VIEW_ALL_FIGURES,
        Permission.ADJUDICATE,
    }
    assert admin - manager == {Permission.MANAGE_USERS}
    assert admin == set(Permission)


def test_require_names_who_and_what_in_one_line() -> None:
    with pytest.raises(PermissionDenied, match=r"^not signed in; sign in to train$"):
        require(None, Permission.TRAIN)
    with pytest.raises(PermissionDenied) as err:
        require(ANNOTATOR, Permission.EXPORT)
    assert str(err.value) == (
        "'ann' (annotator) may not export; ask a manager to do it or to change your role"
    )
    assert require(MANAGER, Permission.EXPORT) is MANAGER
    solo = single_person("me")
    assert solo.single_person and all(solo.can(p) for p in Permission)


def test_session_hours_from_the_environment() -> None:
    assert session_hours({}) == 12.0
    assert session_hours({"LABELMEND_SESSION_HOURS": "0.5"}) == 0.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        with pytest.raises(ValueError, match="is not a positive number of hours"):
            session_hours({"LABELMEND_SESSION_HOURS": bad})


# --- the actions the pages call ---------------------------------------------------------------


@pytest.fixture
def seeded(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, Seeded]]:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    store = open_store(db_url)
    with store.write() as s:
        sd = seed_dataset(s, tmp_path / "images", n_suggestions=4)
    yield store, sd
    close_stores()


def _counts(store: Store) -> tuple[int, int, int]:
    with store.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Job)) or 0,
            s.scalar(select(func.count()).select_from(Label)) or 0,
            s.scalar(select(func.count()).select_from(LabelEvent)) or 0,
        )


def _label_file(tmp_path: Path, sd: Seeded) -> Path:
    path = tmp_path / "more.csv"
    rows = [(sd.external_ids[0], "/m/new", 1), (sd.external_ids[1], "/m/new", 0)]
    pd.DataFrame(rows, columns=["image", "label", "value"]).to_csv(path, index=False)
    return path


Action = Callable[[Store, Identity | None, Seeded, Path], object]

#: Every manager-only action the pages call, with arguments that would succeed for a manager.
MANAGER_ONLY: dict[str, Action] = {
    "queue_cycle": lambda store, who, sd, tmp: guarded.queue_cycle(
        store, who, CycleConfig(dataset=sd.name), sd.dataset_id
    ),
    "cancel_job": lambda store, who, sd, tmp: guarded.cancel_job(store, who, 1),
    "import_file": lambda store, who, sd, tmp: guarded.import_file(
        store,
        who,
        ImportFormat.CSV,
        dataset=sd.name,
        labels=_label_file(tmp, sd),
        classes=None,
        images=None,
        split="train",
    ),
    "export_file": lambda store, who, sd, tmp: guarded.export_file(
        store, who, dataset=sd.name, fmt=ExportFormat.CSV, out=tmp / "out.csv"
    ),
    "dataset_overview": lambda store, who, sd, tmp: guarded.dataset_overview(store, who, sd.dataset_id),
}


@pytest.mark.parametrize("who", [ANNOTATOR, None], ids=["annotator", "nobody"])
@pytest.mark.parametrize("action", list(MANAGER_ONLY))
def test_manager_only_actions_are_refused_and_change_nothing(
    seeded: tuple[Store, Seeded], tmp_path: Path, action: str, who: Identity | None
) -> None:
    store, sd = seeded
    guarded.queue_cycle(store, MANAGER, CycleConfig(dataset=sd.name), sd.dataset_id)  # to cancel
    before = _counts(store)
    with pytest.raises(PermissionDenied):
        MANAGER_ONLY[action](store, who, sd, tmp_path)
    assert _counts(store) == before
    assert not (tmp_path / "out.csv").exists()
    with store.read() as s:
        assert s.get(Job, 1).status == "queued"


@pytest.mark.parametrize("action", list(MANAGER_ONLY))
def test_manager_only_actions_work_for_a_manager(
    seeded: tuple[Store, Seeded], tmp_path: Path, action: str
) -> None:
    store, sd = seeded
    guarded.queue_cycle(store, MANAGER, CycleConfig(dataset=sd.name), sd.dataset_id)
    MANAGER_ONLY[action](store, MANAGER, sd, tmp_path)


def test_work_is_recorded_under_the_caller(seeded: tuple[Store, Seeded], tmp_path: Path) -> None:
    store, sd = seeded
    job_id = guarded.queue_cycle(store, MANAGER, CycleConfig(dataset=sd.name), sd.dataset_id)
    guarded.import_file(
        store,
        ADMIN,
        ImportFormat.CSV,
        dataset=sd.name,
        labels=_label_file(tmp_path, sd),
        classes=None,
        images=None,
        split="train",
    )
    with store.read() as s:
        assert s.get(Job, job_id).created_by == "meg"
        by_ada = s.scalar(select(func.count()).select_from(LabelEvent).where(LabelEvent.author == "ada"))
        assert by_ada == 2  # the two rows of the imported file
        cell = get_cell(s, sd.image_ids[0], sd.class_ids[0])
    guarded.edit_label(
        store,
        ANNOTATOR,
        image_id=sd.image_ids[0],
        class_id=sd.class_ids[0],
        value=0 if cell.value == 1 else 1,
        expected_version=cell.version,
    )
    with store.read() as s:
        last = s.scalars(select(LabelEvent).order_by(LabelEvent.id.desc()).limit(1)).one()
        assert (last.author, last.source) == ("ann", "edit")
        pending = s.scalars(select(Suggestion).where(Suggestion.status == "pending").limit(1)).one()
    guarded.decide_suggestion(store, ANNOTATOR, pending.id, "reject")
    with store.read() as s:
        assert s.get(Suggestion, pending.id).reviewer == "ann"
    out = tmp_path / "labels.csv"
    report = guarded.export_file(store, MANAGER, dataset=sd.name, fmt=ExportFormat.CSV, out=out)
    with store.read() as s:
        (record,) = recent_exports(s, sd.dataset_id)
    assert (record.author, record.format, record.files, record.labels) == (
        "meg",
        "csv",
        [str(out)],
        report.labels,
    )


def test_annotator_actions_refused_for_nobody(seeded: tuple[Store, Seeded]) -> None:
    store, sd = seeded
    before = _counts(store)
    with store.read() as s:
        pending = s.scalars(select(Suggestion).where(Suggestion.status == "pending").limit(1)).one()
    with pytest.raises(PermissionDenied, match="not signed in"):
        guarded.decide_suggestion(store, None, pending.id, "accept")
    with pytest.raises(PermissionDenied, match="not signed in"):
        guarded.edit_label(
            store, None, image_id=sd.image_ids[0], class_id=sd.class_ids[0], value=1, expected_version=0
        )
    with pytest.raises(PermissionDenied, match="no name to record"):
        guarded.edit_label(
            store,
            single_person(""),
            image_id=sd.image_ids[0],
            class_id=sd.class_ids[0],
            value=1,
            expected_version=0,
        )
    assert _counts(store) == before


# --- throttling --------------------------------------------------------------------------------


def test_fifth_try_for_a_name_waits_and_the_wait_doubles_to_a_cap() -> None:
    t = SignInThrottle()
    for i in range(4):
        assert t.wait_s("ann", "10.0.0.1", now=100.0 + i) == 0.0
        t.failed("ann", "10.0.0.1", now=100.0 + i)
    assert t.wait_s("ann", "10.0.0.1", now=103.0) == pytest.approx(5.0)  # 4 failures: 5 s
    assert t.wait_s("ann", "10.0.0.9", now=106.0) == pytest.approx(2.0)  # per name, any client
    assert t.wait_s("bob", "10.0.0.1", now=103.0) == 0.0  # other names are not held up
    assert t.wait_s("ann", "10.0.0.1", now=108.0) == 0.0
    waits = []
    now = 108.0
    for _ in range(6):
        t.failed("ann", "10.0.0.1", now=now)
        waits.append(t.wait_s("ann", "10.0.0.1", now=now))
        now += waits[-1]
    assert waits == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    t.succeeded("ann")
    assert t.wait_s("ann", "10.0.0.1", now=now) == 0.0


def test_one_client_trying_many_names_is_slowed() -> None:
    t = SignInThrottle()
    for i in range(20):
        t.failed(f"user{i}", "10.0.0.2", now=50.0)
    assert t.wait_s("someone-else", "10.0.0.2", now=50.0) == pytest.approx(5.0)
    assert t.wait_s("someone-else", "10.0.0.3", now=50.0) == 0.0
    t.succeeded("someone-else")  # a success does not clear the client's count
    assert t.wait_s("another", "10.0.0.2", now=51.0) == pytest.approx(4.0)


def test_old_failures_are_forgotten_and_memory_is_bounded() -> None:
    t = SignInThrottle(window_s=60.0, max_keys=100)
    for i in range(4):
        t.failed("ann", "c", now=float(i))
    assert t.wait_s("ann", "c", now=4.0) > 0
    assert t.wait_s("ann", "c", now=200.0) == 0.0
    t.failed("ann", "c", now=200.0)  # counting starts again after the window
    assert t.wait_s("ann", "c", now=200.0) == 0.0
    for i in range(500):
        t.failed(f"n{i}", f"c{i}", now=300.0 + i)
    assert len(t._seen) <= 100
