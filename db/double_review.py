"""A second pair of eyes: a share of decided suggestions goes to a second, blind annotator.

When a suggestion is accepted or rejected (:func:`db.review.decide` with ``second_review_share``
> 0), :func:`chosen` decides from its id alone whether it gets a second look, so the share holds
in expectation and the choice is reproducible; skips never do. The first decision's label is
written at once and stands until a manager adjudicates otherwise.

Life of a :class:`~db.models.SecondReview` row (values: 1 = accept / present, 0 = reject /
absent):

- ``pending``: offered by :func:`claim_next_second` to any annotator but the first reviewer,
  leased like suggestions (``claimed_by`` / ``claim_expires_at``) so two never hold it.
- :func:`record_second` → ``agreed`` or ``disagreed``. The label does not change; an audit event
  with ``before == after`` records the second decision (reason ``second review of suggestion N:
  agree …`` / ``disagree …``, naming the first decision on a disagreement).
- :func:`adjudicate` (a manager, on a ``disagreed`` row) → ``adjudicated``: the label is set to
  the verdict with source ``adjudication`` and the adjudicator as author (so the export's
  provenance shows both), its event naming both decisions.

Functions take ``session`` first and never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from db import leases
from db.errors import ConflictError, NotFoundError
from db.labels import get_cell, set_label
from db.models import (
    Image,
    Label,
    LabelClass,
    LabelEvent,
    LabelSource,
    SecondReview,
    SecondReviewStatus,
    Suggestion,
    utcnow,
)

DEFAULT_LEASE_S = leases.DEFAULT_LEASE_S
_WORD = {1: "accept", 0: "reject"}
_VERDICT = {1: "present", 0: "absent"}


def check_share(share: float) -> float:
    """``share`` when it is a fraction in [0, 1].

    Raises:
        ValueError: not a number in [0, 1].
    """
    if not (isinstance(share, int | float) and 0.0 <= float(share) <= 1.0):
        raise ValueError(f"second review share {share!r} is not a fraction in [0, 1]; e.g. 0.1 for 10 %")
    return float(share)


def chosen(suggestion_id: int, share: float) -> bool:
    """Whether suggestion ``suggestion_id`` gets a second look at ``share`` (fraction in [0, 1]).

    A hash of the id, uniform in [0, 1), below ``share``: the same answer every time, a share of
    ``share`` of any set of ids in expectation, and nested (chosen at 5 % ⇒ chosen at 10 %).

    Example:
        >>> chosen(17, 0.0), chosen(17, 1.0)
        (False, True)
    """
    share = check_share(share)
    digest = hashlib.blake2b(f"second-review:{suggestion_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < share


def enter(
    session: Session,
    suggestion: Suggestion,
    value: int,
    reviewer: str,
    at: dt.datetime,
    share: float,
) -> SecondReview | None:
    """After a first decision (``value`` 1 accept / 0 reject by ``reviewer`` at ``at``): queue the
    suggestion for a second look when :func:`chosen`; returns the new row or None."""
    if not chosen(suggestion.id, share):
        return None
    row = SecondReview(
        suggestion_id=suggestion.id,
        dataset_id=suggestion.dataset_id,
        class_id=suggestion.class_id,
        first_reviewer=reviewer,
        first_value=value,
        first_at=at,
        status=SecondReviewStatus.PENDING,
        version=1,
        created_at=at,
    )
    session.add(row)
    session.flush()
    return row


def withdraw(session: Session, suggestion_id: int) -> None:
    """Before the first decision on ``suggestion_id`` is undone: drop its pending second look.

    Raises:
        ConflictError: a second annotator has already decided it (the first decision then stays).
    """
    row = session.scalars(
        select(SecondReview).where(SecondReview.suggestion_id == suggestion_id).with_for_update()
    ).first()
    if row is None:
        return
    if row.status != SecondReviewStatus.PENDING:
        raise ConflictError(
            f"suggestion {suggestion_id} was reviewed a second time ({row.status}); it cannot be undone"
        )
    session.delete(row)
    session.flush()


def _available(reviewer: str, now: dt.datetime) -> ColumnElement[bool]:
    """Pending, not ``reviewer``'s own first decision, and unclaimed / theirs / lease expired."""
    return and_(
        leases.available(SecondReview, SecondReviewStatus.PENDING, reviewer, now),
        SecondReview.first_reviewer != reviewer,
    )


def waiting_count(session: Session, dataset_id: int, reviewer: str, class_id: int | None = None) -> int:
    """How many second looks ``reviewer`` could take now (pending, not theirs, not leased to others)."""
    q = select(func.count()).where(SecondReview.dataset_id == dataset_id, _available(reviewer, utcnow()))
    if class_id is not None:
        q = q.where(SecondReview.class_id == class_id)
    return int(session.scalar(q) or 0)


def claim_next_second(
    session: Session,
    dataset_id: int,
    reviewer: str,
    *,
    class_id: int | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    exclude: tuple[int, ...] = (),
) -> SecondReview | None:
    """Lease the oldest second look ``reviewer`` may take; None when there is none.

    Never one whose first decision is ``reviewer``'s. ``exclude``: suggestion ids to pass over.
    A reviewer's own live claim comes back first (oldest first, so a reload shows it again).

    Raises:
        ConflictError: 20 claim attempts lost to other annotators in a row.
    """

    def usable(now: dt.datetime) -> ColumnElement[bool]:
        q = and_(SecondReview.dataset_id == dataset_id, _available(reviewer, now))
        if class_id is not None:
            q = and_(q, SecondReview.class_id == class_id)
        return and_(q, SecondReview.suggestion_id.not_in(exclude)) if exclude else q

    return leases.claim_first(session, SecondReview, usable, (SecondReview.id,), reviewer, lease_s=lease_s,
                              busy="the second-review queue is busy")  # fmt: skip


def claim_second(
    session: Session, review_id: int, reviewer: str, *, lease_s: float = DEFAULT_LEASE_S
) -> bool:
    """Lease (or renew) one second look to ``reviewer``; False if it is not available to them."""
    now = utcnow()
    return leases.claim_ids(session, SecondReview, [review_id], _available(reviewer, now), reviewer, now,
                            lease_s=lease_s) == 1  # fmt: skip


def release_second(session: Session, review_id: int, reviewer: str) -> bool:
    """Give back ``reviewer``'s lease on one pending second look; False if they did not hold it."""
    return leases.release(session, SecondReview, SecondReviewStatus.PENDING, review_id, reviewer)


def release_second_claims(session: Session, reviewer: str, dataset_id: int | None = None) -> int:
    """Give back every pending second look ``reviewer`` holds; returns how many."""
    return leases.release_all(session, SecondReview, SecondReviewStatus.PENDING, reviewer, dataset_id)


def _checked(
    session: Session, review_id: int, value: int, name: str, what: str, who: str
) -> tuple[str, SecondReview]:
    """``(name stripped, the row)`` once ``value`` is 1 or 0, ``name`` is given and the row exists.

    Raises:
        ValueError: ``value`` not 1 / 0 (message ``what``), or an empty name (``who``).
        NotFoundError: no such second look.
    """
    if value not in (0, 1):
        raise ValueError(f"{what}, got {value!r}")
    name = name.strip()
    if not name:
        raise ValueError(f"{who} name is required")
    row = get_second(session, review_id)
    if row is None:
        raise NotFoundError(f"second review {review_id} does not exist")
    return name, row


def get_second(session: Session, review_id: int) -> SecondReview | None:
    """One second-review row, fresh from the database (None if it does not exist)."""
    return session.get(SecondReview, review_id, populate_existing=True)


def second_review_of(session: Session, suggestion_id: int) -> SecondReview | None:
    """The second look of ``suggestion_id``, or None when it was not chosen."""
    return session.scalars(select(SecondReview).where(SecondReview.suggestion_id == suggestion_id)).first()


def _note(
    session: Session,
    row: SecondReview,
    *,
    author: str,
    source: LabelSource,
    reason: str,
    at: dt.datetime,
) -> None:
    """Append an audit event for a decision that leaves the cell as it is (``before == after``)."""
    sugg = session.get(Suggestion, row.suggestion_id)
    assert sugg is not None  # the row cascades with its suggestion
    value = get_cell(session, sugg.image_id, row.class_id).value
    session.add(
        LabelEvent(
            dataset_id=row.dataset_id,
            image_id=sugg.image_id,
            class_id=row.class_id,
            before=value,
            after=value,
            author=author,
            source=source,
            reason=reason,
            suggestion_id=row.suggestion_id,
            created_at=at,
        )
    )
    session.flush()


def record_second(session: Session, review_id: int, value: int, reviewer: str) -> SecondReview:
    """Record the second annotator's decision (``value`` 1 accept / 0 reject) on a second look.

    The label is not changed: an agreeing decision confirms it, a disagreeing one waits for a
    manager (:func:`adjudicate`). Either way an audit event (``before == after``) records it.

    Raises:
        ValueError: ``value`` is not 1 or 0, or no reviewer name.
        NotFoundError: no such second look.
        ConflictError: ``reviewer`` made the first decision, the look was already decided, or it
            is leased to someone else.
    """
    reviewer, row = _checked(
        session,
        review_id,
        value,
        reviewer,
        "second review value must be 1 (accept) or 0 (reject)",
        "a reviewer",
    )
    now = utcnow()
    agreed = value == row.first_value
    done = session.execute(
        update(SecondReview)
        .where(SecondReview.id == review_id, _available(reviewer, now))
        .values(
            second_reviewer=reviewer,
            second_value=value,
            second_at=now,
            status=SecondReviewStatus.AGREED if agreed else SecondReviewStatus.DISAGREED,
            claimed_by=None,
            claim_expires_at=None,
            version=SecondReview.version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    row = get_second(session, review_id)
    assert row is not None
    if done != 1:
        if row.first_reviewer == reviewer:
            raise ConflictError(f"{reviewer} made the first decision on suggestion {row.suggestion_id}")
        if row.status != SecondReviewStatus.PENDING:
            raise ConflictError(
                f"suggestion {row.suggestion_id} was already reviewed a second time; moving on"
            )
        raise ConflictError(
            f"suggestion {row.suggestion_id} is being reviewed by {row.claimed_by}; moving on"
        )
    if agreed:
        reason = f"second review of suggestion {row.suggestion_id}: agree ({_WORD[value]})"
    else:
        reason = (
            f"second review of suggestion {row.suggestion_id}: disagree ({_WORD[value]}; first "
            f"{_WORD[row.first_value]} by {row.first_reviewer}); label kept until adjudicated"
        )
    _note(session, row, author=reviewer, source=LabelSource.REVIEW, reason=reason, at=now)
    return row


def undo_second(
    session: Session, review_id: int, reviewer: str, *, lease_s: float = DEFAULT_LEASE_S
) -> SecondReview:
    """Undo ``reviewer``'s second decision: the look is pending again, leased back to them.

    The label never changed, so only an audit event (``before == after``) records the undo.

    Raises:
        ConflictError: no second decision by ``reviewer`` to undo, or it was adjudicated already.
    """
    row = get_second(session, review_id)
    if row is None:
        raise NotFoundError(f"second review {review_id} does not exist")
    now = utcnow()
    done = session.execute(
        update(SecondReview)
        .where(
            SecondReview.id == review_id,
            SecondReview.second_reviewer == reviewer,
            SecondReview.status.in_([SecondReviewStatus.AGREED, SecondReviewStatus.DISAGREED]),
        )
        .values(
            second_reviewer=None,
            second_value=None,
            second_at=None,
            status=SecondReviewStatus.PENDING,
            claimed_by=reviewer,
            claim_expires_at=now + dt.timedelta(seconds=lease_s),
            version=SecondReview.version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if done != 1:
        raise ConflictError(f"suggestion {row.suggestion_id} has no second decision by {reviewer} to undo")
    row = get_second(session, review_id)
    assert row is not None
    reason = f"second review of suggestion {row.suggestion_id}: undone"
    _note(session, row, author=reviewer, source=LabelSource.REVIEW, reason=reason, at=now)
    return row


@dataclass(frozen=True)
class Disagreement:
    """A second look where the two annotators disagree, with what a manager needs to settle it.

    ``first_value`` / ``second_value``: 1 = accept (present), 0 = reject (absent);
    ``current``: the cell's label now (1, 0 or None = unknown; normally ``first_value``).
    """

    id: int
    suggestion_id: int
    image_id: int
    external_id: str
    path: str
    class_id: int
    class_key: str
    class_name: str
    first_reviewer: str
    first_value: int
    first_at: dt.datetime
    second_reviewer: str
    second_value: int
    second_at: dt.datetime
    current: int | None


def disagreements(
    session: Session, dataset_id: int, *, limit: int = 50, offset: int = 0
) -> list[Disagreement]:
    """The disagreement queue of a dataset, oldest first (partial index ``ix_second_review_disagreed``)."""
    rows = session.execute(
        select(
            SecondReview.id,
            SecondReview.suggestion_id,
            Image.id,
            Image.external_id,
            Image.path,
            LabelClass.id,
            LabelClass.key,
            LabelClass.display_name,
            SecondReview.first_reviewer,
            SecondReview.first_value,
            SecondReview.first_at,
            SecondReview.second_reviewer,
            SecondReview.second_value,
            SecondReview.second_at,
            Label.value,
        )
        .join(Suggestion, Suggestion.id == SecondReview.suggestion_id)
        .join(Image, Image.id == Suggestion.image_id)
        .join(LabelClass, LabelClass.id == SecondReview.class_id)
        .outerjoin(
            Label, and_(Label.image_id == Suggestion.image_id, Label.class_id == SecondReview.class_id)
        )
        .where(SecondReview.dataset_id == dataset_id, SecondReview.status == SecondReviewStatus.DISAGREED)
        .order_by(SecondReview.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [Disagreement(*r) for r in rows]


def disagreement_count(session: Session, dataset_id: int) -> int:
    """How many disagreements of a dataset wait for adjudication."""
    return int(
        session.scalar(
            select(func.count()).where(
                SecondReview.dataset_id == dataset_id, SecondReview.status == SecondReviewStatus.DISAGREED
            )
        )
        or 0
    )


def adjudicate(session: Session, review_id: int, value: int, adjudicator: str) -> SecondReview:
    """Settle a disagreement: the cell becomes ``value`` (1 present / 0 absent) by ``adjudicator``.

    The label is set with source ``adjudication`` and ``adjudicator`` as author, whatever it was
    (the verdict wins over the first decision and over edits made meanwhile); its audit event
    names both decisions. When the cell already has ``value``, the label's source and author
    still change to the adjudication, and the event has ``before == after``.

    Raises:
        ValueError: ``value`` is not 1 or 0, or no adjudicator name.
        NotFoundError: no such second look.
        ConflictError: it is not (or no longer) a disagreement, e.g. adjudicated meanwhile.
    """
    adjudicator, row = _checked(
        session,
        review_id,
        value,
        adjudicator,
        "adjudicated value must be 1 (present) or 0 (absent)",
        "an adjudicator",
    )
    now = utcnow()
    done = session.execute(
        update(SecondReview)
        .where(SecondReview.id == review_id, SecondReview.status == SecondReviewStatus.DISAGREED)
        .values(
            status=SecondReviewStatus.ADJUDICATED,
            adjudicator=adjudicator,
            adjudicated_value=value,
            adjudicated_at=now,
            version=SecondReview.version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    row = get_second(session, review_id)
    assert row is not None
    if done != 1:
        who = f" by {row.adjudicator}" if row.adjudicator else ""
        raise ConflictError(
            f"suggestion {row.suggestion_id} is not a disagreement now ({row.status}{who}); reload"
        )
    assert row.second_reviewer is not None and row.second_value is not None
    reason = (
        f"adjudicated suggestion {row.suggestion_id}: {_VERDICT[value]} (first {_WORD[row.first_value]} "
        f"by {row.first_reviewer}, second {_WORD[row.second_value]} by {row.second_reviewer})"
    )
    sugg = session.get(Suggestion, row.suggestion_id)
    assert sugg is not None
    cell = get_cell(session, sugg.image_id, row.class_id)
    if cell.value != value:
        set_label(
            session,
            image_id=sugg.image_id,
            class_id=row.class_id,
            value=value,
            author=adjudicator,
            source=LabelSource.ADJUDICATION,
            reason=reason,
            expected_version=cell.version,
            suggestion_id=row.suggestion_id,
        )
        return row
    stamped = session.execute(
        update(Label)
        .where(Label.image_id == sugg.image_id, Label.class_id == row.class_id, Label.version == cell.version)
        .values(
            source=LabelSource.ADJUDICATION, author=adjudicator, updated_at=now, version=Label.version + 1
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if stamped != 1:
        raise ConflictError(f"image {sugg.image_id}, class {row.class_id} changed while adjudicating; reload")
    _note(session, row, author=adjudicator, source=LabelSource.ADJUDICATION, reason=reason, at=now)
    return row


__all__ = [
    "DEFAULT_LEASE_S",
    "Disagreement",
    "adjudicate",
    "check_share",
    "chosen",
    "claim_next_second",
    "claim_second",
    "disagreement_count",
    "disagreements",
    "enter",
    "get_second",
    "record_second",
    "release_second",
    "release_second_claims",
    "second_review_of",
    "undo_second",
    "waiting_count",
]
