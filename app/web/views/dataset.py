"""Dataset: the three states of every label per class, coverage, class priors and suggestion outcomes.

Everything comes from indexed GROUP BYs (one row per class, never one per label), cached for a few
seconds. Per-class bars and the table show one page of :data:`PAGE_SIZE` classes (sorted, narrowed
by a search of name or key), so a dataset of 10,000 classes draws 50 bars, not 10,000. Class names are HTML-escaped before they reach Plotly, which renders a subset of HTML.
Managers and admins only: the figures are read through :func:`app.web.guarded.dataset_overview`.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.auth import Identity, Permission
from app.web import guarded, state
from app.web.components import md_escape, plotly_text

PAGE_SIZE = 50  # classes per page of the per-class chart and table
SEARCH_KEY = "dataset-class-search"
PAGE_KEY = "dataset-page"
AXIS_CHARS = 28  # class names on an axis are cut to this many characters (full name on hover)
SORTS = {
    "positives": "positive",
    "negatives": "negative",
    "annotated": "annotated",
    "unknowns": "unknown",
    "pending suggestions": "pending",
    "column order": "position",
}
COLOURS = {"positive": "#2e7d32", "negative": "#c62828", "unknown": "#9e9e9e"}
SUGGESTION_COLOURS = {"pending": "#f9a825", "accepted": "#2e7d32", "rejected": "#c62828"}


def _frame(who: Identity, ds: state.DatasetRef) -> tuple[pd.DataFrame, int, int | None]:
    """One row per class (C rows): counts, suggestion outcomes, priors; plus N images and the run id."""
    data = guarded.dataset_overview(state.get_store(), who, ds.id)
    df = pd.DataFrame(data["classes"])
    if df.empty:
        return df, data["n_images"], data["run_id"]
    df["position"] = range(len(df))
    df["annotated"] = df["positive"] + df["negative"]
    short = df["name"].map(lambda n: plotly_text(n, AXIS_CHARS))
    dup = short.duplicated(keep=False)
    df["label"] = short.where(~dup, short + " (" + df["key"].map(plotly_text) + ")")
    df["hover"] = df["name"].map(plotly_text) + " (" + df["key"].map(plotly_text) + ")"
    return df, data["n_images"], data["run_id"]


def _metrics(df: pd.DataFrame, n_images: int) -> None:
    cells = n_images * len(df)
    annotated = int(df["annotated"].sum())
    cols = st.columns(5)
    cols[0].metric("Images", f"{n_images:,}")
    cols[1].metric("Classes", f"{len(df):,}")
    cols[2].metric("Positive labels", f"{int(df['positive'].sum()):,}")
    cols[3].metric("Negative labels", f"{int(df['negative'].sum()):,}")
    cols[4].metric(
        "Coverage", f"{annotated / cells:.2%}" if cells else "—", help="Annotated cells / (images × classes)."
    )


def _label_chart(top: pd.DataFrame, log: bool) -> None:
    fig = go.Figure()
    for state_name in ("positive", "negative", "unknown"):
        fig.add_bar(
            name=state_name,
            x=top["label"],
            y=top[state_name],
            hovertext=top["hover"],
            marker_color=COLOURS[state_name],
        )
    fig.update_layout(barmode="stack", height=420, margin={"t": 30, "b": 10}, legend={"orientation": "h"})
    fig.update_yaxes(type="log" if log else "linear", title="images")
    st.plotly_chart(fig, key="dataset-labels")


def _coverage_chart(df: pd.DataFrame, n_images: int) -> None:
    coverage = df["annotated"] / max(n_images, 1)
    fig = go.Figure(go.Histogram(x=coverage, nbinsx=min(50, max(len(df), 1)), marker_color="#1565c0"))
    fig.update_layout(height=300, margin={"t": 30, "b": 10}, bargap=0.05)
    fig.update_xaxes(title="fraction of images annotated (per class)", range=[0, 1])
    fig.update_yaxes(title="classes")
    st.plotly_chart(fig, key="dataset-coverage")


def _prior_chart(df: pd.DataFrame, run_id: int | None) -> None:
    have = df.dropna(subset=["prior_naive", "prior_model"]) if run_id is not None else df.iloc[0:0]
    if have.empty:
        st.caption("No class priors yet: they come with the first retrain cycle.")
        return
    fig = go.Figure(
        go.Scatter(
            x=have["prior_naive"],
            y=have["prior_model"],
            mode="markers",
            text=have["hover"],
            hovertemplate="%{text}<br>naive %{x:.3f}<br>model %{y:.3f}<extra></extra>",
        )
    )
    hi = float(max(have["prior_naive"].max(), have["prior_model"].max(), 1e-3))
    fig.add_shape(type="line", x0=0, y0=0, x1=hi, y1=hi, line={"dash": "dot", "color": "#9e9e9e"})
    fig.update_layout(height=360, margin={"t": 30, "b": 10})
    fig.update_xaxes(title="naive prior (annotated positive rate)")
    fig.update_yaxes(title="model-based prior")
    st.caption(f"Run {run_id}: one point per class; above the diagonal the model finds the class more often.")
    st.plotly_chart(fig, key="dataset-priors")


def _suggestion_chart(page: pd.DataFrame) -> None:
    top = page[(page["pending"] + page["accepted"] + page["rejected"]) > 0]
    if top.empty:
        st.caption("No suggestions for the classes on this page.")
        return
    fig = go.Figure()
    for status, colour in SUGGESTION_COLOURS.items():
        fig.add_bar(name=status, x=top["label"], y=top[status], hovertext=top["hover"], marker_color=colour)
    fig.update_layout(barmode="stack", height=360, margin={"t": 30, "b": 10}, legend={"orientation": "h"})
    fig.update_yaxes(title="suggestions")
    st.plotly_chart(fig, key="dataset-suggestions")


def matching(df: pd.DataFrame, text: str) -> pd.DataFrame:
    """Rows of ``df`` whose ``name`` or ``key`` contains ``text`` (case-insensitive; blank = all)."""
    needle = text.strip()
    if not needle:
        return df
    hit = df["name"].str.contains(needle, case=False, regex=False) | df["key"].str.contains(
        needle, case=False, regex=False
    )
    return df[hit]


def _first_page() -> None:
    st.session_state[PAGE_KEY] = 1


def _page(df: pd.DataFrame, column: str) -> tuple[pd.DataFrame, str]:
    """The search box and the page picker: the classes of the current page, in order, and a caption."""
    text = st.text_input(
        "Search classes by name or id",
        key=SEARCH_KEY,
        on_change=_first_page,
        placeholder="e.g. dog or /m/0bt9lr",
    )
    found = matching(df, text)
    ordered = found.sort_values(column, ascending=column == "position", kind="stable")
    pages = max(1, -(-len(ordered) // PAGE_SIZE))
    if not 1 <= int(st.session_state.get(PAGE_KEY, 1)) <= pages:
        st.session_state[PAGE_KEY] = 1
    page = int(st.number_input(f"Page (of {pages:,})", 1, pages, step=1, key=PAGE_KEY))
    lo = (page - 1) * PAGE_SIZE
    shown = ordered.iloc[lo : lo + PAGE_SIZE]
    if shown.empty:
        return shown, f"No class matches {md_escape(text.strip())}."
    span = f"Classes {lo + 1:,}–{lo + len(shown):,} of {len(ordered):,}"
    if text.strip():
        return shown, f"{span} matching “{md_escape(text.strip())}” ({len(df):,} classes in all)."
    return shown, f"{span}."


def render() -> None:
    state.show_flashes()
    who = state.require_page(Permission.VIEW_DATASET)
    ds = state.require_dataset()
    df, n_images, run_id = _frame(who, ds)
    st.markdown(f"## {md_escape(ds.name)}")
    if df.empty:
        st.info("This dataset has no classes yet.")
        return
    _metrics(df, n_images)
    st.markdown("#### Labels per class: positive / negative / unknown")
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    sort = c1.selectbox("Sort classes by", list(SORTS), key="dataset-sort", on_change=_first_page)
    log = c2.toggle("Log scale", key="dataset-log")
    c3, c4 = st.columns([3, 1], vertical_alignment="bottom")
    with c3:
        page, caption = _page(df, SORTS[sort])
    c4.caption(f"{PAGE_SIZE} classes a page")
    st.caption(caption)
    if page.empty:
        return
    _label_chart(page, log)
    cols = ["key", "name", "positive", "negative", "unknown", "pending", "accepted", "rejected"]
    st.dataframe(page[[*cols, "prior_naive", "prior_model"]], hide_index=True, key="dataset-classes")
    st.markdown("#### Suggestions per class: pending / accepted / rejected")
    _suggestion_chart(page)
    left, right = st.columns(2)
    with left:
        st.markdown("#### Annotation coverage")
        _coverage_chart(df, n_images)
    with right:
        st.markdown("#### Class priors: naive vs model-based")
        _prior_chart(df, run_id)


render()
