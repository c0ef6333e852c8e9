"""Review of suggested missing labels: claim, decide, undo — the one path the app and CLI share.

Decisions: ``accept`` → the cell becomes positive, ``reject`` → negative, ``skip`` → stays unknown.
Two annotators never hold the same suggestion: :func:`claim_next` leases it for ``lease_s``
seconds, and :func:`decide` only succeeds on a pending suggestion that is unclaimed, claimed by the
same reviewer, or whose lease has expired. Functions take ``session`` first and never commit.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from db.errors import ConflictError, NotFoundError
from db.labels import get_cell, set_label
from db.models import LabelEvent, LabelSource, Suggestion, SuggestionStatus, utcnow

DEFAULT_LEASE_S = 120.0


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


def _available(reviewer: str, now: dt.datetime):  # type: ignore[no-untyped-def]
    return and_(
        Suggestion.status == SuggestionStatus.PENDING.value,
        or_(
            Suggestion.claimed_by.is_(None),
            Suggestion.claimed_by == reviewer,
            Suggestion.claim_expires_at < now,
        ),
    )


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
        q = q.where(Suggestion.status == SuggestionStatus.PENDING.value)
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
    for _attempt in range(20):
        now = utcnow()
        q = select(Suggestion.id, Suggestion.version).where(
            Suggestion.dataset_id == dataset_id, _available(reviewer, now)
        )
        if class_id is not None:
            q = q.where(Suggestion.class_id == class_id)
        if exclude:
            q = q.where(Suggestion.id.not_in(exclude))
        q = q.order_by(Suggestion.score.desc(), Suggestion.id).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)  # annotators skip rows another one is claiming
        row = session.execute(q).first()
        if row is None:
            return None
        claimed = session.execute(
            update(Suggestion)
            .where(Suggestion.id == row.id, Suggestion.version == row.version, _available(reviewer, now))
            .values(
                claimed_by=reviewer,
                claim_expires_at=now + dt.timedelta(seconds=lease_s),
                version=Suggestion.version + 1,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed == 1:
            return session.get(Suggestion, row.id, populate_existing=True)
    raise ConflictError("the review queue is busy (20 claim attempts lost to other annotators); try again")


def release_claims(session: Session, reviewer: str, dataset_id: int | None = None) -> int:
    """Give back every pending suggestion ``reviewer`` holds; returns how many."""
    q = update(Suggestion).where(
        Suggestion.claimed_by == reviewer, Suggestion.status == SuggestionStatus.PENDING.value
    )
    if dataset_id is not None:
        q = q.where(Suggestion.dataset_id == dataset_id)
    return session.execute(
        q.values(claimed_by=None, claim_expires_at=None).execution_options(synchronize_session=False)
    ).rowcount


def decide(session: Session, suggestion_id: int, decision: Decision | str, reviewer: str) -> Suggestion:
    """Record one review decision and change the label it implies, with its audit event.

    Raises:
        NotFoundError: no such suggestion.
        ConflictError: already decided, leased to another reviewer, or the cell was labelled
            meanwhile to the opposite value; nothing is written.
    """
    decision = Decision.parse(decision) if isinstance(decision, str) else decision
    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("a reviewer name is required to record a decision")
    now = utcnow()
    done = session.execute(
        update(Suggestion)
        .where(Suggestion.id == suggestion_id, _available(reviewer, now))
        .values(
            status=_STATUS[decision].value,
            reviewer=reviewer,
            reviewed_at=now,
            claimed_by=None,
            claim_expires_at=None,
            version=Suggestion.version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    sugg = session.get(Suggestion, suggestion_id, populate_existing=True)
    if sugg is None:
        raise NotFoundError(f"suggestion {suggestion_id} does not exist")
    if done != 1:
        if sugg.status != SuggestionStatus.PENDING.value:
            raise ConflictError(
                f"suggestion {suggestion_id} was already {sugg.status} by {sugg.reviewer}; moving on"
            )
        raise ConflictError(f"suggestion {suggestion_id} is being reviewed by {sugg.claimed_by}; moving on")
    if decision in _VALUE:
        value = _VALUE[decision]
        cell = get_cell(session, sugg.image_id, sugg.class_id)
        if cell.value is not None and cell.value != value:
            raise ConflictError(
                f"image {sugg.image_id}, class {sugg.class_id} was labelled "
                f"{'positive' if cell.value else 'negative'} by {cell.author} meanwhile; reload"
            )
        set_label(
            session,
            image_id=sugg.image_id,
            class_id=sugg.class_id,
            value=value,
            author=reviewer,
            source=LabelSource.REVIEW.value,
            reason=f"{_STATUS[decision].value} suggestion {suggestion_id}",
            expected_version=cell.version,
            suggestion_id=suggestion_id,
        )
    return sugg


def undo(
    session: Session, suggestion_id: int, reviewer: str, *, lease_s: float = DEFAULT_LEASE_S
) -> Suggestion:
    """Undo ``reviewer``'s decision on a suggestion: restore the cell and make it pending again.

    The suggestion comes back leased to the same reviewer.

    Raises:
        ConflictError: the suggestion was not decided by ``reviewer``, or its cell changed since.
    """
    sugg = session.get(Suggestion, suggestion_id, populate_existing=True)
    if sugg is None:
        raise NotFoundError(f"suggestion {suggestion_id} does not exist")
    if sugg.status == SuggestionStatus.PENDING.value or sugg.reviewer != reviewer:
        raise ConflictError(f"suggestion {suggestion_id} has no decision by {reviewer} to undo")
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
            source=LabelSource.REVIEW.value,
            reason=f"undo decision on suggestion {suggestion_id}",
            expected_version=cell.version,
            suggestion_id=suggestion_id,
        )
    now = utcnow()
    done = session.execute(
        update(Suggestion)
        .where(Suggestion.id == suggestion_id, Suggestion.version == sugg.version)
        .values(
            status=SuggestionStatus.PENDING.value,
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


__all__ = ["DEFAULT_LEASE_S", "Decision", "claim_next", "decide", "pending_page", "release_claims", "undo"]
