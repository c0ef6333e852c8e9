"""Team: figures per annotator — decisions, pace, acceptance, agreement, audit precision.

Managers and admins see everyone, with agreement per annotator pair; an annotator sees their
own row, and per-class agreement only over the items they decided (:func:`app.web.guarded.team_figures` restricts the queries themselves).
Pace counts active time only: gaps over 10 minutes between decisions are breaks
(:data:`app.team.BREAK_S`). Audit precision uses only random-audit cells whose value is settled
by an agreeing second review or an adjudication; where none is, the page says so. Names are
escaped for Markdown and Plotly; the CSV download holds the table as shown.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.auth import Permission
from app.team import BREAK_S, AgreementRow, TeamRow, to_csv
from app.web import guarded, state
from app.web.components import md_escape, plotly_text

#: Table columns: TeamRow field → heading.
COLUMNS = {
    "annotator": "Annotator",
    "decisions": "Decisions",
    "decisions_per_hour": "Per hour",
    "median_s_per_decision": "Median s / decision",
    "acceptance_rate": "Accepted",
    "double_reviewed": "Double-reviewed",
    "agreement_with_others": "Agree with others",
    "adjudicated": "Adjudicated",
    "agreement_with_adjudication": "Agree with adjudication",
    "audit_accepts_settled": "Audit accepts settled",
    "audit_accept_precision": "Audit accepts right",
}
PERCENT = (
    "acceptance_rate",
    "agreement_with_others",
    "agreement_with_adjudication",
    "audit_accept_precision",
)


def _table(rows: list[TeamRow]) -> pd.DataFrame:
    df = pd.DataFrame([r.__dict__ for r in rows])[list(COLUMNS)]
    for col in PERCENT:
        df[col] = df[col] * 100.0
    return df.rename(columns=COLUMNS)


def _bar(rows: list[TeamRow], field: str, title: str, key: str, percent: bool = False) -> None:
    have = [r for r in rows if not math.isnan(getattr(r, field))]
    if not have:
        st.caption(f"{title}: no data yet.")
        return
    y = [getattr(r, field) * (100.0 if percent else 1.0) for r in have]
    fig = go.Figure(go.Bar(x=[plotly_text(r.annotator, 24) for r in have], y=y, marker_color="#1565c0"))
    fig.update_layout(height=320, margin={"t": 30, "b": 10}, title=title)
    fig.update_yaxes(title="%" if percent else None, range=[0, 100] if percent else None)
    st.plotly_chart(fig, key=key)


def _agreement(rows: list[AgreementRow], what: str, key: str) -> None:
    if not rows:
        st.caption(f"No {what} has doubly-reviewed items yet.")
        return
    df = pd.DataFrame(
        {
            what.capitalize(): [r.key for r in rows],
            "Items": [r.n for r in rows],
            "Agreement %": [r.percent for r in rows],
            "Cohen's kappa": [r.kappa for r in rows],
        }
    )
    st.dataframe(
        df,
        hide_index=True,
        key=key,
        column_config={
            "Agreement %": st.column_config.NumberColumn(format="%.1f"),
            "Cohen's kappa": st.column_config.NumberColumn(format="%.3f"),
        },
    )


def _audit_note(rows: list[TeamRow]) -> None:
    settled = sum(r.audit_accepts_settled for r in rows)
    accepts = sum(r.audit_accepts for r in rows)
    if settled == 0:
        st.caption(
            f"Audit accepts right: not measured yet. Of {accepts:,} accepted random-audit cells, none has a "
            "settled value (an agreeing second review or an adjudication); a single decision is not "
            "checked against itself."
        )
    else:
        st.caption(
            f"Audit accepts right: of the accepted random-audit cells whose value a second review agreed "
            f"on or a manager adjudicated ({settled:,} of {accepts:,}), the share whose value is present."
        )


def render() -> None:
    state.show_flashes()
    who = state.require_page(Permission.VIEW_OWN_FIGURES)
    ds = state.require_dataset()
    figures = guarded.team_figures(state.get_store(), who, ds.id)
    st.markdown("## Team")
    scope = "every annotator" if figures.everyone else f"your own figures ({md_escape(who.name)})"
    st.caption(f"{md_escape(ds.name)} · {scope} · breaks over {BREAK_S / 60:.0f} min left out of pace")
    if not figures.rows:
        st.info("No decisions yet.")
        return
    st.dataframe(
        _table(figures.rows),
        hide_index=True,
        key="team-table",
        column_config={
            COLUMNS[c]: st.column_config.NumberColumn(format="%.1f")
            for c in ("decisions_per_hour", "median_s_per_decision", *PERCENT)
        },
    )
    _audit_note(figures.rows)
    st.download_button(
        "Download CSV",
        data=to_csv(figures.rows),
        file_name=f"{ds.name}-team.csv",
        mime="text/csv",
        key="team-csv",
        icon=":material/download:",
    )
    left, right = st.columns(2)
    with left:
        _bar(figures.rows, "decisions_per_hour", "Decisions per active hour", "team-pace")
    with right:
        _bar(figures.rows, "acceptance_rate", "Acceptance rate", "team-acceptance", percent=True)
    if figures.everyone:
        st.markdown("#### Agreement per annotator pair")
        _agreement(figures.pairs, "pair", "team-pairs")
    st.markdown("#### Agreement per class")
    _agreement(figures.classes, "class", "team-classes")


render()
