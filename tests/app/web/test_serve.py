"""`labelmend serve`: localhost by default; elsewhere only with accounts (or --no-auth, with a
warning); one-line errors before starting."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from app.cli import app
from app.commands.serve import DEFAULT_HOST, is_local_host, streamlit_command
from app.store import open_store
from app.web import MAIN_SCRIPT
from db.models import Role
from db.users import add_user


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True), ("0.0.0.0", False),
     ("192.168.1.5", False), ("::", False), ("example.org", False)],
)  # fmt: skip
def test_is_local_host(host: str, local: bool) -> None:
    assert is_local_host(host) is local


def test_streamlit_command_is_headless_and_bound() -> None:
    cmd = streamlit_command("127.0.0.1", 8765)
    assert cmd[1:5] == ["-m", "streamlit", "run", str(MAIN_SCRIPT)]
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.headless"] == "true"
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "8765"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert DEFAULT_HOST == "127.0.0.1"


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 's.db'}"]
        )
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError)
    assert f"cannot listen on 127.0.0.1:{port}" in str(result.exception)
    assert "choose another --port" in str(result.exception)


def _serve_on_taken_port(host: str, db: str, *extra: str) -> Result:
    """``labelmend serve`` on a port already taken, so nothing starts even past the checks."""
    with socket.socket() as taken:
        taken.bind((host, 0))
        taken.listen()
        port = taken.getsockname()[1]
        return CliRunner().invoke(app, ["serve", "--host", host, "--port", str(port), "--db", db, *extra])


def test_non_local_host_without_accounts_refuses(tmp_path: Path) -> None:
    result = _serve_on_taken_port("0.0.0.0", f"sqlite:///{tmp_path / 's.db'}")
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError)
    message = str(result.exception)
    assert "\n" not in message
    assert message.startswith("not serving on 0.0.0.0 without accounts")
    assert "labelmend user add NAME --role admin" in message


def test_non_local_host_with_an_account_passes_the_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url).write() as s:
        add_user(s, "ada", Role.ADMIN, "correct horse battery")
    result = _serve_on_taken_port("0.0.0.0", url)
    assert "over plain HTTP" in result.output
    assert result.exit_code != 0
    assert "cannot listen on 0.0.0.0" in str(result.exception)  # got as far as binding


def test_no_auth_warns_and_passes_the_check(tmp_path: Path) -> None:
    result = _serve_on_taken_port("0.0.0.0", f"sqlite:///{tmp_path / 's.db'}", "--no-auth")
    assert "warning: --no-auth: the app on 0.0.0.0" in result.output
    assert "cannot listen on 0.0.0.0" in str(result.exception)


def test_bad_session_hours_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELMEND_SESSION_HOURS", "soon")
    result = _serve_on_taken_port("127.0.0.1", f"sqlite:///{tmp_path / 's.db'}")
    assert isinstance(result.exception, ValueError)
    assert "LABELMEND_SESSION_HOURS='soon' is not a positive number of hours" in str(result.exception)
