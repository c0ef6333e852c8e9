"""`labelmend user …` through the real CLI on a real store: passwords from stdin or a hidden
prompt, never echoed; one-line errors."""

from __future__ import annotations

import pytest
from click.testing import Result
from typer.testing import CliRunner

from app.cli import app
from app.store import open_store
from db.models import Role
from db.users import get_user, verify_password

runner = CliRunner()
SECRET = "cli-secret-pass-42"


def _user(url: str, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["user", *args, "--db", url], input=stdin)


def test_add_list_set_role_disable_enable_reset(db_url: str) -> None:
    res = _user(db_url, "add", "ann", "--role", "annotator", "--password-stdin", stdin=SECRET + "\n")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "user 'ann' added as annotator"
    res = _user(db_url, "add", "meg", "--role", "MANAGER", "--password-stdin", stdin=SECRET + "\n")
    assert res.exit_code == 0, res.output

    res = _user(db_url, "list")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["name", "role", "active", "created", "last", "seen"]
    assert lines[1].split()[:3] == ["ann", "annotator", "yes"] and lines[1].endswith("never")
    assert lines[2].split()[:3] == ["meg", "manager", "yes"]
    assert SECRET not in res.output and "argon2" not in res.output

    assert _user(db_url, "set-role", "ann", "manager").output.strip() == "user 'ann' is now manager"
    assert _user(db_url, "disable", "meg").exit_code == 0
    store = open_store(db_url)
    with store.write() as s:
        assert get_user(s, "ann").role is Role.MANAGER
        assert not get_user(s, "meg").active
        assert verify_password(s, "meg", SECRET) is None
    assert _user(db_url, "enable", "meg").exit_code == 0
    res = _user(db_url, "reset-password", "meg", "--password-stdin", stdin="another-pass-99\n")
    assert res.exit_code == 0 and res.output.strip() == "password of user 'meg' changed"
    with store.write() as s:
        assert verify_password(s, "meg", SECRET) is None
        assert verify_password(s, "meg", "another-pass-99") is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_prompt_asks_twice_and_hides_the_password(db_url: str) -> None:
    res = _user(db_url, "add", "ada", "--role", "admin", stdin=f"{SECRET}\n{SECRET}\n")
    assert res.exit_code == 0, res.output
    assert "Password:" in res.output and "Repeat for confirmation:" in res.output
    assert SECRET not in res.output  # typed input is not echoed
    with open_store(db_url).write() as s:
        assert verify_password(s, "ada", SECRET) is not None
    res = _user(
        db_url, "add", "bob", "--role", "admin", stdin=f"{SECRET}\nsomething-else\n{SECRET}\n{SECRET}\n"
    )
    assert res.exit_code == 0, res.output
    assert "The two entered values do not match" in res.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_errors_are_one_line(db_url: str) -> None:
    _user(db_url, "add", "ann", "--role", "annotator", "--password-stdin", stdin=SECRET + "\n")
    res = _user(db_url, "add", "Ann", "--role", "annotator", "--password-stdin", stdin=SECRET + "\n")
    assert res.exit_code != 0 and "user 'ann' already exists" in str(res.exception)
    res = _user(db_url, "add", "new", "--role", "annotator", "--password-stdin", stdin="short\n")
    assert res.exit_code != 0
    assert str(res.exception) == "the password has 5 characters; use at least 8"
    res = _user(db_url, "add", "new", "--role", "annotator", "--password-stdin", stdin="\n")
    assert str(res.exception).startswith("the password is empty")
    res = _user(db_url, "add", "new", "--role", "boss", "--password-stdin", stdin=SECRET + "\n")
    assert res.exit_code == 2 and "boss" in res.output  # Typer lists the roles
    for args in (("disable", "ghost"), ("set-role", "ghost", "admin"), ("reset-password", "ghost")):
        res = _user(db_url, *args, stdin=SECRET + "\n" + SECRET + "\n")
        assert res.exit_code != 0
        assert str(res.exception) == "no user 'ghost'; `labelmend user list` shows the accounts"
        assert "Password" not in res.output  # unknown names fail before asking
