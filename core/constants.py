"""The one label encoding used across labelmend.

Targets are ``int8`` arrays of shape ``(N, C)`` (N images, C classes):

* ``POSITIVE = 1``  — verified present,
* ``NEGATIVE = 0``  — verified absent,
* ``UNKNOWN = -1``  — not annotated (the database stores no row for it).
"""

from typing import Final

POSITIVE: Final[int] = 1
NEGATIVE: Final[int] = 0
UNKNOWN: Final[int] = -1

__all__ = ["NEGATIVE", "POSITIVE", "UNKNOWN"]
