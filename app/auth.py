"""Who may do what in the app: permissions by role, the caller's identity, sign-in throttling.

Roles build on each other (``db.models.Role``):

=============  =====================================================================
annotator      Review, Class grid, Image (see images, change labels), own figures
manager        also Train, Import, Export, Dataset, Models, everyone's figures, adjudication
admin          also user accounts
=============  =====================================================================

:func:`require` is called inside the functions the pages call (``app.web.guarded``, the action
bar's callback, the image server), so a role is enforced on the server even for a crafted
request, not only by hiding buttons. In single-person mode (no accounts, app on this machine
only) the person at the keyboard has every permission.

Streamlit-free: the app keeps the identity in its session state (``app.web.state``).
"""

from __future__ import annotations

import enum
import ipaddress
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from db.models import Role


class Permission(enum.StrEnum):
    """One thing a page lets a user do or see."""

    REVIEW = "review"
    """Decide suggestions (Review page, Class grid)."""
    VIEW_IMAGES = "view images"
    """See the current dataset's images and labels."""
    EDIT_LABELS = "edit labels"
    """Change a label on the Image page."""
    VIEW_OWN_FIGURES = "view own figures"
    TRAIN = "train"
    """Queue or cancel a retrain cycle, start a worker."""
    IMPORT = "import"
    EXPORT = "export"
    VIEW_DATASET = "view dataset"
    """The Dataset page's label counts, priors and suggestion outcomes."""
    VIEW_MODELS = "view models"
    """The Models page: runs, mAP, audit figures."""
    VIEW_ALL_FIGURES = "view everyone's figures"
    ADJUDICATE = "adjudicate"
    MANAGE_USERS = "manage users"


_ANNOTATOR = frozenset(
    {Permission.REVIEW, Permission.VIEW_IMAGES, Permission.EDIT_LABELS, Permission.VIEW_OWN_FIGURES}
)
_MANAGER = _ANNOTATOR | {
    Permission.TRAIN,
    Permission.IMPORT,
    Permission.EXPORT,
    Permission.VIEW_DATASET,
    Permission.VIEW_MODELS,
    Permission.VIEW_ALL_FIGURES,
    Permission.ADJUDICATE,
}
#: What each role may do; each role has everything the one before it has.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ANNOTATOR: _ANNOTATOR,
    Role.MANAGER: frozenset(_MANAGER),
    Role.ADMIN: frozenset(_MANAGER | {Permission.MANAGE_USERS}),
}


class PermissionDenied(Exception):
    """The caller may not do this; the message is one line naming who, what and whom to ask."""


@dataclass(frozen=True)
class Identity:
    """Who is calling: the name work is recorded under and the role that decides what they may do.

    Attributes:
        name: the signed-in account's name; in single-person mode the name typed in the sidebar
            ('' until given).
        role: the account's role; single-person mode acts as :attr:`Role.ADMIN`.
        single_person: True in single-person mode (no accounts, app on this machine only).
    """

    name: str
    role: Role
    single_person: bool = False

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def single_person(name: str = "") -> Identity:
    """The identity of single-person mode: every permission, work recorded under ``name``."""
    return Identity(name=name, role=Role.ADMIN, single_person=True)


def require(identity: Identity | None, permission: Permission) -> Identity:
    """``identity`` when it has ``permission``.

    Raises:
        PermissionDenied: nobody is signed in, or the role lacks ``permission``.
    """
    if identity is None:
        raise PermissionDenied(f"not signed in; sign in to {permission.value}")
    if not identity.can(permission):
        raise PermissionDenied(
            f"{identity.name!r} ({identity.role.value}) may not {permission.value}; "
            "ask a manager to do it or to change your role"
        )
    return identity


def is_local_host(host: str) -> bool:
    """True when ``host`` is a loopback name or address (only this machine can connect)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- settings from the environment -------------------------------------------------------------

AUTH_ENV = "LABELMEND_AUTH"
NO_AUTH_ENV = "LABELMEND_NO_AUTH"
SESSION_HOURS_ENV = "LABELMEND_SESSION_HOURS"
DEFAULT_SESSION_HOURS = 12.0
_TRUE = frozenset({"1", "true", "yes", "on"})


def env_flag(name: str, env: Mapping[str, str] | None = None) -> bool:
    """True when the environment variable ``name`` is ``1``, ``true``, ``yes`` or ``on``."""
    return (env if env is not None else os.environ).get(name, "").strip().lower() in _TRUE


def session_hours(env: Mapping[str, str] | None = None) -> float:
    """How long a sign-in lasts, in hours: ``LABELMEND_SESSION_HOURS`` (default 12).

    Raises:
        ValueError: not a positive number.
    """
    raw = (env if env is not None else os.environ).get(SESSION_HOURS_ENV, "").strip()
    if not raw:
        return DEFAULT_SESSION_HOURS
    try:
        hours = float(raw)
    except ValueError:
        hours = math.nan
    if not (math.isfinite(hours) and hours > 0):
        raise ValueError(f"{SESSION_HOURS_ENV}={raw!r} is not a positive number of hours; e.g. 12")
    return hours


# --- sign-in throttling -------------------------------------------------------------------------


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0  # time.monotonic() of the last failure


@dataclass
class SignInThrottle:
    """Slows repeated failed sign-ins, per account name and per client, in this process.

    After ``per_name`` failures for one name (or ``per_client`` from one client, whatever the
    name) within ``window_s``, the next try must wait ``base_s`` seconds after the last failure,
    doubling with each further failure up to ``max_s``. A success clears the name's count (not the
    client's, so one known password cannot reset a client's guessing). Thread-safe: Streamlit runs
    each browser session in its own thread. Times are seconds of :func:`time.monotonic`.
    """

    per_name: int = 4
    per_client: int = 20
    base_s: float = 5.0
    max_s: float = 60.0
    window_s: float = 900.0
    max_keys: int = 10_000
    _seen: dict[tuple[str, str], _Failures] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _delay(self, failures: _Failures | None, limit: int, now: float) -> float:
        if failures is None or failures.count < limit or now - failures.last > self.window_s:
            return 0.0
        wait = min(self.base_s * 2.0 ** (failures.count - limit), self.max_s)
        return max(0.0, failures.last + wait - now)

    def wait_s(self, name: str, client: str, now: float | None = None) -> float:
        """Seconds before ``name`` may try again from ``client`` (0 = may try now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return max(
                self._delay(self._seen.get(("name", name)), self.per_name, now),
                self._delay(self._seen.get(("client", client)), self.per_client, now),
            )

    def failed(self, name: str, client: str, now: float | None = None) -> None:
        """Count one failed sign-in of ``name`` from ``client``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._seen) >= self.max_keys:
                self._forget_old(now)
            for key in (("name", name), ("client", client)):
                entry = self._seen.get(key)
                if entry is None or now - entry.last > self.window_s:
                    entry = self._seen[key] = _Failures()
                entry.count += 1
                entry.last = now

    def succeeded(self, name: str) -> None:
        """Clear ``name``'s failures after a correct password."""
        with self._lock:
            self._seen.pop(("name", name), None)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def _forget_old(self, now: float) -> None:
        old = [k for k, v in self._seen.items() if now - v.last > self.window_s]
        for key in old or sorted(self._seen, key=lambda k: self._seen[k].last)[: self.max_keys // 10]:
            del self._seen[key]


#: The app process's throttle (one per process, shared by every browser session).
THROTTLE = SignInThrottle()


__all__ = [
    "AUTH_ENV",
    "DEFAULT_SESSION_HOURS",
    "NO_AUTH_ENV",
    "ROLE_PERMISSIONS",
    "SESSION_HOURS_ENV",
    "THROTTLE",
    "Identity",
    "Permission",
    "PermissionDenied",
    "SignInThrottle",
    "env_flag",
    "is_local_host",
    "require",
    "session_hours",
    "single_person",
]
