"""db.bulk.copy_arrays: column arrays land in a real table unchanged, on both backends."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.bulk import copy_arrays, create_temp_table


def test_copy_arrays_round_trip(sm: sessionmaker[Session]) -> None:
    rng = np.random.default_rng(0)
    n = 5_000
    cols = [
        rng.integers(-(2**62), 2**62, size=n, dtype=np.int64),
        rng.integers(-(2**31), 2**31 - 1, size=n, dtype=np.int32),
        rng.integers(-1, 2, size=n).astype(np.int16),
        rng.standard_normal(n),
    ]
    with sm.begin() as s:
        create_temp_table(
            s, "bulk_probe", [("a", "BIGINT"), ("b", "INTEGER"), ("c", "SMALLINT"), ("d", "DOUBLE PRECISION")]
        )
        assert copy_arrays(s, "bulk_probe", ["a", "b", "c", "d"], cols) == n
        assert copy_arrays(s, "bulk_probe", ["a", "b", "c", "d"], [c[:0] for c in cols]) == 0
        got = s.connection().exec_driver_sql("SELECT a, b, c, d FROM bulk_probe").all()
    got.sort(key=lambda r: (r[0], r[1]))
    want = sorted(zip(*(c.tolist() for c in cols), strict=True), key=lambda r: (r[0], r[1]))
    assert [tuple(r) for r in got] == want


def test_copy_arrays_rejects_bad_columns(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        create_temp_table(s, "bulk_probe", [("a", "BIGINT"), ("b", "BIGINT")])
        a = np.arange(3, dtype=np.int64)
        with pytest.raises(ValueError, match="dtype int8"):
            copy_arrays(s, "bulk_probe", ["a", "b"], [a, a.astype(np.int8)])
        with pytest.raises(ValueError, match="column b: need a 1-D array of 3 values"):
            copy_arrays(s, "bulk_probe", ["a", "b"], [a, a[:2]])
        with pytest.raises(ValueError, match="2 columns need as many arrays"):
            copy_arrays(s, "bulk_probe", ["a", "b"], [a])
