"""Many annotators on one review queue: nothing decided twice, nothing lost, one event per change."""

from __future__ import annotations

import random
import threading
from collections import Counter

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.errors import ConflictError
from db.labels import get_cell, set_label
from db.models import Label, LabelEvent, Suggestion
from db.review import claim_next, decide
from db.runs import create_run, finish_run, write_suggestions
from tests.db.factory import make_small

N_ANNOTATORS = 8
N_SUGGESTIONS = 2000


def _queue(sm: sessionmaker[Session]) -> int:
    with sm.begin() as s:
        small = make_small(s, n_images=200, n_classes=10)
        run = create_run(s, small.dataset_id, "target", {})
        img, cls = np.divmod(np.arange(N_SUGGESTIONS), 10)
        write_suggestions(
            s, run.id,
            image_ids=np.array(small.image_ids)[img], class_ids=np.array(small.class_ids)[cls],
            scores=np.linspace(1, 0, N_SUGGESTIONS), probs=np.linspace(1, 0, N_SUGGESTIONS),
        )  # fmt: skip
        finish_run(s, run.id)
        return small.dataset_id


def test_eight_annotators_share_one_queue(sm: sessionmaker[Session]) -> None:
    dataset_id = _queue(sm)
    made: dict[str, Counter[str]] = {}
    errors: list[BaseException] = []

    def annotate(name: str) -> None:
        rng = random.Random(name)
        mine: Counter[str] = Counter()
        try:
            while True:
                with sm.begin() as s:
                    sugg = claim_next(s, dataset_id, name, lease_s=60)
                    if sugg is None:
                        break
                    sid = sugg.id
                decision = rng.choice(["accept", "reject", "skip"])
                with sm.begin() as s:
                    decide(s, sid, decision, name)
                mine[decision] += 1
        except BaseException as err:  # any error reaching an annotator fails the test
            errors.append(err)
        made[name] = mine

    threads = [threading.Thread(target=annotate, args=(f"annotator{i}",)) for i in range(N_ANNOTATORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    total = sum(sum(c.values()) for c in made.values())
    assert total == N_SUGGESTIONS
    assert sum(1 for c in made.values() if sum(c.values()) > 0) >= 2  # the work was really shared
    with sm() as s:
        statuses = Counter(
            dict(s.execute(select(Suggestion.status, func.count()).group_by(Suggestion.status)).all())
        )
        want = Counter()
        for c in made.values():
            want.update({"accepted": c["accept"], "rejected": c["reject"], "skipped": c["skip"]})
        assert statuses == want
        n_events = s.scalar(select(func.count()).select_from(LabelEvent))
        assert n_events == want["accepted"] + want["rejected"]
        assert s.scalar(select(func.count()).select_from(Label)) == n_events
        assert s.scalar(select(func.count()).select_from(Label).where(Label.version != 1)) == 0
        by_reviewer = Counter(
            dict(s.execute(select(Suggestion.reviewer, func.count()).group_by(Suggestion.reviewer)).all())
        )
        assert by_reviewer == Counter({k: sum(v.values()) for k, v in made.items() if sum(v.values())})


def test_two_editors_on_one_cell_one_wins_one_conflicts(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        small = make_small(s, n_images=1, n_classes=1)
    image_id, class_id = small.image_ids[0], small.class_ids[0]
    with sm() as s:  # both Image pages load the cell (unknown, version 0) ...
        seen = get_cell(s, image_id, class_id).version
    start = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def edit(name: str, value: int) -> None:  # ... and both save at the same moment
        start.wait(timeout=10)
        try:
            with sm.begin() as s:
                set_label(s, image_id=image_id, class_id=class_id, value=value, author=name, source="edit",
                          reason="image page", expected_version=seen)  # fmt: skip
            outcome[name] = "won"
        except ConflictError as err:
            outcome[name] = f"conflict: {err}"

    threads = [threading.Thread(target=edit, args=("ann", 1)), threading.Thread(target=edit, args=("bob", 0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(v.split(":")[0] for v in outcome.values()) == ["conflict", "won"], outcome
    winner = next(k for k, v in outcome.items() if v == "won")
    loser_msg = next(v for v in outcome.values() if v != "won")
    assert "changed meanwhile" in loser_msg and f"by {winner}" in loser_msg
    with sm() as s:
        events = list(s.scalars(select(LabelEvent)))
        assert [(e.before, e.author) for e in events] == [(None, winner)]
        assert get_cell(s, image_id, class_id).author == winner
