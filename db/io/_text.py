"""Text in label files and in import messages: label values, image paths, quoted user values.

Label encoding: 1 = positive, 0 = negative; -1 marks text that is not a valid value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

# Accepted spellings of a label value (after stripping spaces) → 1 positive / 0 negative.
VALUE_TEXT: dict[str, int] = {"1": 1, "0": 0, "1.0": 1, "0.0": 0}
UNSAFE_PATH = r"(?:^[/\\])|(?:(?:^|[/\\])\.\.(?:[/\\]|$))|(?:^[A-Za-z]:)|\x00"
_UNSAFE = re.compile(UNSAFE_PATH)

# ``key -> (problem, fix)``: the wording of an "unknown class / image" error.
ErrorText = Callable[[str], tuple[str, str]]
# ``(line, problem, fix)``: remember a bad row (see ``LabelImport.note_error``).
NoteError = Callable[[int, str, str], None]


def quote(value: object) -> str:
    """A user value for a one-line message: JSON-quoted, so quotes and line breaks are escaped."""
    return json.dumps(str(value), ensure_ascii=False)


def is_unsafe_path(path: str) -> bool:
    """True when a relative image path is absolute or climbs out of the image root (``..``)."""
    return bool(_UNSAFE.search(path))


def parse_values(raw: pd.Series) -> np.ndarray:
    """Label values from text: ``"1"``/``"0"`` (also ``"1.0"``/``"0.0"``, spaces ignored).

    Returns:
        int8 array, shape (n,): 1, 0, or -1 where the text is not a valid value.
    """
    out = np.full(len(raw), -1, dtype=np.int8)
    out[(raw == "1").to_numpy(dtype=bool)] = 1
    out[(raw == "0").to_numpy(dtype=bool)] = 0
    rest = out == -1
    if rest.any():
        mapped = raw[rest].astype(str).str.strip().map(VALUE_TEXT)
        out[rest] = mapped.fillna(-1).to_numpy(dtype=np.int8)
    return out


__all__ = [
    "UNSAFE_PATH",
    "VALUE_TEXT",
    "ErrorText",
    "NoteError",
    "is_unsafe_path",
    "parse_values",
    "quote",
]
