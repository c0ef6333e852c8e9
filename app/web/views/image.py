"""Image: one image with all its labels by state — positive, negative, unknown — and their history.

Any label can be changed; each change goes through :func:`db.labels.set_label` with the version
the annotator saw, so a cell someone else changed meanwhile is a clear conflict, never a silent
overwrite. The image is picked by its id (``?image=ID`` in the URL works too). Changes are
recorded under the signed-in user and refused on the server without the edit permission.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.auth import Permission, PermissionDenied
from app.web import guarded, state
from app.web.components import md_escape
from app.web.images import LARGE_PX, show_image
from db import queries
from db.datasets import image_labels, search_classes
from db.errors import ConflictError, NotFoundError
from db.models import Image, LabelClass

CURRENT_KEY = "image_current"  # the image shown (external id); survives visits to other pages
IMAGE_KEY = "image_ext"  # the id input widget
LINKED_KEY = "_image_linked"  # the last ?image= applied, so a new link wins over the input
SEARCH_KEY = "image_class_search"
MAX_ROWS = 100
STATE_NAME = {1: "positive", 0: "negative", None: "unknown"}
ROW_WIDTHS = (1.6, 1.0, 1.0)  # class name, then one button per other state


def _set(image_id: int, class_id: int, class_name: str, value: int | None, seen_version: int) -> None:
    try:
        guarded.edit_label(
            state.get_store(),
            state.identity(),
            image_id=image_id,
            class_id=class_id,
            value=value,
            expected_version=seen_version,
        )
    except PermissionDenied as err:
        state.flash("error", f"Refused: {err}")
        return
    except ConflictError as err:
        state.flash("error", f"Conflict, nothing changed: {err}")
        return
    except NotFoundError as err:
        state.flash("error", str(err))
        return
    state.flash("success", f"{class_name}: now {STATE_NAME[value]}.")


def _goto(step: int, dataset_id: int, image_id: int | None) -> None:
    with state.get_store().read() as s:
        target = queries.neighbour_image(s, dataset_id, image_id, step)
        ext = queries.image_external_id(s, target) if target is not None else None
    if ext is not None:
        st.session_state[CURRENT_KEY] = ext


def _typed() -> None:
    st.session_state[CURRENT_KEY] = str(st.session_state[IMAGE_KEY]).strip()


def _pick(ds: state.DatasetRef) -> Image | None:
    """The image to show: from ``?image=`` (a link), else the one chosen before, else the first."""
    wanted = st.query_params.get("image")
    if wanted and wanted != st.session_state.get(LINKED_KEY):
        st.session_state[CURRENT_KEY] = wanted
    if not st.session_state.get(CURRENT_KEY):
        with state.get_store().read() as s:
            first = queries.neighbour_image(s, ds.id, None, 1)
            first_id = queries.image_external_id(s, first) if first is not None else None
            st.session_state[CURRENT_KEY] = first_id or ""
    current_text = str(st.session_state[CURRENT_KEY])
    if st.session_state.get(IMAGE_KEY) != current_text:
        st.session_state[IMAGE_KEY] = current_text
    with state.get_store().read() as s:
        found = queries.find_images(s, ds.id, current_text, limit=1)
    image = found[0] if found else None
    cols = st.columns([4, 1, 1], vertical_alignment="bottom")
    cols[0].text_input(
        "Image id",
        key=IMAGE_KEY,
        on_change=_typed,
        help="The image's id in the dataset (a prefix finds the first match).",
    )
    current = image.id if image else None
    cols[1].button("◀ Previous", key="image-prev", on_click=_goto, args=(-1, ds.id, current), width="stretch")
    cols[2].button("Next ▶", key="image-next", on_click=_goto, args=(1, ds.id, current), width="stretch")
    if image is None:
        st.warning(f"No image {md_escape(current_text)} in this dataset.")
        return None
    st.query_params["image"] = image.external_id
    st.session_state[LINKED_KEY] = image.external_id
    return image


def _label_rows(
    image_id: int, classes: list[LabelClass], value: int, versions: dict[int, int], can_edit: bool
) -> None:
    others = [v for v in (1, 0, None) if v != value]
    for c in classes[:MAX_ROWS]:
        name_col, *buttons = st.columns(ROW_WIDTHS, vertical_alignment="center")
        name_col.markdown(f"{md_escape(c.display_name)} · :gray[{md_escape(c.key)}]")
        for col, target in zip(buttons, others, strict=True):
            col.button(
                f"→ {STATE_NAME[target]}",
                key=f"image-set-{c.id}-{target}",
                on_click=_set,
                args=(image_id, c.id, c.display_name, target, versions[c.id]),
                disabled=not can_edit,
                width="stretch",
            )
    if len(classes) > MAX_ROWS:
        st.caption(f"… and {len(classes) - MAX_ROWS} more; find one with the search below.")


def _unknown_editor(ds: state.DatasetRef, image_id: int, labelled: set[int], can_edit: bool) -> None:
    text = st.text_input("Find an unknown class to label", key=SEARCH_KEY, placeholder="class name or id")
    if not text.strip():
        return
    with state.get_store().read() as s:
        matches = [c for c in search_classes(s, ds.id, text, limit=50) if c.id not in labelled]
    if not matches:
        st.caption("No unknown class matches.")
        return
    for c in matches[:20]:
        name_col, pos_col, neg_col = st.columns(ROW_WIDTHS, vertical_alignment="center")
        name_col.markdown(f"{md_escape(c.display_name)} · :gray[{md_escape(c.key)}]")
        for col, target in ((pos_col, 1), (neg_col, 0)):
            col.button(
                f"→ {STATE_NAME[target]}",
                key=f"image-new-{c.id}-{target}",
                on_click=_set,
                args=(image_id, c.id, c.display_name, target, 0),
                disabled=not can_edit,
                width="stretch",
            )


def _history(image_id: int) -> None:
    with state.get_store().read() as s:
        events = queries.image_events(s, image_id, limit=20)
        pending = queries.pending_for_image(s, image_id)
    if pending:
        # Class names only, as on the Review page: a model score would anchor the decision, and a
        # random audit cell would give itself away by its score.
        st.markdown("**Pending suggestions on this image**")
        st.dataframe(pd.DataFrame({"class": [p.class_name for p in pending]}), hide_index=True)
    st.markdown("**History** (newest first)")
    if not events:
        st.caption("No changes recorded.")
        return
    st.dataframe(
        pd.DataFrame(
            {
                "when": [e.created_at for e in events],
                "class": [e.class_name for e in events],
                "change": [f"{STATE_NAME[e.before]} → {STATE_NAME[e.after]}" for e in events],
                "by": [e.author for e in events],
                "source": [e.source for e in events],
                "reason": [e.reason for e in events],
            }
        ),
        hide_index=True,
    )


def render() -> None:
    state.show_flashes()
    who = state.require_page(Permission.VIEW_IMAGES)
    ds = state.require_dataset()
    image = _pick(ds)
    if image is None:
        return
    with state.get_store().read() as s:
        il = image_labels(s, image.id)
    can_edit = who.can(Permission.EDIT_LABELS) and bool(who.name)
    left, right = st.columns(2, gap="large")
    with left:
        show_image(ds.image_root, image.path, max_px=LARGE_PX)
        st.caption(f"{md_escape(image.external_id)} · {image.split} · {md_escape(image.path)}")
    with right:
        if not can_edit:
            st.info(
                "Enter your name as *Annotator* in the sidebar to change labels."
                if who.single_person
                else "Your role may not change labels."
            )
        with st.container(key=f"image-labels-{image.id}"):
            st.markdown(f"#### Positive ({len(il.positives)})")
            _label_rows(image.id, il.positives, 1, il.versions, can_edit)
            st.markdown(f"#### Negative ({len(il.negatives)})")
            _label_rows(image.id, il.negatives, 0, il.versions, can_edit)
            st.markdown(f"#### Unknown ({il.n_unknown} of {il.n_classes})")
            _unknown_editor(ds, image.id, set(il.versions), can_edit)
    _history(image.id)


render()
