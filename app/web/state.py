"""The app's shared store and its per-tab state (who is signed in, dataset, annotator, messages).

The :class:`~app.store.Store` (engine + session factories) is a process-wide singleton cached with
``st.cache_resource`` per database URL; sessions are opened per unit of work, never cached.
``st.session_state`` holds only UI state of one browser tab.

Sign-in (:func:`auth_required`): required when any account exists, when ``LABELMEND_AUTH`` is set,
or when the server is bound to an address other than loopback; ``LABELMEND_NO_AUTH`` (``labelmend
serve --no-auth``, for an authenticating proxy in front) turns it off. Without it the app is in
single-person mode: whoever uses it has every permission and types a name in the sidebar. A
sign-in lasts ``LABELMEND_SESSION_HOURS`` (default 12) and only as long as the browser tab's
session; the account is read again every :data:`REFRESH_S` seconds, so a disabled account or a
changed role takes effect within that time.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Literal

import streamlit as st

from app.auth import (
    AUTH_ENV,
    NO_AUTH_ENV,
    THROTTLE,
    Identity,
    Permission,
    PermissionDenied,
    env_flag,
    is_local_host,
    require,
    session_hours,
    single_person,
)
from app.store import Store, open_store
from app.web.components.text import md_escape
from db.datasets import list_datasets
from db.engine import resolve_url
from db.models import Role
from db.users import find_user, has_users, touch_last_seen, verify_password

log = logging.getLogger(__name__)

DATASET_KEY = "dataset"
DATASET_PICKER_KEY = "dataset_picker"
ANNOTATOR_KEY = "annotator"
ANNOTATOR_INPUT_KEY = "annotator_input"
_FLASH_KEY = "_flash"
AUTH_KEY = "_signed_in"
_MODE_KEY = "_auth_mode"
SIGNIN_NAME_KEY = "signin-name"
SIGNIN_PASSWORD_KEY = "signin-password"
#: Seconds between re-reads of the account (role, disabled) and of whether sign-in is required.
REFRESH_S = 10.0
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


@dataclass
class SignedIn:
    """This tab's sign-in: the account, its role when last read, and when the sign-in ends.

    ``expires_at`` is wall-clock seconds (``time.time()``); ``checked_at`` is ``time.monotonic()``
    of the last re-read of the account.
    """

    name: str
    role: Role
    expires_at: float
    checked_at: float


def auth_required() -> bool:
    """Whether this app requires sign-in (see the module docstring); re-read every REFRESH_S s."""
    if env_flag(NO_AUTH_ENV):
        return False
    if env_flag(AUTH_ENV):
        return True
    address = st.get_option("server.address")
    if address and not is_local_host(str(address)):
        return True  # fail closed: reachable from other machines, never single-person mode
    now = time.monotonic()
    cached = st.session_state.get(_MODE_KEY)
    if cached is not None and now - cached[0] < REFRESH_S:
        return bool(cached[1])
    required = has_accounts()
    st.session_state[_MODE_KEY] = (now, required)
    return required


def has_accounts() -> bool:
    """True when the store has any account (active or disabled)."""
    with get_store().read() as s:
        return has_users(s)


def _typed_annotator() -> str:
    return str(st.session_state.get(ANNOTATOR_KEY) or "").strip()


def _end_sign_in(message: str) -> None:
    st.session_state.pop(AUTH_KEY, None)
    flash("info", message)


def identity() -> Identity | None:
    """Who uses this tab: the signed-in account, the single-person identity when sign-in is not
    required, or None (sign-in required, and not signed in or the sign-in ended)."""
    if not auth_required():
        return single_person(_typed_annotator())
    signed: SignedIn | None = st.session_state.get(AUTH_KEY)
    if signed is None:
        return None
    if time.time() >= signed.expires_at:
        _end_sign_in("Your session expired; sign in again.")
        return None
    now = time.monotonic()
    if now - signed.checked_at >= REFRESH_S:
        with get_store().write() as s:
            user = find_user(s, signed.name)
            role, active = (user.role, user.active) if user is not None else (None, False)
            if active:
                touch_last_seen(s, signed.name)
        if role is None or not active:
            _end_sign_in("Your account was disabled or removed; ask an admin.")
            return None
        signed.role, signed.checked_at = role, now
    return Identity(signed.name, signed.role)


def signed_in() -> bool:
    """True when someone signed in to this tab (False in single-person mode)."""
    who = identity()
    return who is not None and not who.single_person


def require_permission(permission: Permission) -> Identity:
    """This tab's identity when it has ``permission``, for the functions the pages call.

    Raises:
        PermissionDenied: not signed in, the sign-in ended, or the role lacks ``permission``.
    """
    return require(identity(), permission)


def allowed(permission: Permission) -> bool:
    who = identity()
    return who is not None and who.can(permission)


def guard(permission: Permission) -> Identity | None:
    """For a widget callback: the identity when it has ``permission``; else the refusal is
    flashed (one line) and None returned, so the callback changes nothing."""
    try:
        return require_permission(permission)
    except PermissionDenied as err:
        flash("error", f"Refused: {err}")
        return None


def require_page(permission: Permission) -> Identity:
    """For a page's render: the identity, or the refusal shown and the page stopped."""
    try:
        return require_permission(permission)
    except PermissionDenied as err:
        st.error(f"Refused: {md_escape(err)}", icon=_ICONS["error"])
        st.stop()
        raise  # unreachable: st.stop() raises


def client_key() -> str:
    """The connecting client's address for sign-in throttling ('local' when Streamlit has none)."""
    try:
        ip = st.context.ip_address
    except (AttributeError, RuntimeError):
        return "local"
    return ip if isinstance(ip, str) and ip else "local"


def sign_in(name: str, password: str) -> str | None:
    """Check ``name`` and ``password``; on success this tab is signed in.

    Returns:
        None when signed in, else the one-line reason shown to the user (never the password).
    """
    name, client = name.strip(), client_key()
    wait = THROTTLE.wait_s(name, client)
    if wait > 0:
        return f"Too many failed sign-ins; try again in {math.ceil(wait)} s."
    hours = session_hours()
    with get_store().write() as s:
        user = verify_password(s, name, password)
        found = (user.name, user.role) if user is not None else None
        known = found is not None or find_user(s, name) is not None
    if found is None:
        THROTTLE.failed(name, client)
        # The name is logged only when it is an account: a password typed as the name stays out.
        log.warning("failed sign-in%s from %s", f" for {name!r}" if known else "", client)
        return "Wrong name or password."
    THROTTLE.succeeded(name)
    log.info("%r signed in from %s", found[0], client)
    st.session_state[AUTH_KEY] = SignedIn(found[0], found[1], time.time() + hours * 3600, time.monotonic())
    st.session_state[_MODE_KEY] = (time.monotonic(), True)
    return None


def submit_sign_in() -> None:
    """The sign-in form's callback: the password widget is emptied whatever the outcome."""
    name = str(st.session_state.get(SIGNIN_NAME_KEY) or "")
    password = str(st.session_state.get(SIGNIN_PASSWORD_KEY) or "")
    st.session_state[SIGNIN_PASSWORD_KEY] = ""
    try:
        problem = sign_in(name, password)
    except ValueError as err:  # a bad LABELMEND_SESSION_HOURS
        problem = str(err)
    if problem is not None:
        flash("error", problem)


def sign_out() -> None:
    """End this tab's sign-in and forget all its state (the next person starts afresh)."""
    signed: SignedIn | None = st.session_state.get(AUTH_KEY)
    if signed is not None:
        log.info("%r signed out", signed.name)
    st.session_state.clear()
    flash("info", "Signed out.")


def annotator() -> str:
    """The name work is recorded under: the signed-in account's, else the name typed for this tab
    ('' when not given yet, or when sign-in is required and nobody is signed in)."""
    who = identity()
    return who.name if who is not None else ""


def set_annotator(name: str) -> None:
    """Remember the annotator's name for this tab (call from a callback, before widgets render)."""
    st.session_state[ANNOTATOR_KEY] = name.strip()
    st.session_state[ANNOTATOR_INPUT_KEY] = name.strip()


def _submit_annotator(widget_key: str) -> None:
    set_annotator(str(st.session_state.get(widget_key) or ""))


def require_annotator(purpose: str = "review") -> str:
    """The annotator's name (the signed-in account's); in single-person mode, when missing, asks
    for it once and stops the page until given."""
    who = annotator()
    if who:
        return who
    if auth_required():  # signed out meanwhile: the router shows the sign-in form on the next run
        st.stop()
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
    "AUTH_KEY",
    "DATASET_KEY",
    "DATASET_PICKER_KEY",
    "REFRESH_S",
    "SIGNIN_NAME_KEY",
    "SIGNIN_PASSWORD_KEY",
    "DatasetRef",
    "SignedIn",
    "allowed",
    "annotator",
    "as_utc",
    "auth_required",
    "client_key",
    "current_dataset",
    "dataset_names",
    "db_url",
    "db_url_from_args",
    "flash",
    "get_store",
    "guard",
    "has_accounts",
    "identity",
    "require_annotator",
    "require_dataset",
    "require_page",
    "require_permission",
    "set_annotator",
    "set_dataset",
    "show_flashes",
    "sign_in",
    "sign_out",
    "signed_in",
    "submit_sign_in",
]
