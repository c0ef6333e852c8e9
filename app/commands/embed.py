"""`labelmend embed`: fill the embedding cache of a head-mode cycle, optionally over torchrun processes."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.commands.common import DatasetOption, DbOption
from app.pipeline.config import CycleConfig, WeightsSource, parse_weights

_defaults = CycleConfig(dataset="")
_WEIGHTS = ", ".join(repr(w.value) for w in WeightsSource if w is not WeightsSource.FILE)


def embed(
    dataset: DatasetOption,
    backbone: Annotated[str, typer.Option(help="Any timm model name.")] = _defaults.backbone,
    pretrained: Annotated[
        str, typer.Option(help=f"Initial weights: {_WEIGHTS}, or a checkpoint path (as for `cycle`).")
    ] = _defaults.pretrained.value,
    image_size: Annotated[int, typer.Option(min=16)] = _defaults.image_size,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = _defaults.batch_size,
    workers: Annotated[
        int, typer.Option(min=0, help="Image loading processes per rank.")
    ] = _defaults.workers,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda, mps; under torchrun each rank takes cuda:LOCAL_RANK.")
    ] = _defaults.device,
    seed: Annotated[
        int, typer.Option(help="The cycle's seed (it fixes random 'none' weights).")
    ] = _defaults.seed,
    db: DbOption = None,
) -> None:
    """Embed every image of a dataset into the cache a head-mode `labelmend cycle` reads.

    Give the cycle's --backbone, --pretrained, --image-size and --seed: the cycle then embeds nothing.

    Only images not cached yet are computed; a killed run resumes when run again.

    Shard it over processes with torchrun (each rank writes its own shard, rank 0 merges them):

    torchrun --nproc_per_node 2 -m app.cli embed --dataset DATASET --device cpu

    (or torchrun --nproc_per_node 2 --no-python labelmend embed ...; add --nnodes, --node_rank and
    --rdzv_endpoint for several machines that share LABELMEND_HOME and the database.)
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from app.pipeline.embed import embed_dataset

    weights, weights_file = parse_weights(pretrained)
    config = CycleConfig(
        dataset=dataset, backbone=backbone, pretrained=weights, pretrained_file=weights_file,
        image_size=image_size, batch_size=batch_size, workers=workers, device=device, seed=seed,
    )  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    quiet = os.environ.get("RANK", "0") != "0"  # one bar, rank 0's
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as bar:
        task = bar.add_task("embedding", total=1.0)
        summary = embed_dataset(
            config, db=db, progress=lambda f, m: bar.update(task, completed=f, description=m[:70])
        )
    if summary.rank != 0:
        return
    typer.echo(
        f"{summary.cached} of {summary.images} images cached in {summary.folder} ({summary.computed} computed "
        f"by {summary.world_size} process(es) in {summary.seconds:.1f}s)"
    )
    if summary.skipped:
        first = ", ".join(f"{k} ({v})" for k, v in list(summary.skipped.items())[:5])
        typer.echo(f"{len(summary.skipped)} unreadable images skipped: {first}", err=True)


def register(app: typer.Typer) -> None:
    app.command()(embed)
