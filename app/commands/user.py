"""`labelmend user …`: accounts for the app's sign-in (add, list, set-role, disable, enable,
reset-password).

The first account turns sign-in on for ``labelmend serve``. Passwords are read from a hidden
prompt (asked twice) or, with ``--password-stdin``, from the first line of standard input; they
are never taken as an argument (it would stay in the shell history and the process list), never
printed, and stored only as an argon2id hash.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.commands.common import DbOption, store_for
from db.models import Role
from db.users import add_user, check_password, get_user, list_users, set_active, set_password, set_role

user_app = typer.Typer(
    name="user",
    help="Accounts for signing in to the app: add, list, set-role, disable, enable, reset-password.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The account's name (what work is recorded under).")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input (for scripts)."
    ),
]


def _read_password(from_stdin: bool) -> str:
    """The new password: stdin's first line (without its line end), or a hidden prompt asked twice.

    Raises:
        ValueError: empty, too short or too long (the password itself is never shown).
    """
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return check_password(password)


def add(
    name: NameArg,
    role: Annotated[Role, typer.Option("--role", "-r", case_sensitive=False, help="What the user may do.")],
    email: Annotated[str | None, typer.Option(help="Optional email address (unique).")] = None,
    password_stdin: PasswordStdin = False,
    db: DbOption = None,
) -> None:
    """Add an account. Roles: annotator (review, class grid, label edits), manager (also train,
    import, export, dataset and models pages), admin (also accounts)."""
    password = _read_password(password_stdin)
    with store_for(db).write() as s:
        user = add_user(s, name, role, password, email=email)
        typer.echo(f"user {user.name!r} added as {user.role.value}")


def list_command(db: DbOption = None) -> None:
    """List the accounts: name, role, active, created and last seen (UTC). Never a password."""
    with store_for(db).read() as s:
        users = list_users(s)
        if not users:
            typer.echo("no users yet: the app runs in single-person mode on 127.0.0.1")
            return
        width = max(len(u.name) for u in users)
        typer.echo(f"{'name':<{width}}  {'role':<9}  {'active':<6}  {'created':<16}  last seen")
        for u in users:
            seen = f"{u.last_seen_at:%Y-%m-%d %H:%M}" if u.last_seen_at else "never"
            typer.echo(
                f"{u.name:<{width}}  {u.role.value:<9}  {'yes' if u.active else 'no':<6}  "
                f"{u.created_at:%Y-%m-%d %H:%M}  {seen}"
            )


def set_role_command(
    name: NameArg,
    role: Annotated[Role, typer.Argument(case_sensitive=False, help="annotator, manager or admin.")],
    db: DbOption = None,
) -> None:
    """Change an account's role (applies to a signed-in session within seconds)."""
    with store_for(db).write() as s:
        user = set_role(s, name, role)
        typer.echo(f"user {user.name!r} is now {user.role.value}")


def disable(name: NameArg, db: DbOption = None) -> None:
    """Disable an account: it cannot sign in, and its open sessions end within seconds."""
    with store_for(db).write() as s:
        set_active(s, name, False)
    typer.echo(f"user {name!r} disabled")


def enable(name: NameArg, db: DbOption = None) -> None:
    """Enable a disabled account again."""
    with store_for(db).write() as s:
        set_active(s, name, True)
    typer.echo(f"user {name!r} enabled")


def reset_password(name: NameArg, password_stdin: PasswordStdin = False, db: DbOption = None) -> None:
    """Give an account a new password."""
    store = store_for(db)
    with store.read() as s:
        get_user(s, name)  # an unknown name fails before the password is asked for
    password = _read_password(password_stdin)
    with store.write() as s:
        set_password(s, name, password)
    typer.echo(f"password of user {name!r} changed")


user_app.command("add")(add)
user_app.command("list")(list_command)
user_app.command("set-role")(set_role_command)
user_app.command("disable")(disable)
user_app.command("enable")(enable)
user_app.command("reset-password")(reset_password)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app)


__all__ = ["register", "user_app"]
