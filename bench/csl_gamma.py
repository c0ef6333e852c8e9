"""`labelmend bench csl-gamma`: CSL's ``gamma_unann`` measured on the quality benchmark's data.

The study behind :data:`core.losses.CSL_GAMMA_UNANN`. For each seed and protocol it uses exactly the
data, masks, prior and head settings of ``labelmend bench quality`` (the embeddings come from the
same cache, so after a quality run this takes minutes), trains the ``negative`` and ``ignore``
baselines once and the ``csl`` preset once per ``gamma_unann``, and reports test mAP (fully labelled
test split, in [0, 100]) as mean ± std over seeds, with the paired difference of each CSL variant
against negative and against ignore (mean ± std over seeds of the per-seed difference).

Run: ``labelmend bench csl-gamma [--gammas 0,1,1.5,2,4] [--seeds 5] [--first-seed 1005]
[--protocols fpc,openimages] [--out DIR]``; ``--out`` gets ``csl_gamma.json`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.quality import QualitySettings, seed_data
from bench.quality_data import PROTOCOLS, SeedData, protocol_targets, resolve_bench_weights
from bench.quality_methods import cross_fit, fit_head
from core.losses import loss_from_name
from core.losses.registry import CSL_GAMMA_UNANN
from core.metrics import full_map
from core.priors import model_prior
from core.train import HeadConfig, predict_head, train_head
from db.engine import labelmend_home

__all__ = ["csl_gamma_study", "main", "markdown"]

#: The gamma_unann values compared by default: none, below, the preset, and the paper's 4.
DEFAULT_GAMMAS: tuple[float, ...] = (0.0, 1.0, 1.5, 2.0, 4.0)


def _csl_map(data: SeedData, targets: np.ndarray, prior: np.ndarray, gamma: float, settings: QualitySettings,
             seed: int) -> float:  # fmt: skip
    """Test mAP of a linear head trained with the ``csl`` preset at ``gamma_unann = gamma``."""
    head = settings.head
    c = targets.shape[1]
    loss = loss_from_name("csl", c, prior=prior, gamma_unann=gamma)
    config = HeadConfig(num_classes=c, in_features=data.x_train.shape[1], epochs=head.epochs,
                        batch_size=head.batch_size, lr=head.lr, weight_decay=head.weight_decay,
                        hidden=head.hidden, seed=seed)  # fmt: skip
    model = train_head(data.x_train, targets, loss, config).head
    return full_map(predict_head(model, data.x_test), data.y_test).map


def csl_gamma_study(
    gammas: Sequence[float],
    settings: QualitySettings,
    *,
    cache_dir: Path,
    say: Any = print,
) -> dict[str, Any]:
    """Test mAP of negative, ignore and csl at each ``gamma_unann``, per seed and protocol.

    Args:
        gammas: ``gamma_unann`` values (≥ 0).
        settings: the quality benchmark's settings (seeds, first seed, protocols, head).
        cache_dir: the cache holding rendered images and embeddings.
        say: called with one line per (seed, protocol).

    Returns:
        ``{"gammas", "settings", "runs": {protocol: {arm: [mAP per seed]}}, "seconds"}`` with arms
        ``negative``, ``ignore`` and ``csl-g<gamma>``.
    """
    if not gammas or any(not g >= 0 for g in gammas):
        raise ValueError(f"gammas must be one or more numbers ≥ 0, got {list(gammas)!r}")
    started = time.perf_counter()
    head = settings.head
    weights = resolve_bench_weights(settings.backbone, settings.pretrained, cache_dir)
    runs: dict[str, dict[str, list[float]]] = {p: {} for p in settings.protocols}
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as bench quality: small heads gain nothing from a second thread
    try:
        for i in range(settings.seeds):
            seed = settings.first_seed + i
            data = seed_data(settings, seed, cache_dir, weights)
            for protocol in settings.protocols:
                mask_seed = seed * 100 + PROTOCOLS.index(protocol)  # bench quality's masks
                targets = protocol_targets(
                    data, protocol, fpc_per_class=settings.fpc_per_class, seed=mask_seed
                )
                prior = model_prior(cross_fit(data.x_train, targets, "ignore", head, seed=seed), targets)
                arms: dict[str, float] = {}
                for base in ("negative", "ignore"):
                    model = fit_head(data.x_train, targets, base, head, seed=seed, prior=prior)
                    arms[base] = full_map(predict_head(model, data.x_test), data.y_test).map
                for g in gammas:
                    arms[f"csl-g{g:g}"] = _csl_map(data, targets, prior, g, settings, seed)
                for arm, value in arms.items():
                    runs[protocol].setdefault(arm, []).append(value)
                say(f"seed {seed} {protocol}: " + ", ".join(f"{a} {v:.2f}" for a, v in arms.items()))
    finally:
        torch.set_num_threads(before)
    return {
        "gammas": list(gammas),
        "settings": settings.to_dict(),
        "runs": runs,
        "seconds": time.perf_counter() - started,
    }


def _mean_std(values: Sequence[float]) -> str:
    a = np.asarray(values, dtype=np.float64)
    return f"{a.mean():.2f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.2f}"


def markdown(result: dict[str, Any]) -> str:
    """Two tables: mAP per arm and protocol, and each CSL variant's paired difference to the baselines."""
    runs: dict[str, dict[str, list[float]]] = result["runs"]
    protocols = list(runs)
    arms = list(next(iter(runs.values())))
    lines = ["| arm | " + " | ".join(protocols) + " |", "|---|" + "---|" * len(protocols)]
    for arm in arms:
        label = arm + (" (preset)" if arm == f"csl-g{CSL_GAMMA_UNANN:g}" else "")
        lines.append(f"| {label} | " + " | ".join(_mean_std(runs[p][arm]) for p in protocols) + " |")
    lines += ["", "| csl − baseline | " + " | ".join(protocols) + " |", "|---|" + "---|" * len(protocols)]
    for arm in (a for a in arms if a.startswith("csl-")):
        for base in ("negative", "ignore"):
            diffs = [_mean_std(np.subtract(runs[p][arm], runs[p][base]).tolist()) for p in protocols]
            lines.append(f"| {arm} − {base} | " + " | ".join(diffs) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry (``labelmend bench csl-gamma``)."""
    parser = argparse.ArgumentParser(prog="labelmend bench csl-gamma", description=__doc__.splitlines()[0])
    parser.add_argument("--gammas", default=",".join(f"{g:g}" for g in DEFAULT_GAMMAS),
                        help="comma-separated gamma_unann values")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=5, help="paired seeds (default 5)")
    parser.add_argument(
        "--first-seed", type=int, default=QualitySettings.first_seed, help="first dataset seed"
    )
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated protocols")
    parser.add_argument("--out", type=Path, default=None, help="folder for csl_gamma.json and report.md")
    args = parser.parse_args(argv)
    try:
        gammas = [float(g) for g in args.gammas.split(",") if g.strip()]
    except ValueError:
        parser.error(f"--gammas must be comma-separated numbers, got {args.gammas!r}")
    try:
        settings = QualitySettings(
            seeds=args.seeds,
            first_seed=args.first_seed,
            protocols=tuple(p.strip() for p in args.protocols.split(",") if p.strip()),
        )
        result = csl_gamma_study(gammas, settings, cache_dir=labelmend_home() / "cache")
    except ValueError as err:
        parser.error(str(err))
    table = markdown(result)
    print(table)
    print(f"wall time {result['seconds']:.0f} s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "csl_gamma.json").write_text(json.dumps(result, indent=2))
        (args.out / "report.md").write_text(f"# CSL gamma_unann\n\n{table}")


if __name__ == "__main__":
    main()
