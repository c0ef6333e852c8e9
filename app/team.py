"""Per-annotator figures for the Team page, from :mod:`db.team`'s counts and decision times.

Streamlit-free. Pace counts only *active* time: a gap of more than :data:`BREAK_S` seconds
between two consecutive decisions of one annotator is a break and is left out, so a lunch break
does not lower decisions per hour. Fractions are in [0, 1]; NaN means "no data" (Streamlit's
table shows it as None, the CSV as an empty cell).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import numpy.typing as npt

from app.agreement import Agreement, by_pair, grouped
from db.team import AnnotatorCounts, DoubleCounts

BREAK_S = 600.0
"""A gap between two decisions longer than this (seconds, 10 min) is a break, not work."""


def pace(times_s: npt.ArrayLike) -> tuple[float, float]:
    """Decisions per active hour and median seconds per decision.

    Args:
        times_s: shape (N,), one annotator's decision times in seconds (any origin, any order).

    Returns:
        (decisions per hour, median seconds between consecutive decisions), both over gaps of at
        most :data:`BREAK_S`; NaN when there is no such gap (fewer than two decisions in a run).

    Example:
        >>> pace([0, 10, 30, 5000, 5020])  # gaps 10, 20, (break), 20: 3 decisions in 50 s
        (216.0, 20.0)
    """
    t = np.sort(np.asarray(times_s, dtype=np.float64))
    gaps = np.diff(t)
    work = gaps[gaps <= BREAK_S]
    if work.size == 0:
        return math.nan, math.nan
    active = float(work.sum())
    per_hour = work.size * 3600.0 / active if active > 0 else math.nan
    return per_hour, float(np.median(work))


def _seconds(times: Sequence[dt.datetime]) -> npt.NDArray[np.float64]:
    """Stored times (naive ones are UTC, as SQLite returns them) as POSIX seconds, shape (N,)."""
    return np.array(
        [(t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)).timestamp() for t in times],
        dtype=np.float64,
    )


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True)
class TeamRow:
    """One annotator's figures (one CSV row). Rates are fractions in [0, 1]; NaN = no data.

    ``acceptance_rate``: accepts / (accepts + rejects); ``agreement_with_others``: share of their
    doubly-decided items where both annotators decided alike (``double_reviewed`` items);
    ``agreement_with_adjudication``: share of their adjudicated items where the verdict matched
    their decision; ``audit_accept_precision``: of their accepts of random-audit cells whose value
    is settled (``audit_accepts_settled``), the share the settled value confirmed.
    """

    annotator: str
    decisions: int
    accepted: int
    rejected: int
    skipped: int
    second_decisions: int
    decisions_per_hour: float
    median_s_per_decision: float
    acceptance_rate: float
    double_reviewed: int
    agreement_with_others: float
    adjudicated: int
    agreement_with_adjudication: float
    audit_accepts: int
    audit_accepts_settled: int
    audit_accept_precision: float


def team_rows(counts: Iterable[AnnotatorCounts], times: Mapping[str, Sequence[dt.datetime]]) -> list[TeamRow]:
    """One :class:`TeamRow` per annotator of ``counts`` (same order), with pace from ``times``."""
    rows = []
    for c in counts:
        per_hour, median_s = pace(_seconds(times.get(c.reviewer, ())))
        rows.append(
            TeamRow(
                annotator=c.reviewer,
                decisions=c.decisions,
                accepted=c.accepted,
                rejected=c.rejected,
                skipped=c.skipped,
                second_decisions=c.second_decisions,
                decisions_per_hour=per_hour,
                median_s_per_decision=median_s,
                acceptance_rate=_ratio(c.accepted, c.accepted + c.rejected),
                double_reviewed=c.double_n,
                agreement_with_others=_ratio(c.double_agreed, c.double_n),
                adjudicated=c.adjudicated_n,
                agreement_with_adjudication=_ratio(c.adjudicated_agreed, c.adjudicated_n),
                audit_accepts=c.audit_accepts,
                audit_accepts_settled=c.audit_settled,
                audit_accept_precision=_ratio(c.audit_right, c.audit_settled),
            )
        )
    return rows


@dataclass(frozen=True)
class AgreementRow:
    """Agreement of one annotator pair or one class: ``percent`` in [0, 100], ``kappa`` Cohen's (NaN = undefined)."""

    key: str
    n: int
    percent: float
    kappa: float


def _row(key: str, a: Agreement) -> AgreementRow:
    return AgreementRow(key, a.n, a.percent, a.kappa)


def pair_rows(counts: Sequence[DoubleCounts]) -> list[AgreementRow]:
    """Agreement per annotator pair ("ann & bob"), most items first."""
    res = by_pair(
        [c.first_reviewer for c in counts],
        [c.second_reviewer for c in counts],
        [c.first_value for c in counts],
        [c.second_value for c in counts],
        [c.n for c in counts],
    )
    rows = [_row(f"{a} & {b}", agr) for (a, b), agr in res.items()]
    return sorted(rows, key=lambda r: (-r.n, r.key))


def class_rows(counts: Sequence[DoubleCounts]) -> list[AgreementRow]:
    """Agreement per class ("display name (key)"), most items first."""
    names = {c.class_id: f"{c.class_name} ({c.class_key})" for c in counts}
    res = grouped(
        [c.class_id for c in counts],
        [c.first_value for c in counts],
        [c.second_value for c in counts],
        [c.n for c in counts],
    )
    rows = [_row(names[cid], agr) for cid, agr in res.items()]  # type: ignore[index]
    return sorted(rows, key=lambda r: (-r.n, r.key))


def _cell(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # a name is never run as a spreadsheet formula
    return value


def to_csv(rows: Sequence[TeamRow]) -> str:
    """The rows as CSV text: header = :class:`TeamRow`'s field names, NaN as an empty cell, a name
    that starts like a spreadsheet formula (``=``, ``+``, ``-``, ``@``) prefixed with ``'``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([f.name for f in fields(TeamRow)])
    for row in rows:
        w.writerow([_cell(v) for v in asdict(row).values()])
    return out.getvalue()


__all__ = ["BREAK_S", "AgreementRow", "TeamRow", "class_rows", "pace", "pair_rows", "team_rows", "to_csv"]
