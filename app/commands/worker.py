"""`labelmend worker`: run queued jobs (retrain cycles, exports) from the store."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from app.commands.common import DbOption, store_for
from app.worker import Worker


def worker(
    db: DbOption = None,
    once: Annotated[bool, typer.Option("--once", help="Run at most one job, then exit.")] = False,
    stale_s: Annotated[float, typer.Option(help="Requeue running jobs silent for this many seconds.")] = 60.0,
    heartbeat_s: Annotated[float, typer.Option(help="Seconds between heartbeats of a running job.")] = 5.0,
) -> None:
    """Run queued jobs one at a time until interrupted (Ctrl-C)."""
    logging.getLogger().setLevel(logging.INFO)
    w = Worker(store_for(db), stale_s=stale_s, heartbeat_s=heartbeat_s)
    typer.echo(f"worker {w.name} watching {w.store.url}")
    if once:
        job_id = w.run_once()
        typer.echo("no queued job" if job_id is None else f"job {job_id} done")
        return
    try:
        n = w.run_forever()
    except KeyboardInterrupt:
        typer.echo("worker stopped")
        return
    typer.echo(f"{n} jobs done")


def register(app: typer.Typer) -> None:
    app.command()(worker)
