"""`labelmend serve`: run the browser app (Streamlit) on the store, bound to localhost by default."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Annotated

import typer

from app.commands.common import DbOption, store_for
from app.web import MAIN_SCRIPT, MAX_UPLOAD_MB

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_local_host(host: str) -> bool:
    """True when ``host`` is a loopback name or address (only this machine can connect)."""
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def streamlit_command(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> list[str]:
    """The command line that runs the app with Streamlit (headless, no usage statistics)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN_SCRIPT),
        "--server.headless",
        "true",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--server.maxUploadSize",
        str(MAX_UPLOAD_MB),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ValueError(
                f"cannot listen on {host}:{port} ({err.strerror}); choose another --port or stop what uses it"
            ) from None


def start(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    db: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the app on ``host:port`` against the store ``db`` (migrated first); returns the process.

    Args:
        host: address to bind; anything but loopback prints a warning (the app has no login).
        port: TCP port.
        db: database URL (``--db`` / ``LABELMEND_DB`` / SQLite under ``LABELMEND_HOME``).
        env: extra environment variables for the app process.

    Raises:
        ValueError: the port is taken, or the URL is not a database the store can open.
    """
    store = store_for(db)  # fails here, in one line, on a bad URL; upgrades the schema once
    if not is_local_host(host):
        typer.secho(
            f"warning: serving on {host}: the app has no authentication — anyone who can reach "
            f"{host}:{port} can read and change every label. Use 127.0.0.1 unless the network is trusted.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    _check_port_free(host, port)
    child_env = {**os.environ, **(env or {}), "LABELMEND_DB": store.url}
    proc = subprocess.Popen(streamlit_command(host, port), env=child_env)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"labelmend app on http://{shown}:{port} (store: {store.engine.url!r}); Ctrl-C stops it")
    return proc


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    db: str | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run the app until it exits (Ctrl-C, or SIGTERM to this process); returns its exit code.

    Arguments and errors as :func:`start`. SIGTERM is passed on to the app, so stopping
    ``labelmend serve`` never leaves a Streamlit process behind.
    """
    proc = start(host=host, port=port, db=db, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_command(
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = DEFAULT_PORT,
    host: Annotated[
        str,
        typer.Option(help="Address to bind; the default serves this machine only (the app has no login)."),
    ] = DEFAULT_HOST,
    db: DbOption = None,
) -> None:
    """Run the browser app: review suggestions, browse labels, retrain, import and export."""
    code = serve(host=host, port=port, db=db)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_local_host", "register", "serve", "start", "streamlit_command"]
