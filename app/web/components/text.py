"""Render user-supplied text (annotator names, class display names, error messages) safely.

Streamlit renders markdown in ``st.markdown``, ``st.warning``, button labels and captions; raw HTML
is not rendered there, but markdown is: a class called ``![x](http://host/track.png)`` would load an
image and ``[ok](javascript:…)`` would make a link. :func:`md_escape` backslash-escapes every
character with a meaning in Streamlit's markdown (CommonMark allows escaping any ASCII
punctuation), so the text shows as typed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

# CommonMark's specials, plus ``$`` (Streamlit LaTeX), ``:`` (Streamlit directives and emoji) and ``&``.
_PUNCT = re.compile(r"([\\`*_\[\]()#+\-.!|<>~$:&])")
_SPACE = re.compile(r"\s+")


def md_escape(text: object) -> str:
    """``text`` as markdown that renders literally, on one line (whitespace runs become one space).

    Example:
        >>> print(md_escape("<b>*cat*</b>"))
        \\<b\\>\\*cat\\*\\</b\\>
    """
    return _PUNCT.sub(r"\\\1", _SPACE.sub(" ", str(text)).strip())


def names_line(names: Sequence[str], limit: int = 30) -> str:
    """Escaped, comma-separated names, at most ``limit`` of them, then ``… and N more``."""
    shown = ", ".join(md_escape(n) for n in names[:limit])
    extra = len(names) - limit
    return f"{shown} … and {extra} more" if extra > 0 else (shown or "—")


def plotly_text(text: object, limit: int | None = None) -> str:
    """``text`` for a Plotly label or hover: ``&``, ``<``, ``>`` escaped (Plotly renders a subset
    of HTML and decodes these three), cut to ``limit`` characters with ``…``."""
    raw = _SPACE.sub(" ", str(text)).strip()
    if limit is not None and len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    return html.escape(raw, quote=False)


__all__ = ["md_escape", "names_line", "plotly_text"]
