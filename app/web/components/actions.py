"""A row of buttons that are also keyboard shortcuts — the review screen's keyboard.

Streamlit (≥1.52) binds a key to a button natively (``st.button(shortcut=...)``): the key clicks
the button, it is ignored while the user types in a text field, and the key is shown on the
button. Each action therefore has exactly one button, so keys and clicks run the same callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import streamlit as st


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
) -> None:
    """Render ``actions`` as one row of buttons; a click or its key calls ``on_click(name, *args)``.

    Args:
        args: extra callback arguments bound when the buttons render — e.g. the id of the item
            on screen, so a key pressed before the next item appears cannot act on an unseen one.
        widths: relative column widths (default: equal).
    """
    for col, action in zip(st.columns(list(widths) if widths else len(actions)), actions, strict=True):
        col.button(
            action.label,
            key=action.key,
            shortcut=action.shortcut,
            help=action.help or None,
            type=action.kind,
            on_click=on_click,
            args=(action.name, *args),
            disabled=disabled,
            width="stretch",
        )


__all__ = ["Action", "action_bar"]
