"""`labelmend bench cycle`: the whole head-mode cycle at scale on generated embeddings.

100,000 images × 600 classes, 512-d cached embeddings, OpenImages-like sparsity (about 10
annotated cells per image). The embeddings are written into the real embedding cache that the
cycle's features step opens (:func:`app.pipeline.features.feature_cache`), so the cycle runs its
real code path (cache hits, no image decoding):
prior model, priors, target model, partial mAP, scoring every unknown cell, storing the top-K
suggestions. Prints the time of each stage, in seconds and as a multiple of a float32 matmul measured
in the same run (:mod:`bench.calibration`; the store stage also against a plain SQLite insert), so
figures from another machine compare.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.pipeline.config import CycleConfig, TrainMode, WeightsSource
from app.pipeline.cycle import CycleResult, run_cycle
from app.pipeline.features import feature_cache, resolve_weights
from app.pipeline.ingest import ingest_arrays
from app.store import open_store
from bench.calibration import measure_calibration


@dataclass(frozen=True)
class CycleBenchConfig:
    n_images: int = 100_000
    n_classes: int = 600
    dim: int = 512
    annotated_per_image: int = 10
    top_suggestions: int = 100_000
    epochs: int = 4  # 90k rows: 4 epochs are ~90 Adam steps of 4096, enough for a linear head
    seed: int = 0
    backbone: str = "resnet18"  # 512-d pooled features


def _generate(cfg: CycleBenchConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings (N, D) float16 with a low-rank link to the truth, truth (N, C), partial targets (N, C)."""
    rng = np.random.default_rng(cfg.seed)
    n, c, d, rank = cfg.n_images, cfg.n_classes, cfg.dim, 32
    z = rng.standard_normal((n, rank), dtype=np.float32)
    prevalence = 0.5 / np.arange(1, c + 1) ** 0.8  # Zipf-like: head 0.5, tail ~0.003
    w = rng.standard_normal((rank, c), dtype=np.float32) * 1.2
    logit = z @ w
    at = ((1 - prevalence) * (n - 1)).astype(np.int64)
    thresh = np.sort(logit, axis=0)[at, np.arange(c)]  # per-class quantile: prevalence above it
    truth = (logit > thresh).astype(np.int8)
    emb = z @ rng.standard_normal((rank, d), dtype=np.float32) + 0.5 * rng.standard_normal(
        (n, d), dtype=np.float32
    )
    targets = np.full((n, c), -1, dtype=np.int8)
    k = cfg.annotated_per_image
    cols = np.argsort(rng.random((n, c), dtype=np.float32) - 0.3 * truth, axis=1)[
        :, :k
    ]  # verification favours positives
    rows = np.repeat(np.arange(n), k)
    targets[rows, cols.ravel()] = truth[rows, cols.ravel()]
    return emb.astype(np.float16), truth, targets


def run_cycle_bench(  # type: ignore[no-untyped-def]
    cfg: CycleBenchConfig, *, workdir: Path | None = None, db_url: str | None = None, echo=print
) -> CycleResult:
    """Generate, store and run one cycle; ``db_url`` (an empty database) instead of SQLite in ``workdir``."""
    work = Path(workdir or tempfile.mkdtemp(prefix="labelmend-bench-cycle-"))
    os.environ["LABELMEND_HOME"] = str(work / "home")
    echo(f"generating {cfg.n_images:,} images × {cfg.n_classes} classes, {cfg.dim}-d embeddings …")
    t0 = time.perf_counter()
    emb, _truth, targets = _generate(cfg)
    ids = [f"img{i:07d}" for i in range(cfg.n_images)]
    splits = np.where(np.arange(cfg.n_images) % 10 == 0, "val", "train")
    echo(f"  generated in {time.perf_counter() - t0:.1f} s; {int((targets != -1).sum()):,} annotated cells")
    store = open_store(db_url or f"sqlite:///{work / 'bench.db'}")
    t0 = time.perf_counter()
    with store.write() as s:
        ingest_arrays(s, "bench", image_root=str(work / "images"), external_ids=ids,
                      paths=[f"{i}.jpg" for i in ids], splits=splits.tolist(),
                      class_keys=[f"/m/b{j:04d}" for j in range(cfg.n_classes)],
                      class_names=[f"class {j}" for j in range(cfg.n_classes)], targets=targets)  # fmt: skip
    echo(f"  stored in {store.engine.dialect.name} in {time.perf_counter() - t0:.1f} s")
    config = CycleConfig(dataset="bench", backbone=cfg.backbone, pretrained=WeightsSource.NONE, mode=TrainMode.HEAD,
                         epochs=cfg.epochs, image_size=224, top_suggestions=cfg.top_suggestions, device="cpu",
                         seed=cfg.seed, audit_share=0.0)  # fmt: skip
    cache_dir = store.home / "cache"
    cache = feature_cache(config, cfg.n_classes, cache_dir, resolve_weights(config, cache_dir))
    if cache.dim != cfg.dim:
        raise ValueError(
            f"{cfg.backbone} has {cache.dim}-d features, not {cfg.dim}; pick a {cfg.dim}-d backbone"
        )
    cache.append(ids, emb)
    calibration = measure_calibration()
    echo(calibration.describe())
    echo("running the cycle …")
    t0 = time.perf_counter()
    result = run_cycle(store, config)
    total = time.perf_counter() - t0
    echo(f"{'stage':<10} {'seconds':>8} {'× matmul':>9}")
    for stage, sec in result.timings.items():
        extra = f"   {sec / calibration.sqlite_insert_s:.1f} × SQLite insert" if stage == "store" else ""
        echo(f"{stage:<10} {sec:>8.2f} {sec / calibration.matmul_s:>9.0f}{extra}")
    echo(f"{'total':<10} {total:>8.2f} {total / calibration.matmul_s:>9.0f}   (goal ≤ 60 s)")
    echo(f"partial mAP {result.partial_map:.2f} (prior model {result.prior_partial_map:.2f}); "
         f"{result.n_suggestions:,} suggestions stored")  # fmt: skip
    store.dispose()
    return result


__all__ = ["CycleBenchConfig", "run_cycle_bench"]
