"""``Choice``: the base of the string enums that name an option (a loss, a ranker, a format).

A subclass names its kind once, in the class statement, and gets a forgiving parser with a one-line
error that lists the valid values::

    class Ranker(Choice, kind="ranker", plural="rankers"):
        PROBABILITY = "probability"
        LIFT = "lift"

    Ranker.from_str(" Lift ")  # Ranker.LIFT
    Ranker.from_str("foo")     # ValueError: unknown ranker 'foo'; valid rankers: probability, lift
    Ranker.values()            # ("probability", "lift"), e.g. for CLI help and page menus

Class keywords (all optional):

- ``kind``: what a value names, for the message (default: the class name in words, ``LossMode`` →
  ``"loss mode"``).
- ``plural``: the word after "valid" (``"valid rankers: ..."``); without it the message says
  ``"valid: ..."``.
- ``message``: a whole template instead, with the fields ``{kind}``, ``{value}`` (the input, as
  ``repr``) and ``{valid}`` (comma-separated values), for enums whose wording callers rely on.

Extra spellings are added by overriding the classmethod :meth:`Choice._aliases`. The enum's own
constructor stays exact (``Ranker("lift")``); only :meth:`Choice.from_str` forgives.
"""

from __future__ import annotations

import enum
import re
from typing import Any, ClassVar, Self

_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


class Choice(enum.StrEnum):
    """A ``StrEnum`` with :meth:`from_str` (strip, any case, aliases) and :meth:`values`."""

    _choice_kind: ClassVar[str]
    _choice_message: ClassVar[str]

    def __init_subclass__(
        cls, *, kind: str | None = None, plural: str | None = None, message: str | None = None, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        # Plain class attributes set here, after the body: names assigned in an Enum body become members.
        cls._choice_kind = kind if kind is not None else _WORD_START.sub(" ", cls.__name__).lower()
        if message is None:
            message = "unknown {kind} {value}; valid" + (f" {plural}" if plural else "") + ": {valid}"
        cls._choice_message = message

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """Every value, in definition order (for help texts, menus and error messages)."""
        return tuple(member.value for member in cls)

    @classmethod
    def _aliases(cls) -> dict[str, Self]:
        """Extra spellings accepted by :meth:`from_str` (compared stripped and case-insensitively).

        Override to keep an old or alternative name working; none by default.
        """
        return {}

    @classmethod
    def from_str(cls, value: str | Self) -> Self:
        """The member named by ``value``: a member, or its value with any case and surrounding blanks.

        Raises:
            ValueError: ``value`` names no member; one line naming the kind and the valid values.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().casefold()
            for member in cls:
                if member.value.casefold() == key:
                    return member
            for alias, member in cls._aliases().items():
                if alias.strip().casefold() == key:
                    return member
        raise ValueError(cls._unknown_message(value))

    @classmethod
    def _unknown_message(cls, value: object) -> str:
        return cls._choice_message.format(
            kind=cls._choice_kind, value=repr(value), valid=", ".join(cls.values())
        )


__all__ = ["Choice"]
