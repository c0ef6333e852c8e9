"""`labelmend bench quality`: CSL, the priors and the suggestions measured on data with known truth.

For each seed a dataset is generated (:mod:`core.synthetic`), rendered once at 64 px and embedded
once with the cycle's default backbone (``tf_efficientnet_lite0`` with packaged ImageNet weights,
at 224 px; see :mod:`bench.quality_data`); then, for each protocol (FPC, RPS 0.5 and 0.8,
OpenImages-like) with the same masks for every method:

1. every loss preset trains a linear head on the cached embeddings and is scored by mAP on the
   fully labelled test split, next to the fully supervised bound;
2. the class-prior estimators are compared with the true prevalence;
3. the unknown cells are ranked by ours, raw probabilities, cleanlab and random, and scored by
   precision@K and AP against the hidden true positives;
4. a simulated annotator reviews R suggestions per cycle through the app's review functions, for
   csl, negative and ignore (see :mod:`bench.quality_oracle`).

Results go to ``--out``: ``report.md``, ``results.json`` and plotly HTML charts
(:mod:`bench.quality_report`). Heads train single-threaded: a small linear head gains nothing
from a second thread, and threads contend when the CPU is shared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from app.pipeline.config import CycleConfig, WeightsSource
from app.store import open_store
from bench.quality_data import (
    PROTOCOLS,
    SeedData,
    bench_weights_source,
    prepare_seed,
    protocol_targets,
    resolve_bench_weights,
)
from bench.quality_methods import HeadSettings, evaluate_protocol, supervised_map
from bench.quality_oracle import run_oracle
from bench.quality_report import markdown_tables, summarize, write_report
from core.losses import list_losses
from core.ranking import DEFAULT_RANKER
from core.synthetic import SceneConfig
from db.engine import labelmend_home

log = logging.getLogger(__name__)

#: ``step(message)`` is called after each unit of work (see :func:`total_steps`).
StepFn = Callable[[str], None]


@dataclass(frozen=True)
class QualitySettings:
    """Everything that decides a quality benchmark run (saved in ``results.json``).

    Attributes:
        n_images: images generated per seed (train + val + test).
        seeds: number of seeds (each a new dataset and new masks, shared by every method).
        first_seed: dataset seed of the first seed; the others follow.
        num_classes: C of the generated scenes.
        image_size: px, the size images are rendered at.
        backbone: timm name of the frozen backbone (the cycle's default).
        pretrained: its weights (the cycle's default; ``packaged``, ``hub`` or ``none``); inputs are
            mean/std normalised when they expect it (``WeightsSource.normalizes_inputs``).
        embed_size: px, the size rendered images are resized to for the backbone (the cycle's
            default ``image_size``).
        split_fractions: train / val / test; val is not used.
        fpc_per_class: N of FPC (positives and negatives kept per class).
        protocols: protocol names (:data:`bench.quality_data.PROTOCOLS`).
        losses: loss presets compared by mAP.
        head: head training settings.
        oracle_protocol: the protocol of the review loop's initial labels.
        oracle_losses: the arms of the review loop.
        oracle_cycles: review cycles.
        oracle_review: R, suggestions reviewed per cycle.
        workers: processes rendering images.
    """

    n_images: int = 3000
    seeds: int = 5
    first_seed: int = 1000
    num_classes: int = 24
    image_size: int = 64
    backbone: str = CycleConfig.backbone
    pretrained: WeightsSource = CycleConfig.pretrained
    embed_size: int = CycleConfig.image_size
    split_fractions: tuple[float, float, float] = (0.7, 0.0, 0.3)
    fpc_per_class: int = 50
    protocols: tuple[str, ...] = PROTOCOLS
    losses: tuple[str, ...] = tuple(list_losses())
    head: HeadSettings = field(default_factory=HeadSettings)
    oracle_protocol: str = "openimages"
    oracle_losses: tuple[str, ...] = ("csl", "negative", "ignore")
    oracle_cycles: int = 3
    oracle_review: int = 300
    workers: int = 2

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.n_images < 20:
            raise ValueError(f"need at least 1 seed and 20 images, got {self.seeds} and {self.n_images}")
        unknown = [p for p in (*self.protocols, self.oracle_protocol) if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocol {unknown[0]!r}; valid: {', '.join(PROTOCOLS)}")
        bad = [n for n in (*self.losses, *self.oracle_losses) if n not in list_losses()]
        if bad:
            raise ValueError(f"unknown loss {bad[0]!r}; valid: {', '.join(list_losses())}")
        object.__setattr__(self, "pretrained", bench_weights_source(self.pretrained))
        if self.embed_size < 16 or self.image_size < 16:
            raise ValueError(
                f"image_size and embed_size must be ≥ 16 px, got {self.image_size} and {self.embed_size}"
            )

    @classmethod
    def quick(cls, **overrides: Any) -> QualitySettings:
        """The ``--quick`` preset, a smoke-sized run: 600 images, 2 seeds, FPC(10), R = 100."""
        base: dict[str, Any] = {"n_images": 600, "seeds": 2, "fpc_per_class": 10, "oracle_review": 100}
        return cls(**{**base, **overrides})

    def scene(self) -> SceneConfig:
        """The scene configuration of the benchmark data (defaults but C and image size)."""
        return SceneConfig(num_classes=self.num_classes, image_size=self.image_size)

    def to_dict(self) -> dict[str, Any]:
        """Primitives only (``pretrained`` as its value)."""
        return {**dataclasses.asdict(self), "pretrained": self.pretrained.value}


def total_steps(settings: QualitySettings) -> int:
    """Units of work of a run: per seed, data + supervised bound + each protocol + each review arm."""
    return settings.seeds * (2 + len(settings.protocols) + len(settings.oracle_losses))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mask_seed(seed: int, protocol: str) -> int:
    return seed * 100 + PROTOCOLS.index(protocol)


def run_seed(
    settings: QualitySettings, seed: int, data: SeedData, store_dir: Path, step: StepFn
) -> dict[str, Any]:
    """Every measurement of one seed, as the plain dict :func:`bench.quality_report.summarize` reads."""
    started = time.perf_counter()
    head = settings.head
    out: dict[str, Any] = {"seed": seed, "protocols": {}, "oracle": {}}
    with _torch_threads(1):
        out["supervised_map"] = supervised_map(
            data.x_train, data.y_train, data.x_test, data.y_test, head, seed
        )
        step(f"seed {seed}: supervised bound {out['supervised_map']:.2f} mAP")
        for protocol in settings.protocols:
            t0 = time.perf_counter()
            targets = protocol_targets(
                data, protocol, fpc_per_class=settings.fpc_per_class, seed=_mask_seed(seed, protocol)
            )
            result = evaluate_protocol(data.x_train, data.y_train, data.x_test, data.y_test, targets,
                                       settings.losses, head, seed=seed)  # fmt: skip
            result.seconds = time.perf_counter() - t0
            out["protocols"][protocol] = dataclasses.asdict(result)
            step(f"seed {seed}: {protocol} (csl {result.map.get('csl', float('nan')):.2f} mAP)")
        targets = protocol_targets(data, settings.oracle_protocol, fpc_per_class=settings.fpc_per_class,
                                   seed=_mask_seed(seed, settings.oracle_protocol))  # fmt: skip
        store = open_store(f"sqlite:///{store_dir / f'oracle-{seed}.db'}")
        try:
            for loss in settings.oracle_losses:
                res = run_oracle(store, f"seed{seed}-{loss}", data, targets, loss, head,
                                 cycles=settings.oracle_cycles, review=settings.oracle_review, seed=seed)  # fmt: skip
                out["oracle"][loss] = dataclasses.asdict(res)
                rec = ", ".join(f"{r:.2f}" for r in res.recovered_per_review)
                step(f"seed {seed}: review loop {loss} (recovered/review {rec})")
        finally:
            store.dispose()
    out["seconds"] = time.perf_counter() - started
    return out


def seed_data(settings: QualitySettings, seed: int, cache_dir: Path, weights: str) -> SeedData:
    """The benchmark's dataset of ``seed``: generated, rendered and embedded once, then read from
    ``cache_dir``; ``weights`` from :func:`bench.quality_data.resolve_bench_weights`."""
    return prepare_seed(
        seed,
        n_images=settings.n_images,
        scene=settings.scene(),
        split_fractions=settings.split_fractions,
        backbone=settings.backbone,
        weights=weights,
        embed_size=settings.embed_size,
        normalize=settings.pretrained.normalizes_inputs,
        cache_dir=cache_dir,
        workers=settings.workers,
    )


def run_quality_bench(
    settings: QualitySettings,
    *,
    cache_dir: Path,
    out_dir: Path | None = None,
    step: StepFn | None = None,
    command: str = "labelmend bench quality",
) -> dict[str, Any]:
    """Run the benchmark and (with ``out_dir``) write its report, charts and ``results.json``.

    Args:
        settings: what to run.
        cache_dir: cache folder (converted weights, rendered images, embeddings); reused by
            later runs with the same settings.
        out_dir: where the report goes; None writes nothing.
        step: progress callback, called :func:`total_steps` times.
        command: the command line recorded in the report.

    Returns:
        The results dict (the content of ``results.json``).
    """
    started = time.perf_counter()
    say = step or (lambda _m: None)
    weights = resolve_bench_weights(settings.backbone, settings.pretrained, cache_dir)
    per_seed = []
    with tempfile.TemporaryDirectory(prefix="labelmend-quality-") as tmp:
        for i in range(settings.seeds):
            seed = settings.first_seed + i
            data = seed_data(settings, seed, cache_dir, weights)
            say(f"seed {seed}: {len(data.train)} train / {len(data.test)} test images embedded")
            per_seed.append(run_seed(settings, seed, data, Path(tmp), say))
    config = {**settings.to_dict(), "command": command, "n_train": len(data.train), "n_test": len(data.test),
              "ranker": DEFAULT_RANKER.value}  # fmt: skip
    results = summarize(per_seed, config, time.perf_counter() - started)
    if out_dir is not None:
        write_report(results, out_dir)
    return results


def quality_command(
    *,
    quick: bool,
    seeds: int | None,
    out: Path,
    weights: dict[str, Any] | None = None,
    first_seed: int | None = None,
) -> None:
    """`labelmend bench quality`: run with a progress bar, print the tables, write the report to ``out``.

    ``weights``: overrides of ``backbone`` / ``pretrained`` / ``embed_size`` (CLI options given);
    ``first_seed``: the dataset seed of the first seed (None: the default).

    Raises:
        ValueError: invalid settings (one line).
    """
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    overrides: dict[str, Any] = {**({"seeds": seeds} if seeds is not None else {}), **(weights or {})}
    if first_seed is not None:
        overrides["first_seed"] = first_seed
    settings = QualitySettings.quick(**overrides) if quick else QualitySettings(**overrides)
    options = "".join(f" --{k.replace('_', '-')} {v}" for k, v in (weights or {}).items())
    command = (
        "labelmend bench quality"
        + (" --quick" if quick else "")
        + (f" --seeds {seeds}" if seeds else "")
        + (f" --first-seed {first_seed}" if first_seed is not None else "")
        + options
    )
    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("weights, images and embeddings", total=total_steps(settings))

        def step(message: str) -> None:
            progress.update(task, advance=1, description=message)

        results = run_quality_bench(settings, cache_dir=labelmend_home() / "cache", out_dir=out, step=step,
                                    command=command)  # fmt: skip
    console.print(Markdown(markdown_tables(results)))
    for protocol, ratio in results["ours_over_cleanlab"].items():
        parts = ", ".join(f"{k}: {v:.2f}×" for k, v in ratio.items())
        console.print(f"ours / cleanlab, {protocol}: {parts}")
    console.print(f"wall time {results['wall_seconds']:.0f} s; report, charts and results.json in {out}")


__all__ = ["QualitySettings", "quality_command", "run_quality_bench", "run_seed", "seed_data", "total_steps"]
