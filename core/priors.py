"""Class priors: how common each class truly is, estimated from partial labels and a model.

The prior of class c is the fraction of images in which c is present. Estimators, all returning
float64 arrays of shape ``(C,)`` with values in [0, 1]:

* :func:`naive_prior` — annotated positives per image; biased low whenever positives go unannotated.
* :func:`model_prior` — from the probabilities ``(N, C)`` of a temporary model trained in
  ``ignore`` mode (CSL.md), by one of :class:`PriorMethod`. ``mean`` needs no targets; every other
  method counts annotated cells as their label and estimates ``pi_u``, the positive rate among a
  class's unknown cells (``prior = (#annotated positives + #unknown * pi_u) / N``). Each rests on
  an assumption about which cells were annotated:

  - ``mean``: mean probability per class (the paper's estimate). Assumes the annotated cells are
    as rich in positives as the dataset; they usually are far richer, so it overestimates.
  - ``filled``: ``pi_u`` from the model's p on the unknown cells as is. Assumes p is calibrated
    for the unknown cells (true only when annotation is random: RPS).
  - ``random``: ``pi_u`` = the positive rate of the class's annotated cells. Assumes annotation
    independent of the label (RPS); then it is exact in expectation and needs no model.
  - ``adjusted``: adjusted classify-and-count, ``(mean p on unknowns - mean p on annotated
    negatives) / (mean p on annotated positives - mean p on annotated negatives)``. Assumes the
    unknown cells differ from the annotated ones only in their positive rate (label shift, e.g.
    FPC); needs no calibration, but is noisy when few cells are annotated or p separates little.
  - ``shrunk``: ``adjusted`` shrunk towards 0 (the naive count) by its estimated sampling
    variance, so a class whose estimate is mostly noise falls back to counting. Same assumption
    as ``adjusted``; when it fails in the usual way (annotated negatives are hard negatives, as
    with a candidate generator) it stays near the naive count instead of below it.
  - ``shifted``: as ``adjusted`` with the Saerens et al. 2002 EM; assumes p calibrated on the
    annotated cells and amplifies miscalibration. Kept for comparison.
  - ``auto`` (**default** with targets): tests, per dataset, whether the annotated cells can be a
    random sample of each class's cells (the mean cross-fitted p of annotated against unknown
    cells, Welch z per class, Bonferroni at the 1 % level: :func:`select_prior_method`); uses
    ``random`` when not rejected, else ``shrunk``.

  Probabilities of the training images from a model trained on them are over-confident on the
  annotated cells; cross-fitted probabilities (:func:`core.ranking.kfold_split`: train on k-1
  folds, predict the held fold) remove that bias and are the recommended input (the random-sample
  test needs them). The retrain cycle (``--prior model``, the default) passes 2-fold cross-fitted
  probabilities and the targets, so it uses ``auto``.

* :class:`RunningPrior` / :func:`running_prior` — the reference code's running mean of training-time
  probabilities over every batch of every epoch, kept for comparison.

``labelmend bench quality`` (real backbone features) and ``labelmend bench core-study`` measure
every estimator against the true prevalence; their numbers are in README.md ("Prior mean absolute
error", "Studies behind the defaults").

The prior is stored as CSV with header ``Classes,avg_pred``, one row per class keyed by its
identifier (:func:`write_prior_csv`, :func:`read_prior_csv`).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from common.atomic import atomic_open
from common.choice import Choice
from core._unknown_rate import (
    RANDOM_TEST_LEVEL,
    ClassMoments,
    adjusted_rate,
    class_moments,
    random_annotation_pvalue,
    random_rate,
    shifted_rate,
    shrunk_rate,
)
from core._validation import (
    as_sequence_of_str,
    check_positive_int,
    check_prior,
    check_probs,
    check_same_shape,
    check_targets,
)
from core.constants import POSITIVE, UNKNOWN
from core.sparse_labels import SparseLabels, label_counts, n_rows

__all__ = [
    "DEFAULT_PRIOR_METHOD",
    "PRIOR_CSV_HEADER",
    "PriorMethod",
    "PriorTable",
    "RunningPrior",
    "model_prior",
    "model_prior_with_method",
    "naive_prior",
    "read_prior_csv",
    "running_prior",
    "select_prior_method",
    "write_prior_csv",
]

PRIOR_CSV_HEADER: tuple[str, str] = ("Classes", "avg_pred")


class PriorMethod(Choice, kind="prior method", plural="methods"):
    """How :func:`model_prior` turns model probabilities into a prior (assumptions: module docstring)."""

    MEAN = "mean"  #: mean of p per class (the paper's estimate)
    FILLED = "filled"  #: annotations where known, p where unknown
    ADJUSTED = "adjusted"  #: annotations where known, adjusted classify-and-count on unknown cells
    SHIFTED = "shifted"  #: annotations where known, EM label-shift correction of p on unknown cells
    RANDOM = "random"  #: annotations where known, the annotated positive rate on unknown cells
    SHRUNK = "shrunk"  #: ``adjusted`` on unknown cells, shrunk towards 0 by its sampling variance
    AUTO = "auto"  #: ``random`` if a test does not reject random annotation, else ``shrunk``


#: Default of :func:`model_prior` when targets are given (why: ``labelmend bench quality``, README.md).
DEFAULT_PRIOR_METHOD: PriorMethod = PriorMethod.AUTO

#: pi_u estimator of each method that counts annotated cells as their label (``filled`` is inline).
_UNKNOWN_RATE = {
    PriorMethod.ADJUSTED: adjusted_rate,
    PriorMethod.SHIFTED: shifted_rate,
    PriorMethod.RANDOM: random_rate,
    PriorMethod.SHRUNK: shrunk_rate,
}


def naive_prior(targets: Any) -> np.ndarray:
    """Annotated positives per class divided by the number of images.

    Args:
        targets: ``(N, C)`` labels: 1 positive, 0 negative, -1 unknown (dense int8 or
            :class:`~core.sparse_labels.SparseLabels`).

    Returns:
        float64 ``(C,)`` in [0, 1].

    Example:
        >>> naive_prior(np.array([[1, -1], [0, 1], [-1, 1], [1, 0]], dtype=np.int8))
        array([0.5, 0.5])
    """
    if isinstance(targets, SparseLabels):
        if len(targets) == 0:
            raise ValueError("targets has no rows (N = 0); a prior needs at least one image")
        return label_counts(targets)[0] / len(targets)
    t = check_targets(targets)
    if t.shape[0] == 0:
        raise ValueError("targets has no rows (N = 0); a prior needs at least one image")
    return (t == POSITIVE).sum(axis=0, dtype=np.float64) / t.shape[0]


def model_prior(
    probs: Any,
    targets: Any = None,
    *,
    method: str | PriorMethod | None = None,
) -> np.ndarray:
    """Class prior from a temporary ``ignore``-mode model's probabilities.

    With :class:`~core.sparse_labels.SparseLabels` targets or lazily computed ``probs``
    (:class:`~core.sparse_labels.RowBlocks`), memory is O(annotated cells + block × C) and ``probs``
    is read once (``auto`` shares one pass between its test and its estimate); every method but
    ``shifted`` works that way, with results equal to the dense path's.

    Args:
        probs: ``(N, C)`` sigmoid probabilities of the temporary model on the training images,
            from a clean inference pass after training (an array or row blocks).
        targets: Optional ``(N, C)`` labels (1 / 0 / -1) of the same images, dense int8 or
            sparse. Needed by every method but ``mean``.
        method: A :class:`PriorMethod`; default ``mean`` without targets and
            :data:`DEFAULT_PRIOR_METHOD` (``auto``) with targets.

    Returns:
        float64 ``(C,)`` in [0, 1].

    Raises:
        ValueError: On bad shapes or values, or a method that needs targets without them.

    Example:
        >>> p = np.array([[0.9, 0.2], [0.7, 0.4]])
        >>> model_prior(p)
        array([0.8, 0.3])
        >>> model_prior(p, np.array([[1, -1], [-1, 0]]), method="filled")
        array([0.85, 0.1 ])
    """
    if isinstance(targets, SparseLabels) or not _is_array_like(probs):
        return _model_prior_blocked(probs, targets, method)
    p = check_probs(probs)
    if p.shape[0] == 0:
        raise ValueError("probs has no rows (N = 0); a prior needs at least one image")
    if targets is None:
        m = PriorMethod.MEAN if method is None else PriorMethod.from_str(method)
        if m is not PriorMethod.MEAN:
            raise ValueError(f"prior method {m.value!r} needs targets; pass targets or use method='mean'")
        return p.mean(axis=0, dtype=np.float64)
    t = check_targets(targets)
    check_same_shape(p, t, "probs", "targets")
    m = DEFAULT_PRIOR_METHOD if method is None else PriorMethod.from_str(method)
    n = p.shape[0]
    if m is PriorMethod.MEAN:
        return p.mean(axis=0, dtype=np.float64)
    unknown = t == UNKNOWN
    n_pos = (t == POSITIVE).sum(axis=0, dtype=np.float64)
    if m is PriorMethod.FILLED:
        return (n_pos + np.where(unknown, p, 0.0).sum(axis=0, dtype=np.float64)) / n
    if m is PriorMethod.AUTO:
        m = _select(p, t)
    n_unknown = unknown.sum(axis=0, dtype=np.float64)
    pi_u = _UNKNOWN_RATE[m](p, t)
    return np.clip((n_pos + n_unknown * pi_u) / n, 0.0, 1.0)


def _is_array_like(x: Any) -> bool:
    """True for arrays, tensors and nested sequences; False for lazily computed row blocks."""
    return isinstance(x, np.ndarray | torch.Tensor | list | tuple)


def _model_prior_blocked(probs: Any, targets: Any, method: str | PriorMethod | None) -> np.ndarray:
    """:func:`model_prior` reading ``probs`` by row blocks (sparse targets or lazy probs)."""
    return model_prior_with_method(probs, targets, method=method)[0]


def model_prior_with_method(
    probs: Any, targets: Any, *, method: str | PriorMethod | None = None, population: Any = None
) -> tuple[np.ndarray, PriorMethod]:
    """:func:`model_prior` with targets, and the method it used (what ``auto`` chose).

    Reads ``probs`` by row blocks, at most once (``auto``'s test and its estimate share the
    pass), so ``probs`` may be :class:`~core.sparse_labels.RowBlocks` computed on demand and
    ``targets`` :class:`~core.sparse_labels.SparseLabels`: memory O(annotated cells + block × C).

    Args:
        probs: ``(N, C)`` cross-fitted probabilities in [0, 1] (array or row blocks).
        targets: ``(N, C)`` labels (1 / 0 / -1), dense int8 or sparse.
        method: as :func:`model_prior` (default ``auto``); not ``shifted``.
        population: the labels of every image when ``probs`` / ``targets`` are a uniform row
            sample of them (dense or sparse, ``(M, C)``, M ≥ N): the unknown cells' positive rate
            comes from the sample, the counts it is applied to from ``population``. None: the
            sample is the population.

    Returns:
        (float64 ``(C,)`` prior in [0, 1], the :class:`PriorMethod` applied: ``auto`` resolved).

    Raises:
        ValueError: shapes differ, no rows, values outside [0, 1], or ``shifted``.
    """
    n, c = int(probs.shape[0]), int(probs.shape[1])
    if n == 0:
        raise ValueError("probs has no rows (N = 0); a prior needs at least one image")
    if targets is None:
        raise ValueError("lazily computed probs need targets (the blocked path has no 'mean' method)")
    t = targets if isinstance(targets, SparseLabels) else check_targets(targets)
    if tuple(t.shape) != (n, c):
        raise ValueError(f"probs has shape {(n, c)} and targets {tuple(t.shape)}; they must match")
    m = DEFAULT_PRIOR_METHOD if method is None else PriorMethod.from_str(method)
    whole = t if population is None else population
    if population is not None and (population.shape[1] != c or n_rows(population) < n):
        raise ValueError(
            f"population has shape {tuple(population.shape)}; it must have C = {c} columns and at least"
            f" the sample's {n} rows"
        )
    n_pos, _, n_unknown = label_counts(whole)
    n = n_rows(whole)
    if m is PriorMethod.RANDOM:
        return np.clip((n_pos + n_unknown * random_rate(probs, whole)) / n, 0.0, 1.0), m
    if m is PriorMethod.SHIFTED:
        raise ValueError("the 'shifted' prior needs dense probs and targets; use 'shrunk' or 'auto' at scale")
    moments: ClassMoments = class_moments(probs, t)
    if m is PriorMethod.MEAN:
        total = sum(moments[v].n * moments[v].mean for v in moments)
        return total / n_rows(t), m
    if m is PriorMethod.FILLED:
        return (n_pos + n_unknown * moments[UNKNOWN].mean) / n, m
    if m is PriorMethod.AUTO:
        pvalue = random_annotation_pvalue(probs, t, moments)
        m = PriorMethod.RANDOM if pvalue >= RANDOM_TEST_LEVEL else PriorMethod.SHRUNK
    pi_u = random_rate(probs, whole) if m is PriorMethod.RANDOM else _UNKNOWN_RATE[m](probs, t, moments)
    return np.clip((n_pos + n_unknown * pi_u) / n, 0.0, 1.0), m


def select_prior_method(probs: Any, targets: Any) -> PriorMethod:
    """The method ``auto`` uses on these data: ``random`` or ``shrunk``.

    Tests "the annotated cells of every class are a random sample of its cells": per class, Welch's
    z of the mean p of annotated cells against unknown cells (equal in distribution under the
    hypothesis when p is cross-fitted); the smallest p-value times the number of classes tested
    (Bonferroni) is compared with the 1 % level. Not rejected: ``random`` (exact in expectation
    under random hiding); rejected: ``shrunk``. Classes need 5 annotated and 5 unknown cells to be
    tested; with none tested, ``shrunk``.

    Args:
        probs: ``(N, C)`` cross-fitted probabilities in [0, 1] of an ``ignore``-mode model.
        targets: ``(N, C)`` labels (1 / 0 / -1) of the same images.

    Returns:
        :attr:`PriorMethod.RANDOM` or :attr:`PriorMethod.SHRUNK`.

    Raises:
        ValueError: On bad shapes or values.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = (rng.random((400, 3)) < 0.3).astype(np.int8)
        >>> p = np.clip(0.25 + 0.5 * y + 0.1 * rng.standard_normal(y.shape), 0, 1)
        >>> t = np.where(rng.random(y.shape) < 0.5, -1, y).astype(np.int8)
        >>> select_prior_method(p, t).value
        'random'
        >>> t_fpc = np.where(y == 1, y, -1).astype(np.int8)  # only positives annotated
        >>> t_fpc[:20] = y[:20]
        >>> select_prior_method(p, t_fpc).value
        'shrunk'
    """
    if isinstance(targets, SparseLabels) or not _is_array_like(probs):
        if tuple(probs.shape) != tuple(targets.shape):
            raise ValueError(
                f"probs has shape {tuple(probs.shape)} and targets {tuple(targets.shape)}; they must match"
            )
        return _select(probs, targets)
    p = check_probs(probs)
    t = check_targets(targets)
    check_same_shape(p, t, "probs", "targets")
    return _select(p, t)


def _select(p: Any, t: Any) -> PriorMethod:
    """:func:`select_prior_method` on validated arrays."""
    pvalue = random_annotation_pvalue(p, t)  # NaN when no class has enough cells to test
    return PriorMethod.RANDOM if pvalue >= RANDOM_TEST_LEVEL else PriorMethod.SHRUNK


class RunningPrior:
    """Running mean of training-time probabilities, as the reference code keeps it.

    Call :meth:`update` with each training batch's sigmoid outputs, over every epoch; :attr:`value`
    is the mean over all rows seen so far. Kept for comparison: the probabilities of early
    iterations come from an untrained model, which biases it towards 0.5.

    Args:
        num_classes: C.

    Example:
        >>> rp = RunningPrior(2)
        >>> rp.update(np.array([[0.2, 0.4]]))
        >>> rp.update(np.array([[0.4, 0.0], [0.6, 0.2]]))
        >>> rp.value
        array([0.4, 0.2])
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self._sum = np.zeros(self.num_classes, dtype=np.float64)
        self._count = 0

    @property
    def count(self) -> int:
        """Rows (images) accumulated so far."""
        return self._count

    def update(self, probs: Any) -> None:
        """Add a batch of probabilities ``(B, C)`` in [0, 1] (array or tensor, any device)."""
        if isinstance(probs, torch.Tensor):
            probs = probs.detach().to(dtype=torch.float64)
            if probs.ndim == 2 and probs.shape[1] == self.num_classes:
                batch_sum = probs.sum(dim=0).cpu().numpy()
                self._check_range(probs.min().item(), probs.max().item(), probs.shape)
                self._sum += batch_sum
                self._count += int(probs.shape[0])
                return
            probs = probs.cpu().numpy()
        p = check_probs(probs)
        if p.shape[1] != self.num_classes:
            raise ValueError(
                f"probs has shape {p.shape} but this RunningPrior has {self.num_classes} classes"
            )
        self._sum += p.sum(axis=0, dtype=np.float64)
        self._count += p.shape[0]

    @staticmethod
    def _check_range(lo: float, hi: float, shape: tuple[int, ...]) -> None:
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"probs of shape {tuple(shape)} must be finite and in [0, 1] "
                f"(pass sigmoid probabilities, not logits), got min {lo:.4g} max {hi:.4g}"
            )

    @property
    def value(self) -> np.ndarray:
        """float64 ``(C,)``: the running mean. Raises ``ValueError`` before the first update."""
        if self._count == 0:
            raise ValueError("RunningPrior has seen no batch yet; call update() first")
        return self._sum / self._count


def running_prior(batches: Iterable[Any], num_classes: int | None = None) -> np.ndarray:
    """Mean of every row of every batch of probabilities ``(B_k, C)`` (see :class:`RunningPrior`).

    Args:
        batches: Iterable of arrays or tensors ``(B_k, C)`` in [0, 1].
        num_classes: C; taken from the first batch when None.

    Returns:
        float64 ``(C,)``.
    """
    acc: RunningPrior | None = None if num_classes is None else RunningPrior(num_classes)
    for batch in batches:
        if acc is None:
            shape = tuple(batch.shape) if hasattr(batch, "shape") else np.shape(batch)
            if len(shape) != 2:
                raise ValueError(f"each batch must be 2-D (B, C), got shape {shape}")
            acc = RunningPrior(int(shape[1]))
        acc.update(batch)
    if acc is None:
        raise ValueError("running_prior got no batches")
    return acc.value


class PriorTable(NamedTuple):
    """A prior read from CSV: ``class_ids[i]`` has prior ``prior[i]`` (float64, ``(C,)``)."""

    class_ids: list[str]
    prior: np.ndarray


def write_prior_csv(path: str | os.PathLike[str], class_ids: Sequence[str], prior: Any) -> None:
    """Write a prior as CSV ``Classes,avg_pred`` (one row per class, by class identifier).

    The file is written to a temporary file in the same folder and moved into place, so a crash
    never leaves a half-written prior.

    Args:
        path: Destination ``.csv`` file (its folder is created if missing).
        class_ids: C unique class identifiers (e.g. ``/m/01g317``; never display names).
        prior: ``(C,)`` values in [0, 1].

    Raises:
        ValueError: On duplicate or empty identifiers, or a prior of the wrong length or range.
    """
    ids = as_sequence_of_str(class_ids, "class_ids")
    arr = check_prior(prior, len(ids))
    seen: set[str] = set()
    for cid in ids:
        if not cid:
            raise ValueError("class_ids holds an empty identifier")
        if cid in seen:
            raise ValueError(f"class_ids holds {cid!r} twice; identifiers must be unique")
        seen.add(cid)
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(PRIOR_CSV_HEADER)
        writer.writerows((cid, repr(float(v))) for cid, v in zip(ids, arr, strict=True))


def read_prior_csv(path: str | os.PathLike[str], class_ids: Sequence[str] | None = None) -> PriorTable:
    """Read a ``Classes,avg_pred`` CSV prior.

    Args:
        path: The CSV file (UTF-8, optional BOM; blank lines ignored).
        class_ids: The dataset's class identifiers. When given, the result is reordered to this
            order and the file must hold exactly these classes.

    Returns:
        :class:`PriorTable` (file order, or ``class_ids`` order when given).

    Raises:
        ValueError: One line naming the file (and line) and what is wrong: missing file, wrong
            header, wrong field count, empty or duplicate identifier, a value that is not a
            number, NaN/inf or outside [0, 1], no rows, or classes missing from / not in the
            dataset.
    """
    where = str(path)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ValueError(f"{where}: no such prior file; estimate the prior first") from None
    ids: list[str] = []
    values: list[float] = []
    first_line: dict[str, int] = {}
    with fh:
        reader = csv.reader(fh)
        header: list[str] | None = None
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not f.strip() for f in row):
                    continue
                if header is None:
                    header = [f.strip() for f in row]
                    if tuple(header) != PRIOR_CSV_HEADER:
                        raise ValueError(
                            f"{where}:{line}: header is {','.join(row)!r}, expected 'Classes,avg_pred'"
                        )
                    continue
                if len(row) != 2:
                    raise ValueError(
                        f"{where}:{line}: expected 2 fields (class id, avg_pred), got {len(row)}; fix the row"
                    )
                cid, raw = row[0].strip(), row[1].strip()
                if not cid:
                    raise ValueError(f"{where}:{line}: empty class identifier; fix or delete the row")
                if cid in first_line:
                    raise ValueError(
                        f"{where}:{line}: class {cid!r} appears again (first on line {first_line[cid]}); "
                        "keep one row per class"
                    )
                try:
                    value = float(raw)
                except ValueError:
                    raise ValueError(
                        f"{where}:{line}: avg_pred {raw!r} is not a number; fix the row"
                    ) from None
                if not math.isfinite(value):
                    raise ValueError(f"{where}:{line}: avg_pred {raw!r} is not finite; fix the row")
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{where}:{line}: avg_pred {raw} is outside [0, 1]; fix the row")
                first_line[cid] = line
                ids.append(cid)
                values.append(value)
        except UnicodeDecodeError as err:
            raise ValueError(f"{where}: not a UTF-8 text file ({err.reason}); save it as UTF-8 CSV") from None
        except csv.Error as err:
            raise ValueError(f"{where}:{reader.line_num}: malformed CSV ({err})") from None
    if header is None:
        raise ValueError(f"{where}: empty file; expected header 'Classes,avg_pred' and one row per class")
    if not ids:
        raise ValueError(f"{where}: no classes after the header; expected one row per class")
    prior = np.asarray(values, dtype=np.float64)
    if class_ids is None:
        return PriorTable(ids, prior)
    wanted = as_sequence_of_str(class_ids, "class_ids")
    wanted_set = set(wanted)
    if len(wanted_set) != len(wanted):
        raise ValueError("class_ids holds a duplicate identifier; identifiers must be unique")
    extra = [cid for cid in ids if cid not in wanted_set]
    if extra:
        raise ValueError(
            f"{where}:{first_line[extra[0]]}: class {extra[0]!r} is not in the dataset "
            f"({len(extra)} such rows); use the prior estimated for this dataset"
        )
    missing = [cid for cid in wanted if cid not in first_line]
    if missing:
        raise ValueError(
            f"{where}: {len(missing)} of the dataset's {len(wanted)} classes are missing "
            f"(first: {missing[0]!r}); re-estimate the prior for this dataset"
        )
    index = {cid: i for i, cid in enumerate(ids)}
    order = np.fromiter((index[cid] for cid in wanted), dtype=np.int64, count=len(wanted))
    return PriorTable(list(wanted), prior[order])
