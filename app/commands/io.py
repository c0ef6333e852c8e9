"""`labelmend import …`, `labelmend export` and `labelmend stats`: label files in and out.

``labelmend import FORMAT`` has one command per :class:`db.io.ImportFormat`, generated from the
importers table (:data:`db.io.importers.IMPORTERS`: the label file's option and help, and whether
the format takes ``--classes``, ``--splits`` or ``--absent``); a new format gets its command
without code here. Each import is one transaction (all or nothing); a bad file stops with one line
naming ``file:line``, what is wrong and what to do (raised as ``LabelFileError``; ``app.cli.main``
prints it as ``error: …`` and exits 1).
"""

from __future__ import annotations

import getpass
import inspect
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
    ImportFormat,
    ImportReport,
    export_labels,
    import_labels,
    importer_for,
    record_export,
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
SplitsOption = Annotated[Path | None, _file("Optional ImageID,Split CSV overriding --split per image.")]
AbsentOption = Annotated[
    AbsentPolicy, typer.Option(help="Categories without instances in an image: negative or unknown.")
]
ImportDatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help="Dataset name (created if missing).")
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


def _option(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _import_command(fmt: ImportFormat) -> Callable[..., None]:
    """The ``labelmend import <fmt>`` command: its options are those the format's table entry takes.

    Options, in order: ``--<file_option>`` (required), ``--classes`` (if the format takes one),
    ``--images``, ``--dataset``, ``--absent`` (COCO), ``--split``, ``--splits`` (OpenImages),
    ``--author``, ``--db``. The body runs :func:`db.io.import_labels` in one write transaction
    with a progress display, then prints the report.
    """
    entry = importer_for(fmt)

    def command(**options: Any) -> None:
        labels, db = options.pop(entry.file_option), options.pop("db")
        with store_for(db).write() as session, _progress() as progress:
            report = import_labels(session, fmt, labels=labels, progress=progress, **options)
        _report(report)

    params = [_option(entry.file_option, Annotated[Path, _file(entry.file_help)])]
    if entry.classes_help is not None:
        params.append(_option("classes", Annotated[Path | None, _file(entry.classes_help)], None))
    params += [_option("images", ImagesOption, None), _option("dataset", ImportDatasetOption, "default")]
    if entry.absent:
        params.append(_option("absent", AbsentOption, AbsentPolicy.NEGATIVE))
    params.append(_option("split", SplitOption, Split.TRAIN))
    if entry.splits:
        params.append(_option("splits", SplitsOption, None))
    params += [_option("author", AuthorOption, _default_author()), _option("db", DbOption, None)]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = command.__qualname__ = f"import_{fmt.value}"
    command.__doc__ = entry.summary
    return command


for _fmt in ImportFormat:
    import_app.command(_fmt.value)(_import_command(_fmt))


def export(
    dataset: DatasetOption,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="File format.")],
    out: Annotated[Path, typer.Option(dir_okay=False, help="Output file.")],
    db: DbOption = None,
) -> None:
    """Export the current labels with provenance (source, author, time); recorded under the login name."""
    import getpass

    store = store_for(db)
    with store.read() as session:
        report = export_labels(session, dataset=dataset, fmt=fmt, out=out)
    with store.write() as session:
        record_export(session, report, getpass.getuser())
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
