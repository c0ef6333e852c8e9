"""Agreement: Cohen's kappa equals scikit-learn's on the same decisions; pairs, classes, pace, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from app.agreement import agreement, by_pair, cohen_kappa, confusion, from_counts, grouped
from app.auth import Identity, single_person
from app.double_review import double_review_share, share_for
from app.team import pace, team_rows, to_csv
from db.models import Role
from db.team import AnnotatorCounts

#: scikit-learn warns (and returns NaN, as we do) when both raters gave one value to every item.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")

decisions = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=300)


def _sklearn(a: list[int], b: list[int]) -> float:
    return float(cohen_kappa_score(a, b, labels=[0, 1]))


@settings(max_examples=300, deadline=None)
@given(decisions)
def test_kappa_matches_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    ours, theirs = cohen_kappa(a, b), _sklearn(a, b)
    assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-12)
    got = agreement(a, b)
    assert got.n == len(a) and got.percent == pytest.approx(100.0 * np.mean(np.equal(a, b)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ann", "bob", "cy"]), st.sampled_from(["ann", "bob", "cy"]),
                          st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=200))  # fmt: skip
def test_pair_kappa_matches_scikit_learn_whoever_was_first(rows: list[tuple[str, str, int, int]]) -> None:
    rows = [r for r in rows if r[0] != r[1]]
    res = by_pair([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
    for (lo, hi), got in res.items():
        # the same items as two raters side by side: lo's value, hi's value
        mine = [(x if a == lo else y, y if a == lo else x) for a, b, x, y in rows if {a, b} == {lo, hi}]
        theirs = _sklearn([m[0] for m in mine], [m[1] for m in mine])
        assert got.n == len(mine)
        assert (math.isnan(got.kappa) and math.isnan(theirs)) or got.kappa == pytest.approx(theirs, abs=1e-12)


def test_weighted_groups_equal_the_expanded_items() -> None:
    a = np.array([1, 1, 0, 0, 1, 0, 1])
    b = np.array([1, 0, 0, 1, 1, 0, 0])
    keys = ["x", "x", "x", "y", "y", "y", "x"]
    plain = grouped(keys, a, b)
    counted = grouped(
        ["x", "x", "x", "y", "y", "y"], [1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0], [1, 2, 1, 1, 1, 1]
    )
    assert plain == counted
    assert plain["x"].kappa == pytest.approx(_sklearn([1, 1, 0, 1], [1, 0, 0, 0]))


def test_confusion_and_bad_input() -> None:
    assert confusion([1, 1, 0], [1, 0, 0]).tolist() == [[1, 0], [1, 1]]
    assert math.isnan(from_counts(np.zeros((2, 2))).kappa) and math.isnan(
        from_counts(np.zeros((2, 2))).percent
    )
    with pytest.raises(ValueError, match="other than 1 \\(accept\\) and 0"):
        confusion([1, -1], [1, 0])
    with pytest.raises(ValueError, match="first has 2 decisions, second 1"):
        confusion([1, 0], [1])
    with pytest.raises(ValueError, match="\\(2, 2\\) array"):
        from_counts([[1, 2, 3]])


def test_pace_leaves_breaks_out() -> None:
    assert pace([0, 10, 30, 5000, 5020]) == (pytest.approx(216.0), 20.0)
    assert all(math.isnan(v) for v in pace([5.0]))
    assert all(math.isnan(v) for v in pace([0, 601]))  # only a break: no active time


def test_team_rows_and_csv() -> None:
    t0 = dt.datetime(2026, 12, 1, 9, 0)
    counts = [AnnotatorCounts("=ann", accepted=3, rejected=1, double_n=2, double_agreed=1)]
    rows = team_rows(counts, {"=ann": [t0 + dt.timedelta(seconds=s) for s in (0, 6, 18, 30)]})
    (row,) = rows
    assert (row.decisions, row.acceptance_rate, row.agreement_with_others) == (4, 0.75, 0.5)
    assert row.median_s_per_decision == 12.0 and row.decisions_per_hour == pytest.approx(3 * 3600 / 30)
    assert math.isnan(row.audit_accept_precision)
    (parsed,) = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert parsed["annotator"] == "'=ann" and parsed["audit_accept_precision"] == ""


def test_share_setting() -> None:
    assert double_review_share({}) == 0.10
    assert double_review_share({"LABELMEND_DOUBLE_REVIEW_SHARE": "0"}) == 0.0
    for bad in ("1.5", "-0.1", "ten", "nan"):
        with pytest.raises(
            ValueError, match=r"LABELMEND_DOUBLE_REVIEW_SHARE=.* is not a fraction in \[0, 1\]"
        ):
            double_review_share({"LABELMEND_DOUBLE_REVIEW_SHARE": bad})
    assert share_for(single_person("me"), {"LABELMEND_DOUBLE_REVIEW_SHARE": "0.5"}) == 0.0
    assert share_for(Identity("ann", Role.ANNOTATOR), {"LABELMEND_DOUBLE_REVIEW_SHARE": "0.5"}) == 0.5
