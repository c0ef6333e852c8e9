"""AppTest: with accounts, nothing but the sign-in form until signed in; pages by role; wrong
passwords refused and slowed; sign-out and expiry end the session; work recorded under the
account; a click that arrives after the session ended changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.auth import THROTTLE
from app.store import Store
from app.web import MAIN_SCRIPT
from app.web.components import md_escape
from db.models import Job, Role, Suggestion
from db.users import add_user, get_user, set_active
from tests.app.web.seed import Seeded

PASSWORD = "signin-pass-123"
#: Text each page shows once rendered (the pages' own headings and buttons).
MARKERS = {
    "review": "Is there a",
    "class_grid": "Is there a",
    "image": "Positive (",
    "dataset": "Labels per class",
    "models": "Partial mAP",
    "train": "Retrain",
    "import_export": "Import labels",
}
ANNOTATOR_PAGES = {"review", "class_grid", "image"}


@pytest.fixture(autouse=True)
def _fresh_throttle() -> Iterator[None]:
    THROTTLE.clear()
    yield
    THROTTLE.clear()


@pytest.fixture
def accounts(seeded: tuple[Store, Seeded]) -> tuple[Store, Seeded]:
    store, sd = seeded
    with store.write() as s:
        add_user(s, "ann", Role.ANNOTATOR, PASSWORD)
        add_user(s, "meg", Role.MANAGER, PASSWORD)
    return store, sd


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.error, *at.info, *at.success, *at.warning)]
    parts += [b.label for b in at.button]
    return "\n".join(str(p) for p in parts)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _open() -> AppTest:
    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=60)
    at.run()
    _ok(at)
    return at


def _sign_in(at: AppTest, name: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="signin-name").input(name)
    at.text_input(key="signin-password").input(password)
    at.button(key="signin-submit").click().run()
    _ok(at)
    return at


def _is_sign_in_form(at: AppTest) -> bool:
    keys = {w.key for w in at.text_input}
    return {"signin-name", "signin-password"} <= keys


def _page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py").run()
    _ok(at)
    return at


def _registered(at: AppTest, page: str) -> bool:
    """Whether ``st.navigation`` got ``page`` in the last run (AppTest refuses to open others)."""
    try:
        _page(at, page)
    except ValueError as err:
        assert "Could not find a navigation page" in str(err)
        return False
    return True


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_before_sign_in_only_the_form(accounts: tuple[Store, Seeded]) -> None:
    at = _open()
    assert _is_sign_in_form(at)
    assert (
        at.text_input(key="signin-password").proto.type == at.text_input(key="signin-password").proto.PASSWORD
    )
    assert len(at.sidebar.children) == 0  # no pages, no dataset picker, no name box
    assert not [s for s in at.selectbox if s.key == "dataset_picker"]
    assert "alpha" not in _texts(at)
    assert not any(_registered(at, page) for page in MARKERS)  # no page exists before sign-in
    assert _is_sign_in_form(at)
    with accounts[0].read() as s:
        assert s.scalars(select(Suggestion).where(Suggestion.claimed_by.is_not(None))).first() is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_wrong_password_refused_and_the_fifth_try_slowed(accounts: tuple[Store, Seeded]) -> None:
    at = _open()
    for _ in range(4):
        _sign_in(at, "ann", "not the password")
        assert [e.value for e in at.error] == [md_escape("Wrong name or password.")]
        assert _is_sign_in_form(at)
        assert at.text_input(key="signin-password").value == ""  # never kept in the form
    _sign_in(at, "ann", PASSWORD)  # even the right password waits now
    assert [e.value for e in at.error] == [md_escape("Too many failed sign-ins; try again in 5 s.")]
    assert _is_sign_in_form(at)
    _sign_in(at, "meg")  # another name is not held up
    assert not _is_sign_in_form(at)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unknown_name_gets_the_same_answer(accounts: tuple[Store, Seeded]) -> None:
    at = _sign_in(_open(), "nobody", PASSWORD)
    assert [e.value for e in at.error] == [md_escape("Wrong name or password.")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_annotator_sees_label_pages_only_and_is_recorded(accounts: tuple[Store, Seeded]) -> None:
    store, _ = accounts
    at = _sign_in(_open(), "ann")
    assert not _is_sign_in_form(at)
    assert "annotator_input" not in {w.key for w in at.text_input}  # no free-text name box
    sidebar = _texts(at)
    assert "Signed in as **ann** · annotator" in sidebar and "Sign out" in sidebar
    assert "Is there a" in _texts(at)  # Review, without asking for a name
    at.button(key="review-accept").click().run()
    _ok(at)
    with store.read() as s:
        decided = s.scalars(select(Suggestion).where(Suggestion.status == "accepted")).all()
        assert "ann" in {d.reviewer for d in decided}
    for page, marker in MARKERS.items():
        assert _registered(at, page) == (page in ANNOTATOR_PAGES), page
        if page in ANNOTATOR_PAGES:
            assert marker in _texts(at), page
    with store.read() as s:
        assert get_user(s, "ann").last_seen_at is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_manager_sees_every_page_and_queues_as_themself(accounts: tuple[Store, Seeded]) -> None:
    store, _ = accounts
    at = _sign_in(_open(), "meg")
    for page, marker in MARKERS.items():
        assert _registered(at, page), page
        assert marker in _texts(at), page
    _page(at, "train")
    at.button(key="train-submit").click().run()
    _ok(at)
    with store.read() as s:
        job = s.scalars(select(Job)).one()
        assert job.created_by == "meg"
        assert job.history[0]["event"] == "queued by meg"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sign_out_ends_the_session(accounts: tuple[Store, Seeded]) -> None:
    at = _sign_in(_open(), "ann")
    assert not _is_sign_in_form(at)
    at.button(key="signout").click().run()
    _ok(at)
    assert _is_sign_in_form(at)
    assert md_escape("Signed out.") in _texts(at)
    assert "review_state" not in at.session_state
    assert not _registered(at, "review")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_expired_session_refuses_a_click_already_on_screen(accounts: tuple[Store, Seeded]) -> None:
    store, _ = accounts
    at = _sign_in(_open(), "ann")
    assert "Is there a" in _texts(at)
    at.session_state["_signed_in"].expires_at = 0.0  # the sign-in ran out
    at.button(key="review-accept").click().run()  # the button from before the expiry
    _ok(at)
    assert _is_sign_in_form(at)
    assert md_escape("Your session expired; sign in again.") in _texts(at)
    with store.read() as s:
        assert "ann" not in {x.reviewer for x in s.scalars(select(Suggestion))}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_disabled_account_is_signed_out(accounts: tuple[Store, Seeded]) -> None:
    store, _ = accounts
    at = _sign_in(_open(), "meg")
    with store.write() as s:
        set_active(s, "meg", False)
    at.session_state["_signed_in"].checked_at = 0.0  # as if REFRESH_S had passed
    at.run()
    _ok(at)
    assert _is_sign_in_form(at)
    assert md_escape("Your account was disabled or removed; ask an admin.") in _texts(at)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_role_change_applies_to_a_signed_in_session(accounts: tuple[Store, Seeded]) -> None:
    store, _ = accounts
    at = _page(_sign_in(_open(), "meg"), "train")
    assert "Retrain" in _texts(at)
    with store.write() as s:
        get_user(s, "meg").role = Role.ANNOTATOR
    at.session_state["_signed_in"].checked_at = 0.0
    at.button(key="train-submit").click().run()  # the form from when she was a manager
    _ok(at)
    with store.read() as s:
        assert s.scalars(select(Job)).first() is None
    assert "Retrain" not in _texts(at)
    assert not _registered(at, "train")


def test_auth_env_without_accounts_says_how_to_add_one(
    seeded: tuple[Store, Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELMEND_AUTH", "1")
    at = _open()
    assert _is_sign_in_form(at)
    assert any("labelmend user add NAME --role admin" in i.value for i in at.info)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_auth_env_keeps_single_person_mode(
    accounts: tuple[Store, Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELMEND_NO_AUTH", "1")
    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=60)
    at.session_state["annotator"] = "proxy-user"
    at.run()
    _ok(at)
    assert not _is_sign_in_form(at)
    assert at.text_input(key="annotator_input").value == "proxy-user"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_passwords_never_reach_the_logs(
    accounts: tuple[Store, Seeded], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Secret-9931"
    at = _sign_in(_open(), "ann", wrong)
    _sign_in(at, PASSWORD, PASSWORD)  # a password typed as the name, too
    _sign_in(at, "ann", PASSWORD)
    assert not _is_sign_in_form(at)
    assert "failed sign-in for 'ann' from local" in caplog.text
    assert "'ann' signed in from local" in caplog.text
    for secret in (wrong, PASSWORD):
        assert secret not in caplog.text
        assert secret not in repr(at.session_state["_signed_in"])
    assert at.session_state["signin-password"] == ""
