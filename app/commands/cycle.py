"""`labelmend cycle` and `labelmend predict`: train, score and suggest from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from app.commands.common import DatasetOption, DbOption, store_for
from app.pipeline.config import (
    CycleConfig,
    PriorSource,
    TrainMode,
    WeightsSource,
    parse_prior,
    parse_weights,
)
from core.losses.catalog import LossName

_defaults = CycleConfig(dataset="")
_WEIGHTS = ", ".join(repr(w.value) for w in WeightsSource if w is not WeightsSource.FILE)
_PRIORS = ", ".join(p.value for p in PriorSource)


def cycle(
    dataset: DatasetOption,
    backbone: Annotated[str, typer.Option(help="Any timm model name.")] = _defaults.backbone,
    pretrained: Annotated[
        str,
        typer.Option(
            help=f"Initial weights: {_WEIGHTS} (packaged: ImageNet "
            "weights from a pip package, offline), or a checkpoint path."
        ),
    ] = _defaults.pretrained.value,
    mode: Annotated[
        TrainMode, typer.Option(help="head: cached embeddings (CPU); finetune: whole network.")
    ] = _defaults.mode,
    loss: Annotated[LossName, typer.Option(help="Loss preset of the target model.")] = _defaults.loss,
    prior: Annotated[
        str | None,
        typer.Option(
            help=f"Class prior source: {_PRIORS} (default {_defaults.prior.value}; file needs "
            "--prior-file PATH, or write file:PATH here)."
        ),
    ] = None,
    prior_file: Annotated[
        Path | None,
        typer.Option(help="Classes,avg_pred CSV of class priors (implies --prior file).", dir_okay=False),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = _defaults.epochs,
    image_size: Annotated[int, typer.Option(min=16)] = _defaults.image_size,
    batch_size: Annotated[int, typer.Option(min=1)] = _defaults.batch_size,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default: per mode).")] = None,
    folds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Cross-fitting folds for scoring unknown cells (1 = none; see `labelmend bench folds`).",
        ),
    ] = _defaults.folds,
    prior_folds: Annotated[
        int, typer.Option(min=1, help="Cross-fitting folds of the prior model (1 = none).")
    ] = _defaults.prior_folds,
    top_suggestions: Annotated[int, typer.Option(min=0)] = _defaults.top_suggestions,
    audit_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Share of the review queue (0–0.5) drawn at random from the unknown cells instead of by "
            "score, shown like any suggestion; its reviews measure the ranking's precision and each "
            "class's missing-positive rate (Models page). 0 = none.",
        ),
    ] = _defaults.audit_share,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps.")] = _defaults.device,
    seed: int = _defaults.seed,
    workers: Annotated[int, typer.Option(min=0, help="Image loading processes.")] = _defaults.workers,
    queue: Annotated[bool, typer.Option("--queue", help="Queue it for `labelmend worker` instead.")] = False,
    db: DbOption = None,
) -> None:
    """Run one retrain cycle: prior model, priors, target model, partial mAP, ranked suggestions."""
    from app.pipeline.cycle import run_cycle

    prior_source, prior_path = _prior_option(prior, prior_file)
    weights, weights_file = parse_weights(pretrained)
    config = CycleConfig(
        dataset=dataset, backbone=backbone, pretrained=weights, pretrained_file=weights_file, mode=mode,
        loss=loss, prior=prior_source, prior_file=prior_path, epochs=epochs, image_size=image_size,
        batch_size=batch_size, lr=lr, folds=folds, prior_folds=prior_folds, top_suggestions=top_suggestions,
        audit_share=audit_share, device=device, seed=seed, workers=workers,
    )  # fmt: skip
    store = store_for(db)
    if queue:
        import getpass

        from db.datasets import get_dataset
        from db.jobs import enqueue

        with store.write() as s:  # recorded under the login name, as the app records its user
            job = enqueue(s, "cycle", config.to_dict(), dataset_id=get_dataset(s, dataset).id,
                          created_by=getpass.getuser())  # fmt: skip
        typer.echo(f"cycle queued as job {job.id}; run `labelmend worker` to start it")
        return
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task("cycle", total=1.0)

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, description=message[:70])

        result = run_cycle(store, config, progress=progress)
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    typer.echo(
        f"cycle done: target run {result.target_run_id}, partial mAP {result.partial_map:.2f} "
        f"(prior model {result.prior_partial_map:.2f}), {result.n_suggestions} suggestions stored\n"
        f"stages: {stages}"
    )
    if result.skipped_images:
        first = ", ".join(f"{k} ({v})" for k, v in list(result.skipped_images.items())[:5])
        typer.echo(f"{len(result.skipped_images)} unreadable images skipped: {first}", err=True)


def _prior_option(prior: str | None, prior_file: Path | None) -> tuple[PriorSource, Path | None]:
    """``--prior`` and ``--prior-file`` → (source, file); ``--prior-file`` alone means ``--prior file``."""
    if prior is None:
        return (PriorSource.FILE, prior_file) if prior_file is not None else (_defaults.prior, None)
    source, path = parse_prior(prior)
    if path is not None and prior_file is not None:
        raise ValueError(f"--prior {prior} and --prior-file {prior_file} both name a file; give one")
    return source, path if path is not None else prior_file


def predict(
    dataset: DatasetOption,
    images: Annotated[Path, typer.Option(help="Folder of new images (file stem = ImageID).")],
    out: Annotated[Path, typer.Option(help="Output CSV: ImageID,LabelName,Score.")],
    run: Annotated[int | None, typer.Option("--run", help="Target run id (default: the latest).")] = None,
    device: str = "auto",
    db: DbOption = None,
) -> None:
    """Score every class for new images with a trained run."""
    from app.pipeline.predict import predict_folder

    n_images, n_rows, skipped = predict_folder(store_for(db), dataset, images, out, run_id=run, device=device)
    typer.echo(f"{n_rows} scores for {n_images} images written to {out}")
    if skipped:
        typer.echo(f"{len(skipped)} unreadable images skipped: {', '.join(list(skipped)[:5])}", err=True)


def register(app: typer.Typer) -> None:
    app.command()(cycle)
    app.command()(predict)
