"""The ``labelmend`` command line (Typer). Each command's docstring is its help text.

Commands live in ``app/commands/`` (one module per job); this module only assembles them and
turns user-facing errors into one line on stderr with exit code 1.
"""

from __future__ import annotations

import logging
import sys

import typer

from app.commands import register_all
from app.pipeline.home import HomeError
from db.errors import StoreError

app = typer.Typer(
    name="labelmend",
    help="Annotation-aware active labeling for partially labelled multi-label image datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
register_all(app)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
) -> None:
    """labelmend: store partial labels, train with CSL, review likely-missing labels, export."""
    if verbose:
        logging.getLogger().setLevel(logging.INFO)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except (StoreError, ValueError, FileNotFoundError, HomeError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(1)


__all__ = ["app", "main"]


if __name__ == "__main__":
    main()
