"""The sign-in form, the Team page and the Adjudicate page in a real browser, with screenshots.

A store (SQLite or PostgreSQL) with a manager and three annotators whose decisions were made
through ``db`` functions: every decision chosen for a second look (share 1.0), most looks
decided by another annotator, two of them differently — one adjudicated by the manager, one
left waiting. The manager signs in and sees everyone's figures and the one disagreement; the
pages show no exception. Screenshots go to ``test-output/screenshots/`` (``signin.png``,
``team.png``, ``adjudicate.png``; the README's copies are in ``docs/screenshots/``).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from app.store import Store, open_store
from bench.review_latency import served, wait_idle
from db.double_review import adjudicate, claim_next_second, get_second, record_second, second_review_of
from db.labels import get_cell
from db.models import Role, SecondReview, SecondReviewStatus, Suggestion, utcnow
from db.review import decide, pending_page
from db.users import add_user
from tests.app.web.seed import seed_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "team-pages-123"
MANAGER = "maria"
#: annotator → their first decisions, in order ("accept" / "reject").
FIRSTS = {
    "ann": ["accept", "accept", "reject", "accept", "reject", "accept", "accept", "reject"],
    "bob": ["reject", "accept", "reject", "reject", "accept", "reject", "accept"],
    "chen": ["accept", "reject", "accept", "accept", "reject", "accept"],
}
#: second looks: (second annotator, agrees with the first decision?), taken oldest first.
SECONDS = [
    ("bob", True), ("chen", True), ("ann", True), ("chen", False), ("bob", True), ("ann", True),
    ("chen", True), ("bob", False), ("ann", True), ("chen", True), ("bob", True), ("ann", True),
]  # fmt: skip
SEED_REVIEWER = "seed-reviewer"  #: decided 3 suggestions of the seed's first run (tests/app/web/seed.py)
TEAM_SHOT_HEIGHT = 1500  #: px: the Team page's table, charts and both agreement tables
STEP_S = 11  #: seconds between two decisions of the team (spread so the pace figures are a work pace)


@dataclass
class TeamStore:
    """The seeded store, the figures the Team page must show, the disagreement left waiting."""

    store: Store
    dataset_id: int
    expected: dict[str, dict[str, str]]
    """annotator → the Team table's Decisions, Double-reviewed and Adjudicated, as shown."""
    pairs: dict[str, str]
    """"ann & bob" → items both decided, as the pair table shows them."""
    waiting: SecondReview
    """the disagreement the Adjudicate page shows."""


def _seed(store: Store, root: Path) -> TeamStore:
    """Decide through ``db`` functions, then spread the decision times one :data:`STEP_S` apart
    (the decisions themselves take milliseconds; the Team page's pace would read millions per hour)."""
    t0 = utcnow() - dt.timedelta(hours=1)
    clock = iter(t0 + dt.timedelta(seconds=STEP_S * k) for k in range(1000))
    with store.write() as s:
        ds = seed_dataset(s, root, name="team", n_images=30, n_classes=5, n_suggestions=40, hostile=False)
        add_user(s, MANAGER, Role.MANAGER, PASSWORD)
        for name in FIRSTS:
            add_user(s, name, Role.ANNOTATOR, PASSWORD)
        queue = iter(pending_page(s, ds.dataset_id, limit=40))
        rounds = max(len(d) for d in FIRSTS.values())
        for k in range(rounds):  # round-robin, as a team works
            for name, decisions in FIRSTS.items():
                if k < len(decisions):
                    sugg = decide(s, next(queue).id, decisions[k], name, second_review_share=1.0)
                    sugg.reviewed_at = next(clock)
                    look = second_review_of(s, sugg.id)
                    assert look is not None  # share 1.0: every decision gets a second look
                    look.first_at = sugg.reviewed_at
        s.flush()
        disagreed: list[int] = []  # second looks decided differently
        both: list[tuple[str, str]] = []  # (first, second annotator) of every decided second look
        for name, agrees in SECONDS:
            look = claim_next_second(s, ds.dataset_id, name)
            assert look is not None, name
            value = look.first_value if agrees else 1 - look.first_value
            done = record_second(s, look.id, value, name)
            done.second_at = next(clock)
            both.append((done.first_reviewer, name))
            if not agrees:
                disagreed.append(done.id)
        settled = adjudicate(s, disagreed[0], 1, MANAGER)
        waiting = get_second(s, disagreed[1])
        assert waiting is not None and waiting.status == SecondReviewStatus.DISAGREED
        s.expunge(waiting)
        earlier = s.scalars(
            select(Suggestion)
            .where(Suggestion.dataset_id == ds.dataset_id, Suggestion.reviewer == SEED_REVIEWER)
            .order_by(Suggestion.id)
        ).all()
        for k, sugg in enumerate(earlier):  # the seed's own decisions, made before the team's
            sugg.reviewed_at = t0 - dt.timedelta(seconds=4 * STEP_S * (len(earlier) - k))
        # Expected figures: decisions (first + second), items with both decisions, adjudicated ones.
        judged = (settled.first_reviewer, settled.second_reviewer)
    expected = {
        name: {
            "Decisions": str(len(FIRSTS[name]) + sum(n == name for n, _ in SECONDS)),
            "Double-reviewed": str(sum(name in pair for pair in both)),
            "Adjudicated": str(int(name in judged)),
        }
        for name in FIRSTS
    }
    expected[SEED_REVIEWER] = {"Decisions": str(len(earlier)), "Double-reviewed": "0", "Adjudicated": "0"}
    pairs = Counter(" & ".join(sorted(pair)) for pair in both)
    return TeamStore(store, ds.dataset_id, expected, {k: str(n) for k, n in pairs.items()}, waiting)


@pytest.fixture
def team_store(db_url: str, tmp_path: Path) -> Iterator[TeamStore]:
    store = open_store(db_url)
    yield _seed(store, tmp_path / "team")
    store.dispose()


def _settled(page: Page) -> None:
    """Wait until the script run is over, every image is loaded and every chart drawn."""
    page.wait_for_timeout(300)
    wait_idle(page)
    page.wait_for_function(
        """() => [...document.images].every(i => i.complete)
            && !document.querySelector('[data-testid="stSkeleton"]')
            && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector('.main-svg'))""",
        timeout=60_000,
    )


def _grid(frame: Locator, timeout_s: float = 30.0) -> list[list[str]]:
    """The cells of an ``st.dataframe`` from its accessible table: header row first, raw values.

    The grid fills its accessible table after it is drawn (a visible frame can still have no rows
    for a moment on a busy machine), so this waits until it holds a header and a row.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        rows: list[list[str]] = frame.evaluate(
            "t => [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => c.textContent))"
        )
        if len(rows) >= 2 or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _open(page: Page, link: str, heading: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=link, exact=True).click()
    page.get_by_role("heading", name=heading).wait_for(timeout=60_000)
    _settled(page)
    assert page.get_by_test_id("stException").count() == 0, link


def test_signin_team_and_adjudicate_pages(
    page: Page, team_store: TeamStore, tmp_path: Path, screenshots: Path
) -> None:
    with served(team_store.store.url, tmp_path / "home", tmp_path / "serve.log") as base:
        page.goto(f"{base}/?dataset=team")
        page.get_by_text("Sign in to labelmend").wait_for(timeout=60_000)
        _settled(page)
        assert page.get_by_test_id("stException").count() == 0
        assert page.get_by_test_id("stSidebar").count() == 0
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        page.screenshot(path=str(screenshots / "signin.png"), full_page=True)

        page.get_by_label("Name", exact=True).fill(MANAGER)
        page.locator("input[type=password]").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("stSidebarNav").wait_for(timeout=60_000)
        expect(page.get_by_test_id("stSidebar")).to_contain_text(f"Signed in as {MANAGER}")

        _open(page, "Team", "Team")
        expect(page.get_by_text("team · every annotator")).to_be_visible()
        for heading in ("Agreement per annotator pair", "Agreement per class"):
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
        charts = page.get_by_test_id("stPlotlyChart")
        expect(charts).to_have_count(2)
        for chart in charts.all():  # bars named by annotator (the seed's own 3 decisions included)
            ticks = chart.locator(".xtick text").all_text_contents()
            assert set(FIRSTS) <= set(ticks) <= {*FIRSTS, SEED_REVIEWER}, ticks
        table = page.get_by_test_id("stDataFrame").first
        expect(table).to_be_visible()
        # the grid's accessible table: Annotator, Decisions, …, Double-reviewed, …, Adjudicated
        rows = _grid(table)
        head = rows[0]
        shown = {
            r[0]: {h: r[head.index(h)] for h in ("Decisions", "Double-reviewed", "Adjudicated")}
            for r in rows[1:]
        }
        assert shown == team_store.expected, shown
        pairs = _grid(page.get_by_test_id("stDataFrame").nth(1))
        assert pairs[0][:2] == ["Pair", "Items"]
        assert {r[0]: r[1] for r in pairs[1:]} == team_store.pairs, pairs
        # Streamlit scrolls inside its own container, so a full-page shot is the viewport: make
        # it tall enough for the agreement tables, then back.
        page.set_viewport_size({"width": 1400, "height": TEAM_SHOT_HEIGHT})
        _settled(page)
        page.screenshot(path=str(screenshots / "team.png"), full_page=True)
        page.set_viewport_size({"width": 1400, "height": 900})

        _open(page, "Adjudicate", "Disagreements")
        w = team_store.waiting
        expect(page.get_by_text(re.compile(r"^1 waiting in team"))).to_be_visible()
        card = page.locator(f".st-key-adjudicate-card-{w.id}")
        expect(card).to_have_count(1)
        words = {1: "accept (present)", 0: "reject (absent)"}
        expect(card).to_contain_text(f"First: {w.first_reviewer} — {words[w.first_value]}")
        expect(card).to_contain_text(f"Second: {w.second_reviewer} — {words[w.second_value]}")
        expect(card).to_contain_text(f"suggestion {w.suggestion_id}")
        expect(card).to_contain_text(f"Label now: {'positive' if w.first_value else 'negative'}")
        expect(card.get_by_role("button", name="Present")).to_be_visible()
        page.screenshot(path=str(screenshots / "adjudicate.png"), full_page=True)

        # The verdict is written at once and the queue empties.
        card.get_by_role("button", name="Absent").click()
        expect(page.get_by_text("No disagreements to settle.")).to_be_visible(timeout=60_000)
        assert page.get_by_test_id("stException").count() == 0
    with team_store.store.read() as s:
        row = get_second(s, w.id)
        assert row is not None
        assert (row.status, row.adjudicated_value, row.adjudicator) == (
            SecondReviewStatus.ADJUDICATED,
            0,
            MANAGER,
        )
        sugg = s.get(Suggestion, w.suggestion_id)
        assert sugg is not None
        cell = get_cell(s, sugg.image_id, sugg.class_id)
        assert (cell.value, cell.author, cell.source) == (0, MANAGER, "adjudication")
