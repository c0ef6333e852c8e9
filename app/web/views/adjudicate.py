"""Adjudicate: settle the disagreements of double review, oldest first (managers and admins).

Each card shows the image, the class asked about, both annotators' decisions (names, decisions,
when) and the label now, with **Present** / **Absent**. The verdict becomes the label (source
``adjudication``, the manager as author) and wins in the export; the audit log keeps both
decisions and the verdict (:func:`db.double_review.adjudicate`). Reads and writes go through
:mod:`app.web.guarded`, which checks :attr:`Permission.ADJUDICATE` on the server.
"""

from __future__ import annotations

import streamlit as st

from app.auth import Permission, PermissionDenied
from app.web import guarded, state
from app.web.components import md_escape
from app.web.images import LARGE_PX, show_image
from db.double_review import Disagreement
from db.errors import ConflictError, NotFoundError

SHOWN = 10
_WORD = {1: "accept (present)", 0: "reject (absent)"}
_LABEL = {1: "positive", 0: "negative", None: "unknown"}


def _settle(review_id: int, value: int) -> None:
    """A button's callback: the verdict, written at once; a refusal or conflict is flashed."""
    try:
        guarded.adjudicate(state.get_store(), state.identity(), review_id, value)
    except (PermissionDenied, ConflictError, NotFoundError, ValueError) as err:
        state.flash("warning", str(err))
        return
    state.flash("success", f"Settled: {'present' if value else 'absent'}.")


def _card(ds: state.DatasetRef, d: Disagreement) -> None:
    with st.container(border=True, key=f"adjudicate-card-{d.id}"):
        left, right = st.columns([2, 3], gap="large")
        with left:
            show_image(ds.image_root, d.path, max_px=LARGE_PX)
        with right:
            st.markdown(f"#### Is there a {md_escape(d.class_name)}?")
            st.caption(
                f"class {md_escape(d.class_key)} · image {md_escape(d.external_id)} · suggestion {d.suggestion_id}"
            )
            st.markdown(
                f"**First:** {md_escape(d.first_reviewer)} — {_WORD[d.first_value]} · "
                f"{d.first_at:%Y-%m-%d %H:%M} UTC"
            )
            st.markdown(
                f"**Second:** {md_escape(d.second_reviewer)} — {_WORD[d.second_value]} · "
                f"{d.second_at:%Y-%m-%d %H:%M} UTC"
            )
            st.caption(f"Label now: {_LABEL[d.current]}")
            present, absent = st.columns(2)
            present.button(
                "Present",
                key=f"adjudicate-present-{d.id}",
                type="primary",
                icon=":material/check:",
                on_click=_settle,
                args=(d.id, 1),
                width="stretch",
            )
            absent.button(
                "Absent",
                key=f"adjudicate-absent-{d.id}",
                icon=":material/close:",
                on_click=_settle,
                args=(d.id, 0),
                width="stretch",
            )


def render() -> None:
    state.show_flashes()
    who = state.require_page(Permission.ADJUDICATE)
    ds = state.require_dataset()
    waiting, queue = guarded.disagreement_queue(state.get_store(), who, ds.id, limit=SHOWN)
    st.markdown("## Disagreements")
    st.caption(
        f"**{waiting:,}** waiting in {md_escape(ds.name)}: two annotators decided a second look "
        "differently. Your verdict becomes the label and is exported; both decisions stay in the audit log."
    )
    if not queue:
        st.success("No disagreements to settle.")
        return
    if waiting > len(queue):
        st.caption(f"The oldest {len(queue)} are shown; the next ones appear as these are settled.")
    for d in queue:
        _card(ds, d)


render()
