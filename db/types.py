"""Column types of the store: string enums stored as plain ``VARCHAR(n)``.

``StrEnumType(RunStatus, 16)`` is a ``String(16)`` in the database (the same DDL as before, with
the table's CHECK constraint listing the values), while ORM attributes and query results are enum
members. Binds accept a member or its string value, so ``Suggestion.status == "pending"`` and
``Suggestion.status == SuggestionStatus.PENDING`` are the same query.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=enum.StrEnum)


class StrEnumType(TypeDecorator[E]):
    """A ``String(length)`` column whose values are members of ``enum_cls``.

    Args:
        enum_cls: the :class:`enum.StrEnum` of the column's values.
        length: the column's length in characters (the DDL is ``VARCHAR(length)``).

    Raises:
        ValueError: on bind, a value that is neither a member nor the value of one; on load, a
            stored value that is not one (a row written outside the ORM with an unknown value).

    Example:
        >>> from db.models import RunStatus
        >>> StrEnumType(RunStatus, 16).process_bind_param("failed", None)
        'failed'
    """

    impl = String
    cache_ok = True

    def __init__(self, enum_cls: type[E], length: int) -> None:
        super().__init__(length)
        self.enum_cls = enum_cls
        self.length = length  # part of the statement cache key, with enum_cls

    def _member(self, value: object, where: str) -> E:
        try:
            return self.enum_cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in self.enum_cls)
            raise ValueError(
                f"{where} {value!r} is not a {self.enum_cls.__name__} (one of {valid})"
            ) from None

    def process_bind_param(self, value: Any, dialect: Dialect | None) -> str | None:
        """A member or its value → the value as plain ``str``; None stays None (NULL)."""
        if value is None:
            return None
        return self._member(value, "value").value

    def process_result_value(self, value: Any, dialect: Dialect | None) -> E | None:
        """The stored string → its member; NULL → None."""
        if value is None:
            return None
        return self._member(value, "stored value")

    def __repr__(self) -> str:
        return f"StrEnumType({self.enum_cls.__name__}, {self.length})"

    @property
    def python_type(self) -> type[E]:
        return self.enum_cls


__all__ = ["StrEnumType"]
