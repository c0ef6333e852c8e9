"""Accounts: argon2id hashes, one-line errors, verification, rehash, and no password in the store."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from db.errors import ConflictError, NotFoundError
from db.models import Role, User
from db.users import (
    add_user,
    get_user,
    has_users,
    list_users,
    parse_role,
    set_active,
    set_password,
    set_role,
    touch_last_seen,
    verify_password,
)

PASSWORD = "tr0ub4dor&3-horse"


def test_add_stores_an_argon2id_hash_and_verifies(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        assert not has_users(s)
        user = add_user(s, "  ann ", "annotator", PASSWORD)
        assert user.name == "ann" and user.role is Role.ANNOTATOR and user.active
    with sm.begin() as s:
        stored = get_user(s, "ann")
        assert stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$v=19$")
        assert PASSWORD not in stored.password_hash
        assert stored.created_at is not None and stored.last_seen_at is None
        assert has_users(s)
    with sm.begin() as s:
        assert verify_password(s, "ann", "wrong password") is None
        assert verify_password(s, "nobody", PASSWORD) is None
        assert verify_password(s, "ANN", PASSWORD) is None  # names are exact
        ok = verify_password(s, "ann", PASSWORD)
        assert ok is not None and ok.name == "ann"
    with sm.begin() as s:
        assert get_user(s, "ann").last_seen_at is not None


def test_same_password_gets_a_different_salt(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        a = add_user(s, "a", Role.MANAGER, PASSWORD)
        b = add_user(s, "b", Role.MANAGER, PASSWORD)
        assert a.password_hash != b.password_hash


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("", PASSWORD, "the user name is empty"),
        ("x" * 201, PASSWORD, "use at most 200"),
        ("tab\there", PASSWORD, "control characters"),
        ("ok", "", "the password is empty"),
        ("ok", "short", "the password has 5 characters; use at least 8"),
        ("ok", "x" * 1025, "use at most 1024"),
    ],
)
def test_bad_name_or_password_is_a_one_line_error(
    sm: sessionmaker[Session], name: str, password: str, message: str
) -> None:
    with sm.begin() as s, pytest.raises(ValueError, match=message) as err:
        add_user(s, name, Role.ANNOTATOR, password)
    assert "\n" not in str(err.value)
    if password:
        assert password not in str(err.value)


def test_duplicate_name_in_any_case_and_bad_role(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        add_user(s, "Ann", Role.ANNOTATOR, PASSWORD, email="ann@example.org")
    with sm.begin() as s, pytest.raises(ConflictError, match="user 'Ann' already exists"):
        add_user(s, "ann", Role.ANNOTATOR, PASSWORD)
    with sm.begin() as s, pytest.raises(ConflictError, match="another user has the email"):
        add_user(s, "bob", Role.ANNOTATOR, PASSWORD, email="ann@example.org")
    with pytest.raises(ValueError, match="role 'boss' is not one of annotator, manager, admin"):
        parse_role("boss")
    assert parse_role(" Manager ") is Role.MANAGER


def test_unknown_user_is_a_one_line_error(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        for change in (
            lambda: set_role(s, "ghost", Role.ADMIN),
            lambda: set_active(s, "ghost", False),
            lambda: set_password(s, "ghost", PASSWORD),
            lambda: get_user(s, "ghost"),
        ):
            with pytest.raises(NotFoundError, match=r"no user 'ghost'; `labelmend user list` shows"):
                change()
        touch_last_seen(s, "ghost")  # no error: a session of a removed account just ends


def test_role_disable_and_password_reset(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        add_user(s, "bob", Role.ANNOTATOR, PASSWORD)
        add_user(s, "ada", Role.ADMIN, PASSWORD)
    with sm.begin() as s:
        assert set_role(s, "bob", "manager").role is Role.MANAGER
        set_active(s, "bob", False)
    with sm.begin() as s:
        assert verify_password(s, "bob", PASSWORD) is None  # disabled
        assert has_users(s)
        assert [(u.name, u.role, u.active) for u in list_users(s)] == [
            ("ada", Role.ADMIN, True),
            ("bob", Role.MANAGER, False),
        ]
        set_active(s, "bob", True)
        set_password(s, "bob", "a new pass phrase")
    with sm.begin() as s:
        assert verify_password(s, "bob", PASSWORD) is None
        assert verify_password(s, "bob", "a new pass phrase") is not None


def test_disabling_every_account_keeps_sign_in_required(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        add_user(s, "bob", Role.ANNOTATOR, PASSWORD)
        set_active(s, "bob", False)
    with sm.begin() as s:
        assert has_users(s)


def test_hash_is_renewed_when_parameters_change(sm: sessionmaker[Session]) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    strong = PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1)
    with sm.begin() as s:
        add_user(s, "old", Role.ANNOTATOR, PASSWORD, hasher=weak)
    with sm.begin() as s:
        before = get_user(s, "old").password_hash
        assert before is not None and "m=8192,t=1,p=1" in before
        assert verify_password(s, "old", PASSWORD, hasher=strong) is not None
    with sm.begin() as s:
        after = get_user(s, "old").password_hash
        assert after is not None and "m=16384,t=2,p=1" in after
        assert verify_password(s, "old", PASSWORD, hasher=strong) is not None
        assert get_user(s, "old").password_hash == after  # not renewed again


def test_sso_only_account_cannot_sign_in_with_a_password(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        s.add(User(name="sso", role=Role.ANNOTATOR, password_hash=None, email="sso@example.org"))
    with sm.begin() as s:
        assert verify_password(s, "sso", "") is None
        assert verify_password(s, "sso", PASSWORD) is None


def test_password_never_in_the_database_or_the_logs(
    engine: Engine, sm: sessionmaker[Session], db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Zq9-unique-secret-7781"
    caplog.set_level(logging.DEBUG)
    with sm.begin() as s:
        add_user(s, "carol", Role.MANAGER, secret)
    with sm.begin() as s:
        set_password(s, "carol", secret + "-2")
        assert verify_password(s, "carol", secret) is None
        assert verify_password(s, "carol", secret + "-2") is not None
    with sm.begin() as s:
        rows = [str(tuple(r)) for r in s.execute(select(User.__table__))]
    assert rows and not any(secret in r for r in rows)
    assert secret not in caplog.text
    if make_url(db_url).get_backend_name() == "sqlite":
        engine.dispose()  # the last connection checkpoints the WAL into the file
        path = Path(make_url(db_url).database or "")
        for f in path.parent.glob(path.name + "*"):  # the file, and any -wal / -shm left
            data = f.read_bytes()
            assert secret.encode() not in data, f
            assert secret.encode("utf-16-le") not in data, f
