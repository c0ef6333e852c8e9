"""Leases on queue rows: one annotator holds a row for a while, so two never review the same one.

Both review queues use them: ``suggestion`` (:mod:`db.review`) and ``second_review``
(:mod:`db.double_review`). A leasable model has ``id``, ``version`` (bumped by every claim, so a
claim is an optimistic compare-and-set), ``status``, ``claimed_by`` (a reviewer name or NULL) and
``claim_expires_at`` (UTC). A row is *available* to a reviewer when it is pending and unclaimed,
already theirs, or its lease has expired; the caller adds its own conditions (its dataset, not the
first reviewer, …) through ``where``. Functions take ``session`` first and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from db.errors import ConflictError
from db.models import utcnow

#: Seconds a claim holds a row before others may take it.
DEFAULT_LEASE_S = 120.0
#: Claim attempts lost to other annotators before :func:`claim_first` gives up.
CLAIM_ATTEMPTS = 20

#: A leasable model class (``Suggestion`` or ``SecondReview``).
Leasable = Any


def available(model: Leasable, pending: Any, reviewer: str, now: dt.datetime) -> ColumnElement[bool]:
    """Rows of ``model`` that are ``pending`` and unclaimed, claimed by ``reviewer``, or expired."""
    return and_(
        model.status == pending,
        or_(model.claimed_by.is_(None), model.claimed_by == reviewer, model.claim_expires_at < now),
    )


def _lease_values(model: Leasable, reviewer: str, now: dt.datetime, lease_s: float) -> dict[str, Any]:
    return {
        "claimed_by": reviewer,
        "claim_expires_at": now + dt.timedelta(seconds=lease_s),
        "version": model.version + 1,
    }


def claim_first(
    session: Session,
    model: Leasable,
    usable: Callable[[dt.datetime], ColumnElement[bool]],
    order_by: Sequence[Any],
    reviewer: str,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    busy: str = "the review queue is busy",
) -> Any | None:
    """Lease the first row of ``model`` in ``order_by`` that ``usable(now)`` admits; None when none.

    ``usable`` must include :func:`available` for ``reviewer``. On PostgreSQL the candidate row is
    read with ``FOR UPDATE SKIP LOCKED`` (annotators skip a row another one is claiming); on both
    backends the claim is a compare-and-set on ``version``, retried when another annotator won.

    Raises:
        ConflictError: :data:`CLAIM_ATTEMPTS` attempts in a row lost to other annotators.
    """
    for _attempt in range(CLAIM_ATTEMPTS):
        now = utcnow()
        q = select(model.id, model.version).where(usable(now)).order_by(*order_by).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        row = session.execute(q).first()
        if row is None:
            return None
        claimed = session.execute(
            update(model)
            .where(model.id == row.id, model.version == row.version, usable(now))
            .values(**_lease_values(model, reviewer, now, lease_s))
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed == 1:
            return session.get(model, row.id, populate_existing=True)
    raise ConflictError(f"{busy} ({CLAIM_ATTEMPTS} claim attempts lost to other annotators); try again")


def claim_ids(
    session: Session,
    model: Leasable,
    ids: Sequence[int],
    usable: ColumnElement[bool],
    reviewer: str,
    now: dt.datetime,
    *,
    lease_s: float = DEFAULT_LEASE_S,
) -> int:
    """Lease (or renew) each row of ``ids`` that ``usable`` admits to ``reviewer``; returns how many."""
    return session.execute(
        update(model)
        .where(model.id.in_(list(ids)), usable)
        .values(**_lease_values(model, reviewer, now, lease_s))
        .execution_options(synchronize_session=False)
    ).rowcount


def release(session: Session, model: Leasable, pending: Any, row_id: int, reviewer: str) -> bool:
    """Give back ``reviewer``'s lease on one pending row; False if they did not hold it."""
    done = session.execute(
        update(model)
        .where(model.id == row_id, model.claimed_by == reviewer, model.status == pending)
        .values(claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return done == 1


def release_all(
    session: Session, model: Leasable, pending: Any, reviewer: str, dataset_id: int | None = None
) -> int:
    """Give back every pending row of ``model`` that ``reviewer`` holds (in one dataset); how many."""
    q = update(model).where(model.claimed_by == reviewer, model.status == pending)
    if dataset_id is not None:
        q = q.where(model.dataset_id == dataset_id)
    return session.execute(
        q.values(claimed_by=None, claim_expires_at=None).execution_options(synchronize_session=False)
    ).rowcount


__all__ = [
    "CLAIM_ATTEMPTS",
    "DEFAULT_LEASE_S",
    "available",
    "claim_first",
    "claim_ids",
    "release",
    "release_all",
]
