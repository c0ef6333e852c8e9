"""`labelmend bench folds`: does cross-fitting the scores (``--folds K``) give better suggestions?

With ``--folds 1`` the cycle scores each unknown cell with the target model that trained on that
very image (its annotated cells, not the unknown one); with ``K > 1`` each image is scored by a
model trained on the other folds only, at the cost of K more heads. This study runs the real
cycle (:func:`app.pipeline.cycle.run_cycle`, head mode, the app's own head settings) for each K on
the quality benchmark's generated data (images rendered at 64 px; the cycle's default backbone and
weights, ``tf_efficientnet_lite0`` with packaged ImageNet weights at 224 px), stores
every unknown cell of the training images as a suggestion, and scores the stored ranking against
the hidden truth: precision@K (1 % of the unknown cells, 100, 1000) and AP, with paired seeds
(same data and masks for every K).

Results go to ``--out``: ``report.md`` and ``folds.json`` (``folds[protocol][K] = {precision:
{K label: {mean, std}}, ap: {mean, std}, suggest_seconds: {mean, std}}``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.pipeline.config import CycleConfig, TrainMode, WeightsSource
from app.pipeline.cycle import run_cycle
from app.pipeline.ingest import ingest_arrays
from app.store import Store, open_store
from bench.quality_data import (
    PROTOCOLS,
    SeedData,
    bench_weights_source,
    prepare_seed,
    protocol_targets,
    resolve_bench_weights,
)
from bench.quality_methods import K_LABELS, k_values, ranking_quality
from bench.quality_report import Stat, stat
from core.constants import UNKNOWN
from core.synthetic import SceneConfig
from db.engine import labelmend_home
from db.runs import suggestion_scores

#: (message) progress callback, called once per cycle run.
StepFn = Callable[[str], None]


@dataclass(frozen=True)
class FoldsSettings:
    """What the study runs.

    Attributes:
        n_images: images generated per seed (70 % train, 30 % unused test).
        seeds: paired seeds (each a new dataset and new masks, shared by every K).
        first_seed: dataset seed of the first seed (the quality benchmark's, so its cache is reused).
        folds: the K values compared.
        protocols: protocol names (:data:`bench.quality_data.PROTOCOLS`).
        fpc_per_class: N of FPC.
        epochs: head epochs of every model of the cycle (the app's default).
        num_classes: C of the generated scenes.
        image_size: px, the size images are rendered at.
        backbone: timm name of the cycle's frozen backbone (the cycle's default).
        pretrained: its weights (the cycle's default; ``packaged``, ``hub`` or ``none``).
        embed_size: px, the cycle's ``image_size`` (the size images are embedded at).
    """

    n_images: int = 3000
    seeds: int = 3
    first_seed: int = 1000
    folds: tuple[int, ...] = (1, 2, 3, 5)
    protocols: tuple[str, ...] = PROTOCOLS
    fpc_per_class: int = 50
    epochs: int = CycleConfig.epochs
    num_classes: int = 24
    image_size: int = 64
    backbone: str = CycleConfig.backbone
    pretrained: WeightsSource = CycleConfig.pretrained
    embed_size: int = CycleConfig.image_size

    def __post_init__(self) -> None:
        if not self.folds or min(self.folds) < 1:
            raise ValueError(f"folds must be ≥ 1, got {self.folds}")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocol {unknown[0]!r}; valid: {', '.join(PROTOCOLS)}")
        object.__setattr__(self, "pretrained", bench_weights_source(self.pretrained))

    @classmethod
    def quick(cls) -> FoldsSettings:
        """A smoke-sized run: 600 images, 1 seed, FPC(10) and OpenImages-like, K ∈ {1, 2}."""
        return cls(n_images=600, seeds=1, folds=(1, 2), protocols=("fpc", "openimages"), fpc_per_class=10,
                   epochs=10)  # fmt: skip


def _ingest(store: Store, name: str, data: SeedData, targets: np.ndarray) -> None:
    ids = [data.image_ids[i] for i in data.train]
    paths = [f"{data.dataset.image_ids[i]}.jpg" for i in data.train]
    with store.write() as s:
        ingest_arrays(s, name, image_root=str(data.image_root), external_ids=ids,
                      paths=paths, splits=["train"] * len(ids),
                      class_keys=data.dataset.class_ids, class_names=data.dataset.class_names,
                      targets=targets, source_name="folds study")  # fmt: skip


def stored_scores(store: Store, run_id: int, data: SeedData) -> np.ndarray:
    """The stored suggestion scores of ``run_id`` as a (N_train, C) matrix; -inf where none stored."""
    row_of = {data.image_ids[j]: i for i, j in enumerate(data.train)}
    col_of = {key: c for c, key in enumerate(data.dataset.class_ids)}
    scores = np.full(data.y_train.shape, -np.inf)
    with store.read() as s:
        for ext, key, score in suggestion_scores(s, run_id):
            scores[row_of[ext], col_of[key]] = score
    return scores


def study_protocol(
    store: Store, data: SeedData, protocol: str, settings: FoldsSettings, step: StepFn
) -> dict[str, Any]:
    """One (seed, protocol): a cycle per K; per K its precision@K, AP and scoring seconds.

    The cycles embed with ``settings``' backbone, weights and ``embed_size`` (their ``image_size``),
    so they read the embeddings :func:`bench.quality_data.prepare_seed` cached.
    """
    targets = protocol_targets(data, protocol, fpc_per_class=settings.fpc_per_class,
                               seed=data.seed * 100 + PROTOCOLS.index(protocol))  # fmt: skip
    name = f"seed{data.seed}-{protocol}"
    _ingest(store, name, data, targets)
    unknown = targets == UNKNOWN
    ks = k_values(int(unknown.sum()))
    out: dict[str, Any] = {"n_unknown": int(unknown.sum()), "k_values": ks, "folds": {}}
    for k in settings.folds:
        config = CycleConfig(dataset=name, backbone=settings.backbone, pretrained=settings.pretrained,
                             mode=TrainMode.HEAD, epochs=settings.epochs, image_size=settings.embed_size,
                             folds=k, top_suggestions=int(unknown.sum()), device="cpu", seed=data.seed, audit_share=0.0)  # fmt: skip
        result = run_cycle(store, config)
        scores = stored_scores(store, result.target_run_id, data)
        precision, ap = ranking_quality(scores, unknown, data.y_train, ks)
        out["folds"][str(k)] = {
            "precision": precision,
            "ap": ap,
            "suggest_seconds": result.timings["suggest"],
        }
        step(f"seed {data.seed} {protocol} K={k}: AP {ap:.3f}, P@1% {precision['1%']:.3f}")
    return out


def summarize(per_seed: Sequence[dict[str, Any]], settings: FoldsSettings) -> dict[str, Any]:
    """Mean ± std over seeds: ``folds[protocol][K] = {precision: {K label: Stat}, ap, ap_diff,
    suggest_seconds}``; ``ap_diff`` is the paired (same seed) AP difference against the first K."""
    folds: dict[str, dict[str, dict[str, Any]]] = {}
    base = str(settings.folds[0])
    for protocol in settings.protocols:
        folds[protocol] = {}
        for k in map(str, settings.folds):
            rows = [seed["protocols"][protocol]["folds"][k] for seed in per_seed]
            firsts = [seed["protocols"][protocol]["folds"][base] for seed in per_seed]
            folds[protocol][k] = {
                "precision": {label: stat([r["precision"][label] for r in rows]) for label in K_LABELS},
                "ap": stat([r["ap"] for r in rows]),
                "ap_diff": stat([r["ap"] - f["ap"] for r, f in zip(rows, firsts, strict=True)]),
                "suggest_seconds": stat([r["suggest_seconds"] for r in rows]),
            }
    saved = {**asdict(settings), "pretrained": settings.pretrained.value}
    return {"folds": folds, "settings": saved, "per_seed": list(per_seed)}


def _pm(s: Stat, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _pmd(s: Stat) -> str:
    return f"{s['mean']:+.3f} ± {s['std']:.3f}"


def markdown_report(results: dict[str, Any]) -> str:
    """One table per protocol: K × (P@1 %, P@100, P@1000, AP, paired ΔAP, scoring seconds)."""
    st = results["settings"]
    base = st["folds"][0]
    lines = [
        "# Cross-fitted scoring: --folds K",
        "",
        f"{st['seeds']} paired seed(s), {st['n_images']} generated images each (70 % ranked), "
        f"{st['epochs']} head epochs, images rendered at {st['image_size']} px, {st['backbone']} "
        f"({st['pretrained']} weights) at {st['embed_size']} px. "
        "Every unknown cell of the training images is stored and ranked by the cycle's default ranker; "
        "precision@K and AP over the hidden true positives (mean ± std over seeds); ΔAP is the paired "
        f"difference against K = {base} on the same seed.",
    ]
    for protocol, by_k in results["folds"].items():
        lines += ["", f"## {protocol}", "", "| K | P@1% | P@100 | P@1000 | AP | ΔAP | scoring s |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for k, r in by_k.items():
            p = r["precision"]
            lines.append(f"| {k} | {_pm(p['1%'])} | {_pm(p['100'])} | {_pm(p['1000'])} | {_pm(r['ap'])} "
                         f"| {_pmd(r['ap_diff'])} | {_pm(r['suggest_seconds'], 1)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def run_folds_study(
    settings: FoldsSettings, *, out_dir: Path | None = None, step: StepFn | None = None
) -> dict[str, Any]:
    """Run the study; with ``out_dir`` write ``report.md`` and ``folds.json``. Returns the results.

    The converted weights, the rendered images and their embeddings live under
    ``$LABELMEND_HOME/cache``, where the cycles look for them (shared with ``labelmend bench quality``).

    Args:
        settings: what to run.
        out_dir: where the report goes; None writes nothing.
        step: progress callback, once per cycle.
    """
    say = step or (lambda _m: None)
    started = time.perf_counter()
    cache_dir = labelmend_home() / "cache"
    weights = resolve_bench_weights(settings.backbone, settings.pretrained, cache_dir)
    scene = SceneConfig(num_classes=settings.num_classes, image_size=settings.image_size)
    per_seed = []
    with tempfile.TemporaryDirectory(prefix="labelmend-folds-") as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'folds.db'}")
        try:
            for i in range(settings.seeds):
                data = prepare_seed(settings.first_seed + i, n_images=settings.n_images, scene=scene,
                                    split_fractions=(0.7, 0.0, 0.3), backbone=settings.backbone,
                                    weights=weights, embed_size=settings.embed_size,
                                    normalize=settings.pretrained.normalizes_inputs, cache_dir=cache_dir)  # fmt: skip
                per_seed.append({
                    "seed": data.seed,
                    "protocols": {p: study_protocol(store, data, p, settings, say) for p in settings.protocols},
                })  # fmt: skip
        finally:
            store.dispose()
    results = summarize(per_seed, settings)
    results["wall_seconds"] = time.perf_counter() - started
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.md").write_text(markdown_report(results), encoding="utf-8")
        (out_dir / "folds.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


__all__ = [
    "FoldsSettings",
    "markdown_report",
    "run_folds_study",
    "stored_scores",
    "study_protocol",
    "summarize",
]
