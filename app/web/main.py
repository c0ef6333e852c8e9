"""The app's entrypoint: a router over the pages, with the dataset picker and annotator name.

Run with ``labelmend serve`` (or ``streamlit run app/web/main.py -- --db URL``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.store import Store
from app.web import state

VIEWS = Path(__file__).with_name("views")


def _sidebar(store: Store) -> None:
    """Dataset picker and annotator name. Their values live under non-widget keys
    (:data:`state.DATASET_KEY`, :data:`state.ANNOTATOR_KEY`) so every page reads them the same way."""
    names = state.dataset_names(store)
    if st.session_state.get(state.DATASET_KEY) not in names:
        wanted = st.query_params.get("dataset")
        st.session_state[state.DATASET_KEY] = wanted if wanted in names else (names[0] if names else None)
    if names and st.session_state.get(state.DATASET_PICKER_KEY) != st.session_state[state.DATASET_KEY]:
        st.session_state[state.DATASET_PICKER_KEY] = st.session_state[state.DATASET_KEY]
    if st.session_state.get(state.ANNOTATOR_INPUT_KEY) != state.annotator():
        st.session_state[state.ANNOTATOR_INPUT_KEY] = state.annotator()
    with st.sidebar:
        if names:
            st.selectbox(
                "Dataset",
                names,
                key=state.DATASET_PICKER_KEY,
                on_change=lambda: state.set_dataset(str(st.session_state[state.DATASET_PICKER_KEY])),
            )
        else:
            st.caption("No dataset yet.")
        st.text_input(
            "Annotator",
            key=state.ANNOTATOR_INPUT_KEY,
            max_chars=200,
            placeholder="your name",
            help="Recorded with every decision and label change.",
            on_change=lambda: state.set_annotator(str(st.session_state[state.ANNOTATOR_INPUT_KEY])),
        )


def run() -> None:
    st.set_page_config(page_title="labelmend", page_icon=":material/label:", layout="wide")
    store = state.get_store()
    pages = {
        "Label": [
            st.Page(VIEWS / "review.py", title="Review", icon=":material/task_alt:", default=True),
            st.Page(
                VIEWS / "class_grid.py",
                title="Class grid",
                icon=":material/grid_view:",
                url_path="class_grid",
            ),
            st.Page(VIEWS / "image.py", title="Image", icon=":material/image:", url_path="image"),
        ],
        "Insight": [
            st.Page(VIEWS / "dataset.py", title="Dataset", icon=":material/bar_chart:", url_path="dataset"),
            st.Page(VIEWS / "models.py", title="Models", icon=":material/show_chart:", url_path="models"),
        ],
        "Pipeline": [
            st.Page(VIEWS / "train.py", title="Train", icon=":material/model_training:", url_path="train"),
            st.Page(
                VIEWS / "import_export.py",
                title="Import / Export",
                icon=":material/swap_vert:",
                url_path="import_export",
            ),
        ],
    }
    page = st.navigation(pages)
    _sidebar(store)
    page.run()


run()
