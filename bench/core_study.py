"""Numeric study behind the defaults of ``core.priors`` and ``core.ranking`` (issue 3).

Generated data: images have a latent vector ``z`` (rank ``rank``); class c is present with
probability ``sigmoid(z . w_c + b_c)``, with ``b_c`` set for a long-tailed prevalence (0.5 down to
about 0.01). A model sees ``z`` through noisy features. Training labels are hidden by

* ``fpc``: per class keep ``fpc_keep`` random positives and as many random negatives (CSL.md FPC),
* ``rps``: hide each label with probability ``rps_drop`` (CSL.md RPS),
* ``piv``: per image verify 1 random positive and 4 random negatives (the OpenImages-like case of
  CSL.md's "known weakness").

For each protocol a temporary linear model is trained in ``ignore`` mode (with the project's loss)
and its clean-pass probabilities (and 2-fold cross-fitted ones, suffix ``_cf``) give the prior
estimates of every :class:`core.priors.PriorMethod`; their mean absolute error against the true
prevalence is reported next to the naive count and the reference running average. Then the
unknown cells are ranked by each :class:`core.ranking.Ranker` (probabilities from the ``ignore``
model and from a ``csl`` model trained with the default cross-fitted prior) and precision@K against
the hidden truth is reported. Optionally every loss preset is trained and scored by mAP on a fully labelled
test set, and :func:`core.ranking.top_unknown` is timed on a 100k x 600 matrix.

Run: ``labelmend bench core-study`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.constants import NEGATIVE, POSITIVE, UNKNOWN
from core.losses import list_losses, loss_from_name
from core.metrics import full_map
from core.priors import DEFAULT_PRIOR_METHOD, PriorMethod, RunningPrior, model_prior, naive_prior
from core.ranking import Ranker, kfold_split, top_unknown

PROTOCOLS: tuple[str, ...] = ("fpc", "rps", "piv")
#: Methods of ``model_prior`` that use the targets, each reported in-sample and cross-fitted.
_TARGET_METHODS: tuple[PriorMethod, ...] = tuple(m for m in PriorMethod if m is not PriorMethod.MEAN)


def _generate(
    rng: np.random.Generator, n: int, n_classes: int, rank: int, noise: float, extra_dims: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features ``(N, D)``, true labels ``(N, C)`` int8, true probabilities, target prevalence."""
    z = rng.standard_normal((n, rank))
    w = rng.standard_normal((rank, n_classes)) * (3.0 / np.sqrt(rank))
    prevalence = np.clip(0.5 * np.arange(1, n_classes + 1) ** -1.0, 0.01, 0.5)
    logits = z @ w
    lo, hi = np.full(n_classes, -30.0), np.full(n_classes, 30.0)
    for _ in range(60):  # bias so that mean sigmoid(logit + b) = prevalence
        mid = 0.5 * (lo + hi)
        low = (1.0 / (1.0 + np.exp(-(logits + mid)))).mean(axis=0) < prevalence
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    true_p = 1.0 / (1.0 + np.exp(-(logits + 0.5 * (lo + hi))))
    y = (rng.random(true_p.shape) < true_p).astype(np.int8)
    feats = np.concatenate(
        [z + noise * rng.standard_normal(z.shape), rng.standard_normal((n, extra_dims))], axis=1
    )
    return feats.astype(np.float32), y, true_p, prevalence


def _hide(
    rng: np.random.Generator, y: np.ndarray, protocol: str, fpc_keep: int, rps_drop: float
) -> np.ndarray:
    """Targets ``(N, C)`` int8 (1 / 0 / -1) from true labels by a hiding protocol."""
    n, c = y.shape
    t = np.full(y.shape, UNKNOWN, dtype=np.int8)
    if protocol == "rps":
        keep = rng.random(y.shape) >= rps_drop
        t[keep] = y[keep]
    elif protocol == "fpc":
        for j in range(c):
            for value in (POSITIVE, NEGATIVE):
                rows = np.flatnonzero(y[:, j] == value)
                chosen = rng.choice(rows, size=min(fpc_keep, rows.size), replace=False)
                t[chosen, j] = value
    elif protocol == "piv":
        for i in range(n):
            for value, count in ((POSITIVE, 1), (NEGATIVE, 4)):
                cols = np.flatnonzero(y[i] == value)
                t[i, rng.choice(cols, size=min(count, cols.size), replace=False)] = value
    else:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    return t


def _train_linear(
    x: np.ndarray,
    t: np.ndarray,
    loss_name: str,
    *,
    seed: int,
    prior: np.ndarray | None = None,
    epochs: int = 30,
    batch: int = 512,
    lr: float = 0.03,
    running: RunningPrior | None = None,
    **overrides: Any,
) -> torch.nn.Linear:
    """Train a linear head ``(D -> C)`` with a loss preset; feed training outputs to ``running``."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    model = torch.nn.Linear(x.shape[1], t.shape[1])
    loss_fn = loss_from_name(loss_name, t.shape[1], prior=prior, **overrides)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    for epoch in range(epochs):
        loss_fn.set_epoch(epoch)
        perm = torch.randperm(x.shape[0], generator=gen)
        for start in range(0, x.shape[0], batch):
            idx = perm[start : start + batch]
            logits = model(xt[idx])
            loss = loss_fn(logits, tt[idx]) / idx.numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if running is not None:
                running.update(torch.sigmoid(logits.detach()))
    return model


def _predict(model: torch.nn.Linear, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x))).numpy()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _precision_at(probs: np.ndarray, t: np.ndarray, y: np.ndarray, prior: np.ndarray, ks: list[int]) -> dict:
    out: dict[str, dict[str, float]] = {}
    for ranker in Ranker:
        top = top_unknown(probs, t, prior, max(ks), ranker=ranker)
        hits = y[top.img_idx, top.cls_idx] == POSITIVE
        out[ranker.value] = {f"P@{k}": float(hits[:k].mean()) for k in ks}
    return out


def _time_top_unknown(seed: int, shape: tuple[int, int], k: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    c = shape[1]
    probs = rng.random(shape, dtype=np.float32)
    t = np.full(shape, UNKNOWN, dtype=np.int8)
    ann = rng.random(shape, dtype=np.float32) < 0.05
    t[ann] = (rng.random(int(ann.sum()), dtype=np.float32) < 0.3).astype(np.int8)
    prior = np.clip(0.3 / np.arange(1, c + 1), 1e-3, None)
    out = {}
    for ranker in Ranker:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            top_unknown(probs, t, prior, k, ranker=ranker)
            times.append(time.perf_counter() - t0)
        out[ranker.value] = statistics.median(times)
    return out


def run_core_study(
    seed: int = 0,
    *,
    n_images: int = 8000,
    n_test: int = 4000,
    n_classes: int = 48,
    rank: int = 8,
    noise: float = 0.3,
    fpc_keep: int = 100,
    rps_drop: float = 0.5,
    epochs: int = 30,
    ks: tuple[int, ...] = (100, 500, 2000),
    compare_losses: bool = False,
    timing_shape: tuple[int, int] | None = (100_000, 600),
    verbose: bool = True,
) -> dict[str, Any]:
    """Run the study and return (and, if ``verbose``, print) its numbers.

    Args:
        seed: Seed of data generation, hiding and training.
        n_images: Training images N.
        n_test: Fully labelled test images (for the loss comparison).
        n_classes: Classes C (prevalence 0.5 / (c + 1), floored at 0.01).
        rank: Latent rank of the true logits.
        noise: Std of the noise added to the latent vector in the model's features.
        fpc_keep: Positives and negatives kept per class by FPC.
        rps_drop: Probability that RPS hides a label.
        epochs: Training epochs of every linear model.
        ks: K values of precision@K.
        compare_losses: Also train every loss preset and report test mAP.
        timing_shape: ``(N, C)`` on which to time ``top_unknown``, or None to skip.
        verbose: Print the tables.

    Returns:
        ``{"prior_mae": {protocol: {estimator: mae}}, "prior_spearman": ..., "precision_at_k":
        {protocol: {source: {ranker: {"P@K": value}}}}, "map": {protocol: {loss: mAP}},
        "timing_s": {ranker: seconds}, "config": {...}}``.
    """
    rng = np.random.default_rng(seed)
    x_all, y_all, true_p_all, _ = _generate(rng, n_images + n_test, n_classes, rank, noise, extra_dims=8)
    x, y, true_p = x_all[:n_images], y_all[:n_images], true_p_all[:n_images]
    x_test, y_test = x_all[n_images:], y_all[n_images:]
    oracle_map = full_map(true_p_all[n_images:], y_test).map
    result: dict[str, Any] = {
        "config": {
            "seed": seed,
            "n_images": n_images,
            "n_classes": n_classes,
            "rank": rank,
            "fpc_keep": fpc_keep,
            "rps_drop": rps_drop,
            "epochs": epochs,
        },
        "prior_mae": {},
        "prior_spearman": {},
        "precision_at_k": {},
        "map": {},
        "map_oracle": oracle_map,
    }
    k_list = list(ks)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny linear models: one thread avoids sync overhead on busy machines
    try:
        for protocol in PROTOCOLS:
            _study_protocol(
                result,
                protocol,
                rng,
                x,
                y,
                true_p,
                x_test,
                y_test,
                seed=seed,
                epochs=epochs,
                fpc_keep=fpc_keep,
                rps_drop=rps_drop,
                ks=k_list,
                compare_losses=compare_losses,
            )
    finally:
        torch.set_num_threads(threads)
    if timing_shape is not None:
        result["timing_s"] = _time_top_unknown(seed, timing_shape, k=1000, repeats=3)
    if verbose:
        _print(result, k_list)
    return result


def _study_protocol(
    result: dict[str, Any],
    protocol: str,
    rng: np.random.Generator,
    x: np.ndarray,
    y: np.ndarray,
    true_p: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int,
    epochs: int,
    fpc_keep: int,
    rps_drop: float,
    ks: list[int],
    compare_losses: bool,
) -> None:
    """Fill ``result``'s tables for one hiding protocol."""
    truth = y.mean(axis=0)
    t = _hide(rng, y, protocol, fpc_keep, rps_drop)
    running = RunningPrior(t.shape[1])
    temp = _train_linear(x, t, "ignore", seed=seed, epochs=epochs, running=running)
    probs = _predict(temp, x)
    cross = np.zeros_like(probs)  # 2-fold cross-fitted ignore-mode probabilities
    for fold in kfold_split(x.shape[0], 2, seed):
        model = _train_linear(x[fold.train], t[fold.train], "ignore", seed=seed, epochs=epochs)
        cross[fold.held] = _predict(model, x[fold.held])
    estimates = {"naive": naive_prior(t), "running": running.value}
    for suffix, source in (("", probs), ("_cf", cross)):
        estimates["mean" + suffix] = model_prior(source, method=PriorMethod.MEAN)
        for method in _TARGET_METHODS:
            estimates[method.value + suffix] = model_prior(source, t, method=method)
    result["prior_mae"][protocol] = {k: float(np.abs(v - truth).mean()) for k, v in estimates.items()}
    result["prior_spearman"][protocol] = {k: _spearman(v, truth) for k, v in estimates.items()}
    prior = estimates[DEFAULT_PRIOR_METHOD.value + "_cf"]
    csl = _train_linear(x, t, "csl", seed=seed, prior=prior, epochs=epochs)
    result["precision_at_k"][protocol] = {
        "hidden_positives": int(((t == UNKNOWN) & (y == POSITIVE)).sum()),
        "unknown_cells": int((t == UNKNOWN).sum()),
        "oracle": _precision_at(true_p.astype(np.float32), t, y, prior, ks)["probability"],
        "ignore_model": _precision_at(probs, t, y, prior, ks),
        "ignore_cross_fit": _precision_at(cross, t, y, prior, ks),
        "csl_model": _precision_at(_predict(csl, x), t, y, prior, ks),
    }
    if compare_losses:
        maps = {}
        for name in list_losses():
            model = _train_linear(x, t, name, seed=seed, prior=prior, epochs=epochs)
            maps[name] = full_map(_predict(model, x_test), y_test).map
        model = _train_linear(x, t, "csl", seed=seed, prior=prior, epochs=epochs, gamma_neg=3.0)
        maps["csl(gamma_neg=3)"] = full_map(_predict(model, x_test), y_test).map
        result["map"][protocol] = maps


def _print(result: dict[str, Any], ks: list[int]) -> None:
    print(
        "Prior mean absolute error vs true prevalence [Spearman rank correlation]; _cf = 2-fold cross-fitted"
    )
    protocols = list(result["prior_mae"])
    print(f"{'estimator':<14}" + "".join(f"{p:>20}" for p in protocols))
    for name in next(iter(result["prior_mae"].values())):
        cells = (
            f"{result['prior_mae'][p][name]:.4f} [{result['prior_spearman'][p][name]:+.2f}]"
            for p in protocols
        )
        print(f"{name:<14}" + "".join(f"{c:>20}" for c in cells))
    print("\nPrecision@K of unknown cells against the hidden truth")
    for protocol, block in result["precision_at_k"].items():
        print(
            f"[{protocol}] hidden positives {block['hidden_positives']} of {block['unknown_cells']} unknown cells"
        )
        oracle = block["oracle"]
        print(f"  {'oracle (true p)':<32}" + "".join(f"{k}:{oracle[k]:.3f} " for k in oracle))
        for source in ("ignore_model", "ignore_cross_fit", "csl_model"):
            for ranker, vals in block[source].items():
                print(f"  {source + ' / ' + ranker:<32}" + "".join(f"{k}:{vals[k]:.3f} " for k in vals))
    if result["map"]:
        print(
            f"\nTest mAP (fully labelled test set) of each loss preset, linear head; true p: {result['map_oracle']:.2f}"
        )
        losses = list(next(iter(result["map"].values())))
        print(f"{'protocol':<9}" + "".join(f"{n:>18}" for n in losses))
        for protocol, row in result["map"].items():
            print(f"{protocol:<9}" + "".join(f"{row[n]:>18.2f}" for n in losses))
    if "timing_s" in result:
        print("\ntop_unknown(k=1000) median seconds on 100k x 600: " + json.dumps(result["timing_s"]))


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``labelmend bench core-study [--seed N] [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--losses", action="store_true", help="also train every loss preset and report test mAP"
    )
    parser.add_argument("--no-timing", action="store_true", help="skip timing top_unknown")
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON too")
    args = parser.parse_args(argv)
    result = run_core_study(
        args.seed, compare_losses=args.losses, timing_shape=None if args.no_timing else (100_000, 600)
    )
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
