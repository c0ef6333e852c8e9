"""Review of suggested missing labels: claim, decide, undo — the one path the app and CLI share.

Decisions: ``accept`` → the cell becomes positive, ``reject`` → negative, ``skip`` → stays unknown.
Two annotators never hold the same suggestion: :func:`claim_next` (the queue), :func:`claim_one`
(one suggestion) and :func:`claim_class_page` (a page of one class) lease suggestions for
``lease_s`` seconds, and :func:`decide` only succeeds on a pending suggestion that is unclaimed,
claimed by the same reviewer, or whose lease has expired. A suggestion whose cell was labelled
meanwhile (on the Image page, by an import) is not decided but marked ``superseded``.
Functions take ``session`` first and never commit.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.orm import Session

from db import double_review, leases
from db.errors import ConflictError, NotFoundError
from db.labels import CellState, get_cell, set_label
from db.models import LabelEvent, LabelSource, Suggestion, SuggestionStatus, utcnow

DEFAULT_LEASE_S = leases.DEFAULT_LEASE_S


class Decision(enum.StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    SKIP = "skip"

    @classmethod
    def parse(cls, text: str) -> Decision:
        """Parse ``accept``/``reject``/``skip`` (also ``a``/``x``/``s``, ``accepted``, … any case)."""
        t = text.strip().lower()
        aliases = {
            "a": cls.ACCEPT,
            "accepted": cls.ACCEPT,
            "yes": cls.ACCEPT,
            "y": cls.ACCEPT,
            "x": cls.REJECT,
            "r": cls.REJECT,
            "rejected": cls.REJECT,
            "no": cls.REJECT,
            "n": cls.REJECT,
            "s": cls.SKIP,
            "skipped": cls.SKIP,
        }
        if t in aliases:
            return aliases[t]
        try:
            return cls(t)
        except ValueError:
            raise ValueError(f"decision {text!r} is not one of accept, reject, skip") from None


_STATUS = {
    Decision.ACCEPT: SuggestionStatus.ACCEPTED,
    Decision.REJECT: SuggestionStatus.REJECTED,
    Decision.SKIP: SuggestionStatus.SKIPPED,
}
_VALUE = {Decision.ACCEPT: 1, Decision.REJECT: 0}


def _available(reviewer: str, now: dt.datetime) -> ColumnElement[bool]:
    """Pending, and unclaimed, claimed by ``reviewer``, or with an expired lease."""
    return leases.available(Suggestion, SuggestionStatus.PENDING, reviewer, now)


def pending_page(
    session: Session,
    dataset_id: int,
    *,
    reviewer: str | None = None,
    class_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Suggestion]:
    """Pending suggestions, highest score first; with ``reviewer``, those leased to others are left out."""
    now = utcnow()
    q = select(Suggestion).where(Suggestion.dataset_id == dataset_id)
    if reviewer is not None:
        q = q.where(_available(reviewer, now))
    else:
        q = q.where(Suggestion.status == SuggestionStatus.PENDING)
    if class_id is not None:
        q = q.where(Suggestion.class_id == class_id)
    q = q.order_by(Suggestion.score.desc(), Suggestion.id).limit(limit).offset(offset)
    return list(session.scalars(q))


def claim_next(
    session: Session,
    dataset_id: int,
    reviewer: str,
    *,
    class_id: int | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    exclude: tuple[int, ...] = (),
) -> Suggestion | None:
    """Lease the highest-score pending suggestion no one else holds; None when the queue is empty.

    A reviewer's own live claims come first, so a reload shows the same suggestion again.
    ``exclude``: suggestion ids to pass over (e.g. ones the reviewer moved past with the arrows).
    """

    def usable(now: dt.datetime) -> ColumnElement[bool]:
        q = and_(Suggestion.dataset_id == dataset_id, _available(reviewer, now))
        if class_id is not None:
            q = and_(q, Suggestion.class_id == class_id)
        return and_(q, Suggestion.id.not_in(exclude)) if exclude else q

    return leases.claim_first(session, Suggestion, usable, (Suggestion.score.desc(), Suggestion.id), reviewer,
                              lease_s=lease_s)  # fmt: skip


def claim_one(
    session: Session, suggestion_id: int, reviewer: str, *, lease_s: float = DEFAULT_LEASE_S
) -> bool:
    """Lease one pending suggestion to ``reviewer`` (or renew their lease); False if unavailable."""
    now = utcnow()
    return leases.claim_ids(session, Suggestion, [suggestion_id], _available(reviewer, now), reviewer, now,
                            lease_s=lease_s) == 1  # fmt: skip


def release_one(session: Session, suggestion_id: int, reviewer: str) -> bool:
    """Give back ``reviewer``'s lease on one pending suggestion; False if they did not hold it."""
    return leases.release(session, Suggestion, SuggestionStatus.PENDING, suggestion_id, reviewer)


def claim_class_page(
    session: Session,
    dataset_id: int,
    class_id: int,
    reviewer: str,
    *,
    limit: int,
    lease_s: float = DEFAULT_LEASE_S,
) -> list[int]:
    """Lease up to ``limit`` top pending suggestions of one class to ``reviewer``.

    Returns:
        The ids leased, highest score first (fewer when others hold some).
    """
    now = utcnow()
    ids = list(
        session.scalars(
            select(Suggestion.id)
            .where(
                Suggestion.dataset_id == dataset_id,
                Suggestion.class_id == class_id,
                _available(reviewer, now),
            )
            .order_by(Suggestion.score.desc(), Suggestion.id)
            .limit(limit)
        )
    )
    if not ids:
        return []
    leases.claim_ids(session, Suggestion, ids, _available(reviewer, now), reviewer, now, lease_s=lease_s)
    mine = set(
        session.scalars(
            select(Suggestion.id).where(
                Suggestion.id.in_(ids),
                Suggestion.claimed_by == reviewer,
                Suggestion.status == SuggestionStatus.PENDING,
            )
        )
    )
    return [i for i in ids if i in mine]


def release_claims(session: Session, reviewer: str, dataset_id: int | None = None) -> int:
    """Give back every pending suggestion ``reviewer`` holds; returns how many."""
    return leases.release_all(session, Suggestion, SuggestionStatus.PENDING, reviewer, dataset_id)


def decide(
    session: Session,
    suggestion_id: int,
    decision: Decision | str,
    reviewer: str,
    *,
    second_review_share: float = 0.0,
) -> Suggestion:
    """Record one review decision and change the label it implies, with its audit event.

    With ``second_review_share`` > 0 (a fraction in [0, 1]), an accept or reject also queues the
    suggestion for a blind second look when :func:`db.double_review.chosen` picks its id; a skip
    never does.

    A suggestion is only ever made for an unknown cell. When the cell has a label by the time of
    the decision (set on the Image page or by an import meanwhile), that label stands: the
    suggestion is marked ``superseded`` and :class:`ConflictError` says who labelled it. That
    mark is the only thing written in the session; commit it (catch the error inside the unit of
    work, as the app's pages do) so the queue stops offering the suggestion.

    Raises:
        NotFoundError: no such suggestion.
        ConflictError: already decided, leased to another reviewer, or the cell was labelled
            meanwhile (the suggestion is then superseded); nothing else is written.
        ValueError: ``second_review_share`` is not in [0, 1].
    """
    double_review.check_share(second_review_share)
    decision = Decision.parse(decision) if isinstance(decision, str) else decision
    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("a reviewer name is required to record a decision")
    sugg = session.get(Suggestion, suggestion_id, populate_existing=True)
    if sugg is None:
        raise NotFoundError(f"suggestion {suggestion_id} does not exist")
    image_id, class_id = sugg.image_id, sugg.class_id
    now = utcnow()
    try:
        with session.begin_nested():  # a lost race leaves nothing behind
            _record(session, suggestion_id, decision, reviewer, now)
            if decision in _VALUE:
                set_label(
                    session,
                    image_id=image_id,
                    class_id=class_id,
                    value=_VALUE[decision],
                    author=reviewer,
                    source=LabelSource.REVIEW,
                    reason=f"{_STATUS[decision].value} suggestion {suggestion_id}",
                    expected_version=0,  # ConflictError unless the cell is still unknown
                    suggestion_id=suggestion_id,
                )
                if second_review_share > 0:
                    double_review.enter(session, sugg, _VALUE[decision], reviewer, now, second_review_share)
            elif get_cell(session, image_id, class_id).version != 0:
                raise ConflictError(f"image {image_id}, class {class_id} has a label now; reload")
    except ConflictError:
        cell = get_cell(session, image_id, class_id)
        if cell.version == 0 or not _supersede(session, suggestion_id, reviewer, now):
            raise
        raise ConflictError(_labelled_message(image_id, class_id, cell, suggestion_id)) from None
    return session.get(Suggestion, suggestion_id, populate_existing=True)  # type: ignore[return-value]


def _record(
    session: Session, suggestion_id: int, decision: Decision, reviewer: str, now: dt.datetime
) -> None:
    """Set the decision's status if ``reviewer`` may decide the suggestion; ConflictError if not."""
    done = session.execute(
        update(Suggestion)
        .where(Suggestion.id == suggestion_id, _available(reviewer, now))
        .values(
            status=_STATUS[decision],
            reviewer=reviewer,
            reviewed_at=now,
            claimed_by=None,
            claim_expires_at=None,
            version=Suggestion.version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if done == 1:
        return
    sugg = session.get(Suggestion, suggestion_id, populate_existing=True)
    if sugg is None:
        raise NotFoundError(f"suggestion {suggestion_id} does not exist")
    if sugg.status == SuggestionStatus.SUPERSEDED:
        raise ConflictError(
            f"suggestion {suggestion_id} was superseded (by a newer run or a label set meanwhile); moving on"
        )
    if sugg.status != SuggestionStatus.PENDING:
        raise ConflictError(
            f"suggestion {suggestion_id} was already {sugg.status} by {sugg.reviewer}; moving on"
        )
    raise ConflictError(f"suggestion {suggestion_id} is being reviewed by {sugg.claimed_by}; moving on")


def _supersede(session: Session, suggestion_id: int, reviewer: str, now: dt.datetime) -> bool:
    """Mark a suggestion ``reviewer`` may decide as superseded; False if it is not theirs to change."""
    done = session.execute(
        update(Suggestion)
        .where(Suggestion.id == suggestion_id, _available(reviewer, now))
        .values(
            status=SuggestionStatus.SUPERSEDED,
            claimed_by=None,
            claim_expires_at=None,
            version=Suggestion.version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    return done == 1


def _labelled_message(image_id: int, class_id: int, cell: CellState, suggestion_id: int) -> str:
    state = "positive" if cell.value == 1 else "negative"
    return (
        f"image {image_id}, class {class_id} was labelled {state} meanwhile by {cell.author} "
        f"(suggestion {suggestion_id} superseded); reload"
    )


def undo(
    session: Session, suggestion_id: int, reviewer: str, *, lease_s: float = DEFAULT_LEASE_S
) -> Suggestion:
    """Undo ``reviewer``'s decision on a suggestion: restore the cell and make it pending again.

    The suggestion comes back leased to the same reviewer; a pending second look of it
    (:mod:`db.double_review`) is dropped.

    Raises:
        ConflictError: the suggestion was not decided by ``reviewer``, its cell changed since, or
            a second annotator has reviewed it already.
    """
    sugg = session.get(Suggestion, suggestion_id, populate_existing=True)
    if sugg is None:
        raise NotFoundError(f"suggestion {suggestion_id} does not exist")
    if sugg.status == SuggestionStatus.PENDING or sugg.reviewer != reviewer:
        raise ConflictError(f"suggestion {suggestion_id} has no decision by {reviewer} to undo")
    double_review.withdraw(session, suggestion_id)
    event = session.scalars(
        select(LabelEvent)
        .where(LabelEvent.suggestion_id == suggestion_id)
        .order_by(LabelEvent.id.desc())
        .limit(1)
    ).first()
    if event is not None:
        cell = get_cell(session, sugg.image_id, sugg.class_id)
        later = session.scalar(
            select(LabelEvent.id)
            .where(
                LabelEvent.image_id == sugg.image_id,
                LabelEvent.class_id == sugg.class_id,
                LabelEvent.id > event.id,
            )
            .limit(1)
        )
        if later is not None or cell.value != event.after:
            raise ConflictError(
                f"image {sugg.image_id}, class {sugg.class_id} changed after the decision; cannot undo"
            )
        set_label(
            session,
            image_id=sugg.image_id,
            class_id=sugg.class_id,
            value=event.before,
            author=reviewer,
            source=LabelSource.REVIEW,
            reason=f"undo decision on suggestion {suggestion_id}",
            expected_version=cell.version,
            suggestion_id=suggestion_id,
        )
    now = utcnow()
    done = session.execute(
        update(Suggestion)
        .where(Suggestion.id == suggestion_id, Suggestion.version == sugg.version)
        .values(
            status=SuggestionStatus.PENDING,
            reviewer=None,
            reviewed_at=None,
            claimed_by=reviewer,
            claim_expires_at=now + dt.timedelta(seconds=lease_s),
            version=Suggestion.version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if done != 1:
        raise ConflictError(f"suggestion {suggestion_id} changed while undoing; reload")
    return session.get(Suggestion, suggestion_id, populate_existing=True)  # type: ignore[return-value]


__all__ = [
    "DEFAULT_LEASE_S",
    "Decision",
    "claim_class_page",
    "claim_next",
    "claim_one",
    "decide",
    "pending_page",
    "release_claims",
    "release_one",
    "undo",
]
