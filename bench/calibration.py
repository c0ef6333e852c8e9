"""A machine's yardsticks, measured in the same run as a benchmark, so figures from different machines compare.

Two fixed jobs, each the best of ``repeats`` runs (the least disturbed by other processes):

* ``matmul_s`` — one float32 ``2048 × 2048 @ 2048 × 2048`` product in torch with the process's thread
  count (the BLAS speed the heads train at: 17.2 GFLOP);
* ``sqlite_insert_s`` — 100,000 ``(int, int, int)`` rows ``executemany``-inserted into a new on-disk
  SQLite table in one transaction with the standard library's driver (the store's write speed).

A stage's time divided by ``matmul_s`` (or ``sqlite_insert_s``) is a figure that travels between machines
much better than seconds do. ``threads`` and ``cpus`` say what torch used and what the machine has:
a benchmark that ran with fewer threads than cores says so.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

#: Side of the square float32 matrices of the matmul yardstick.
MATMUL_N = 2048
#: Rows of the SQLite insert yardstick.
SQLITE_ROWS = 100_000


@dataclass(frozen=True)
class Calibration:
    """The yardsticks of one run.

    Attributes:
        matmul_s: seconds of one float32 ``MATMUL_N``³ product (best of the repeats).
        matmul_gflops: the same as GFLOP/s.
        sqlite_insert_s: seconds to insert ``SQLITE_ROWS`` rows into SQLite in one transaction.
        threads: ``torch.get_num_threads()`` during the measurement.
        cpus: CPUs this process may run on.
    """

    matmul_s: float
    matmul_gflops: float
    sqlite_insert_s: float
    threads: int
    cpus: int

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers, for ``results.json``."""
        return asdict(self)

    def describe(self) -> str:
        """One line: ``calibration: matmul 2048³ 0.123 s (140 GFLOP/s, 2 threads of 2 CPUs), …``."""
        return (
            f"calibration: matmul {MATMUL_N}³ float32 {self.matmul_s:.3f} s ({self.matmul_gflops:.0f} GFLOP/s, "
            f"{self.threads} torch threads of {self.cpus} CPUs); SQLite insert of {SQLITE_ROWS:,} rows "
            f"{self.sqlite_insert_s:.3f} s"
        )


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _matmul_s(repeats: int) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL_N, MATMUL_N, generator=gen)
    b = torch.randn(MATMUL_N, MATMUL_N, generator=gen)
    torch.mm(a, b)  # warm-up: thread pool and pages
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return best


def _sqlite_insert_s(repeats: int) -> float:
    rows = [(i, i % 600, (i % 3) - 1) for i in range(SQLITE_ROWS)]
    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="labelmend-calibration-") as tmp:
        for r in range(repeats):
            path = Path(tmp) / f"c{r}.db"
            con = sqlite3.connect(path)
            try:
                con.execute("CREATE TABLE t (image_id INTEGER, class_id INTEGER, value INTEGER)")
                t0 = time.perf_counter()
                with con:
                    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
                best = min(best, time.perf_counter() - t0)
            finally:
                con.close()
    return best


def measure_calibration(repeats: int = 3) -> Calibration:
    """Measure the yardsticks now (about a second on a 2-core CPU)."""
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    matmul = _matmul_s(repeats)
    return Calibration(
        matmul_s=matmul,
        matmul_gflops=2 * MATMUL_N**3 / matmul / 1e9,
        sqlite_insert_s=_sqlite_insert_s(repeats),
        threads=torch.get_num_threads(),
        cpus=_cpus(),
    )


__all__ = ["MATMUL_N", "SQLITE_ROWS", "Calibration", "measure_calibration"]
