"""Partial labels as a sparse (CSR) matrix: only annotated cells are held, unknown is absence.

At OpenImages scale (millions of images × thousands of classes, ~10 annotated cells per image) the
dense int8 ``(N, C)`` targets of :mod:`core.constants` no longer fit in memory (2M × 9,605 is 19 GB);
the store already keeps only annotated cells. :class:`SparseLabels` holds them the same way:

* ``indptr``  int64 ``(N + 1,)``: row ``i``'s cells are ``indptr[i]:indptr[i + 1]``;
* ``indices`` int32 ``(nnz,)``: their class columns, ascending within a row, no duplicates;
* ``values``  int8 ``(nnz,)``: 1 (positive) or 0 (negative); a cell not held is -1 (unknown).

Memory: 13 bytes per annotated cell + 8 per image. Every ``core`` function that takes targets
accepts a :class:`SparseLabels` too and works on row blocks (:func:`dense_rows`, O(block × C)), so
the results equal the dense path's exactly. :func:`label_counts` counts per class without a block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.constants import NEGATIVE, POSITIVE, UNKNOWN

__all__ = [
    "LabelMatrix",
    "RowBlocks",
    "SparseLabels",
    "dense_rows",
    "iter_row_blocks",
    "label_counts",
    "n_rows",
    "take_rows",
]


@dataclass(frozen=True)
class SparseLabels:
    """An ``(N, C)`` label matrix in CSR form (see the module docstring for the arrays).

    Build one with :meth:`from_cells` or :meth:`from_dense`; the constructor trusts its arrays.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_classes: int

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.indptr) - 1, self.n_classes)

    @property
    def nnz(self) -> int:
        """Annotated cells held."""
        return len(self.indices)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.indices.nbytes + self.values.nbytes)

    @classmethod
    def from_cells(cls, rows: Any, cols: Any, values: Any, shape: tuple[int, int]) -> SparseLabels:
        """Labels from annotated cells in any order.

        Args:
            rows, cols: int ``(nnz,)`` row in [0, N) and class column in [0, C) of each cell.
            values: int ``(nnz,)`` 1 (positive) or 0 (negative).
            shape: ``(N, C)``.

        Raises:
            ValueError: lengths differ, an index is out of range, a value is not 1 or 0, or a
                cell is given twice.
        """
        n, c = int(shape[0]), int(shape[1])
        r = np.asarray(rows, dtype=np.int64).ravel()
        k = np.asarray(cols, dtype=np.int64).ravel()
        v = np.asarray(values).ravel()
        if not (len(r) == len(k) == len(v)):
            raise ValueError(f"rows, cols and values must have one length, got {len(r)}, {len(k)}, {len(v)}")
        if len(r) and (r.min() < 0 or r.max() >= n):
            raise ValueError(f"a row index is outside [0, {n}): min {r.min()}, max {r.max()}")
        if len(k) and (k.min() < 0 or k.max() >= c):
            raise ValueError(f"a class column is outside [0, {c}): min {k.min()}, max {k.max()}")
        if len(v) and not np.isin(v, (POSITIVE, NEGATIVE)).all():
            raise ValueError(
                "sparse label values must be 1 (positive) or 0 (negative); unknown cells are left out"
            )
        key = r * max(c, 1) + k
        order = np.argsort(key, kind="stable")
        key = key[order]
        if len(key) > 1 and (np.diff(key) == 0).any():
            dup = int(key[np.flatnonzero(np.diff(key) == 0)[0]])
            raise ValueError(f"cell (row {dup // max(c, 1)}, class {dup % max(c, 1)}) is given twice")
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
        return cls(indptr, k[order].astype(np.int32), v[order].astype(np.int8), c)

    @classmethod
    def from_dense(cls, targets: Any) -> SparseLabels:
        """The annotated cells (1 / 0) of an int8 ``(N, C)`` matrix; -1 cells are left out."""
        t = np.asarray(targets)
        if t.ndim != 2:
            raise ValueError(f"targets must be 2-D (N, C), got shape {t.shape}")
        rows, cols = np.nonzero(t != UNKNOWN)
        return cls.from_cells(rows, cols, t[rows, cols], t.shape)

    def row_of_cell(self) -> np.ndarray:
        """int64 ``(nnz,)``: the row of each held cell."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.indptr))

    def dense(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """int8 ``(stop - start, C)`` of rows ``start:stop``, 1 / 0 / -1 (O(rows × C) memory)."""
        stop = len(self) if stop is None else min(stop, len(self))
        start = min(start, stop)
        out = np.full((stop - start, self.n_classes), UNKNOWN, dtype=np.int8)
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        rows = np.repeat(np.arange(stop - start), np.diff(self.indptr[start : stop + 1]))
        out[rows, self.indices[lo:hi]] = self.values[lo:hi]
        return out

    def take(self, rows: Any) -> SparseLabels:
        """The rows ``rows`` (int ``(M,)``, any order, repeats allowed) as a new :class:`SparseLabels`."""
        idx = np.asarray(rows, dtype=np.int64).ravel()
        starts, ends = self.indptr[idx], self.indptr[idx + 1]
        lengths = ends - starts
        indptr = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # Position of every kept cell in the source arrays: its row's start plus its rank in the row.
        offset = np.arange(int(indptr[-1]), dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        src = np.repeat(starts, lengths) + offset
        return SparseLabels(indptr, self.indices[src], self.values[src], self.n_classes)

    def cells(self, value: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) int64 ``(k,)`` of the held cells equal to ``value`` (1 or 0), row-major order."""
        sel = np.flatnonzero(self.values == value)
        return self.row_of_cell()[sel], self.indices[sel].astype(np.int64)


class RowBlocks(Protocol):
    """A lazily computed ``(N, C)`` float matrix read by row slices (e.g. a model's probabilities).

    ``shape`` is ``(N, C)``; ``block[start:stop]`` computes rows ``start:stop`` as a float
    ``(stop - start, C)`` array. Functions that accept it read each slice once per pass. An
    implementation may also offer ``cells(labels: SparseLabels) -> (nnz,)``, the values of
    ``labels``' cells alone in CSR order (:func:`core.metrics.cell_scores` then uses it).
    """

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, rows: slice) -> np.ndarray: ...


#: Targets as ``core`` accepts them: dense int8 ``(N, C)`` (1 / 0 / -1) or :class:`SparseLabels`.
LabelMatrix = np.ndarray | SparseLabels


def n_rows(targets: LabelMatrix) -> int:
    """N of a dense or sparse label matrix."""
    return len(targets) if isinstance(targets, SparseLabels) else int(np.shape(targets)[0])


def dense_rows(targets: LabelMatrix, start: int, stop: int) -> np.ndarray:
    """int8 rows ``start:stop`` of a dense or sparse label matrix (a view when dense)."""
    if isinstance(targets, SparseLabels):
        return targets.dense(start, stop)
    return targets[start:stop]


def take_rows(targets: LabelMatrix, rows: np.ndarray) -> LabelMatrix:
    """Rows ``rows`` of a dense (a copy) or sparse label matrix, in the same form."""
    if isinstance(targets, SparseLabels):
        return targets.take(rows)
    return targets[rows]


def iter_row_blocks(n: int, block_rows: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive row blocks of at most ``block_rows`` rows covering ``[0, n)``."""
    step = max(1, int(block_rows))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def label_counts(targets: LabelMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: positives, negatives and unknown cells, each float64 ``(C,)``.

    O(nnz) for :class:`SparseLabels`; one pass over the matrix for dense targets.
    """
    if isinstance(targets, SparseLabels):
        c = targets.n_classes
        pos = np.bincount(targets.indices[targets.values == POSITIVE], minlength=c).astype(np.float64)
        neg = np.bincount(targets.indices[targets.values == NEGATIVE], minlength=c).astype(np.float64)
        return pos, neg, len(targets) - pos - neg
    t = np.asarray(targets)
    pos = (t == POSITIVE).sum(axis=0, dtype=np.float64)
    neg = (t == NEGATIVE).sum(axis=0, dtype=np.float64)
    return pos, neg, t.shape[0] - pos - neg
