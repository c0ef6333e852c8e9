"""The review-queue benchmark on a real store (both backends): seeding, timings and the plan check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from bench.cli import bench_app
from bench.queue_latency import (
    MOVES,
    make_queue_store,
    measure_next_latency,
    prepare_queue,
    review_next_latency,
    seed_pending,
)
from db.models import Suggestion, SuggestionCount

N = 20_000


@pytest.fixture
def queue(sm: sessionmaker[Session]) -> tuple[int, int]:
    """(dataset id, run id) of a store with N pending suggestions over 200 images × 120 classes."""
    with sm.begin() as s:
        store = make_queue_store(s, images=200, classes=120)
        assert seed_pending(s, store.run_id, N, seed=3) == N
    return store.dataset_id, store.run_id


def test_seed_pending_writes_a_ranked_queue(sm: sessionmaker[Session], queue: tuple[int, int]) -> None:
    _, run_id = queue
    with sm() as s:
        rows = s.execute(
            select(
                Suggestion.image_id, Suggestion.class_id, Suggestion.score, Suggestion.rank, Suggestion.status
            )
            .where(Suggestion.run_id == run_id)
            .order_by(Suggestion.rank)
        ).all()
        counted = s.scalar(select(func.sum(SuggestionCount.pending)).where(SuggestionCount.run_id == run_id))
    assert len(rows) == N and {r.status for r in rows} == {"pending"}
    assert len({(r.image_id, r.class_id) for r in rows}) == N  # each cell once
    assert [r.rank for r in rows] == list(range(1, N + 1))
    scores = np.array([r.score for r in rows])
    assert np.all(np.diff(scores) <= 0) and scores.min() >= 0 and scores.max() < 1
    assert counted == N  # the triggers kept suggestion_count in step with the bulk load


def test_seed_pending_rejects_bad_sizes(sm: sessionmaker[Session], queue: tuple[int, int]) -> None:
    with sm.begin() as s:
        store = make_queue_store(s, images=3, classes=4, name="tiny")
        with pytest.raises(ValueError, match="= 12; add images"):
            seed_pending(s, store.run_id, 13)
        with pytest.raises(ValueError, match="n >= 1"):
            seed_pending(s, store.run_id, 0)
    with sm.begin() as s, pytest.raises(ValueError, match="pending suggestions already"):
        seed_pending(s, queue[1], 10)


def test_review_next_latency_times_the_queue_and_checks_the_plan(
    sm: sessionmaker[Session], queue: tuple[int, int]
) -> None:
    dataset_id, _ = queue
    samples = 40
    r = measure_next_latency(sm, dataset_id, samples=samples, warmup=5)
    assert r.pending == N and r.next.n == samples and r.empty_calls == 0
    assert 0 < r.next.p50_ms <= r.next.p95_ms <= r.next.max_ms
    assert 0 < r.decide.p50_ms <= r.decide.p95_ms <= r.decide.max_ms
    assert r.uses_index and "ix_suggestion_queue" in r.indexes, r.plan
    assert sum(r.moves.values()) == samples and set(r.moves) == set(MOVES)
    with sm() as s:  # the walk decided what it says it did, and passed the rest back
        decided = dict(
            s.execute(
                select(Suggestion.status, func.count())
                .where(Suggestion.dataset_id == dataset_id, Suggestion.status != "pending")
                .group_by(Suggestion.status)
            ).all()
        )
        held = s.scalar(select(func.count()).where(Suggestion.claimed_by.is_not(None)))
    steps = [MOVES[i % len(MOVES)] for i in range(samples + 5)]
    assert decided == {
        "accepted": steps.count("accept"),
        "rejected": steps.count("reject"),
        "skipped": steps.count("skip"),
    }
    assert held == 0
    numbers = review_next_latency(sm, dataset_id, samples=5, warmup=0)
    assert numbers["uses_index"] and 0 < numbers["next_p50_ms"] <= numbers["next_p95_ms"]
    assert numbers["pending"] == N - sum(decided.values())


def test_class_filter_uses_the_class_queue(sm: sessionmaker[Session], queue: tuple[int, int]) -> None:
    dataset_id, run_id = queue
    with sm() as s:
        class_id = s.scalar(select(Suggestion.class_id).where(Suggestion.run_id == run_id).limit(1))
    r = measure_next_latency(sm, dataset_id, samples=5, warmup=0, class_id=class_id)
    assert r.uses_index and r.empty_calls == 0, r.plan


def test_prepare_queue_reuses_the_seeded_dataset(sm: sessionmaker[Session]) -> None:
    first = prepare_queue(sm, pending=500, classes=10, images=60)
    assert prepare_queue(sm, pending=500, classes=10, images=60) == first


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bench_queue_command(tmp_path: Path, db_url: str) -> None:
    result = CliRunner().invoke(
        bench_app, ["queue", "--pending", "3000", "--classes", "30", "--samples", "10", "--db", db_url]
    )
    assert result.exit_code == 0, result.output
    assert "sqlite: 3,000 pending, 10 timed calls" in result.output
    assert "an index lookup" in result.output and "ix_suggestion_queue" in result.output
