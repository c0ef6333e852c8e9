"""Review with the keyboard in a real browser: a, x, space, backspace and the arrows change the store."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import select

from bench import review_latency
from bench.review_latency import current_card, measure_review_latency, open_review, wait_idle
from db.labels import get_cell
from db.models import LabelEvent, Suggestion
from db.review import pending_page
from tests.browser.conftest import SCREENSHOTS, Served

pytestmark = pytest.mark.browser


def press_and_time(page: Page, key: str) -> tuple[str, float]:
    """Press when the previous run is over, so each key acts on the suggestion asserted on."""
    wait_idle(page)
    return review_latency.press_and_time(page, key)


def test_review_five_suggestions_with_the_keyboard(page: Page, app_server: Served, screenshots: Path) -> None:
    store, ds = app_server.store, app_server.datasets["alpha"]
    with store.read() as s:
        queue = [str(x.id) for x in pending_page(s, ds.dataset_id, limit=8)]
    open_review(page, app_server.base_url, "alpha", "kb")
    s1 = current_card(page)
    s2, _ = press_and_time(page, "a")  # accept s1
    s3, _ = press_and_time(page, "x")  # reject s2
    s4, _ = press_and_time(page, "Space")  # skip s3
    back, _ = press_and_time(page, "Backspace")  # undo the skip: s3 again
    assert back == s3
    after, _ = press_and_time(page, "a")  # accept s3
    assert after == s4
    s5, _ = press_and_time(page, "x")  # reject s4
    s6, _ = press_and_time(page, "a")  # accept s5
    s7, _ = press_and_time(page, "ArrowRight")  # pass over s6
    again, _ = press_and_time(page, "ArrowLeft")  # back to s6
    assert [s1, s2, s3, s4, s5, s6, s7] == queue[:7]  # highest class-aware likelihood first
    assert again == s6
    page.screenshot(path=str(screenshots / "review_after_keyboard.png"))

    expected = {
        s1: ("accepted", 1),
        s2: ("rejected", 0),
        s3: ("accepted", 1),
        s4: ("rejected", 0),
        s5: ("accepted", 1),
    }
    with store.read() as s:
        for sid, (status, value) in expected.items():
            sugg = s.get(Suggestion, int(sid))
            assert (sugg.status, sugg.reviewer) == (status, "kb"), sid
            cell = get_cell(s, sugg.image_id, sugg.class_id)
            assert (cell.value, cell.author, cell.source) == (value, "kb", "review"), sid
            events = s.scalars(select(LabelEvent).where(LabelEvent.suggestion_id == sugg.id)).all()
            assert [(e.before, e.after, e.author) for e in events] == [(None, value, "kb")], sid
        for sid in (s6, s7):
            assert s.get(Suggestion, int(sid)).status == "pending"
        assert s.get(Suggestion, int(s6)).claimed_by == "kb"  # shown again, leased to kb


def test_review_latency_median_of_20(page: Page, app_server: Served) -> None:
    """Key press → next suggestion shown (image decoded), page clock; printed, not asserted."""
    store, ds = app_server.store, app_server.datasets["lat"]
    open_review(page, app_server.base_url, "lat", "lat-annotator")
    samples = measure_review_latency(page, n=20, keys=("a", "x"))
    median = statistics.median(samples)
    print(
        f"\nreview latency on the seeded store: median {median:.0f} ms of 20 (min {min(samples):.0f}, max {max(samples):.0f})"
    )
    SCREENSHOTS.parent.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS.parent / "review_latency.json").write_text(
        json.dumps(
            {
                "store": "seeded (40 images, 40 suggestions)",
                "median_ms": round(median, 1),
                "samples_ms": [round(x, 1) for x in samples],
            }
        )
    )
    with store.read() as s:
        decided = s.scalars(
            select(Suggestion.status).where(
                Suggestion.dataset_id == ds.dataset_id, Suggestion.reviewer == "lat-annotator"
            )
        ).all()
    assert sorted(decided) == ["accepted"] * 10 + ["rejected"] * 10
