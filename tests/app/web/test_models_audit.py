"""AppTest: the Models page's "Measured on your reviews" on a real store with an audit sample.

A run with 20 ranked suggestions and 10 audit cells (every third place) is written through
``db.runs.write_suggestions``; reviewers decide some of each through ``db.review.decide``, and the
page must show the ranked precision, the audit rate and the lift with their Wilson intervals, and
the per-class rates and estimated missing positives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.store import Store, close_stores, open_store
from app.web import MAIN_SCRIPT
from db.models import Label, Suggestion
from db.review import decide
from db.runs import create_run, finish_run, write_suggestions
from tests.app.web.seed import Seeded, seed_dataset

N_QUEUE = 30


@dataclass
class AuditRun:
    store: Store
    seeded: Seeded
    run_id: int
    cells: list[tuple[int, int]]  #: (image id, class id) in queue order
    audit: np.ndarray  #: (N_QUEUE,) bool
    unknown: dict[int, int]  #: class id -> unknown cells when the run was made


@pytest.fixture
def audit_run(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditRun]:
    monkeypatch.setenv("LABELMEND_DB", db_url)
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    store = open_store(db_url)
    with store.write() as s:
        sd = seed_dataset(s, tmp_path / "images", n_images=40, hostile=True)
        known = set(s.execute(select(Label.image_id, Label.class_id).where(Label.image_id.in_(sd.image_ids))))
        unknown_cells = [(i, c) for i in sd.image_ids for c in sd.class_ids if (i, c) not in known]
        unknown = {c: sum(1 for _, cc in unknown_cells if cc == c) for c in sd.class_ids}
        rng = np.random.default_rng(1)
        cells = [unknown_cells[j] for j in rng.permutation(len(unknown_cells))[:N_QUEUE]]
        audit = np.arange(N_QUEUE) % 3 == 1
        run = create_run(
            s, sd.dataset_id, "target", {"loss": "csl", "audit_share": 1 / 3}, parent_id=sd.run_ids[0]
        )
        write_suggestions(
            s,
            run.id,
            image_ids=np.array([i for i, _ in cells]),
            class_ids=np.array([c for _, c in cells]),
            scores=np.linspace(0.95, 0.2, N_QUEUE),
            probs=rng.uniform(0, 1, N_QUEUE),
            priors=np.full(N_QUEUE, 0.2),
            audit=audit,
        )
        metrics = {
            "partial_map": 70.0,
            "audit": {"drawn": 10, "unknown_cells": {str(c): n for c, n in unknown.items()}},
        }
        finish_run(s, run.id, metrics=metrics)
    yield AuditRun(store, sd, run.id, cells, audit, unknown)
    close_stores()


def _decide(ar: AuditRun, places: list[int], decisions: list[str]) -> None:
    with ar.store.write() as s:
        for place, decision in zip(places, decisions, strict=True):
            image_id, class_id = ar.cells[place]
            sugg_id = s.scalar(
                select(Suggestion.id).where(
                    Suggestion.run_id == ar.run_id,
                    Suggestion.image_id == image_id,
                    Suggestion.class_id == class_id,
                )
            )
            assert sugg_id is not None
            decide(s, sugg_id, decision, "ann")


def _models_page() -> AppTest:
    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=60)
    at.session_state["annotator"] = "ann"
    at.run()
    at.switch_page("views/models.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_measured_precision_audit_rate_lift_and_classes(audit_run: AuditRun) -> None:
    ar = audit_run
    ranked = [p for p in range(N_QUEUE) if not ar.audit[p]]
    audits = [p for p in range(N_QUEUE) if ar.audit[p]]
    # 10 ranked decided: 8 accepted (a textbook Wilson case: 80 %, 49.0 % – 94.3 %); one skipped.
    _decide(ar, ranked[:11], ["accept"] * 8 + ["reject"] * 2 + ["skip"])
    # 10 audit cells decided: 2 accepted (20 %, Wilson 5.7 % – 51.0 %).
    _decide(ar, audits, ["accept", "reject", "reject", "reject", "accept"] + ["reject"] * 5)
    at = _models_page()
    assert at.selectbox(key="models-audit-run").value == ar.run_id  # the newest run first
    metrics = _metrics(at)
    assert metrics["Precision of ranked suggestions"] == "80.0 %"
    assert metrics["Missing-positive rate (audit)"] == "20.0 %"
    assert metrics["Lift over random"] == "4.0×"
    captions = _captions(at)
    assert "95 % interval 49.0 % – 94.3 %, from 10 decided ranked suggestions" in captions
    assert "95 % interval 5.7 % – 51.0 %, from 10 decided audit cells" in captions
    total_unknown = sum(ar.unknown.values())
    assert (
        f"about {0.2 * total_unknown:,.0f} missing positives among the {total_unknown:,} unknown" in captions
    )
    # lift interval: 0.490 / 0.510 and 0.943 / 0.057
    assert "Interval 1.0× – 16.6×" in captions and "from 10 ranked and 10 audit decisions" in captions
    assert captions.count("Too few decisions yet") == 2  # 10 < 20 decisions, for each proportion

    table = at.dataframe[-1].value.set_index("key")
    key_of = dict(
        zip(ar.seeded.class_ids, (f"/m/c{j}" for j in range(len(ar.seeded.class_ids))), strict=True)
    )
    expected: dict[str, list[int]] = {}
    accepted_places = {audits[0], audits[4]}
    for p in audits:
        row = expected.setdefault(key_of[ar.cells[p][1]], [0, 0, 0])
        row[0] += 1
        row[1] += 1
        row[2] += int(p in accepted_places)
    assert set(table.index) == set(expected)
    for key, (cells, decided, accepted) in expected.items():
        row = table.loc[key]
        assert (int(row["audit cells"]), int(row["decided"]), int(row["accepted"])) == (
            cells,
            decided,
            accepted,
        )
        class_id = next(c for c, k in key_of.items() if k == key)
        assert row["rate"] == pytest.approx(accepted / decided)
        assert int(row["unknown cells"]) == ar.unknown[class_id]
        assert row["est. missing"] == pytest.approx(accepted / decided * ar.unknown[class_id])
        assert row["low"] <= row["rate"] <= row["high"]
    decided_order = [int(d) for d in table["decided"]]
    assert decided_order == sorted(decided_order, reverse=True)  # most decided first
    assert at.get("plotly_chart")  # the per-class chart is drawn


def test_before_any_decision_and_on_a_run_without_audit(audit_run: AuditRun) -> None:
    ar = audit_run
    at = _models_page()
    assert _metrics(at) == {
        "Precision of ranked suggestions": "—",
        "Missing-positive rate (audit)": "—",
        "Lift over random": "—",
    }
    captions = _captions(at)
    assert "No ranked suggestion of this run has been accepted or rejected yet." in captions
    assert "No audit cell of this run has been accepted or rejected yet." in captions
    at.selectbox(key="models-audit-run").set_value(
        ar.seeded.run_ids[1]
    ).run()  # seeded: 2 accepted, 1 rejected
    assert not at.exception
    metrics = _metrics(at)
    assert metrics["Precision of ranked suggestions"] == "66.7 %"
    assert metrics["Missing-positive rate (audit)"] == "—"
    assert "This run has no audit sample" in _captions(at)
