"""`labelmend serve`: localhost by default, a warning elsewhere, one-line errors before starting."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.commands.serve import DEFAULT_HOST, is_local_host, streamlit_command
from app.web import MAIN_SCRIPT


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


def test_non_local_host_warns(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the port is taken, so nothing starts after the warning
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["serve", "--host", "0.0.0.0", "--port", str(port), "--db", f"sqlite:///{tmp_path / 's.db'}"]
        )
    assert "warning: serving on 0.0.0.0: the app has no authentication" in result.output
    assert result.exit_code != 0
