"""Class grid: one class, a page of its top pending suggestions as thumbnails.

Every thumbnail starts as *accept*; a click on its button toggles accept/reject, and **Enter**
(or the Submit button) decides the whole page — each decision through :func:`db.review.decide` in
its own transaction — and leases the next page. The page's suggestions are leased to the
annotator while shown, so two annotators never get the same ones. Decisions are refused on the
server without the review permission (:func:`app.web.guarded.decide_suggestion`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from app.auth import Permission, PermissionDenied
from app.web import cached, guarded, state
from app.web.components import Action, action_bar, md_escape
from app.web.images import THUMB_PX, show_image
from db import queries
from db.errors import ConflictError, NotFoundError
from db.review import Decision, claim_class_page, release_claims

STATE_KEY = "grid_state"
CLASS_KEY = "grid_class"
SIZE_KEY = "grid_size"
SIZES = (24, 36, 48)
COLUMNS = 6

ACTIONS = (
    Action(
        "submit",
        "Submit page",
        "Enter",
        "grid-submit",
        "Record every decision shown and load the next page.",
        "primary",
    ),
    Action("all_accept", "All accept", None, "grid-all-accept", "Mark every thumbnail accept."),
    Action("all_reject", "All reject", None, "grid-all-reject", "Mark every thumbnail reject."),
)


@dataclass
class GridState:
    """This tab's grid: the leased suggestion ids (best first) and those toggled to reject."""

    dataset_id: int
    class_id: int
    reviewer: str
    size: int
    ids: list[int] = field(default_factory=list)
    rejected: set[int] = field(default_factory=set)


def _grid_state(dataset_id: int, class_id: int, reviewer: str, size: int) -> GridState:
    gs: GridState | None = st.session_state.get(STATE_KEY)
    if gs is None or (gs.dataset_id, gs.class_id, gs.reviewer, gs.size) != (
        dataset_id,
        class_id,
        reviewer,
        size,
    ):
        if gs is not None:
            with state.get_store().write() as s:
                release_claims(s, gs.reviewer, gs.dataset_id)
        gs = GridState(dataset_id, class_id, reviewer, size)
        st.session_state[STATE_KEY] = gs
    return gs


def _ensure_page(gs: GridState) -> None:
    """Lease the next page of the class when the grid is empty (first view, or after a submit)."""
    if not gs.ids:
        with state.get_store().write() as s:
            gs.ids = claim_class_page(s, gs.dataset_id, gs.class_id, gs.reviewer, limit=gs.size)
        gs.rejected = set()


def _toggle(sid: int) -> None:
    if state.guard(Permission.REVIEW) is None:
        return
    gs: GridState = st.session_state[STATE_KEY]
    gs.rejected ^= {sid}


def _submit(gs: GridState) -> None:
    done = {Decision.ACCEPT: 0, Decision.REJECT: 0}
    problems: list[str] = []
    store, who = state.get_store(), state.identity()
    for sid in gs.ids:
        decision = Decision.REJECT if sid in gs.rejected else Decision.ACCEPT
        try:  # one decision per transaction; a conflict commits only its mark
            guarded.decide_suggestion(store, who, sid, decision)
            done[decision] += 1
        except PermissionDenied as err:
            state.flash("error", f"Refused: {err}")
            return
        except (ConflictError, NotFoundError) as err:
            problems.append(str(err))
    gs.ids, gs.rejected = [], set()
    cached.pending_classes.clear()
    cached.pending_count.clear()
    state.flash(
        "success", f"Page recorded: {done[Decision.ACCEPT]} accepted, {done[Decision.REJECT]} rejected."
    )
    for problem in problems[:5]:
        state.flash("warning", problem)
    if len(problems) > 5:
        state.flash("warning", f"… and {len(problems) - 5} more conflicts; those were left to the others.")


def _on_action(name: str) -> None:
    gs: GridState = st.session_state[STATE_KEY]
    if name == "submit":
        _submit(gs)
    elif name == "all_accept":
        gs.rejected = set()
    else:
        gs.rejected = set(gs.ids)


@st.fragment
def _grid(ds: state.DatasetRef, gs: GridState) -> None:
    state.show_flashes()
    _ensure_page(gs)
    if not gs.ids:
        st.info("No pending suggestions of this class are free: done, or being reviewed by someone else.")
        return
    with state.get_store().read() as s:
        views = queries.suggestion_views(s, gs.ids)
    n_reject = sum(1 for v in views if v.id in gs.rejected)
    st.caption(
        f"{len(views) - n_reject} accept · {n_reject} reject — click a button under a thumbnail to toggle."
    )
    action_bar(ACTIONS, _on_action, disabled=not views)
    for start in range(0, len(views), COLUMNS):
        for col, view in zip(st.columns(COLUMNS), views[start : start + COLUMNS], strict=False):
            rejected = view.id in gs.rejected
            with col.container(border=True, key=f"grid-cell-{view.id}"):
                show_image(ds.image_root, view.path, max_px=THUMB_PX)
                st.button(
                    "reject" if rejected else "accept",
                    icon=":material/close:" if rejected else ":material/check:",
                    key=f"grid-toggle-{view.id}",
                    type="secondary" if rejected else "primary",
                    on_click=_toggle,
                    args=(view.id,),
                    help=view.external_id,  # no model probability: the grid is blind, as the Review page
                    width="stretch",
                )


def render() -> None:
    state.show_flashes()
    state.require_page(Permission.REVIEW)
    ds = state.require_dataset()
    who = state.require_annotator("make")
    classes = cached.pending_classes(state.get_store().url, ds.id)
    if not classes:
        st.success("No pending suggestions in this dataset. Start a new cycle on the Train page to get more.")
        return
    names = {cid: (name, key, n) for cid, key, name, n in classes}
    if st.session_state.get(CLASS_KEY) not in names:
        st.session_state[CLASS_KEY] = classes[0][0]
    left, right = st.columns([3, 1])
    class_id: int = left.selectbox(
        "Class",
        list(names),
        format_func=lambda c: f"{names[c][0]} ({names[c][1]}) — {names[c][2]} pending",
        key=CLASS_KEY,
    )
    size: int = (
        right.segmented_control("Thumbnails per page", SIZES, key=SIZE_KEY, default=SIZES[0]) or SIZES[0]
    )
    gs = _grid_state(ds.id, class_id, who, size)
    st.markdown(f"### Is there a {md_escape(names[class_id][0])}?")
    _grid(ds, gs)


render()
