"""The benchmarks' yardsticks: measured, positive, consistent and described in one line."""

from __future__ import annotations

import pytest
import torch

from bench.calibration import MATMUL_N, SQLITE_ROWS, measure_calibration


def test_calibration_measures_both_yardsticks() -> None:
    cal = measure_calibration(repeats=1)
    assert cal.matmul_s > 0 and cal.sqlite_insert_s > 0
    assert cal.matmul_gflops == pytest.approx(2 * MATMUL_N**3 / cal.matmul_s / 1e9)
    assert cal.threads == torch.get_num_threads()
    assert cal.threads >= 1 and cal.cpus >= 1
    line = cal.describe()
    assert "\n" not in line and f"{SQLITE_ROWS:,} rows" in line and "GFLOP/s" in line
    assert set(cal.to_dict()) == {"matmul_s", "matmul_gflops", "sqlite_insert_s", "threads", "cpus"}


def test_calibration_refuses_zero_repeats() -> None:
    with pytest.raises(ValueError, match="repeats must be ≥ 1"):
        measure_calibration(repeats=0)
