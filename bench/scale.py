"""`labelmend bench scale`: OpenImages-sized data end to end — import, one head-mode cycle, review queue.

Generates OpenImages-format files (``LabelName,DisplayName`` classes, ``ImageID,Source,LabelName,
Confidence`` verified labels, ``ImageID,Split``) and random-but-structured embeddings, in chunks of
images, so the generator never holds an (N × C) array:

* every image has a latent ``z`` (32-d Gaussian); class ``c`` is present when ``z · w_c`` exceeds
  the quantile that gives it a Zipf-like prevalence (0.5 for the first class, ~0.5 / c^0.8 after);
* its ``L`` verified cells are chosen the way a candidate generator chooses them — of 16 L classes
  drawn in proportion to prevalence, the L with the highest noisy ``z · w_c`` minus threshold, so
  likely positives and confusable negatives get verified (~26 % positive) — and labelled with the
  truth;
* its embedding is ``z A + noise`` (``--dim``, float16), written into the real embedding cache the
  cycle's features stage reads (:func:`app.pipeline.features.feature_cache`), so the cycle runs its
  real code path with cache hits and training means something.

Then it imports the files with the real importer (and, for the ratio, the plainest load of the same
rows: :mod:`bench.import_bench`), runs one head-mode cycle (:func:`app.pipeline.cycle.run_cycle`),
writes the top suggestions to ``top_suggestions.csv``, fills the review queue to ``--pending``
suggestions and times its next-item query (:mod:`bench.queue_latency`), and writes ``results.json``:
``import_s``, ``import_ratio_vs_raw``, ``cycle_s`` with ``stages``, ``peak_rss_gib`` (this whole
process, ``getrusage``), ``review_next_p95_ms``, ``partial_map``, and the calibration of this machine
(:mod:`bench.calibration`) so figures from other machines compare.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from app.pipeline.config import CycleConfig, TrainMode, WeightsSource
from app.pipeline.cycle import CycleResult, run_cycle
from app.pipeline.features import feature_cache, resolve_weights
from app.store import Store, open_store
from bench.calibration import measure_calibration
from common.progress import Progress
from db.engine import labelmend_home
from db.io import import_openimages
from db.queries import top_run_suggestions

#: Latent dimensions of the generator (the rank of the link between embeddings and labels).
_RANK = 32
#: Images generated (and embeddings appended to the cache) per chunk: its candidate gather is
#: 20,000 × 16 L × 32 float32 (330 MB at L = 8).
_CHUNK_IMAGES = 20_000


@dataclass(frozen=True)
class ScaleConfig:
    """What ``labelmend bench scale`` generates and runs.

    Attributes:
        images, classes, labels_per_image: N, C and the verified cells per image (L).
        dim: embedding size D (the cycle's backbone must have D-d features: resnet18 gives 512).
        epochs: head epochs of the prior and target models.
        top_suggestions: suggestions the cycle stores (the review queue is then filled to ``pending``).
        pending: pending suggestions when the review queue's next item is timed (0: not timed).
        raw_baseline: also time the plainest load of the same rows (for ``import_ratio_vs_raw``).
        seed: generator and cycle seed.
    """

    images: int = 100_000
    classes: int = 9_605
    labels_per_image: int = 8
    dim: int = 512
    epochs: int = 1
    top_suggestions: int = 100_000
    pending: int = 10_000_000
    raw_baseline: bool = True
    seed: int = 0
    backbone: str = "resnet18"

    def __post_init__(self) -> None:
        if self.images < 20 or self.classes < 2:
            raise ValueError("bench scale needs at least 20 images and 2 classes")
        if not 1 <= self.labels_per_image <= self.classes:
            raise ValueError(
                f"--labels-per-image must be in [1, {self.classes}], got {self.labels_per_image}"
            )


@dataclass
class ScaleFiles:
    """The generated files and what they hold."""

    classes: Path
    labels: Path
    splits: Path
    image_ids: list[str]
    n_labels: int
    n_positive: int
    seconds: float


@dataclass
class ScaleResult:
    """``results.json``: every figure of one run (seconds, GiB, milliseconds, mAP in [0, 100])."""

    config: dict[str, Any]
    backend: str
    machine: dict[str, Any]
    generate_s: float
    import_s: float
    import_raw_s: float | None
    import_ratio_vs_raw: float | None
    cycle_s: float
    stages: dict[str, float]
    partial_map: float
    prior_partial_map: float
    n_suggestions: int
    peak_rss_gib: float
    peak_rss_gib_after: dict[str, float] = field(default_factory=dict)
    review: dict[str, Any] = field(default_factory=dict)
    review_next_p95_ms: float | None = None
    calibration: dict[str, float] = field(default_factory=dict)


def peak_rss_gib() -> float:
    """This process's peak resident set size so far, GiB (``getrusage``; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _class_model(cfg: ScaleConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm class directions float32 (RANK, C) and thresholds float32 (C,) giving the prevalences."""
    w = rng.standard_normal((_RANK, cfg.classes), dtype=np.float32)
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    prevalence = 0.5 / np.arange(1, cfg.classes + 1) ** 0.8
    return w, ndtri(1.0 - prevalence).astype(np.float32)  # z · w_c ~ N(0, 1)


def generate(
    cfg: ScaleConfig,
    folder: Path,
    write_embeddings: Callable[[list[str], np.ndarray], None],
    report: Progress,
) -> ScaleFiles:
    """Write the three files under ``folder`` and pass each chunk's embeddings to ``write_embeddings``.

    Memory: one chunk of :data:`_CHUNK_IMAGES` images (latents, 4 L candidate cells, embeddings);
    nothing of size N × C.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    folder.mkdir(parents=True, exist_ok=True)
    w, thresh = _class_model(cfg, rng)
    mix = rng.standard_normal((_RANK, cfg.dim), dtype=np.float32)
    keys = np.array([f"/m/scale{j:05d}" for j in range(cfg.classes)], dtype=object)
    classes = folder / "classes.csv"
    pd.DataFrame(
        {"LabelName": keys, "DisplayName": [f"Class {j}, scale" for j in range(cfg.classes)]}
    ).to_csv(classes, index=False)
    image_ids = [f"{i:016x}" for i in range(cfg.images)]
    splits = folder / "splits.csv"
    split = np.where(np.arange(cfg.images) % 10 == 0, "val", "train")
    pd.DataFrame({"ImageID": image_ids, "Split": split}).to_csv(splits, index=False)
    labels = folder / "labels.csv"
    # Candidate classes are drawn in proportion to prevalence (frequent classes get verified more
    # often), 16 L draws per image; the L with the highest noisy margin are verified, as a candidate
    # generator verifies likely positives and confusable negatives: ~26 % of them are positive.
    weights = 0.5 / np.arange(1, cfg.classes + 1) ** 0.8
    cum = np.cumsum(weights / weights.sum())
    k = cfg.labels_per_image
    draws = min(cfg.classes, 16 * k)
    n_labels = n_positive = 0
    for start in range(0, cfg.images, _CHUNK_IMAGES):
        stop = min(cfg.images, start + _CHUNK_IMAGES)
        b = stop - start
        z = rng.standard_normal((b, _RANK), dtype=np.float32)
        cand = np.minimum(np.searchsorted(cum, rng.random((b, draws))), cfg.classes - 1)
        cand.sort(axis=1)
        margin = np.einsum("br,rbm->bm", z, w[:, cand]) - thresh[cand]  # (b, draws): > 0 = present
        u = rng.random((b, draws), dtype=np.float32)
        noisy = margin - 0.5 * np.log(-np.log(np.clip(u, 1e-12, 1 - 1e-7)))  # + Gumbel noise
        noisy[:, 1:][cand[:, 1:] == cand[:, :-1]] = -np.inf  # a class drawn twice counts once
        pick = np.argpartition(-noisy, min(k, draws) - 1, axis=1)[:, :k]
        ok = np.take_along_axis(noisy, pick, axis=1) > -np.inf  # rows with fewer distinct classes than k
        cols = np.take_along_axis(cand, pick, axis=1)[ok]
        rows = np.broadcast_to(np.arange(b)[:, None], pick.shape)[ok]
        value = (np.take_along_axis(margin, pick, axis=1)[ok] > 0).astype(np.int8)
        frame = pd.DataFrame({
            "ImageID": np.asarray(image_ids[start:stop], dtype=object)[rows],
            "Source": "verification",
            "LabelName": keys[cols],
            "Confidence": value,
        })  # fmt: skip
        frame.to_csv(labels, index=False, mode="w" if start == 0 else "a", header=start == 0)
        n_labels += len(frame)
        n_positive += int(value.sum())
        emb = z @ mix + 0.5 * rng.standard_normal((b, cfg.dim), dtype=np.float32)
        write_embeddings(image_ids[start:stop], emb.astype(np.float16))
        report(stop / cfg.images, f"{stop:,}/{cfg.images:,} images generated")
    return ScaleFiles(classes, labels, splits, image_ids, n_labels, n_positive, time.perf_counter() - started)


def cycle_config(cfg: ScaleConfig) -> CycleConfig:
    """The head-mode cycle bench scale runs (generated embeddings; no images are decoded)."""
    return CycleConfig(dataset="scale", backbone=cfg.backbone, pretrained=WeightsSource.NONE, mode=TrainMode.HEAD,
                       epochs=cfg.epochs, image_size=224, top_suggestions=cfg.top_suggestions, device="cpu",
                       seed=cfg.seed)  # fmt: skip


def write_top_suggestions(store: Store, run_id: int, path: Path, limit: int = 1_000) -> int:
    """The run's ``limit`` best suggestions as ``ImageID,LabelName,DisplayName,score,prob`` CSV; rows written."""
    with store.read() as s:
        rows = top_run_suggestions(s, run_id, limit)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["ImageID", "LabelName", "DisplayName", "score", "prob"])
        out.writerows(rows)
    return len(rows)


def run_scale(
    cfg: ScaleConfig,
    out: Path,
    *,
    db_url: str | None = None,
    echo: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> ScaleResult:
    """Generate, import, run one cycle, time the review queue; write ``out/results.json``.

    Args:
        cfg: sizes and settings.
        out: folder of the files, the SQLite database (when ``db_url`` is None), the home folder,
            ``top_suggestions.csv`` and ``results.json``.
        db_url: an empty database to use instead of SQLite in ``out`` (e.g. PostgreSQL).
        echo: where one-line progress notes go.
        progress: a progress bar callback (fraction of the current phase, message).
    """
    out.mkdir(parents=True, exist_ok=True)
    os.environ["LABELMEND_HOME"] = str(out / "home")
    report: Progress = progress or (lambda _f, _m: None)
    after: dict[str, float] = {}
    config = cycle_config(cfg)
    cache_dir = labelmend_home() / "cache"
    cache = feature_cache(config, cfg.classes, cache_dir, resolve_weights(config, cache_dir))
    if cache.dim != cfg.dim:
        raise ValueError(f"{cfg.backbone} has {cache.dim}-d features, not {cfg.dim}; pass --dim {cache.dim}")

    echo(
        f"generating {cfg.images:,} images × {cfg.classes:,} classes, {cfg.labels_per_image} labels per image …"
    )
    files = generate(cfg, out / "files", cache.append, report)
    after["generate"] = peak_rss_gib()
    echo(f"  {files.n_labels:,} labels ({files.n_positive / max(files.n_labels, 1):.0%} positive) "
         f"in {files.seconds:.1f} s")  # fmt: skip

    raw_s = _raw_import_s(files, out, db_url, echo) if cfg.raw_baseline else None
    db_path = out / "scale.db"
    if db_url is None:
        db_path.unlink(missing_ok=True)
    store = open_store(db_url or f"sqlite:///{db_path}")
    backend = store.engine.dialect.name
    echo(f"importing into {backend} …")
    t0 = time.perf_counter()
    with store.write() as s:
        import_openimages(s, labels=files.labels, classes=files.classes, splits=files.splits, dataset="scale",
                          author="bench")  # fmt: skip
    import_s = time.perf_counter() - t0
    after["import"] = peak_rss_gib()
    ratio = import_s / raw_s if raw_s else None
    echo(f"  import {import_s:.1f} s" + (f", plain load {raw_s:.1f} s, ratio {ratio:.2f}" if raw_s else ""))

    calibration = measure_calibration()
    echo(calibration.describe())
    echo("running the cycle …")
    t0 = time.perf_counter()
    result: CycleResult = run_cycle(store, config, progress=report)
    cycle_s = time.perf_counter() - t0
    after["cycle"] = peak_rss_gib()
    for stage, sec in result.timings.items():
        echo(f"  {stage:<9} {sec:>8.2f} s {sec / calibration.matmul_s:>7.0f} × matmul")
    echo(f"  {'total':<9} {cycle_s:>8.2f} s; partial mAP {result.partial_map:.2f} "
         f"(prior model {result.prior_partial_map:.2f}); peak RSS {after['cycle']:.2f} GiB")  # fmt: skip
    write_top_suggestions(store, result.target_run_id, out / "top_suggestions.csv")

    review: dict[str, Any] = {}
    if cfg.pending > 0:
        review = _review_latency(store, cfg, echo)
        after["review"] = peak_rss_gib()
    scale = ScaleResult(
        config=asdict(cfg), backend=backend,
        machine={"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        generate_s=round(files.seconds, 2), import_s=round(import_s, 2),
        import_raw_s=None if raw_s is None else round(raw_s, 2),
        import_ratio_vs_raw=None if ratio is None else round(ratio, 3),
        cycle_s=round(cycle_s, 2), stages=dict(result.timings), partial_map=round(result.partial_map, 2),
        prior_partial_map=round(result.prior_partial_map, 2), n_suggestions=result.n_suggestions,
        peak_rss_gib=round(max(after.values()), 3), peak_rss_gib_after={k: round(v, 3) for k, v in after.items()},
        review=review, review_next_p95_ms=review.get("next_p95_ms"),
        calibration={"matmul_s": calibration.matmul_s, "sqlite_insert_s": calibration.sqlite_insert_s},
    )  # fmt: skip
    (out / "results.json").write_text(json.dumps(asdict(scale), indent=2) + "\n")
    store.dispose()
    echo(f"results: {out / 'results.json'}")
    return scale


def _raw_import_s(files: ScaleFiles, out: Path, db_url: str | None, echo: Callable[[str], None]) -> float:
    """Seconds of the plainest load of the same rows into a fresh schema (:mod:`bench.import_bench`).

    SQLite: ``sqlite3`` executemany into a scratch file. PostgreSQL: a plain COPY into ``db_url``,
    whose ``public`` schema is dropped and migrated before and after (it must be a database made
    for the benchmark), so our import then starts from the same empty schema.
    """
    from bench import import_bench

    echo("timing the plainest load of the same rows (the baseline of the import ratio) …")
    if db_url is None:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            return import_bench.run_raw(Path(tmp) / "raw.db", files.labels, files.classes).wall_s
    import_bench.fresh_pg(db_url)
    seconds = import_bench.raw_copy_import(db_url, files.classes, files.labels).wall_s
    import_bench.fresh_pg(db_url)
    return seconds


def _review_latency(store: Store, cfg: ScaleConfig, echo: Callable[[str], None]) -> dict[str, Any]:
    """A queue of ``cfg.pending`` pending suggestions in this store (:func:`bench.queue_latency.prepare_queue`,
    a dataset of its own) and the timing of the Review page's next-item and decide calls on it."""
    from bench import queue_latency

    echo(f"filling a review queue of {cfg.pending:,} pending suggestions …")
    images = None if cfg.pending >= 1_000_000 else max(100, -(-cfg.pending // 600) + 1)  # small: tests
    dataset_id = queue_latency.prepare_queue(store.engine, pending=cfg.pending, images=images, seed=cfg.seed,
                                             echo=echo)  # fmt: skip
    result = queue_latency.review_next_latency(store.engine, dataset_id)
    echo(f"  next item p50 {result['next_p50_ms']:.2f} ms, p95 {result['next_p95_ms']:.2f} ms "
         f"(index {'used' if result['uses_index'] else 'NOT used'})")  # fmt: skip
    return result


__all__ = ["ScaleConfig", "ScaleFiles", "ScaleResult", "generate", "peak_rss_gib", "run_scale"]
