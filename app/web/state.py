"""The app's shared store and its per-tab state (dataset, annotator, one-shot messages).

The :class:`~app.store.Store` (engine + session factories) is a process-wide singleton cached with
``st.cache_resource`` per database URL; sessions are opened per unit of work, never cached.
``st.session_state`` holds only UI state of one browser tab.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass
from typing import Literal

import streamlit as st

from app.store import Store, open_store
from app.web.components.text import md_escape
from db.datasets import list_datasets
from db.engine import resolve_url

DATASET_KEY = "dataset"
DATASET_PICKER_KEY = "dataset_picker"
ANNOTATOR_KEY = "annotator"
ANNOTATOR_INPUT_KEY = "annotator_input"
_FLASH_KEY = "_flash"
_ICONS = {
    "success": ":material/check_circle:",
    "info": ":material/info:",
    "warning": ":material/warning:",
    "error": ":material/error:",
}

FlashKind = Literal["success", "info", "warning", "error"]


def db_url_from_args(argv: list[str] | None = None) -> str | None:
    """The database URL from ``--db URL`` / ``--db=URL`` after ``streamlit run main.py --``, else None."""
    args = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(args):
        if arg == "--db" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--db="):
            return arg.split("=", 1)[1]
    return None


def db_url() -> str:
    """The store's URL: ``--db``, else ``LABELMEND_DB``, else SQLite under ``LABELMEND_HOME``."""
    return resolve_url(db_url_from_args() or os.environ.get("LABELMEND_DB") or None)


@st.cache_resource(show_spinner=False)
def _open(url: str) -> Store:
    return open_store(url)


def get_store() -> Store:
    """The process-wide store for :func:`db_url` (migrated to the newest schema on first use)."""
    return _open(db_url())


@dataclass(frozen=True)
class DatasetRef:
    """The dataset picked in the sidebar: plain values, safe to keep across transactions."""

    id: int
    name: str
    image_root: str


def dataset_names(store: Store) -> list[str]:
    with store.read() as s:
        return [d.name for d in list_datasets(s)]


def current_dataset(store: Store) -> DatasetRef | None:
    """The dataset selected in the sidebar (None when the store has none)."""
    name = st.session_state.get(DATASET_KEY)
    if not name:
        return None
    with store.read() as s:
        for d in list_datasets(s):
            if d.name == name:
                return DatasetRef(d.id, d.name, d.image_root)
    return None


def require_dataset() -> DatasetRef:
    """The selected dataset; stops the page with a hint when there is none."""
    ds = current_dataset(get_store())
    if ds is None:
        st.info(
            "No dataset yet. Import labels on the **Import / Export** page, or run "
            "`labelmend demo` to create a demo dataset."
        )
        st.stop()
    return ds


def set_dataset(name: str) -> None:
    """Select the dataset ``name`` for this tab (from a callback, or before the picker renders)."""
    st.session_state[DATASET_KEY] = name


def annotator() -> str:
    """The annotator's name for this tab ('' when not given yet)."""
    return str(st.session_state.get(ANNOTATOR_KEY) or "").strip()


def set_annotator(name: str) -> None:
    """Remember the annotator's name for this tab (call from a callback, before widgets render)."""
    st.session_state[ANNOTATOR_KEY] = name.strip()
    st.session_state[ANNOTATOR_INPUT_KEY] = name.strip()


def _submit_annotator(widget_key: str) -> None:
    set_annotator(str(st.session_state.get(widget_key) or ""))


def require_annotator(purpose: str = "review") -> str:
    """The annotator's name; when missing, asks for it once and stops the page until given."""
    who = annotator()
    if who:
        return who
    with st.form("ask_annotator"):
        st.text_input(
            f"Your name (recorded with every decision you {purpose})",
            key="annotator_form_input",
            max_chars=200,
        )
        st.form_submit_button("Start", on_click=_submit_annotator, args=("annotator_form_input",))
    st.stop()
    return ""  # unreachable: st.stop() raises


def flash(kind: FlashKind, message: str) -> None:
    """Queue a message for the next render (from a callback); shown once by :func:`show_flashes`."""
    st.session_state.setdefault(_FLASH_KEY, []).append((kind, message))


def show_flashes() -> None:
    """Render and clear queued messages. Text is shown as plain text (never as markdown/HTML)."""
    for kind, message in st.session_state.pop(_FLASH_KEY, []):
        getattr(st, kind)(md_escape(message), icon=_ICONS[kind])


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored timestamp as aware UTC (SQLite returns naive datetimes that are UTC)."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


__all__ = [
    "ANNOTATOR_INPUT_KEY",
    "ANNOTATOR_KEY",
    "DATASET_KEY",
    "DATASET_PICKER_KEY",
    "DatasetRef",
    "annotator",
    "as_utc",
    "current_dataset",
    "dataset_names",
    "db_url",
    "db_url_from_args",
    "flash",
    "get_store",
    "require_annotator",
    "require_dataset",
    "set_annotator",
    "set_dataset",
    "show_flashes",
]
