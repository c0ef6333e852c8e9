"""`labelmend import …`, `labelmend export` and `labelmend stats`: label files in and out.

Each import is one transaction (all or nothing); a bad file stops with one line naming
``file:line``, what is wrong and what to do (raised as ``LabelFileError``; ``app.cli.main``
prints it as ``error: …`` and exits 1).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.commands.common import DatasetOption, DbOption, store_for
from db.datasets import get_dataset
from db.io import (
    AbsentPolicy,
    ExportFormat,
    ImportReport,
    export_labels,
    import_coco,
    import_label_json,
    import_openimages,
    import_table,
    write_class_counts_csv,
)
from db.io.tabular import ProgressFn
from db.models import Split
from db.stats import class_counts, n_images

import_app = typer.Typer(
    help="Import labels into a dataset (one transaction: all or nothing).", no_args_is_help=True
)


def _default_author() -> str:
    try:
        return os.environ.get("LABELMEND_AUTHOR") or getpass.getuser()
    except (KeyError, OSError):
        return "import"


def _file(help_text: str) -> Any:
    return typer.Option(exists=True, dir_okay=False, readable=True, help=help_text)


AuthorOption = Annotated[
    str,
    typer.Option(envvar="LABELMEND_AUTHOR", help="Who imports (recorded on labels and audit events)."),
]
ImagesOption = Annotated[
    Path | None,
    typer.Option(
        "--images",
        exists=True,
        file_okay=False,
        help="Image folder; every image in it is registered. Without it, images come from the label rows.",
    ),
]
SplitOption = Annotated[Split, typer.Option(help="Split of newly registered images.")]
ImportDatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help="Dataset name (created if missing).")
]
TableClassesOption = Annotated[
    Path | None, _file("Optional LabelName,DisplayName CSV; then keys must be in it.")
]


@contextmanager
def _progress() -> Iterator[ProgressFn]:
    """A rich progress display on stderr; yields the ``(phase, done, total)`` callback."""
    console = Console(stderr=True)
    tasks: dict[str, TaskID] = {}
    names = {"images": "scanning images", "labels": "reading labels", "merge": "validating and merging"}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:

        def update(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                for task in tasks.values():
                    bar.update(task, completed=bar.tasks[task].total or 1, total=bar.tasks[task].total or 1)
                tasks[phase] = bar.add_task(names.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _report(report: ImportReport) -> None:
    typer.echo(report.summary())
    if report.duplicate_rows:
        typer.echo(f"{report.duplicate_rows:,} duplicate rows collapsed")
    for path, why in report.images_skipped[:20]:
        typer.echo(f"skipped image {path}: {why}", err=True)
    if len(report.images_skipped) > 20:
        typer.echo(f"... and {len(report.images_skipped) - 20} more skipped images", err=True)


def _run_import(
    importer: Callable[..., ImportReport],
    images: Path | None,
    dataset: str,
    split: Split,
    author: str,
    db: str | None,
    **file_options: Any,
) -> None:
    """Run ``importer`` with the options every import command has plus ``file_options``, in one
    write transaction (all or nothing) with a progress display; then print its report."""
    with store_for(db).write() as session, _progress() as progress:
        report = importer(
            session,
            images=images,
            dataset=dataset,
            split=split.value,
            author=author,
            progress=progress,
            **file_options,
        )
    _report(report)


@import_app.command("openimages")
def import_openimages_cmd(
    labels: Annotated[Path, _file("ImageID,Source,LabelName,Confidence CSV (Confidence 1 / 0).")],
    classes: Annotated[Path | None, _file("LabelName,DisplayName CSV (header optional).")] = None,
    images: ImagesOption = None,
    dataset: ImportDatasetOption = "default",
    split: SplitOption = Split.TRAIN,
    splits: Annotated[Path | None, _file("Optional ImageID,Split CSV overriding --split per image.")] = None,
    author: AuthorOption = _default_author(),
    db: DbOption = None,
) -> None:
    """Import OpenImages V6 human-verified image labels, classes and image folder."""
    _run_import(
        import_openimages, images, dataset, split, author, db, labels=labels, classes=classes, splits=splits
    )


@import_app.command("coco")
def import_coco_cmd(
    annotations: Annotated[Path, _file("COCO instances_*.json.")],
    images: ImagesOption = None,
    dataset: ImportDatasetOption = "default",
    absent: Annotated[
        AbsentPolicy, typer.Option(help="Categories without instances in an image: negative or unknown.")
    ] = AbsentPolicy.NEGATIVE,
    split: SplitOption = Split.TRAIN,
    author: AuthorOption = _default_author(),
    db: DbOption = None,
) -> None:
    """Import a COCO instances file as image-level labels (category present = positive)."""
    _run_import(import_coco, images, dataset, split, author, db, annotations=annotations, absent=absent)


@import_app.command("csv")
def import_csv_cmd(
    labels: Annotated[Path, _file("CSV with columns image,label,value (1 / 0).")],
    images: ImagesOption = None,
    classes: TableClassesOption = None,
    dataset: ImportDatasetOption = "default",
    split: SplitOption = Split.TRAIN,
    author: AuthorOption = _default_author(),
    db: DbOption = None,
) -> None:
    """Import a CSV table image,label,value; unknown labels become classes (unless --classes)."""
    _run_import(import_table, images, dataset, split, author, db, labels=labels, classes=classes, fmt="csv")


@import_app.command("parquet")
def import_parquet_cmd(
    labels: Annotated[Path, _file("Parquet with columns image, label (text), value (integer 1 / 0).")],
    images: ImagesOption = None,
    classes: TableClassesOption = None,
    dataset: ImportDatasetOption = "default",
    split: SplitOption = Split.TRAIN,
    author: AuthorOption = _default_author(),
    db: DbOption = None,
) -> None:
    """Import a Parquet table image,label,value; unknown labels become classes (unless --classes)."""
    _run_import(
        import_table, images, dataset, split, author, db, labels=labels, classes=classes, fmt="parquet"
    )


@import_app.command("json")
def import_json_cmd(
    labels: Annotated[Path, _file("JSON written by `labelmend export --format json`.")],
    images: ImagesOption = None,
    dataset: ImportDatasetOption = "default",
    split: SplitOption = Split.TRAIN,
    author: AuthorOption = _default_author(),
    db: DbOption = None,
) -> None:
    """Import labelmend's own JSON export (classes, images, positives / negatives)."""
    _run_import(import_label_json, images, dataset, split, author, db, path=labels)


def export(
    dataset: DatasetOption,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="File format.")],
    out: Annotated[Path, typer.Option(dir_okay=False, help="Output file.")],
    db: DbOption = None,
) -> None:
    """Export the current labels with provenance (source, author, time)."""
    with store_for(db).read() as session:
        report = export_labels(session, dataset=dataset, fmt=fmt, out=out)
    typer.echo(report.summary())


def stats(
    dataset: DatasetOption,
    out: Annotated[Path | None, typer.Option(dir_okay=False, help="Also write the counts as CSV.")] = None,
    db: DbOption = None,
) -> None:
    """Per-class positive / negative / unknown counts."""
    with store_for(db).read() as session:
        ds = get_dataset(session, dataset)
        counts = class_counts(session, ds.id)
        total = n_images(session, ds.id)
    table = Table(title=f"{dataset}: {total:,} images, {len(counts):,} classes")
    for name, justify in (("#", "right"), ("class", "left"), ("name", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name in ("positive", "negative", "unknown"):
        table.add_column(name, justify="right")
    for c in counts:
        table.add_row(
            str(c.position), c.key, c.display_name, f"{c.positive:,}", f"{c.negative:,}", f"{c.unknown:,}"
        )
    Console(markup=False, highlight=False, width=max(100, Console().width)).print(table)
    if out is not None:
        write_class_counts_csv(counts, out)
        typer.echo(f"counts written to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.command()(export)
    app.command()(stats)
