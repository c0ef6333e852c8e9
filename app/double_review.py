"""How many decisions get a second pair of eyes: ``LABELMEND_DOUBLE_REVIEW_SHARE``.

A fraction in [0, 1] (default 0.10): that share of accepted and rejected suggestions is shown to
a second annotator, who does not see the first decision (:mod:`db.double_review`). It applies
to the app's Review page and Class grid when people sign in; in single-person mode there is no
second person, so the share is 0 there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from app.auth import Identity

SHARE_ENV = "LABELMEND_DOUBLE_REVIEW_SHARE"
DEFAULT_SHARE = 0.10


def double_review_share(env: Mapping[str, str] | None = None) -> float:
    """The configured share: ``LABELMEND_DOUBLE_REVIEW_SHARE`` (default 0.10), a fraction in [0, 1].

    Raises:
        ValueError: not a number in [0, 1].

    Example:
        >>> double_review_share({}), double_review_share({"LABELMEND_DOUBLE_REVIEW_SHARE": "0.25"})
        (0.1, 0.25)
    """
    raw = (env if env is not None else os.environ).get(SHARE_ENV, "").strip()
    if not raw:
        return DEFAULT_SHARE
    try:
        share = float(raw)
    except ValueError:
        share = math.nan
    if not (math.isfinite(share) and 0.0 <= share <= 1.0):
        raise ValueError(f"{SHARE_ENV}={raw!r} is not a fraction in [0, 1]; e.g. 0.1 for 10 %")
    return share


def share_for(who: Identity, env: Mapping[str, str] | None = None) -> float:
    """The share for decisions by ``who``: 0 in single-person mode, else :func:`double_review_share`."""
    return 0.0 if who.single_person else double_review_share(env)


__all__ = ["DEFAULT_SHARE", "SHARE_ENV", "double_review_share", "share_for"]
