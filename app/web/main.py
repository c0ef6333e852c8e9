"""The app's entrypoint: a router over the pages, with the dataset picker and who is working.

When sign-in is required (:func:`app.web.state.auth_required`: accounts exist, ``LABELMEND_AUTH``,
or a non-loopback address), nothing but the sign-in form is shown until someone signs in; then
``st.navigation`` gets only the pages the role may open, and the sidebar shows the account and a
sign-out button. In single-person mode every page is there and the sidebar asks for a name.

Run with ``labelmend serve`` (or ``streamlit run app/web/main.py -- --db URL``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.auth import Identity, Permission
from app.store import Store
from app.web import state
from app.web.components import md_escape

VIEWS = Path(__file__).with_name("views")

#: (section, file in views/, title, icon, url path, what the role must be allowed to do).
PAGES: tuple[tuple[str, str, str, str, str, Permission], ...] = (
    ("Label", "review.py", "Review", ":material/task_alt:", "", Permission.REVIEW),
    ("Label", "class_grid.py", "Class grid", ":material/grid_view:", "class_grid", Permission.REVIEW),
    ("Label", "image.py", "Image", ":material/image:", "image", Permission.VIEW_IMAGES),
    ("Label", "adjudicate.py", "Adjudicate", ":material/gavel:", "adjudicate", Permission.ADJUDICATE),
    ("Insight", "dataset.py", "Dataset", ":material/bar_chart:", "dataset", Permission.VIEW_DATASET),
    ("Insight", "models.py", "Models", ":material/show_chart:", "models", Permission.VIEW_MODELS),
    ("Insight", "team.py", "Team", ":material/groups:", "team", Permission.VIEW_OWN_FIGURES),
    ("Pipeline", "train.py", "Train", ":material/model_training:", "train", Permission.TRAIN),
    (
        "Pipeline",
        "import_export.py",
        "Import / Export",
        ":material/swap_vert:",
        "import_export",
        Permission.IMPORT,
    ),
)


def pages_for(who: Identity) -> dict[str, list[st.Page]]:
    """The pages ``who`` may open, by section (Review, the default, is open to every role)."""
    sections: dict[str, list[st.Page]] = {}
    for section, file, title, icon, url_path, permission in PAGES:
        if not who.can(permission):
            continue
        page = (
            st.Page(VIEWS / file, title=title, icon=icon, default=True)
            if not url_path
            else st.Page(VIEWS / file, title=title, icon=icon, url_path=url_path)
        )
        sections.setdefault(section, []).append(page)
    return sections


def _sign_in_page() -> None:
    """The only page before sign-in: the form, and nothing about the store but whether it has
    accounts."""
    st.markdown("## Sign in to labelmend")
    state.show_flashes()
    if not state.has_accounts():
        st.info("No accounts yet: add one with `labelmend user add NAME --role admin`, then sign in.")
    with st.form("signin", enter_to_submit=True):
        st.text_input("Name", key=state.SIGNIN_NAME_KEY, max_chars=200, autocomplete="username")
        st.text_input(
            "Password",
            key=state.SIGNIN_PASSWORD_KEY,
            type="password",
            max_chars=1024,
            autocomplete="current-password",
        )
        st.form_submit_button("Sign in", type="primary", on_click=state.submit_sign_in, key="signin-submit")


def _dataset_picker(store: Store) -> None:
    names = state.dataset_names(store)
    if st.session_state.get(state.DATASET_KEY) not in names:
        wanted = st.query_params.get("dataset")
        st.session_state[state.DATASET_KEY] = wanted if wanted in names else (names[0] if names else None)
    if names and st.session_state.get(state.DATASET_PICKER_KEY) != st.session_state[state.DATASET_KEY]:
        st.session_state[state.DATASET_PICKER_KEY] = st.session_state[state.DATASET_KEY]
    if names:
        st.selectbox(
            "Dataset",
            names,
            key=state.DATASET_PICKER_KEY,
            on_change=lambda: state.set_dataset(str(st.session_state[state.DATASET_PICKER_KEY])),
        )
    else:
        st.caption("No dataset yet.")


def _sidebar(store: Store, who: Identity) -> None:
    """Dataset picker, then the account and sign-out button, or (single-person mode) the name box.
    Their values live under non-widget keys (:data:`state.DATASET_KEY`, :data:`state.ANNOTATOR_KEY`,
    :data:`state.AUTH_KEY`) so every page reads them the same way."""
    if who.single_person and st.session_state.get(state.ANNOTATOR_INPUT_KEY) != who.name:
        st.session_state[state.ANNOTATOR_INPUT_KEY] = who.name
    with st.sidebar:
        _dataset_picker(store)
        if who.single_person:
            st.text_input(
                "Annotator",
                key=state.ANNOTATOR_INPUT_KEY,
                max_chars=200,
                placeholder="your name",
                help="Recorded with every decision and label change.",
                on_change=lambda: state.set_annotator(str(st.session_state[state.ANNOTATOR_INPUT_KEY])),
            )
        else:
            st.caption(f"Signed in as **{md_escape(who.name)}** · {who.role.value}")
            st.button("Sign out", key="signout", icon=":material/logout:", on_click=state.sign_out)


def run() -> None:
    st.set_page_config(page_title="labelmend", page_icon=":material/label:", layout="wide")
    store = state.get_store()
    who = state.identity()
    if who is None:
        # Every page's address shows the form too, so a link to a page asks for sign-in (no "page
        # not found"); after sign-in it opens that page if the role allows it.
        forms = [st.Page(_sign_in_page, title="Sign in", icon=":material/login:", default=True)]
        forms += [st.Page(_sign_in_page, title="Sign in", url_path=p[4]) for p in PAGES if p[4]]
        st.navigation(forms, position="hidden").run()
        return
    page = st.navigation(pages_for(who))
    _sidebar(store, who)
    page.run()


run()
