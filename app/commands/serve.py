"""`labelmend serve`: run the browser app (Streamlit) on the store, bound to localhost by default.

Who may use it: with no accounts on 127.0.0.1 the app is single-person (no sign-in, ``make run``
stays one command); once an account exists (``labelmend user add``) everyone signs in. Binding
any other address with no accounts refuses to start; ``--no-auth`` serves without sign-in for
people who put an authenticating proxy in front, and says so in a warning.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Annotated

import typer

from app.auth import AUTH_ENV, NO_AUTH_ENV, is_local_host, session_hours
from app.commands.common import DbOption, store_for
from app.web import MAIN_SCRIPT, MAX_UPLOAD_MB
from db.users import has_users

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501


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
    no_auth: bool = False,
) -> subprocess.Popen[bytes]:
    """Start the app on ``host:port`` against the store ``db`` (migrated first); returns the process.

    Args:
        host: address to bind; anything but loopback needs an account, or ``no_auth``.
        port: TCP port.
        db: database URL (``--db`` / ``LABELMEND_DB`` / SQLite under ``LABELMEND_HOME``).
        env: extra environment variables for the app process.
        no_auth: serve without sign-in even when accounts exist (behind an authenticating proxy);
            prints a warning.

    Raises:
        ValueError: the port is taken, the URL is not a database the store can open, a bad
            ``LABELMEND_SESSION_HOURS``, or a non-loopback ``host`` with no account and no
            ``no_auth``.
    """
    store = store_for(db)  # fails here, in one line, on a bad URL; upgrades the schema once
    local = is_local_host(host)
    merged = {**os.environ, **(env or {})}
    session_hours(merged)  # a bad value fails here, in one line, not at the first sign-in
    with store.read() as s:
        accounts = has_users(s)
    if no_auth:
        typer.secho(
            f"warning: --no-auth: the app on {host}:{port} asks nobody to sign in; anyone who reaches "
            "it can read and change every label. Only use it behind a proxy that authenticates users.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    elif not local and not accounts:
        raise ValueError(
            f"not serving on {host} without accounts (anyone who can reach it could change every "
            "label); add one with `labelmend user add NAME --role admin`, or serve on 127.0.0.1"
        )
    elif not local:
        typer.secho(
            f"note: serving on {host} over plain HTTP: passwords cross the network unencrypted "
            "unless a TLS proxy is in front.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    _check_port_free(host, port)
    child_env = {**merged, "LABELMEND_DB": store.url}
    child_env.pop(NO_AUTH_ENV, None)
    if no_auth:
        child_env[NO_AUTH_ENV] = "1"
    elif not local:
        child_env[AUTH_ENV] = "1"  # fail closed: disabling every account later never opens the app
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
    no_auth: bool = False,
) -> int:
    """Run the app until it exits (Ctrl-C, or SIGTERM to this process); returns its exit code.

    Arguments and errors as :func:`start`. SIGTERM is passed on to the app, so stopping
    ``labelmend serve`` never leaves a Streamlit process behind.
    """
    proc = start(host=host, port=port, db=db, env=env, no_auth=no_auth)
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
        typer.Option(
            help="Address to bind; the default serves this machine only. Any other address needs an "
            "account (`labelmend user add`) or --no-auth."
        ),
    ] = DEFAULT_HOST,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Ask nobody to sign in, even with accounts: only behind a proxy that authenticates users.",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Run the browser app: review suggestions, browse labels, retrain, import and export.

    With no account, on 127.0.0.1 only, the app is single-person; once accounts exist everyone
    signs in (LABELMEND_AUTH=1 asks for sign-in on 127.0.0.1 too; a sign-in lasts
    LABELMEND_SESSION_HOURS, default 12)."""
    code = serve(host=host, port=port, db=db, no_auth=no_auth)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_local_host", "register", "serve", "start", "streamlit_command"]
