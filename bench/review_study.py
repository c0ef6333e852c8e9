"""Which reviewed labels move test mAP? A study behind the quality benchmark's review loop.

In ``labelmend bench quality``'s simulated review loop (OpenImages-like labels), the csl model's test
mAP *falls* after the first 300 suggestions are answered from the truth. This study takes one
review round apart, in memory, on the benchmark's own data (same seeds, masks, heads and prior):
the csl model is retrained after adding to the partial labels

* ``all``: the truth of the top R suggestions (what the oracle does),
* ``accepted``: only those that are truly present (new positives),
* ``rejected``: only those that are truly absent (new negatives, hard by construction: the model
  ranked them at the top),
* ``random``: the truth of R random unknown cells (the same number of new labels, not chosen by
  the model),

and the test mAP of each is compared, paired, with the model before review (``base``).

Run: ``labelmend bench review-study [--seeds 3] [--review 300]`` (uses the quality
benchmark's settings, rendered images and cached embeddings under ``LABELMEND_HOME``; about a
minute per seed once embedded).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from bench.quality import QualitySettings, _mask_seed
from bench.quality_data import SeedData, prepare_seed, protocol_targets, resolve_bench_weights
from bench.quality_methods import HeadSettings, cross_fit, fit_head
from core.constants import UNKNOWN
from core.metrics import full_map
from core.priors import model_prior
from core.ranking import top_unknown
from core.train import predict_head
from db.engine import labelmend_home

VARIANTS: tuple[str, ...] = ("base", "all", "accepted", "rejected", "random")


def study_seed(data: SeedData, targets: np.ndarray, *, review: int, seed: int) -> dict[str, float]:
    """Test mAP (0–100) of the csl model after each way of adding ``review`` reviewed labels.

    Args:
        data: one seed of the quality benchmark (embeddings and truth).
        targets: int8 (N_train, C) partial labels, 1 / 0 / -1.
        review: R, the number of suggestions answered.
        seed: training seed (shared by every variant).

    Returns:
        ``{variant: test mAP}`` for :data:`VARIANTS`.
    """
    settings = HeadSettings()
    prior = model_prior(cross_fit(data.x_train, targets, "ignore", settings, seed=seed), targets)

    def test_map(t: np.ndarray) -> tuple[float, np.ndarray]:
        head = fit_head(data.x_train, t, "csl", settings, seed=seed, prior=prior)
        return full_map(predict_head(head, data.x_test), data.y_test).map, predict_head(head, data.x_train)

    base, probs = test_map(targets)
    top = top_unknown(probs, targets, prior, review)
    img, cls = top.img_idx, top.cls_idx
    truth = data.y_train[img, cls]
    rng = np.random.default_rng(seed)
    u_img, u_cls = np.nonzero(targets == UNKNOWN)
    pick = rng.choice(len(u_img), size=min(review, len(u_img)), replace=False)
    picks = {
        "all": (img, cls),
        "accepted": (img[truth == 1], cls[truth == 1]),
        "rejected": (img[truth == 0], cls[truth == 0]),
        "random": (u_img[pick], u_cls[pick]),
    }
    out = {"base": base}
    for name, (i, c) in picks.items():
        t = targets.copy()
        t[i, c] = data.y_train[i, c]
        out[name] = test_map(t)[0]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--review", type=int, default=300, help="R, suggestions answered")
    args = parser.parse_args(argv)
    st = QualitySettings()
    cache = labelmend_home() / "cache"
    weights = resolve_bench_weights(st.backbone, st.pretrained, cache)
    rows = []
    for seed in range(st.first_seed, st.first_seed + args.seeds):
        data = prepare_seed(seed, n_images=st.n_images, scene=st.scene(), split_fractions=st.split_fractions,
                            backbone=st.backbone, weights=weights, embed_size=st.embed_size,
                            normalize=st.pretrained.normalizes_inputs, cache_dir=cache)  # fmt: skip
        targets = protocol_targets(data, "openimages", fpc_per_class=st.fpc_per_class,
                                   seed=_mask_seed(seed, "openimages"))  # fmt: skip
        rows.append(study_seed(data, targets, review=args.review, seed=seed))
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()), flush=True)
    print("\n| labels added | test mAP | paired difference vs base |\n|---|---|---|")
    for name in VARIANTS:
        vals = np.array([r[name] for r in rows])
        diff = vals - np.array([r["base"] for r in rows])
        print(f"| {name} | {vals.mean():.2f} ± {vals.std():.2f} | {diff.mean():+.2f} ± {diff.std():.2f} |")


if __name__ == "__main__":
    main()
