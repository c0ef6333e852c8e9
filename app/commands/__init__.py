"""CLI command modules; each exposes ``register(app: typer.Typer) -> None``."""

from __future__ import annotations

import importlib

import typer

# Order is the order in `labelmend --help`.
MODULES = ["store", "io", "review", "cycle", "worker", "serve", "demo", "bench"]


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(f"app.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"app.commands.{name}":
                continue  # a command module not written yet
            raise
        module.register(app)
