"""`labelmend review` and `labelmend suggestions`: the review queue from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.commands.common import DatasetOption, DbOption, store_for
from app.pipeline.review import apply_decisions, write_suggestions_csv


def review(
    dataset: DatasetOption,
    decisions: Annotated[Path, typer.Option(help="CSV with columns ImageID,LabelName,Decision.")],
    annotator: Annotated[str, typer.Option(help="Who decided (recorded in the audit log).")],
    db: DbOption = None,
) -> None:
    """Apply review decisions (accept / reject / skip) exactly as the app does; all or nothing."""
    with store_for(db).write() as session:
        report = apply_decisions(session, dataset, decisions, annotator)
    typer.echo(
        f"{report.total} decisions applied: {report.accepted} accepted, {report.rejected} rejected, "
        f"{report.skipped} skipped"
    )


def suggestions(
    dataset: DatasetOption,
    out: Annotated[Path, typer.Option(help="Output CSV: ImageID,LabelName,Score,Prior,Rank.")],
    class_: Annotated[
        str | None, typer.Option("--class", help="Only this class (id or unique name).")
    ] = None,
    top: Annotated[int | None, typer.Option(help="At most this many, best first.")] = None,
    db: DbOption = None,
) -> None:
    """Write the pending likely-missing labels, highest class-aware likelihood first."""
    with store_for(db).read() as session:
        n = write_suggestions_csv(session, dataset, out, class_key=class_, top=top)
    typer.echo(f"{n} suggestions written to {out}")


def register(app: typer.Typer) -> None:
    app.command()(review)
    app.command()(suggestions)
