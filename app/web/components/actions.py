"""A row of buttons that are also keyboard shortcuts — the review screen's keyboard.

Streamlit (≥1.52) binds a key to a button natively (``st.button(shortcut=...)``): the key clicks
the button, it is ignored while the user types in a text field, and the key is shown on the
button. Each action therefore has exactly one button, so keys and clicks run the same callback.

Every bar's callback first checks, on the server, that this tab may still act (signed in, the
sign-in not expired, the role has the bar's permission, :attr:`Permission.REVIEW` by default):
a click or key that arrives after sign-out or expiry, or a crafted one, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import streamlit as st

from app.auth import Permission


@dataclass(frozen=True)
class Action:
    """One button of an action bar.

    Attributes:
        name: passed to the callback (e.g. ``"accept"``).
        label: the button text.
        shortcut: a Streamlit shortcut (``"A"``, ``"Space"``, ``"Backspace"``, ``"Left"``, …) or None.
        key: the widget key; stable, so tests and the browser find the button.
        help: tooltip.
        kind: Streamlit button type.
    """

    name: str
    label: str
    shortcut: str | None
    key: str
    help: str = ""
    kind: Literal["primary", "secondary", "tertiary"] = "secondary"


def action_bar(
    actions: Sequence[Action],
    on_click: Callable[..., None],
    *,
    args: tuple[object, ...] = (),
    widths: Sequence[float] | None = None,
    disabled: bool = False,
    permission: Permission = Permission.REVIEW,
) -> None:
    """Render ``actions`` as one row of buttons; a click or its key calls ``on_click(name, *args)``.

    Args:
        args: extra callback arguments bound when the buttons render — e.g. the id of the item
            on screen, so a key pressed before the next item appears cannot act on an unseen one.
        widths: relative column widths (default: equal).
        permission: what the caller must be allowed to do for ``on_click`` to run; otherwise the
            refusal is shown and nothing happens.
    """
    for col, action in zip(st.columns(list(widths) if widths else len(actions)), actions, strict=True):
        col.button(
            action.label,
            key=action.key,
            shortcut=action.shortcut,
            help=action.help or None,
            type=action.kind,
            on_click=_guarded,
            args=(on_click, permission, action.name, *args),
            disabled=disabled,
            width="stretch",
        )


def _guarded(on_click: Callable[..., None], permission: Permission, *args: object) -> None:
    # Imported here: app.web.state imports this package (components.text) at import time.
    from app.web import state

    if state.guard(permission) is not None:
        on_click(*args)


__all__ = ["Action", "action_bar"]
