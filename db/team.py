"""Per-annotator figures of one dataset for the Team page: GROUP BY queries over decisions.

A *decision* is a first decision on a suggestion (``Suggestion.reviewer``: accepted, rejected or
skipped; superseded ones were never decided) or a second decision on a second look
(``SecondReview.second_reviewer``). Values are 1 = accept, 0 = reject.

Every function takes ``reviewer``: None returns everyone's rows, a name returns only that
annotator's (and, for pair counts, only the pairs they belong to). The app passes the caller's
own name unless their role may see everyone's figures, so the restriction holds in the query.
Functions take ``session`` first and never write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, case, func, or_, select, true, union_all
from sqlalchemy.orm import Session

from db.models import LabelClass, SecondReview, SecondReviewStatus, Suggestion, SuggestionStatus

_DECIDED = (SuggestionStatus.ACCEPTED, SuggestionStatus.REJECTED, SuggestionStatus.SKIPPED)
_SECOND_DONE = (SecondReviewStatus.AGREED, SecondReviewStatus.DISAGREED, SecondReviewStatus.ADJUDICATED)


@dataclass
class AnnotatorCounts:
    """Counts of one annotator in one dataset (all are numbers of decisions or items).

    Attributes:
        accepted, rejected, skipped: their decisions, first and second decisions together (a
            second look is never skipped: it is passed over).
        second_decisions: how many of those were second looks.
        double_n, double_agreed: second looks decided by two annotators where this one was first
            or second, and how many the two decided alike.
        adjudicated_n, adjudicated_agreed: of those, the ones a manager adjudicated, and how many
            of this annotator's decisions the verdict matched.
        audit_accepts: their accepts of random-audit cells.
        audit_settled, audit_right: of those, the ones whose value is settled (a second decision
            agreed, or adjudicated), and how many the settled value confirmed (present).
    """

    reviewer: str
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    second_decisions: int = 0
    double_n: int = 0
    double_agreed: int = 0
    adjudicated_n: int = 0
    adjudicated_agreed: int = 0
    audit_accepts: int = 0
    audit_settled: int = 0
    audit_right: int = 0

    @property
    def decisions(self) -> int:
        return self.accepted + self.rejected + self.skipped


def _n(cond: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((cond, 1), else_=0))


def _mine(column: ColumnElement[str] | object, reviewer: str | None) -> ColumnElement[bool]:
    return true() if reviewer is None else (column == reviewer)  # type: ignore[return-value]


def annotator_counts(session: Session, dataset_id: int, reviewer: str | None = None) -> list[AnnotatorCounts]:
    """Per annotator of ``dataset_id`` (only ``reviewer`` when given): the counts of
    :class:`AnnotatorCounts`, by name."""
    rows: dict[str, AnnotatorCounts] = {}

    def get(name: str) -> AnnotatorCounts:
        return rows.setdefault(name, AnnotatorCounts(name))

    s = Suggestion
    for name, acc, rej, skip in session.execute(
        select(
            s.reviewer,
            _n(s.status == SuggestionStatus.ACCEPTED),
            _n(s.status == SuggestionStatus.REJECTED),
            _n(s.status == SuggestionStatus.SKIPPED),
        )
        .where(
            s.dataset_id == dataset_id,
            s.status.in_(_DECIDED),
            s.reviewer.is_not(None),
            _mine(s.reviewer, reviewer),
        )
        .group_by(s.reviewer)
    ):
        r = get(name)
        r.accepted, r.rejected, r.skipped = int(acc), int(rej), int(skip)

    sr = SecondReview
    done = (sr.dataset_id == dataset_id, sr.status.in_(_SECOND_DONE))
    for name, acc, rej in session.execute(
        select(sr.second_reviewer, _n(sr.second_value == 1), _n(sr.second_value == 0))
        .where(*done, _mine(sr.second_reviewer, reviewer))
        .group_by(sr.second_reviewer)
    ):
        r = get(name)
        r.accepted += int(acc)
        r.rejected += int(rej)
        r.second_decisions = int(acc) + int(rej)

    adjudicated = sr.status == SecondReviewStatus.ADJUDICATED
    settled = case((sr.status == SecondReviewStatus.AGREED, sr.first_value), else_=sr.adjudicated_value)
    is_settled = sr.status.in_([SecondReviewStatus.AGREED, SecondReviewStatus.ADJUDICATED])
    for who, value in ((sr.first_reviewer, sr.first_value), (sr.second_reviewer, sr.second_value)):
        for name, n, agreed, adj_n, adj_agreed in session.execute(
            select(
                who,
                func.count(),
                _n(sr.first_value == sr.second_value),
                _n(adjudicated),
                _n(adjudicated & (value == sr.adjudicated_value)),
            )
            .where(*done, _mine(who, reviewer))
            .group_by(who)
        ):
            r = get(name)
            r.double_n += int(n)
            r.double_agreed += int(agreed)
            r.adjudicated_n += int(adj_n)
            r.adjudicated_agreed += int(adj_agreed)
        # Audit cells this annotator accepted (as first or second reviewer) that are settled.
        for name, n, right in session.execute(
            select(who, func.count(), _n(settled == 1))
            .join(s, s.id == sr.suggestion_id)
            .where(*done, is_settled, s.audit.is_(True), value == 1, _mine(who, reviewer))
            .group_by(who)
        ):
            r = get(name)
            r.audit_settled += int(n)
            r.audit_right += int(right)

    for name, n in session.execute(
        select(s.reviewer, func.count())
        .where(
            s.dataset_id == dataset_id,
            s.status == SuggestionStatus.ACCEPTED,
            s.audit.is_(True),
            _mine(s.reviewer, reviewer),
        )
        .group_by(s.reviewer)
    ):
        get(name).audit_accepts += int(n)
    for name, n in session.execute(
        select(sr.second_reviewer, func.count())
        .join(s, s.id == sr.suggestion_id)
        .where(*done, sr.second_value == 1, s.audit.is_(True), _mine(sr.second_reviewer, reviewer))
        .group_by(sr.second_reviewer)
    ):
        get(name).audit_accepts += int(n)
    return [rows[k] for k in sorted(rows)]


def decision_times(
    session: Session, dataset_id: int, reviewer: str | None = None
) -> dict[str, list[dt.datetime]]:
    """Every decision's time per annotator, oldest first (only ``reviewer``'s when given).

    Times are as stored (UTC; naive on SQLite). For decisions per hour and seconds per decision.
    """
    s, sr = Suggestion, SecondReview
    first = select(s.reviewer.label("who"), s.reviewed_at.label("at")).where(
        s.dataset_id == dataset_id,
        s.status.in_(_DECIDED),
        s.reviewer.is_not(None),
        s.reviewed_at.is_not(None),
        _mine(s.reviewer, reviewer),
    )
    second = select(sr.second_reviewer.label("who"), sr.second_at.label("at")).where(
        sr.dataset_id == dataset_id,
        sr.status.in_(_SECOND_DONE),
        sr.second_at.is_not(None),
        _mine(sr.second_reviewer, reviewer),
    )
    both = union_all(first, second).subquery()
    times: dict[str, list[dt.datetime]] = {}
    for who, at in session.execute(select(both.c.who, both.c.at).order_by(both.c.who, both.c.at)):
        times.setdefault(who, []).append(at)
    return times


@dataclass(frozen=True)
class DoubleCounts:
    """Doubly-decided items of one (first annotator, second annotator, class, first value, second
    value) combination, and how many there are (``n``)."""

    first_reviewer: str
    second_reviewer: str
    class_id: int
    first_value: int
    second_value: int
    n: int
    class_key: str = field(default="")
    class_name: str = field(default="")


def double_counts(session: Session, dataset_id: int, reviewer: str | None = None) -> list[DoubleCounts]:
    """Second looks decided by two annotators, counted by pair, class and both values (only those
    ``reviewer`` took part in, when given): the 2 x 2 tables behind per-pair and per-class agreement."""
    sr = SecondReview
    mine = true() if reviewer is None else or_(sr.first_reviewer == reviewer, sr.second_reviewer == reviewer)
    rows = session.execute(
        select(
            sr.first_reviewer,
            sr.second_reviewer,
            sr.class_id,
            sr.first_value,
            sr.second_value,
            func.count(),
            LabelClass.key,
            LabelClass.display_name,
        )
        .join(LabelClass, LabelClass.id == sr.class_id)
        .where(sr.dataset_id == dataset_id, sr.status.in_(_SECOND_DONE), mine)
        .group_by(
            sr.first_reviewer,
            sr.second_reviewer,
            sr.class_id,
            sr.first_value,
            sr.second_value,
            LabelClass.key,
            LabelClass.display_name,
        )
        .order_by(sr.first_reviewer, sr.second_reviewer, sr.class_id)
    ).all()
    return [DoubleCounts(a, b, int(c), int(x), int(y), int(n), k, d) for a, b, c, x, y, n, k, d in rows]


__all__ = ["AnnotatorCounts", "DoubleCounts", "annotator_counts", "decision_times", "double_counts"]
