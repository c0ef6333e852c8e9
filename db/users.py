"""Accounts of the people who sign in to the app: add, look up, change role, disable, passwords.

Passwords are hashed with argon2id (``argon2-cffi``'s :class:`~argon2.PasswordHasher`, its default
RFC 9106 parameters) and stored only as the PHC string (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``);
the password itself is never stored, logged or put in an error message. :func:`verify_password`
costs one argon2 verification whether or not the name exists, so timing does not tell which names
are accounts. Functions take ``session`` first and never commit.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from db.errors import ConflictError, NotFoundError
from db.models import Role, User, utcnow

log = logging.getLogger(__name__)

#: Shortest password accepted, in characters (NIST SP 800-63B's minimum).
MIN_PASSWORD_CHARS = 8
#: Longest password accepted, in characters (argon2 takes any length; this bounds the work per try).
MAX_PASSWORD_CHARS = 1024
MAX_NAME_CHARS = 200
DEFAULT_HASHER = PasswordHasher()


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash of a random secret with ``hasher``'s parameters, verified when no account matches."""
    return hasher.hash(secrets.token_urlsafe(32))


def check_name(name: str) -> str:
    """``name`` without surrounding spaces.

    Raises:
        ValueError: empty, longer than 200 characters, or with control characters.
    """
    clean = name.strip()
    if not clean:
        raise ValueError("the user name is empty; give a name such as 'ann'")
    if len(clean) > MAX_NAME_CHARS:
        raise ValueError(f"the user name has {len(clean)} characters; use at most {MAX_NAME_CHARS}")
    if any(not ch.isprintable() for ch in clean):
        raise ValueError("the user name contains control characters; use printable characters only")
    return clean


def check_password(password: str) -> str:
    """``password`` unchanged when acceptable (never echoed in an error).

    Raises:
        ValueError: empty, shorter than :data:`MIN_PASSWORD_CHARS` or longer than
            :data:`MAX_PASSWORD_CHARS` characters.
    """
    if not password:
        raise ValueError("the password is empty; give one of at least 8 characters")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password has {len(password)} characters; use at least {MIN_PASSWORD_CHARS}")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"the password has {len(password)} characters; use at most {MAX_PASSWORD_CHARS}")
    return password


def parse_role(role: Role | str) -> Role:
    """``role`` as a :class:`~db.models.Role` (any letter case).

    Raises:
        ValueError: not a role; the message lists the roles.
    """
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ValueError(f"role {role!r} is not one of {roles}; pick one of those") from None


def get_user(session: Session, name: str) -> User:
    """The account called exactly ``name``.

    Raises:
        NotFoundError: no such account (the message says how to list them).
    """
    user = find_user(session, name)
    if user is None:
        raise NotFoundError(f"no user {name!r}; `labelmend user list` shows the accounts")
    return user


def add_user(
    session: Session,
    name: str,
    role: Role | str,
    password: str,
    *,
    email: str | None = None,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> User:
    """Create an active account with an argon2id hash of ``password``.

    Args:
        name: what the user signs in with and what their work is recorded under (stripped).
        role: :class:`~db.models.Role` or its value.
        password: at least :data:`MIN_PASSWORD_CHARS` characters; only its hash is stored.
        email: optional, unique (for single sign-on, not used yet).

    Raises:
        ValueError: bad name, role or password.
        ConflictError: a user with this name (in any letter case) or email exists.
    """
    clean = check_name(name)
    role = parse_role(role)
    check_password(password)
    same = session.scalar(select(User.name).where(func.lower(User.name) == clean.lower()))
    if same is not None:
        raise ConflictError(
            f"user {same!r} already exists; pick another name, or change it with "
            "`labelmend user set-role` / `labelmend user reset-password`"
        )
    if email is not None and session.scalar(select(exists().where(User.email == email))):
        raise ConflictError(f"another user has the email {email!r}; give a different one")
    user = User(name=clean, role=role, password_hash=hasher.hash(password), email=email, active=True)
    session.add(user)
    session.flush()
    log.info("user %r added with role %s", clean, role)
    return user


def list_users(session: Session) -> list[User]:
    """Every account, active or not, by name."""
    return list(session.scalars(select(User).order_by(User.name)))


def has_users(session: Session) -> bool:
    """True when any account exists, active or disabled (the app then requires sign-in: disabling
    every account locks the app rather than opening it)."""
    return bool(session.scalar(select(exists().where(User.id.is_not(None)))))


def find_user(session: Session, name: str) -> User | None:
    """The account called exactly ``name``, or None."""
    return session.scalar(select(User).where(User.name == name))


def set_role(session: Session, name: str, role: Role | str) -> User:
    """Give ``name`` the role ``role``.

    Raises:
        NotFoundError: no such account. ValueError: not a role.
    """
    user = get_user(session, name)
    user.role = parse_role(role)
    session.flush()
    return user


def set_active(session: Session, name: str, active: bool) -> User:
    """Enable or disable ``name``; a disabled user cannot sign in, their past work keeps their name.

    Raises:
        NotFoundError: no such account.
    """
    user = get_user(session, name)
    user.active = active
    session.flush()
    return user


def set_password(
    session: Session, name: str, password: str, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> User:
    """Replace ``name``'s password (stored as a new argon2id hash with a new salt).

    Raises:
        NotFoundError: no such account. ValueError: the password is not acceptable.
    """
    check_password(password)
    user = get_user(session, name)
    user.password_hash = hasher.hash(password)
    session.flush()
    return user


def verify_password(
    session: Session, name: str, password: str, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> User | None:
    """The active account ``name`` when ``password`` is its password, else None.

    Always costs one argon2 verification: an unknown name, a disabled account or one without a
    password (single sign-on only) is checked against a dummy hash, so the time taken does not
    reveal which names exist. On success the hash is renewed when ``hasher``'s parameters
    changed since it was made, and ``last_seen_at`` is set.
    """
    user = find_user(session, name)
    if user is None or not user.active or user.password_hash is None:
        with contextlib.suppress(VerificationError):  # the same work as for an account
            hasher.verify(_dummy_hash(hasher), password or "-")
        return None
    stored = user.password_hash
    try:
        hasher.verify(stored, password)
    except VerificationError:  # VerifyMismatchError included
        return None
    except InvalidHashError:
        log.warning("user %r has a password hash that is not argon2; reset it", name)
        return None
    if hasher.check_needs_rehash(stored):
        user.password_hash = hasher.hash(password)
    user.last_seen_at = utcnow()
    session.flush()
    return user


def touch_last_seen(session: Session, name: str) -> None:
    """Set ``name``'s ``last_seen_at`` to now (no error when the account is gone)."""
    user = find_user(session, name)
    if user is not None:
        user.last_seen_at = utcnow()
        session.flush()


__all__ = [
    "DEFAULT_HASHER",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "add_user",
    "check_name",
    "check_password",
    "find_user",
    "get_user",
    "has_users",
    "list_users",
    "parse_role",
    "set_active",
    "set_password",
    "set_role",
    "touch_last_seen",
    "verify_password",
]
