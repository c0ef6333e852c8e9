"""Models: every run with its settings and timings, partial mAP per cycle, per-class AP of the latest
run against the previous one, how often each run's suggestions were accepted, and what a run's
reviews measured: the ranked suggestions' precision, the audit sample's missing-positive rate per
class and the lift of the ranking over random (:mod:`app.audit_stats`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.audit_stats import MIN_DECISIONS, ClassAudit, Proportion, RunAudit, run_audit, unknown_cells_of
from app.auth import Permission
from app.web import cached, state
from app.web.components import plotly_text
from db import queries
from db.models import RunKind, RunStatus

CONFIG_COLUMNS = ("backbone", "mode", "loss", "prior", "epochs", "image_size")
#: Classes shown in the audit chart: the ones with the most decided audit cells.
AUDIT_CHART_CLASSES = 30


def _seconds(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return (state.as_utc(end) - state.as_utc(start)).total_seconds()  # type: ignore[operator]


def _runs_table(runs: list[dict[str, Any]]) -> None:
    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "run": r["id"],
            "kind": r["kind"],
            "cycle": r["cycle"],
            "status": r["status"],
            "started": state.as_utc(r["started_at"]),
            "seconds": _seconds(r["started_at"], r["finished_at"]),
        }
        row |= {k: r["config"].get(k) for k in CONFIG_COLUMNS}
        row["partial mAP"] = r["metrics"].get("partial_map")
        row["suggestions"] = r["suggestions"]
        row["acceptance"] = r["acceptance"]
        row["timings"] = ", ".join(f"{k} {float(v):.1f}s" for k, v in r["timings"].items() if _is_number(v))
        row["error"] = r["error"] or ""
        rows.append(row)
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={
            "acceptance": st.column_config.NumberColumn(format="percent"),
            "seconds": st.column_config.NumberColumn(format="%.1f"),
        },
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _map_chart(runs: list[dict[str, Any]]) -> None:
    points = sorted(
        (r["cycle"], float(r["metrics"]["partial_map"]), r["id"])
        for r in runs
        if r["kind"] == RunKind.TARGET
        and r["status"] == RunStatus.SUCCEEDED
        and _is_number(r["metrics"].get("partial_map"))
    )
    if not points:
        st.caption("No evaluated cycle yet.")
        return
    fig = go.Figure(
        go.Scatter(
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            mode="lines+markers",
            text=[f"run {p[2]}" for p in points],
            hovertemplate="cycle %{x}: %{y:.2f}<br>%{text}<extra></extra>",
        )
    )
    fig.update_layout(height=320, margin={"t": 30, "b": 10})
    fig.update_xaxes(title="cycle", dtick=1)
    fig.update_yaxes(title="partial mAP")
    st.plotly_chart(fig, key="models-map")


def _ap_compare(ds: state.DatasetRef) -> None:
    with state.get_store().read() as s:
        runs = queries.succeeded_target_runs(s, ds.id, limit=2)
        stats = [queries.class_stats_named(s, r.id) for r in runs]
    if len(runs) < 2:
        st.caption("Per-class AP is compared once two cycles have finished.")
        return
    latest = {r.class_id: r for r in stats[0]}
    previous = {r.class_id: r for r in stats[1]}
    rows = [
        {
            "class": latest[c].display_name,
            "key": latest[c].key,
            "previous": previous[c].ap,
            "latest": latest[c].ap,
        }
        for c in latest
        if c in previous and latest[c].ap is not None and previous[c].ap is not None
    ]
    if not rows:
        st.caption("The last two runs have no per-class AP to compare.")
        return
    df = pd.DataFrame(rows)
    df["change"] = df["latest"] - df["previous"]
    fig = go.Figure(
        go.Scatter(
            x=df["previous"],
            y=df["latest"],
            mode="markers",
            text=df["class"].map(plotly_text),
            hovertemplate="%{text}<br>previous %{x:.3f}<br>latest %{y:.3f}<extra></extra>",
        )
    )
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "#9e9e9e"})
    fig.update_layout(height=360, margin={"t": 30, "b": 10})
    fig.update_xaxes(title=f"AP, run {runs[1].id}", range=[0, 1])
    fig.update_yaxes(title=f"AP, run {runs[0].id}", range=[0, 1])
    left, right = st.columns(2)
    with left:
        st.plotly_chart(fig, key="models-ap")
    with right:
        st.dataframe(df.sort_values("change"), hide_index=True, height=360)


def _acceptance_chart(runs: list[dict[str, Any]]) -> None:
    have = [r for r in reversed(runs) if r["acceptance"] is not None]
    if not have:
        st.caption("No suggestion of any run has been decided yet.")
        return
    fig = go.Figure(
        go.Bar(
            x=[f"run {r['id']} (cycle {r['cycle']})" for r in have],
            y=[r["acceptance"] for r in have],
            text=[f"{r['accepted']}/{r['accepted'] + r['rejected']}" for r in have],
            marker_color="#2e7d32",
        )
    )
    fig.update_layout(height=300, margin={"t": 30, "b": 10})
    fig.update_yaxes(title="accepted / decided", range=[0, 1], tickformat=".0%")
    st.plotly_chart(fig, key="models-acceptance")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _interval(p: Proportion, what: str) -> str:
    """``95 % interval a–b, from n <what>``, plus a plain warning when n is small."""
    text = f"95 % interval {_pct(p.low)} – {_pct(p.high)}, from {p.trials:,} {what}"
    if not p.enough:
        text += (
            f". Too few decisions yet to rely on: the interval narrows as you review (about {MIN_DECISIONS}+)"
        )
    return text


def _audit_metrics(stats: RunAudit, has_audit: bool) -> None:
    left, middle, right = st.columns(3)
    with left:
        p = stats.precision
        if p.rate is None:
            st.metric("Precision of ranked suggestions", "—")
            st.caption("No ranked suggestion of this run has been accepted or rejected yet.")
        else:
            st.metric("Precision of ranked suggestions", _pct(p.rate))
            st.caption(_interval(p, "decided ranked suggestions"))
    with middle:
        a = stats.audit_rate
        if not has_audit:
            st.metric("Missing-positive rate (audit)", "—")
            st.caption("This run has no audit sample (audit share 0, or made before audit samples existed).")
        elif a.rate is None:
            st.metric("Missing-positive rate (audit)", "—")
            st.caption("No audit cell of this run has been accepted or rejected yet.")
        else:
            st.metric("Missing-positive rate (audit)", _pct(a.rate))
            extra = ""
            if stats.unknown:
                extra = (
                    f"; about {a.rate * stats.unknown:,.0f} missing positives among the "
                    f"{stats.unknown:,} unknown training cells"
                )
            st.caption(_interval(a, "decided audit cells") + extra)
    with right:
        if stats.lift_low is None:
            st.metric("Lift over random", "—")
            st.caption("Needs decisions on both ranked suggestions and audit cells.")
        else:
            value = "—" if stats.lift is None else f"{stats.lift:.1f}×"
            high = (
                "∞"
                if stats.lift_high is None or stats.lift_high == float("inf")
                else f"{stats.lift_high:.1f}×"
            )
            st.metric("Lift over random", value)
            note = "no audit cell accepted yet, so only a lower bound. " if stats.lift is None else ""
            st.caption(
                f"{note}Interval {stats.lift_low:.1f}× – {high} (≥ 90 %: both 95 % intervals hold), "
                f"from {stats.precision.trials:,} ranked and {stats.audit_rate.trials:,} audit decisions"
            )


def _audit_table(classes: list[ClassAudit]) -> None:
    rows = [
        {
            "class": c.display_name,
            "key": c.key,
            "audit cells": c.cells,
            "decided": c.rate.trials,
            "accepted": c.rate.successes,
            "rate": c.rate.rate,
            "low": c.rate.low if c.rate.trials else None,
            "high": c.rate.high if c.rate.trials else None,
            "unknown cells": c.unknown,
            "est. missing": c.missing,
            "est. missing low": c.missing_low,
            "est. missing high": c.missing_high,
        }
        for c in classes
    ]
    pct = st.column_config.NumberColumn(format="percent")
    count = st.column_config.NumberColumn(format="%.0f")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="models-audit-table",
        column_config={
            "rate": pct,
            "low": pct,
            "high": pct,
            "est. missing": count,
            "est. missing low": count,
            "est. missing high": count,
        },
    )


def _audit_chart(classes: list[ClassAudit]) -> None:
    shown = [c for c in classes if c.rate.trials][:AUDIT_CHART_CLASSES]  # most decided first
    if not shown:
        return
    rates = [c.rate.rate or 0.0 for c in shown]
    fig = go.Figure(
        go.Scatter(
            x=[plotly_text(c.display_name, 40) for c in shown],
            y=rates,
            mode="markers",
            error_y={
                "type": "data",
                "array": [c.rate.high - r for c, r in zip(shown, rates, strict=True)],
                "arrayminus": [r - c.rate.low for c, r in zip(shown, rates, strict=True)],
            },
            text=[f"{c.rate.successes}/{c.rate.trials}" for c in shown],
            hovertemplate="%{x}<br>%{y:.1%} (%{text} accepted)<extra></extra>",
        )
    )
    fig.update_layout(height=360, margin={"t": 30, "b": 10})
    fig.update_yaxes(title="missing-positive rate (95 % interval)", tickformat=".0%", rangemode="tozero")
    st.plotly_chart(fig, key="models-audit-chart")


def _measured(runs: list[dict[str, Any]]) -> None:
    targets = [r for r in runs if r["kind"] == RunKind.TARGET and r["status"] == RunStatus.SUCCEEDED]
    if not targets:
        st.caption("Measured once a cycle has finished and some of its suggestions are reviewed.")
        return
    by_id = {r["id"]: r for r in targets}
    run_id = st.selectbox(
        "Run",
        list(by_id),
        format_func=lambda i: f"run {i} (cycle {by_id[i]['cycle']})",
        key="models-audit-run",
    )
    run = by_id[run_id]
    summary = cached.audit_summary(state.get_store().url, run_id)
    stats = run_audit(summary, unknown_cells_of(run["metrics"]))
    st.caption(
        "Audit cells are unknown cells drawn at random and shown in the review queue like any other "
        "suggestion; the share of them that reviewers accept estimates how many positives the labels "
        "miss. Precision counts the run's other (ranked) suggestions."
    )
    _audit_metrics(stats, summary.cells > 0)
    if summary.cells == 0:
        return
    st.markdown("##### Missing-positive rate per class (audit cells)")
    _audit_table(stats.classes)
    _audit_chart(stats.classes)


def render() -> None:
    state.require_page(Permission.VIEW_MODELS)
    state.show_flashes()
    ds = state.require_dataset()
    runs = cached.runs_overview(state.get_store().url, ds.id)
    if not runs:
        st.info("No model runs yet. Start a cycle on the Train page.")
        return
    st.markdown("#### Runs")
    _runs_table(runs)
    st.markdown("#### Partial mAP per cycle")
    _map_chart(runs)
    st.markdown("#### Per-class AP: latest run vs previous")
    _ap_compare(ds)
    st.markdown("#### Acceptance rate of suggestions (how often the model was right)")
    _acceptance_chart(runs)
    st.markdown("#### Measured on your reviews")
    _measured(runs)


render()
