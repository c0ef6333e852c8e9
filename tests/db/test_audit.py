"""A run's audit sample in the store: written with write_suggestions, read back by audit_summary."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import literal_column, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Suggestion
from db.queries import audit_summary
from db.review import Decision, decide, undo
from db.runs import create_run, finish_run, write_suggestions
from tests.db.factory import Small, make_small

#: (image index, class index, audit) of the queue, in order.
QUEUE = [(0, 0, False), (1, 1, True), (2, 0, False), (3, 2, True), (4, 1, False), (5, 2, True), (0, 3, True)]


def _write(s: Session, small: Small, queue: list[tuple[int, int, bool]], audit: bool = True) -> int:
    run = create_run(s, small.dataset_id, "target", {"loss": "csl"})
    k = len(queue)
    n = write_suggestions(
        s,
        run.id,
        image_ids=np.array([small.image_ids[i] for i, _, _ in queue]),
        class_ids=np.array([small.class_ids[j] for _, j, _ in queue]),
        scores=np.linspace(0.9, 0.3, k),
        probs=np.linspace(0.8, 0.1, k),
        priors=np.full(k, 0.1),
        audit=np.array([a for *_, a in queue]) if audit else None,
    )
    assert n == k
    finish_run(s, run.id)
    return run.id


def _decide(s: Session, small: Small, run_id: int, cells: dict[tuple[int, int], Decision]) -> None:
    for (i, j), d in cells.items():
        sugg_id = s.scalar(
            select(Suggestion.id).where(
                Suggestion.run_id == run_id,
                Suggestion.image_id == small.image_ids[i],
                Suggestion.class_id == small.class_ids[j],
            )
        )
        assert sugg_id is not None
        decide(s, sugg_id, d, "ann")


def test_audit_flags_are_stored_in_queue_order(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        run_id = _write(s, small, QUEUE)
    with sm() as s:
        rows = s.execute(
            select(Suggestion.rank, Suggestion.audit)
            .where(Suggestion.run_id == run_id)
            .order_by(Suggestion.rank)
        ).all()
    assert rows == [(r + 1, a) for r, (*_, a) in enumerate(QUEUE)]


def test_audit_summary_counts_per_class_and_ranked_decisions(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        run_id = _write(s, small, QUEUE)
    with sm.begin() as s:
        _decide(s, small, run_id, {
            (1, 1): Decision.ACCEPT,  # audit, class 1
            (3, 2): Decision.REJECT,  # audit, class 2
            (5, 2): Decision.ACCEPT,  # audit, class 2
            (0, 3): Decision.SKIP,  # audit, class 3: not a decision
            (0, 0): Decision.ACCEPT,  # ranked
            (2, 0): Decision.ACCEPT,  # ranked
            (4, 1): Decision.REJECT,  # ranked
        })  # fmt: skip
    with sm() as s:
        summary = audit_summary(s, run_id)
    keys = {c.key: (c.cells, c.accepted, c.rejected, c.decided) for c in summary.classes}
    assert keys == {"/m/c1": (1, 1, 0, 1), "/m/c2": (2, 1, 1, 2), "/m/c3": (1, 0, 0, 0)}
    assert [c.key for c in summary.classes] == ["/m/c2", "/m/c1", "/m/c3"]  # most decided first
    assert summary.classes[0].display_name == "class 2"
    assert (summary.cells, summary.accepted, summary.rejected, summary.decided) == (4, 2, 1, 3)
    assert (summary.ranked_accepted, summary.ranked_rejected, summary.ranked_decided) == (2, 1, 3)


def test_undo_and_a_later_run_leave_the_counts_right(sm: sessionmaker[Session]) -> None:
    """Superseded audit cells stay in the old run's sample, undecided; a new run's sample is its own."""
    with sm.begin() as s:
        small = make_small(s)
        first = _write(s, small, QUEUE)
    with sm.begin() as s:
        _decide(s, small, first, {(1, 1): Decision.ACCEPT, (0, 0): Decision.REJECT})
    with sm.begin() as s:
        sugg_id = s.scalar(select(Suggestion.id).where(Suggestion.run_id == first, Suggestion.rank == 1))
        undo(s, sugg_id, "ann")
    with sm.begin() as s:
        second = _write(s, small, [(2, 3, True), (3, 3, False)])
    with sm() as s:
        one, two = audit_summary(s, first), audit_summary(s, second)
    assert (one.cells, one.accepted, one.rejected, one.ranked_accepted, one.ranked_rejected) == (
        4,
        1,
        0,
        0,
        0,
    )
    assert (two.cells, two.decided, two.ranked_decided) == (1, 0, 0)
    assert [c.key for c in two.classes] == ["/m/c3"]


def test_without_audit_flags_nothing_is_audit(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        run_id = _write(s, small, QUEUE, audit=False)
    with sm.begin() as s:
        _decide(s, small, run_id, {(0, 0): Decision.ACCEPT, (1, 1): Decision.REJECT})
    with sm() as s:
        assert set(s.scalars(select(Suggestion.audit).where(Suggestion.run_id == run_id))) == {False}
        summary = audit_summary(s, run_id)
        assert (summary.classes, summary.cells, summary.decided) == ([], 0, 0)
        assert (summary.ranked_accepted, summary.ranked_rejected) == (1, 1)
        assert audit_summary(s, 12345).cells == 0  # an unknown run: nothing


def test_audit_flags_must_match_the_suggestions(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s)
        run = create_run(s, small.dataset_id, "target", {})
        with pytest.raises(ValueError, match="audit has 1 flags for 2 suggestions"):
            write_suggestions(s, run.id, image_ids=np.array(small.image_ids[:2]),
                              class_ids=np.array(small.class_ids[:2]), scores=np.array([0.9, 0.8]),
                              probs=np.array([0.9, 0.8]), audit=np.array([True]))  # fmt: skip


def test_audit_summary_reads_the_partial_index(sm: sessionmaker[Session]) -> None:
    """The audit cells are found through ix_suggestion_audit, not by scanning the run."""
    with sm.begin() as s:
        small = make_small(s)
        run_id = _write(s, small, QUEUE)
    stmt = select(Suggestion.class_id).where(Suggestion.run_id == run_id, literal_column("suggestion.audit"))
    with sm() as s:
        bind = s.get_bind()
        sql = str(stmt.compile(bind, compile_kwargs={"literal_binds": True}))
        if bind.dialect.name == "sqlite":
            plan = " ".join(str(r) for r in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        else:
            s.connection().exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(str(r) for r in s.connection().exec_driver_sql(f"EXPLAIN {sql}"))
    assert "ix_suggestion_audit" in plan
