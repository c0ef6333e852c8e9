"""Eight annotators, each signed in from their own browser context, review one queue at once.

One ``labelmend serve`` on a seeded store (SQLite or PostgreSQL) with 8 annotator accounts and
a second pair of eyes on (``LABELMEND_DOUBLE_REVIEW_SHARE`` = :data:`SHARE`), one Chromium with 8
contexts. Playwright's sync API is single-threaded, so the contexts are driven round-robin: each
presses ``a`` or ``x`` as soon as its page shows the next card and its script run is over, and a
press counts as confirmed once the page shows another card. The server thus handles up to 8
decisions at once. Afterwards the store must hold exactly the confirmed presses: every first
decision once, under the name of the context that pressed it, with one review event; every
second look decided by another context, with one ``before == after`` event; nothing lost, nothing
decided twice.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from app.double_review import SHARE_ENV
from app.store import open_store
from bench.review_latency import served, wait_idle
from db.double_review import chosen
from db.models import (
    LabelEvent,
    LabelSource,
    Role,
    SecondReview,
    SecondReviewStatus,
    Suggestion,
    SuggestionStatus,
)
from db.users import add_user
from tests.app.web.seed import seed_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_ANNOTATORS = 8
PRESSES = 10  #: decisions per annotator
SHARE = 0.25  #: share of first decisions that get a blind second look
PASSWORD = "team-pass-123"
KEY_VALUE = {"a": 1, "x": 0}  #: review key → label value it records (accept / reject)
FIRST_KEY_SETTLE_S = 1.0  #: wait this long after the first card before the first key
DROPPED_S = 10.0  #: a first key that started no script run within this long was dropped
STUCK_S = 90.0  #: a press not followed by another card within this long fails the test
DEADLINE_S = 600.0  #: the whole review, sign-in included
EMPTY = "No pending suggestions here"

#: What one page shows now: whether its script run is over, how many runs have started since the
#: first call (exact: every change of ``data-test-script-state`` is recorded), the card on screen
#: (suggestion id from the card's key and from its caption "… · suggestion N"; image decoded),
#: the alerts and the number of exceptions.
STATE_JS = r"""
() => {
  const app = document.querySelector('[data-testid=stApp]');
  if (app && window.__lmRuns === undefined) {
    window.__lmRuns = 0;
    new MutationObserver(records => {
      const states = [...records.map(r => r.oldValue).slice(1), app.getAttribute('data-test-script-state')];
      window.__lmRuns += states.filter(s => s === 'running').length;
    }).observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
  }
  const cards = [...document.querySelectorAll('[class*="st-key-review-card-"]')]
    .filter(el => !el.querySelector('[data-stale="true"]'));
  const out = {
    idle: app?.getAttribute('data-test-script-state') === 'notRunning',
    runs: window.__lmRuns ?? 0,
    card: null, caption: null, ready: false,
    alerts: [...document.querySelectorAll('[data-testid=stAlert]')].map(e => e.innerText.trim()),
    exceptions: document.querySelectorAll('[data-testid=stException]').length,
  };
  if (cards.length === 1) {
    const key = cards[0].className.match(/st-key-review-card-(\d+)/);
    const cap = cards[0].innerText.match(/· suggestion (\d+)/);
    const img = cards[0].querySelector('img');
    out.card = key ? Number(key[1]) : null;
    out.caption = cap ? Number(cap[1]) : null;
    out.ready = !img || (img.complete && img.naturalWidth > 0);
  }
  return out;
}
"""


@dataclass
class Press:
    """A key pressed on the card of suggestion ``sid`` at ``at`` (monotonic s), ``runs`` script
    runs into the page's life."""

    sid: int
    key: str
    at: float
    runs: int


@dataclass
class Annotator:
    """One signed-in browser context and what its page confirmed."""

    name: str
    page: Page
    index: int
    confirmed: list[tuple[int, str]] = field(default_factory=list)  #: (suggestion id, key) in order
    waiting: Press | None = None  #: pressed, next card not shown yet
    first_seen: float | None = None  #: when the first card was shown (monotonic s)
    dropped: int = 0  #: first keys pressed again because the browser dropped them
    done: bool = False

    def next_key(self) -> str:
        """``a`` and ``x`` in turn, starting differently per annotator."""
        return "ax"[(self.index + len(self.confirmed)) % 2]

    def press(self, sid: int, key: str, now: float, runs: int) -> None:
        self.page.keyboard.press(key)
        self.waiting = Press(sid, key, now, runs)


def _sign_in(page: Page, base_url: str, name: str) -> None:
    page.goto(f"{base_url}/?dataset=team")
    page.get_by_text("Sign in to labelmend").wait_for(timeout=120_000)
    wait_idle(page, timeout_ms=120_000)
    page.get_by_label("Name", exact=True).fill(name)
    page.locator("input[type=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _step(ann: Annotator, now: float) -> None:
    """Look at ``ann``'s page once: confirm a press whose next card is shown, press when ready.

    A key pressed just after the buttons first mount can be dropped by the browser (nothing
    reaches the server; see :func:`bench.review_latency.open_review`). Only then — the first key,
    the same card, no script run started since, :data:`DROPPED_S` later — is it pressed again; a
    key that did reach the server would make a second press show "Key ignored", which fails.
    """
    shown = ann.page.evaluate(STATE_JS)
    assert shown["exceptions"] == 0, f"{ann.name}: exception on the Review page"
    problems = [a for a in shown["alerts"] if not a.startswith(EMPTY)]
    assert not problems, f"{ann.name}: {problems} (confirmed so far {ann.confirmed})"
    empty = any(a.startswith(EMPTY) for a in shown["alerts"])
    w = ann.waiting
    if w is not None and now - w.at > STUCK_S:
        raise AssertionError(f"{ann.name}: key {w.key!r} on suggestion {w.sid}: no next card ({shown})")
    if not shown["idle"] or not (empty or (shown["card"] is not None and shown["ready"])):
        return
    if w is not None:
        if shown["card"] == w.sid:  # the rerun has not started yet, or the key was dropped
            if not ann.confirmed and shown["runs"] == w.runs and now - w.at > DROPPED_S:
                ann.dropped += 1
                ann.press(w.sid, w.key, now, shown["runs"])
            return
        ann.confirmed.append((w.sid, w.key))
        ann.waiting = None
    if empty or len(ann.confirmed) == PRESSES:
        ann.done = True
        return
    assert shown["caption"] == shown["card"], f"{ann.name}: caption {shown['caption']}, card {shown['card']}"
    if ann.first_seen is None:
        ann.first_seen = now
    if now - ann.first_seen >= FIRST_KEY_SETTLE_S:
        ann.press(int(shown["card"]), ann.next_key(), now, shown["runs"])


def test_eight_annotators_review_one_queue_at_once(
    browser: Browser, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t_start = time.perf_counter()
    monkeypatch.setenv(SHARE_ENV, str(SHARE))  # read by the server started below
    names = [f"annotator{i + 1}" for i in range(N_ANNOTATORS)]
    store = open_store(db_url)
    with store.write() as s:
        ds = seed_dataset(
            s, tmp_path / "team", name="team", n_images=40, n_classes=6, n_suggestions=110, hostile=False
        )
        for name in names:
            add_user(s, name, Role.ANNOTATOR, PASSWORD)
    with store.read() as s:
        queue = set(
            s.scalars(
                select(Suggestion.id).where(
                    Suggestion.dataset_id == ds.dataset_id, Suggestion.status == SuggestionStatus.PENDING
                )
            )
        )
    assert len(queue) >= N_ANNOTATORS * PRESSES  # nobody runs out of cards

    with served(db_url, tmp_path / "home", tmp_path / "serve.log") as base:
        contexts = [browser.new_context(viewport={"width": 1200, "height": 800}) for _ in names]
        try:
            team = [
                Annotator(name, ctx.new_page(), i)
                for i, (name, ctx) in enumerate(zip(names, contexts, strict=True))
            ]
            for ann in team:
                _sign_in(ann.page, base, ann.name)
            t_review = time.perf_counter()
            while not all(ann.done for ann in team):
                assert time.perf_counter() - t_review < DEADLINE_S, [(a.name, a.confirmed) for a in team]
                for ann in team:
                    if not ann.done:
                        _step(ann, time.monotonic())
            review_s = time.perf_counter() - t_review
        finally:
            for ctx in contexts:
                ctx.close()

    presses = [(sid, key, ann.name) for ann in team for sid, key in ann.confirmed]
    assert len(presses) == N_ANNOTATORS * PRESSES
    pressed_on = Counter(sid for sid, _, _ in presses)
    assert set(pressed_on) <= queue
    assert max(pressed_on.values()) <= 2  # a first decision and at most one second look
    with store.read() as s:
        rows = s.scalars(select(Suggestion).where(Suggestion.id.in_(queue))).all()
        decided = {r.id: r for r in rows if r.status != SuggestionStatus.PENDING}
        looks = {
            r.suggestion_id: r
            for r in s.scalars(select(SecondReview).where(SecondReview.dataset_id == ds.dataset_id))
        }
        events = s.scalars(
            select(LabelEvent).where(LabelEvent.suggestion_id.in_(queue)).order_by(LabelEvent.id)
        ).all()
    store.dispose()

    # Each confirmed press is in the store once, under the name of the context that pressed it:
    # the first press on a suggestion is its decision, a second one (another context) its second look.
    firsts: dict[int, tuple[str, str]] = {}
    seconds: dict[int, tuple[str, str]] = {}
    for sid, key, name in presses:
        sugg = decided.get(sid)
        assert sugg is not None, f"{name}'s press {key!r} on suggestion {sid} was lost"
        if sugg.reviewer == name:
            assert sid not in firsts, f"suggestion {sid} decided twice by {name}"
            firsts[sid] = (name, key)
        else:
            look = looks.get(sid)
            assert look is not None and look.second_reviewer == name, (sid, name, sugg.reviewer)
            assert sid not in seconds
            seconds[sid] = (name, key)
    assert set(decided) == set(firsts), "a decision no page confirmed"
    assert len(firsts) + len(seconds) == len(presses)
    assert all(decided[sid].reviewer in names for sid in decided)

    per_suggestion: dict[int, list[LabelEvent]] = {}
    for ev in events:
        per_suggestion.setdefault(ev.suggestion_id, []).append(ev)
    for sid, (name, key) in firsts.items():
        value = KEY_VALUE[key]
        sugg = decided[sid]
        assert sugg.status == (SuggestionStatus.ACCEPTED if value else SuggestionStatus.REJECTED), sid
        evs = per_suggestion.pop(sid)
        review = [e for e in evs if e.before is None]
        assert [(e.after, e.author, e.source) for e in review] == [(value, name, LabelSource.REVIEW)], sid
        rest = [e for e in evs if e.before is not None]
        look = looks.get(sid)
        assert (look is not None) == chosen(sid, SHARE), sid  # a second look exactly where chosen
        if sid in seconds:
            second_name, second_key = seconds[sid]
            assert second_name != name
            assert look is not None
            assert (look.first_reviewer, look.first_value) == (name, value)
            assert (look.second_reviewer, look.second_value) == (second_name, KEY_VALUE[second_key])
            agreed = KEY_VALUE[second_key] == value
            assert look.status == (SecondReviewStatus.AGREED if agreed else SecondReviewStatus.DISAGREED)
            assert [(e.before, e.after, e.author) for e in rest] == [(value, value, second_name)], sid
        else:
            assert rest == [], sid
            assert look is None or look.status == SecondReviewStatus.PENDING
    assert per_suggestion == {}, "events on suggestions no page decided"
    assert set(seconds) <= set(firsts)
    print(
        f"\n{N_ANNOTATORS} annotators on {store.engine.dialect.name}: {len(firsts)} decisions + "
        f"{len(seconds)} second looks in {review_s:.1f} s of reviewing "
        f"({time.perf_counter() - t_start:.1f} s in all; dropped first keys pressed again: "
        f"{sum(a.dropped for a in team)})"
    )
