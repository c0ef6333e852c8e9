"""CLI command modules; each exposes ``register(app: typer.Typer) -> None``.

The app's own commands are listed in :data:`MODULES`. Other packages add commands through the
``labelmend.commands`` entry-point group (``name = "package.module:register"``); the benchmarks
(top-level ``bench/``) join that way, so ``app`` never imports the layer above it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import typer

# Order is the order in `labelmend --help`.
MODULES = ["store", "io", "review", "cycle", "embed", "worker", "serve", "user", "demo"]
ENTRY_POINT_GROUP = "labelmend.commands"


def register_all(app: typer.Typer) -> None:
    """Register the app's commands, then every ``labelmend.commands`` entry point.

    Raises:
        ImportError: a command module (ours or an entry point's) fails to import; never skipped.
    """
    for name in MODULES:
        importlib.import_module(f"app.commands.{name}").register(app)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()(app)
