"""Cached, serializable query results for the pages (``st.cache_data``).

Suggestion counts come from the trigger-kept ``suggestion_count`` table (runs x classes rows), so
they are cheap at any queue size. Label counts are a GROUP BY over an index (about 0.1 s per
million labels), cached under the dataset's :func:`~db.stats.label_version`: a visit recounts
only after a label or image changed, and the numbers are never stale. Results are plain lists and
dicts keyed by the store URL, so two stores in one process never share entries. Call
``<function>.clear()`` after a write when a page must show the change at once.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.store import open_store
from db import queries
from db.models import SuggestionStatus
from db.runs import list_runs
from db.stats import class_counts, label_version, n_images, run_suggestion_counts, suggestion_counts

#: Queue sizes above this show as "10,000+" (counting stops there).
PENDING_CAP = 10_000


@st.cache_data(ttl=10, show_spinner=False)
def pending_count(url: str, dataset_id: int, class_id: int | None = None) -> int:
    """Pending suggestions of a dataset (of one class), at most ``PENDING_CAP + 1``."""
    with open_store(url).read() as s:
        return queries.pending_count(s, dataset_id, class_id, cap=PENDING_CAP)


@st.cache_data(ttl=30, show_spinner=False)
def pending_classes(url: str, dataset_id: int, limit: int = 500) -> list[tuple[int, str, str, int]]:
    """``(class_id, key, display_name, pending)`` for classes with pending suggestions, most first."""
    with open_store(url).read() as s:
        return [
            (c.class_id, c.key, c.display_name, c.pending)
            for c in queries.pending_by_class(s, dataset_id, limit)
        ]


@st.cache_data(max_entries=16, show_spinner=False)
def label_overview(url: str, dataset_id: int, version: tuple[int, int]) -> dict[str, Any]:
    """N images and per-class label counts, cached per ``version`` (:func:`db.stats.label_version`).

    Returns:
        ``{"n_images": N, "classes": [(class_id, key, display_name, positive, negative, unknown),
        ...] (column order)}``.
    """
    with open_store(url).read() as s:
        return {
            "n_images": n_images(s, dataset_id),
            "classes": [
                (c.class_id, c.key, c.display_name, c.positive, c.negative, c.unknown)
                for c in class_counts(s, dataset_id)
            ],
        }


def dataset_overview(url: str, dataset_id: int) -> dict[str, Any]:
    """Per-class label counts, suggestion counts and the latest run's priors, as column lists.

    Label counts are recounted only when :func:`db.stats.label_version` changed; suggestion counts
    and priors are read fresh (a few small indexed reads).

    Returns:
        ``{"n_images": N, "classes": [{class_id, key, name, positive, negative, unknown,
        pending, accepted, rejected, prior_naive, prior_model}, ...] (column order), "run_id": id|None}``.
    """
    with open_store(url).read() as s:
        version = label_version(s, dataset_id)
        sugg = suggestion_counts(s, dataset_id)
        runs = queries.succeeded_target_runs(s, dataset_id, limit=1)
        run_id = runs[0].id if runs else None
        priors = {r.class_id: r for r in queries.class_stats_named(s, run_id)} if run_id is not None else {}
    labels = label_overview(url, dataset_id, version)
    rows = []
    for class_id, key, name, positive, negative, unknown in labels["classes"]:
        st_ = sugg.get(class_id, {})
        p = priors.get(class_id)
        rows.append(
            {
                "class_id": class_id,
                "key": key,
                "name": name,
                "positive": positive,
                "negative": negative,
                "unknown": unknown,
                "pending": st_.get(SuggestionStatus.PENDING, 0),
                "accepted": st_.get(SuggestionStatus.ACCEPTED, 0),
                "rejected": st_.get(SuggestionStatus.REJECTED, 0),
                "prior_naive": p.prior_naive if p else None,
                "prior_model": p.prior_model if p else None,
            }
        )
    return {"n_images": labels["n_images"], "classes": rows, "run_id": run_id}


@st.cache_data(ttl=10, show_spinner=False)
def runs_overview(url: str, dataset_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The dataset's newest runs with settings, timings, metrics and suggestion status counts."""
    with open_store(url).read() as s:
        runs = list_runs(s, dataset_id, limit=limit)
        status = run_suggestion_counts(s, [r.id for r in runs])
    out = []
    for r in runs:
        counts = status.get(r.id, {})
        accepted, rejected = (
            counts.get(SuggestionStatus.ACCEPTED, 0),
            counts.get(SuggestionStatus.REJECTED, 0),
        )
        decided = accepted + rejected
        out.append(
            {
                "id": r.id,
                "kind": r.kind,
                "cycle": r.cycle,
                "status": r.status,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "config": dict(r.config or {}),
                "metrics": dict(r.metrics or {}),
                "timings": dict(r.timings or {}),
                "error": r.error,
                "suggestions": sum(counts.values()),
                "accepted": accepted,
                "rejected": rejected,
                "acceptance": accepted / decided if decided else None,
            }
        )
    return out


@st.cache_data(ttl=10, show_spinner=False)
def audit_summary(url: str, run_id: int) -> queries.AuditSummary:
    """A run's audit sample per class and its ranked suggestions' decisions (:func:`db.queries.audit_summary`)."""
    with open_store(url).read() as s:
        return queries.audit_summary(s, run_id)


__all__ = [
    "PENDING_CAP",
    "audit_summary",
    "dataset_overview",
    "label_overview",
    "pending_classes",
    "pending_count",
    "runs_overview",
]
