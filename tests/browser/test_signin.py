"""Sign-in in a real browser against ``labelmend serve`` on a store with accounts: no page and no
sidebar before sign-in, pages by role, wrong passwords refused and slowed, sign-out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from app.store import open_store
from bench.review_latency import served, wait_idle
from db.models import Role
from db.users import add_user
from tests.app.web.seed import seed_dataset

pytestmark = pytest.mark.browser

PASSWORD = "browser-pass-123"
MANAGER_LINKS = ("Dataset", "Models", "Train", "Import / Export")
ANNOTATOR_LINKS = ("Review", "Class grid", "Image")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``labelmend serve`` on 127.0.0.1 with accounts: sign-in is required."""
    tmp = tmp_path_factory.mktemp("signin")
    url = f"sqlite:///{tmp / 'store.db'}"
    store = open_store(url)
    with store.write() as s:
        seed_dataset(s, tmp / "alpha", name="alpha", n_images=12, n_classes=4, n_suggestions=8)
        for name, role in (("ann", Role.ANNOTATOR), ("meg", Role.MANAGER), ("victim", Role.ANNOTATOR)):
            add_user(s, name, role, PASSWORD)
    with served(url, tmp / "home", tmp / "serve.log") as base:
        yield base
    store.dispose()


def _form_shown(page: Page) -> None:
    page.get_by_text("Sign in to labelmend").wait_for(timeout=60_000)
    wait_idle(page)


def _sign_in(page: Page, name: str, password: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_timeout(300)
    wait_idle(page)


def _nav_links(page: Page) -> list[str]:
    nav = page.get_by_test_id("stSidebarNav")
    if nav.count() == 0:
        return []
    return [t.strip().splitlines()[-1] for t in nav.get_by_role("link").all_inner_texts()]  # after the icon


def test_before_sign_in_no_content_and_no_pages(page: Page, auth_server: str) -> None:
    for path in ("", "train", "import_export", "dataset"):
        page.goto(f"{auth_server}/{path}")
        _form_shown(page)
        assert page.get_by_test_id("stSidebar").count() == 0
        assert _nav_links(page) == []
        for text in ("Is there a", "Queue retrain cycle", "Export the cleaned labels", "alpha"):
            assert page.get_by_text(text).count() == 0, (path, text)


def test_annotator_sees_no_train_import_export(page: Page, auth_server: str) -> None:
    page.goto(f"{auth_server}/train")  # a crafted link to a manager's page
    _form_shown(page)
    _sign_in(page, "ann", PASSWORD)
    page.get_by_text("Is there a").first.wait_for(timeout=60_000)
    links = _nav_links(page)
    assert set(ANNOTATOR_LINKS) <= set(links)
    assert not set(MANAGER_LINKS) & set(links), links
    assert page.get_by_text("Queue retrain cycle").count() == 0
    assert page.get_by_label("Annotator").count() == 0  # no free-text name box
    expect(page.get_by_test_id("stSidebar")).to_contain_text("Signed in as ann")


def test_manager_sees_train_and_import_export(page: Page, auth_server: str) -> None:
    page.goto(auth_server)
    _form_shown(page)
    _sign_in(page, "meg", PASSWORD)
    page.get_by_test_id("stSidebarNav").wait_for(timeout=60_000)
    assert set(MANAGER_LINKS) | set(ANNOTATOR_LINKS) <= set(_nav_links(page))
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train", exact=True).click()
    page.get_by_text("Queue retrain cycle").first.wait_for(timeout=60_000)


def test_wrong_password_refused_and_fifth_slowed(page: Page, auth_server: str) -> None:
    page.goto(auth_server)
    _form_shown(page)
    for _ in range(4):
        _sign_in(page, "victim", "not-the-password")
        expect(page.get_by_text("Wrong name or password.")).to_be_visible()
        assert _nav_links(page) == []
    _sign_in(page, "victim", PASSWORD)
    expect(page.get_by_text("Too many failed sign-ins; try again in")).to_be_visible()
    assert _nav_links(page) == []


def test_sign_out_ends_the_session(page: Page, auth_server: str) -> None:
    page.goto(auth_server)
    _form_shown(page)
    _sign_in(page, "ann", PASSWORD)
    page.get_by_text("Is there a").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Sign out").click()
    _form_shown(page)
    expect(page.get_by_text("Signed out.")).to_be_visible()
    assert _nav_links(page) == []
    assert page.get_by_text("Is there a").count() == 0
