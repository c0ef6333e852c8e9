"""The pages' actions that change or reveal data, each checking the caller's permission first.

Every function takes the caller's :class:`~app.auth.Identity` (the pages pass
``state.identity()``) and raises :class:`~app.auth.PermissionDenied` before touching anything
when the role lacks the permission, so a crafted request cannot do what the buttons hide. Work is
recorded under ``who.name``: review decisions, label edits, imported labels, queued jobs
(``Job.created_by``); exports are logged with it. Each call is one unit of work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.auth import Identity, Permission, PermissionDenied, require
from app.double_review import share_for
from app.pipeline.config import CycleConfig
from app.store import Store
from app.team import AgreementRow, TeamRow, class_rows, pair_rows, team_rows
from app.web import cached
from db import double_review
from db import team as team_queries
from db.errors import ConflictError, NotFoundError, StoreError
from db.io import ExportFormat, ImportFormat, export_labels, import_labels
from db.io.export import ExportReport, record_export
from db.jobs import cancel, enqueue
from db.labels import set_label
from db.models import LabelSource
from db.review import Decision, decide

log = logging.getLogger(__name__)

#: Whom an export is recorded under in single-person mode when no name was typed.
SINGLE_PERSON_AUTHOR = "local"


def _recorded_name(who: Identity, fallback: str) -> str:
    return who.name or fallback


def decide_suggestion(store: Store, who: Identity | None, suggestion_id: int, decision: Decision) -> None:
    """Record ``who``'s decision on a suggestion (:func:`db.review.decide`, its own transaction);
    an accept or reject gets a second look at :func:`app.double_review.share_for` ``(who)``.

    Raises:
        PermissionDenied: without :attr:`Permission.REVIEW`.
        ConflictError, NotFoundError: as :func:`db.review.decide` (the superseded mark is kept).
        ValueError: a bad ``LABELMEND_DOUBLE_REVIEW_SHARE``.
    """
    who = require(who, Permission.REVIEW)
    share = share_for(who)
    problem: StoreError | None = None
    with store.write() as s:
        try:
            decide(s, suggestion_id, decision, who.name, second_review_share=share)
        except (ConflictError, NotFoundError) as err:
            problem = err  # raised after the commit: the superseded mark must stay
    if problem is not None:
        raise problem


def second_decision(store: Store, who: Identity | None, review_id: int, decision: Decision) -> None:
    """Record ``who``'s decision on a second look (:func:`db.double_review.record_second`).

    Raises:
        PermissionDenied: without :attr:`Permission.REVIEW`.
        ValueError: ``decision`` is a skip (a second look is passed over instead, never skipped).
        ConflictError, NotFoundError: as :func:`db.double_review.record_second`.
    """
    who = require(who, Permission.REVIEW)
    if decision is Decision.SKIP:
        raise ValueError("a second look is accepted or rejected; pass over it instead of skipping")
    with store.write() as s:
        double_review.record_second(s, review_id, int(decision is Decision.ACCEPT), who.name)


def disagreement_queue(
    store: Store, who: Identity | None, dataset_id: int, *, limit: int = 20
) -> tuple[int, list[double_review.Disagreement]]:
    """The disagreement queue (both decisions and who made them): (how many wait, the oldest ``limit``).

    Raises:
        PermissionDenied: without :attr:`Permission.ADJUDICATE`.
    """
    require(who, Permission.ADJUDICATE)
    with store.read() as s:
        return double_review.disagreement_count(s, dataset_id), double_review.disagreements(
            s, dataset_id, limit=limit
        )


def adjudicate(store: Store, who: Identity | None, review_id: int, value: int) -> None:
    """Settle a disagreement as ``who``: the cell becomes ``value`` (1 present / 0 absent).

    Raises:
        PermissionDenied: without :attr:`Permission.ADJUDICATE`, or no name to record it under.
        ConflictError, NotFoundError, ValueError: as :func:`db.double_review.adjudicate`.
    """
    who = require(who, Permission.ADJUDICATE)
    if not who.name:
        raise PermissionDenied(
            "no name to record the adjudication under; enter it as Annotator in the sidebar"
        )
    with store.write() as s:
        double_review.adjudicate(s, review_id, value, who.name)
    log.info("second review %d adjudicated %d by %r", review_id, value, who.name)


def edit_label(
    store: Store,
    who: Identity | None,
    *,
    image_id: int,
    class_id: int,
    value: int | None,
    expected_version: int,
) -> None:
    """Set one cell (1 positive, 0 negative, None unknown) as an Image-page edit by ``who``.

    Raises:
        PermissionDenied: without :attr:`Permission.EDIT_LABELS`, or no name to record it under.
        ConflictError: the cell changed since ``expected_version`` was read; nothing written.
    """
    who = require(who, Permission.EDIT_LABELS)
    if not who.name:
        raise PermissionDenied("no name to record the change under; enter it as Annotator in the sidebar")
    with store.write() as s:
        set_label(
            s,
            image_id=image_id,
            class_id=class_id,
            value=value,
            author=who.name,
            source=LabelSource.EDIT,
            reason="changed on the Image page",
            expected_version=expected_version,
        )


def queue_cycle(store: Store, who: Identity | None, config: CycleConfig, dataset_id: int) -> int:
    """Queue a retrain cycle job created by ``who``; returns the job id.

    Raises:
        PermissionDenied: without :attr:`Permission.TRAIN`.
    """
    who = require(who, Permission.TRAIN)
    with store.write() as s:
        job = enqueue(s, "cycle", config.to_dict(), dataset_id=dataset_id, created_by=who.name or None)
        return job.id


def cancel_job(store: Store, who: Identity | None, job_id: int) -> None:
    """Cancel a queued or running job.

    Raises:
        PermissionDenied: without :attr:`Permission.TRAIN`.
    """
    require(who, Permission.TRAIN)
    with store.write() as s:
        cancel(s, job_id)


def import_file(
    store: Store,
    who: Identity | None,
    fmt: ImportFormat,
    *,
    dataset: str,
    labels: Path,
    classes: Path | None,
    images: Path | None,
    split: str,
) -> str:
    """Import a label file into ``dataset`` (one transaction) with ``who`` as the labels' author;
    returns the report's one-line summary.

    Raises:
        PermissionDenied: without :attr:`Permission.IMPORT`.
        StoreError, ValueError, FileNotFoundError: as :func:`db.io.import_labels`; nothing changes.
    """
    who = require(who, Permission.IMPORT)
    with store.write() as s:
        report = import_labels(
            s,
            fmt,
            labels=labels,
            classes=classes,
            images=images,
            dataset=dataset,
            split=split,
            author=_recorded_name(who, "import"),
        )
    log.info("import into %r by %r: %s", dataset, who.name, report.summary())
    return report.summary()


def export_file(
    store: Store, who: Identity | None, *, dataset: str, fmt: ExportFormat, out: Path
) -> ExportReport:
    """Write ``dataset``'s current labels to ``out``; the export is recorded (``export_record``)
    and logged under ``who`` (single-person mode without a name: :data:`SINGLE_PERSON_AUTHOR`).

    Raises:
        PermissionDenied: without :attr:`Permission.EXPORT`.
        StoreError, ValueError, OSError: as :func:`db.io.export_labels`.
    """
    who = require(who, Permission.EXPORT)
    with store.read() as s:
        report = export_labels(s, dataset=dataset, fmt=fmt, out=out)
    with store.write() as s:  # after the files are complete: a failed export leaves no record
        record_export(s, report, who.name or SINGLE_PERSON_AUTHOR)
    log.info("export of %r as %s by %r to %s", dataset, fmt.value, who.name, out)
    return report


@dataclass(frozen=True)
class TeamFigures:
    """The Team page's figures as ``who`` may see them: ``everyone`` False means only their own
    row, no per-pair agreement, and per-class agreement only over the items they decided."""

    everyone: bool
    rows: list[TeamRow]
    pairs: list[AgreementRow]
    classes: list[AgreementRow]


def team_figures(store: Store, who: Identity | None, dataset_id: int) -> TeamFigures:
    """Per-annotator figures of a dataset: everyone's with :attr:`Permission.VIEW_ALL_FIGURES`,
    else only ``who``'s own (the restriction is applied in the queries, :mod:`db.team`).

    Raises:
        PermissionDenied: without :attr:`Permission.VIEW_OWN_FIGURES`, or (own figures only) no
            name to look them up by.
    """
    who = require(who, Permission.VIEW_OWN_FIGURES)
    everyone = who.can(Permission.VIEW_ALL_FIGURES)
    if not everyone and not who.name:
        raise PermissionDenied("no name to look your figures up by; sign in")
    only = None if everyone else who.name
    with store.read() as s:
        counts = team_queries.annotator_counts(s, dataset_id, only)
        times = team_queries.decision_times(s, dataset_id, only)
        doubles = team_queries.double_counts(s, dataset_id, only)
    # A pair's figures are half someone else's: only those who see everyone's get them.
    pairs = pair_rows(doubles) if everyone else []
    return TeamFigures(everyone, team_rows(counts, times), pairs, class_rows(doubles))


def dataset_overview(store: Store, who: Identity | None, dataset_id: int) -> dict[str, Any]:
    """The Dataset page's per-class counts and priors (:func:`app.web.cached.dataset_overview`).

    Raises:
        PermissionDenied: without :attr:`Permission.VIEW_DATASET`.
    """
    require(who, Permission.VIEW_DATASET)
    return cached.dataset_overview(store.url, dataset_id)


__all__ = [
    "TeamFigures",
    "adjudicate",
    "cancel_job",
    "dataset_overview",
    "decide_suggestion",
    "disagreement_queue",
    "edit_label",
    "export_file",
    "import_file",
    "queue_cycle",
    "second_decision",
    "team_figures",
]
