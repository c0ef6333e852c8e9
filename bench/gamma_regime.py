"""What decides CSL's best ``gamma_unann``: a study on generated embeddings with full truth.

``labelmend bench csl-gamma`` (24 classes, a quarter of the cells annotated, L-BFGS heads) prefers
``gamma_unann`` 1–1.5, while ``labelmend bench cycle`` (600 classes, 98 % unknown cells, positives
favoured by the verification, 4 epochs of mini-batch Adam, partial mAP) prefers 4. This study varies
the candidate causes one at a time on the same generator (the low-rank one of
:mod:`bench.cycle_bench`, smaller), with the truth of every cell known:

* ``k``: annotated cells per image (of C), i.e. the unknown:annotated ratio;
* ``selection``: which cells get annotated — ``positive`` (as ``bench cycle``: a random sample
  tilted towards positives, independent of the image given the label), ``random`` (a uniform sample
  of the image's cells) or ``candidate`` (OpenImages-like: a third of the verified cells are
  positives, the rest negatives drawn in proportion to ``exp(2 · margin)``, so look-alike negatives
  near the class boundary get verified and easy negatives stay unknown);
* ``solver``: the head's solver — ``lbfgs`` (full batch, to the L2-regularised optimum) or
  ``adam`` (the cycle's 4 epochs at lr 1e-2, with the batch size set so the step count matches
  ``bench cycle``'s ~88 steps), or ``adam-long`` (the same, 10 times the epochs);
* the metric: ``full`` = test mAP against the truth (every cell labelled) and ``partial`` = mAP on
  the annotated cells of the same test images (annotated by the same protocol), as the cycle reports.

Arms: ``negative``, ``ignore`` and the ``csl`` preset at each ``gamma_unann``, all with the TRUE
class prevalence as prior (so the prior estimate is no confound); ``--naive-check`` adds ``csl``
with :func:`core.priors.naive_prior` at two gammas on the first seed.

Run: ``.venv/bin/python -m bench.gamma_regime [--out DIR] [--seeds 2] [--ks 2,6,20,60]
[--selections positive,random,candidate] [--solvers lbfgs,adam] [--gammas 1,1.5,2,4,6]``;
``--out`` gets ``gamma_regime.json`` and ``report.md``. Not wired into the CLI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.losses import loss_from_name
from core.metrics import full_map, partial_map
from core.priors import naive_prior
from core.synthetic.annotate import openimages_like
from core.train import HeadConfig, predict_head, train_head

__all__ = ["RegimeData", "StudySettings", "annotate", "generate", "main", "markdown", "study"]

SELECTIONS: tuple[str, ...] = ("positive", "random", "candidate")
SOLVERS: tuple[str, ...] = ("lbfgs", "adam", "adam-long")
#: ``adam-long`` trains this many times ``adam``'s epochs (same batch): is Adam's gap convergence?
LONG_FACTOR: int = 10
#: Adam steps of ``bench cycle``'s target model: 90,000 training rows, 4 epochs of 4,096.
CYCLE_ADAM_STEPS: int = 88


@dataclass(frozen=True)
class StudySettings:
    """Sizes of the generated data and the grid.

    Attributes:
        n_train: training images.
        n_test: held-out images: fully labelled for ``full`` mAP, masked for ``partial`` mAP.
        n_classes: C.
        dim: D, the embedding width.
        rank: rank of the latent space that decides the truth.
        noise: std of the isotropic noise added to the embeddings (``bench cycle``: 0.5).
        seeds: data seeds (paired across every arm and regime).
        first_seed: the first data seed.
        ks: annotated cells per image.
        selections: names from :data:`SELECTIONS`.
        solvers: names from :data:`SOLVERS`.
        gammas: ``gamma_unann`` values of the ``csl`` arms.
        adam_epochs: epochs of the ``adam`` solver (the cycle's 4).
        naive_check: also ``csl`` with the naive prior (first seed, gammas 1.5 and 4).
    """

    n_train: int = 20_000
    n_test: int = 5_000
    n_classes: int = 200
    dim: int = 128
    rank: int = 32
    noise: float = 0.5
    seeds: int = 2
    first_seed: int = 0
    ks: tuple[int, ...] = (2, 6, 20, 60)
    selections: tuple[str, ...] = SELECTIONS
    solvers: tuple[str, ...] = ("lbfgs", "adam")
    gammas: tuple[float, ...] = (1.0, 1.5, 2.0, 4.0, 6.0)
    adam_epochs: int = 4
    naive_check: bool = True

    def __post_init__(self) -> None:
        bad = [s for s in self.selections if s not in SELECTIONS] + [
            s for s in self.solvers if s not in SOLVERS
        ]
        if bad:
            raise ValueError(f"unknown selection or solver {bad[0]!r}; valid: {SELECTIONS + SOLVERS}")
        if any(not 1 <= k < self.n_classes for k in self.ks):
            raise ValueError(f"ks must lie in [1, {self.n_classes}), got {list(self.ks)}")
        if any(not g >= 0 for g in self.gammas):
            raise ValueError(f"gammas must be >= 0, got {list(self.gammas)}")


@dataclass(frozen=True)
class RegimeData:
    """One seed's generated data (train rows first, then test rows).

    Attributes:
        x: float32 (N, D) embeddings.
        truth: int8 (N, C) 1 present / 0 absent.
        margin: float32 (N, C) the class logit minus its threshold, in units of the class logit's std
            (> 0 ⇔ present); what a candidate generator's score would approximate.
        prevalence: float64 (C,) true prevalence over the training rows.
        n_train: rows of the training split.
    """

    x: np.ndarray
    truth: np.ndarray
    margin: np.ndarray
    prevalence: np.ndarray
    n_train: int


def generate(settings: StudySettings, seed: int) -> RegimeData:
    """The generator of ``bench cycle`` (``bench.cycle_bench._generate``) with size knobs.

    Zipf-like prevalence ``0.5 / c^0.8``; a class is present where its latent logit ``z @ w`` is
    above the class's quantile; the embedding is ``z @ A + noise``.
    """
    rng = np.random.default_rng(seed)
    n, c, d, rank = settings.n_train + settings.n_test, settings.n_classes, settings.dim, settings.rank
    z = rng.standard_normal((n, rank), dtype=np.float32)
    prevalence = 0.5 / np.arange(1, c + 1) ** 0.8
    w = rng.standard_normal((rank, c), dtype=np.float32) * 1.2
    logit = z @ w
    at = ((1 - prevalence) * (n - 1)).astype(np.int64)
    thresh = np.sort(logit, axis=0)[at, np.arange(c)]
    truth = (logit > thresh).astype(np.int8)
    margin = ((logit - thresh) / logit.std(axis=0)).astype(np.float32)
    x = z @ rng.standard_normal((rank, d), dtype=np.float32) + settings.noise * rng.standard_normal(
        (n, d), dtype=np.float32
    )
    prev = truth[: settings.n_train].mean(axis=0, dtype=np.float64)
    return RegimeData(x=x, truth=truth, margin=margin, prevalence=prev, n_train=settings.n_train)


def annotate(truth: np.ndarray, margin: np.ndarray, k: int, selection: str, seed: int) -> np.ndarray:
    """Partial labels: ``k`` annotated cells per image chosen by ``selection``.

    Args:
        truth: int8 (N, C) 1 / 0.
        margin: float32 (N, C) class margin (see :class:`RegimeData`), used by ``candidate``.
        k: annotated cells per image (fewer for ``candidate`` where an image has too few
            positives or negatives).
        selection: ``positive``, ``random`` or ``candidate`` (see the module docstring).
        seed: mask seed.

    Returns:
        int8 (N, C): the truth on annotated cells, -1 elsewhere.
    """
    rng = np.random.default_rng(seed)
    n, c = truth.shape
    if selection == "candidate":
        n_pos = max(1, round(k / 3))
        weights = np.exp(2.0 * np.minimum(margin, 0.0)).astype(np.float64) + 1e-12
        return openimages_like(truth, seed=seed, n_pos=n_pos, n_neg=k - n_pos, neg_weights=weights)
    noise = rng.random((n, c), dtype=np.float32)
    if selection == "positive":
        noise -= 0.3 * truth  # bench cycle: verification favours positives
    elif selection != "random":
        raise ValueError(f"unknown selection {selection!r}; valid: {', '.join(SELECTIONS)}")
    cols = np.argpartition(noise, k - 1, axis=1)[:, :k]
    out = np.full((n, c), -1, dtype=np.int8)
    rows = np.repeat(np.arange(n), k)
    out[rows, cols.ravel()] = truth[rows, cols.ravel()]
    return out


def _head_config(settings: StudySettings, solver: str, seed: int) -> HeadConfig:
    common = {"num_classes": settings.n_classes, "in_features": settings.dim, "seed": seed}
    if solver == "lbfgs":
        return HeadConfig(solver="lbfgs", **common)
    batch = math.ceil(settings.n_train * settings.adam_epochs / CYCLE_ADAM_STEPS)
    epochs = settings.adam_epochs * (LONG_FACTOR if solver == "adam-long" else 1)
    return HeadConfig(solver="adam", epochs=epochs, batch_size=batch, lr=1e-2, **common)


def _fit(x: np.ndarray, t: np.ndarray, arm: str, prior: np.ndarray, config: HeadConfig) -> torch.nn.Module:
    """One head; ``arm`` is ``negative``, ``ignore`` or ``csl-g<gamma>`` (optionally ``-naive``)."""
    c = t.shape[1]
    if arm.startswith("csl-g"):
        gamma = float(arm.removeprefix("csl-g").removesuffix("-naive"))
        p = naive_prior(t) if arm.endswith("-naive") else prior
        loss = loss_from_name("csl", c, prior=p, gamma_unann=gamma)
    else:
        loss = loss_from_name(arm, c, prior=prior)
    return train_head(x, t, loss, config).head


def _describe(t: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Facts a cycle could know (ratio) or that only the truth shows (where the positives are)."""
    ann = t != -1
    n_ann = ann.sum()
    pos = truth == 1
    return {
        "unknown_per_annotated": float((~ann).sum() / n_ann),
        "annotated_positive_share": float((t == 1).sum() / n_ann),
        "positives_annotated": float((pos & ann).sum() / pos.sum()),
        "unknown_positive_rate": float((pos & ~ann).sum() / (~ann).sum()),
    }


def study(settings: StudySettings, *, say: Any = print) -> dict[str, Any]:
    """Run the grid; returns ``{"settings", "rows": [...], "seconds"}``.

    Each row: ``seed, k, selection, solver, arm, full, partial, fit_s`` plus the :func:`_describe`
    facts of its mask (full and partial mAP in [0, 100]).
    """
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    arms = ["negative", "ignore"] + [f"csl-g{g:g}" for g in settings.gammas]
    for i in range(settings.seeds):
        seed = settings.first_seed + i
        data = generate(settings, seed)
        n = data.n_train
        x_tr, x_te = data.x[:n], data.x[n:]
        y_te = data.truth[n:]
        for k in settings.ks:
            for selection in settings.selections:
                mask = annotate(data.truth, data.margin, k, selection, seed * 1000 + k)
                t_tr, t_te = mask[:n], mask[n:]
                facts = _describe(t_tr, data.truth[:n])
                for solver in settings.solvers:
                    config = _head_config(settings, solver, seed)
                    extra = (
                        [f"csl-g{g:g}-naive" for g in (1.5, 4.0)] if settings.naive_check and i == 0 else []
                    )
                    line = []
                    for arm in arms + extra:
                        t0 = time.perf_counter()
                        head = _fit(x_tr, t_tr, arm, data.prevalence, config)
                        fit_s = time.perf_counter() - t0
                        scores = predict_head(head, x_te)
                        row = {"seed": seed, "k": k, "selection": selection, "solver": solver, "arm": arm,
                               "full": full_map(scores, y_te).map, "partial": partial_map(scores, t_te).map,
                               "fit_s": fit_s, **facts}  # fmt: skip
                        rows.append(row)
                        line.append(f"{arm} {row['full']:.1f}/{row['partial']:.1f}")
                    say(f"seed {seed} k {k} {selection} {solver} ({time.perf_counter() - started:.0f} s): "
                        + ", ".join(line))  # fmt: skip
    return {"settings": asdict(settings), "rows": rows, "seconds": time.perf_counter() - started}


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def markdown(result: dict[str, Any]) -> str:
    """One table per metric: a row per (k, selection, solver), a column per arm (mean over seeds).

    The last columns name the best ``csl`` gamma and give ``csl(best) − max(negative, ignore)``.
    """
    rows: list[dict[str, Any]] = result["rows"]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    keys = list(dict.fromkeys((r["k"], r["selection"], r["solver"]) for r in rows))
    out: list[str] = []
    for metric in ("full", "partial"):
        out += [f"### {metric} mAP (mean over seeds)", ""]
        out.append("| k | unk:ann | pos annotated | selection | solver | " + " | ".join(arms) + " | best γ |")
        out.append("|---" * (6 + len(arms)) + "|")
        for k, sel, sol in keys:
            cell = [r for r in rows if (r["k"], r["selection"], r["solver"]) == (k, sel, sol)]
            means = {a: _mean([r for r in cell if r["arm"] == a], metric) for a in arms}
            csl = {a: v for a, v in means.items() if a.startswith("csl-g") and not a.endswith("-naive")}
            best = max(csl, key=lambda a: csl[a]) if csl else ""
            out.append(
                f"| {k} | {_mean(cell, 'unknown_per_annotated'):.0f} | {_mean(cell, 'positives_annotated'):.2f} "
                f"| {sel} | {sol} | "
                + " | ".join(f"{means[a]:.1f}" for a in arms)
                + f" | {best.removeprefix('csl-g')} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: ``python -m bench.gamma_regime``."""
    parser = argparse.ArgumentParser(prog="python -m bench.gamma_regime", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for gamma_regime.json and report.md")
    parser.add_argument("--seeds", type=int, default=StudySettings.seeds)
    parser.add_argument("--first-seed", type=int, default=StudySettings.first_seed)
    parser.add_argument("--ks", default="2,6,20,60", help="annotated cells per image, comma-separated")
    parser.add_argument("--selections", default=",".join(SELECTIONS))
    parser.add_argument("--solvers", default="lbfgs,adam", help=f"of {', '.join(SOLVERS)}")
    parser.add_argument("--gammas", default="1,1.5,2,4,6")
    parser.add_argument("--n-train", type=int, default=StudySettings.n_train)
    parser.add_argument("--n-test", type=int, default=StudySettings.n_test)
    parser.add_argument("--classes", type=int, default=StudySettings.n_classes)
    parser.add_argument("--dim", type=int, default=StudySettings.dim)
    parser.add_argument("--adam-epochs", type=int, default=StudySettings.adam_epochs)
    parser.add_argument("--no-naive-check", action="store_true", help="skip the naive-prior csl arms")
    args = parser.parse_args(argv)

    def split(text: str) -> list[str]:
        return [s.strip() for s in text.split(",") if s.strip()]

    try:
        settings = StudySettings(
            n_train=args.n_train, n_test=args.n_test, n_classes=args.classes, dim=args.dim,
            seeds=args.seeds, first_seed=args.first_seed, ks=tuple(int(k) for k in split(args.ks)),
            selections=tuple(split(args.selections)), solvers=tuple(split(args.solvers)),
            gammas=tuple(float(g) for g in split(args.gammas)), adam_epochs=args.adam_epochs,
            naive_check=not args.no_naive_check,
        )  # fmt: skip
    except ValueError as err:
        parser.error(str(err))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    result = study(settings)
    table = markdown(result)
    print(table)
    print(f"wall time {result['seconds']:.0f} s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gamma_regime.json").write_text(json.dumps(result, indent=2))
        (args.out / "report.md").write_text(f"# CSL gamma_unann regimes\n\n{table}")


if __name__ == "__main__":
    main()
