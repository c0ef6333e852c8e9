"""`labelmend demo`: generated data, imported; the first cycle queued; worker and app started."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from app.commands.common import DbOption, store_for


def demo(
    images: Annotated[int, typer.Option(min=50, help="Generated images.")] = 2000,
    dataset: Annotated[str, typer.Option(help="Dataset name.")] = "demo",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind (default: this machine only).")] = "127.0.0.1",
    serve_app: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the app.")] = True,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Start a background worker.")] = True,
    db: DbOption = None,
) -> None:
    """Try labelmend in minutes: demo data with partial labels, a retrain cycle, the review app."""
    from app.commands.serve import serve
    from app.demo import prepare_demo

    store = store_for(db)
    typer.echo(f"store: {store.url}")
    info = prepare_demo(store, dataset=dataset, n_images=images)
    typer.echo(
        f"dataset {info.dataset!r} {'created' if info.created else 'already there'} "
        f"(files in {info.folder}); "
        + (
            f"first retrain cycle queued as job {info.job_id}"
            if info.job_id
            else "cycle already queued or run"
        )
    )
    proc = None
    if worker:
        env = {**os.environ, "LABELMEND_HOME": str(store.home.resolve()), "LABELMEND_DB": store.url}
        log = (store.home / "worker.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, stdout=log, stderr=log)
        typer.echo(f"worker started (pid {proc.pid}, log {store.home / 'worker.log'})")
    try:
        if serve_app:
            serve(host=host, port=port, db=store.url)
    finally:
        if proc is not None and serve_app:
            proc.terminate()
            proc.wait(timeout=30)


def register(app: typer.Typer) -> None:
    app.command()(demo)
