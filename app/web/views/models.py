"""Models: every run with its settings and timings, partial mAP per cycle, per-class AP of the latest
run against the previous one, and how often each run's suggestions were accepted.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.web import cached, state
from app.web.components import plotly_text
from db import queries
from db.models import RunKind, RunStatus

CONFIG_COLUMNS = ("backbone", "mode", "loss", "prior", "epochs", "image_size")


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


def render() -> None:
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


render()
