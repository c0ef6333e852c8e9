"""Signing in to the app in AppTest: accounts on the seeded store and a signed-in AppTest."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.store import Store
from app.web import MAIN_SCRIPT
from db.models import Role
from db.users import add_user

PASSWORD = "team-pass-123"


def add_accounts(store: Store, **roles: Role) -> None:
    """Add an account per ``name=role``, all with :data:`PASSWORD`."""
    with store.write() as s:
        for name, role in roles.items():
            add_user(s, name, role, PASSWORD)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def signed_in(name: str, page: str | None = None) -> AppTest:
    """A fresh AppTest signed in as ``name`` (on ``page`` when given, else the Review page)."""
    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=60)
    ok(at.run())
    at.text_input(key="signin-name").input(name)
    at.text_input(key="signin-password").input(PASSWORD)
    ok(at.button(key="signin-submit").click().run())
    assert "signin-name" not in {w.key for w in at.text_input}, "sign-in failed"
    if page is not None:
        ok(at.switch_page(f"views/{page}.py").run())
    return at


def texts(at: AppTest) -> str:
    """Every piece of text the page shows (markdown, captions, messages, button labels, metrics)."""
    parts = [e.value for e in (*at.markdown, *at.caption, *at.error, *at.info, *at.success, *at.warning)]
    parts += [b.label for b in at.button] + [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


__all__ = ["PASSWORD", "add_accounts", "ok", "signed_in", "texts"]
