"""Review-queue latency at scale: how long the Review page takes to get the next suggestion.

:func:`make_queue_store` builds a dataset with images, classes and a finished target run;
:func:`seed_pending` adds N pending suggestions to that run fast (COPY on PostgreSQL, batched
executemany on SQLite, both through :func:`db.bulk.load_rows`); :func:`review_next_latency` then
walks the queue the way a reviewer does (accept, reject, skip, pass) and times what the Review
page runs for "next": :func:`db.review.claim_next` and :func:`db.queries.suggestion_view` in one
write transaction (``Store.write``), commit included. It also EXPLAINs the exact SELECT that
``claim_next`` sent and reports which index the plan uses.

Times are wall milliseconds. Speed is measured here (``labelmend bench queue``), not in tests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from db import scale
from db.bulk import dialect, load_rows
from db.datasets import classes, ensure_classes, get_dataset, get_or_create_dataset
from db.engine import make_sessionmaker
from db.errors import NotFoundError
from db.models import RunKind, utcnow
from db.queries import pending_count, suggestion_view
from db.review import Decision, claim_next, decide, release_one
from db.runs import create_run, finish_run, get_run, list_runs

#: Rows generated and written per chunk by :func:`seed_pending` (bounds memory at any N).
SEED_CHUNK = 1_000_000
_SEED_COLUMNS = (
    "run_id",
    "dataset_id",
    "image_id",
    "class_id",
    "score",
    "prob",
    "prior",
    "rank",
    "status",
    "version",
)
#: What the timed reviewer does after each "next", in turn; ``pass`` moves on without deciding
#: (the page's → key), so the suggestion joins the ``exclude`` list of later calls.
MOVES: tuple[str, ...] = ("accept", "skip", "reject", "pass", "skip")


@dataclass(frozen=True)
class QueueStore:
    """A dataset made for the queue benchmark: its id, its target run and its image/class ids."""

    dataset_id: int
    run_id: int
    n_images: int
    n_classes: int


@dataclass(frozen=True)
class Percentiles:
    """p50, p95 and max of a list of wall times, in milliseconds; ``n`` samples."""

    n: int
    p50_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, ms: list[float]) -> Percentiles:
        if not ms:
            raise ValueError("no samples to summarise; use samples >= 1")
        a = np.asarray(ms, dtype=np.float64)
        return cls(len(ms), float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(a.max()))


@dataclass(frozen=True)
class QueueLatency:
    """Result of :func:`review_next_latency`.

    ``next``: claim_next + suggestion_view + commit per call; ``decide``: one decision (accept,
    reject or skip) + commit. ``plan``: the database's plan of the queue SELECT, one line per
    row; ``indexes``: index names the plan reads; ``uses_index``: it reads the suggestion table
    through an index and sorts nothing (so "next" is an index lookup, not a scan).
    """

    backend: str
    pending: int
    next: Percentiles
    decide: Percentiles
    plan: str
    indexes: tuple[str, ...]
    uses_index: bool
    empty_calls: int = 0
    moves: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON: p50/p95/max of both timings in ms, the plan and the index check."""
        return {
            "backend": self.backend,
            "pending": self.pending,
            "next_p50_ms": self.next.p50_ms,
            "next_p95_ms": self.next.p95_ms,
            "next_max_ms": self.next.max_ms,
            "decide_p50_ms": self.decide.p50_ms,
            "decide_p95_ms": self.decide.p95_ms,
            "decide_max_ms": self.decide.max_ms,
            "samples": self.next.n,
            "plan": self.plan,
            "indexes": list(self.indexes),
            "uses_index": self.uses_index,
            "empty_calls": self.empty_calls,
            "moves": dict(self.moves),
        }


def _sessionmaker(target: Engine | sessionmaker[Session]) -> sessionmaker[Session]:
    return make_sessionmaker(target) if isinstance(target, Engine) else target


def make_queue_store(session: Session, *, images: int, classes: int, name: str = "queue-bench") -> QueueStore:
    """Create dataset ``name`` with ``images`` images, ``classes`` classes and a finished target run.

    Images are written with :func:`db.bulk.load_rows` (COPY on PostgreSQL). The run has no
    suggestions yet: add them with :func:`seed_pending`. Nothing is committed.

    Raises:
        ValueError: ``images`` or ``classes`` < 1, or the dataset exists already.
    """
    if images < 1 or classes < 1:
        raise ValueError(f"need images >= 1 and classes >= 1, got {images} and {classes}")
    ds = get_or_create_dataset(session, name, image_root="")
    if list_runs(session, ds.id, limit=1):
        raise ValueError(f"dataset {name!r} exists already with runs; pick another name or an empty store")
    ensure_classes(session, ds.id, [(f"/m/q{j:05d}", f"Queue class {j}") for j in range(classes)])
    now = utcnow()
    load_rows(
        session,
        "image",
        ["dataset_id", "external_id", "path", "split", "created_at"],
        ((ds.id, f"q{i:08d}", f"q{i:08d}.jpg", "train", now) for i in range(images)),
    )
    run = create_run(session, ds.id, RunKind.TARGET, {"bench": "queue"})
    finish_run(session, run.id)
    return QueueStore(ds.id, run.id, images, classes)


def seed_pending(session: Session, run_id: int, n: int, *, seed: int = 0) -> int:
    """Add ``n`` pending suggestions to run ``run_id`` (of a dataset with images and classes).

    Cells are the first ``n`` of the run's dataset's image × class grid in a random order, so
    each (image, class) is suggested once; scores are uniform in [0, 1) and ``rank`` follows
    them (1 = highest score). Rows go straight into ``suggestion`` with :func:`db.bulk.load_rows`
    in chunks of :data:`SEED_CHUNK` (COPY on PostgreSQL, executemany on SQLite); the database's
    triggers keep ``suggestion_count`` in step. Nothing is committed.

    Returns:
        ``n``, the number of rows written.

    Raises:
        ValueError: ``n`` < 1, the run already has suggestions, or images × classes < ``n``.
    """
    if n < 1:
        raise ValueError(f"need n >= 1 suggestions to seed, got {n}")
    run = get_run(session, run_id)
    if pending_count(session, run.dataset_id, cap=0):
        raise ValueError(f"dataset {run.dataset_id} has pending suggestions already; seed a fresh dataset")
    session.flush()
    image_ids = scale.image_ids(session, run.dataset_id)
    class_ids = np.array(sorted(c.id for c in classes(session, run.dataset_id)), dtype=np.int64)
    cells = len(image_ids) * len(class_ids)
    if cells < n:
        raise ValueError(
            f"{n:,} suggestions need {n:,} cells but the dataset has {len(image_ids):,} images × "
            f"{len(class_ids):,} classes = {cells:,}; add images or classes"
        )
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(1, n + 1)
    # Cell k of the grid → (image k // C, class k % C); a random start and a stride spread the
    # first n cells over all images and classes.
    n_cls = len(class_ids)
    written = 0
    for lo in range(0, n, SEED_CHUNK):
        hi = min(n, lo + SEED_CHUNK)
        k = np.arange(lo, hi, dtype=np.int64)
        img, cls = image_ids[k // n_cls], class_ids[k % n_cls]
        s = scores[lo:hi]
        written += load_rows(
            session,
            "suggestion",
            _SEED_COLUMNS,
            _rows(run_id, run.dataset_id, img, cls, s, ranks[lo:hi]),
        )
    return written


def _rows(
    run_id: int, dataset_id: int, img: np.ndarray, cls: np.ndarray, s: np.ndarray, rank: np.ndarray
) -> Iterator[tuple[Any, ...]]:
    pending = "pending"  # SuggestionStatus.PENDING as stored
    for i, c, sc, r in zip(img.tolist(), cls.tolist(), s.tolist(), rank.tolist(), strict=True):
        yield (run_id, dataset_id, i, c, sc, sc, 0.1, r, pending, 1)


class _Capture:
    """Records the first SELECT on ``suggestion`` with a LIMIT that a connection sends."""

    def __init__(self) -> None:
        self.statement: str | None = None
        self.parameters: Any = None

    def __call__(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        s = statement.lstrip().upper()
        if self.statement is None and s.startswith("SELECT") and "FROM SUGGESTION" in s and "LIMIT" in s:
            self.statement, self.parameters = statement, parameters


_INDEX_RE = {
    "postgresql": re.compile(r"\busing (\w+)", re.IGNORECASE),
    "sqlite": re.compile(r"USING (?:COVERING )?INDEX (\w+)"),
}


def explain_next(
    target: Engine | sessionmaker[Session], dataset_id: int, reviewer: str, *, class_id: int | None = None
) -> tuple[str, tuple[str, ...], bool]:
    """The plan of the SELECT :func:`db.review.claim_next` sends, as the database runs it.

    Runs ``claim_next`` once in a transaction that is rolled back, captures its SELECT and its
    parameters, and EXPLAINs that text (``EXPLAIN`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on
    SQLite).

    Returns:
        (plan text, index names it reads, True when it reads ``suggestion`` through an index and
        has no sort step).
    """
    sm = _sessionmaker(target)
    capture = _Capture()
    with sm() as session:
        conn = session.connection()
        event.listen(conn, "before_cursor_execute", capture)
        try:
            claim_next(session, dataset_id, reviewer, class_id=class_id)
        finally:
            event.remove(conn, "before_cursor_execute", capture)
        if capture.statement is None:
            session.rollback()
            raise RuntimeError("claim_next sent no SELECT on suggestion; nothing to explain")
        name = dialect(session)
        lines = scale.explain(session, capture.statement, capture.parameters)
        session.rollback()
    if name == "postgresql":
        sorts = any(re.search(r"\bSort\b", line) for line in lines)
        scans = any("Seq Scan on suggestion" in line for line in lines)
    else:
        sorts = any("TEMP B-TREE" in line for line in lines)
        scans = any(re.match(r"SCAN (suggestion|sg)\b(?! USING)", line) for line in lines)
    plan = "\n".join(lines)
    indexes = tuple(dict.fromkeys(_INDEX_RE[name].findall(plan)))
    return plan, indexes, bool(indexes) and not sorts and not scans


def measure_next_latency(
    target: Engine | sessionmaker[Session],
    dataset_id: int,
    *,
    samples: int = 200,
    reviewer: str = "queue-bench",
    class_id: int | None = None,
    warmup: int = 5,
) -> QueueLatency:
    """Time the Review page's "next suggestion" on dataset ``dataset_id``, ``samples`` times.

    Each step: in one write transaction, :func:`db.review.claim_next` (with the ids passed over so
    far as ``exclude``, as the page sends them) and :func:`db.queries.suggestion_view`, then the
    commit (timed as ``next``); then the reviewer's move from :data:`MOVES` in turn: accept /
    reject / skip through :func:`db.review.decide` in its own transaction (timed as ``decide``),
    or pass (the lease is released and the id excluded from later calls, untimed). ``warmup``
    untimed steps come first. The store is changed: decisions write labels and audit events.

    Args:
        target: an Engine or a session factory of the store.
        samples: timed "next" calls (>= 1).
        class_id: review one class only (the page's class filter); None = all classes.

    Returns:
        :class:`QueueLatency` with p50/p95/max in ms and the plan of the queue SELECT.

    Raises:
        ValueError: ``samples`` < 1 or ``warmup`` < 0.
    """
    if samples < 1 or warmup < 0:
        raise ValueError(f"need samples >= 1 and warmup >= 0, got {samples} and {warmup}")
    sm = _sessionmaker(target)
    plan, indexes, uses_index = explain_next(sm, dataset_id, reviewer, class_id=class_id)
    with sm() as session:
        backend = dialect(session)
        pending = pending_count(session, dataset_id)
    next_ms: list[float] = []
    decide_ms: list[float] = []
    passed: list[int] = []
    moves: dict[str, int] = {}
    empty = 0
    for step in range(warmup + samples):
        t0 = time.perf_counter()
        with sm.begin() as session:
            sugg = claim_next(session, dataset_id, reviewer, class_id=class_id, exclude=tuple(passed[-200:]))
            view = suggestion_view(session, sugg.id) if sugg is not None else None
        elapsed = (time.perf_counter() - t0) * 1000
        timed = step >= warmup
        if timed:
            next_ms.append(elapsed)
        if view is None:
            empty += 1
            continue
        move = MOVES[step % len(MOVES)]
        moves[move] = moves.get(move, 0) + timed
        if move == "pass":
            with sm.begin() as session:
                release_one(session, view.id, reviewer)
            passed.append(view.id)
            continue
        t0 = time.perf_counter()
        with sm.begin() as session:
            decide(session, view.id, Decision(move), reviewer)
        if timed:
            decide_ms.append((time.perf_counter() - t0) * 1000)
    return QueueLatency(
        backend=backend,
        pending=pending,
        next=Percentiles.of(next_ms),
        decide=Percentiles.of(decide_ms or [0.0]),
        plan=plan,
        indexes=indexes,
        uses_index=uses_index,
        empty_calls=empty,
        moves=moves,
    )


def prepare_queue(
    target: Engine | sessionmaker[Session],
    *,
    pending: int,
    classes: int = 600,
    images: int | None = None,
    seed: int = 0,
    echo: Callable[[str], None] | None = None,
) -> int:
    """A dataset ``queue-bench-<pending>`` with ``pending`` pending suggestions; returns its id.

    Made (migrated schema assumed) and seeded in one transaction when missing; reused as it is
    when it exists (a rerun measures the same store; earlier runs' decisions stay). ``images``
    defaults to max(100,000, ⌈pending / classes⌉).
    """
    sm = _sessionmaker(target)
    name = f"queue-bench-{pending}"
    with sm() as session:
        try:
            found = get_dataset(session, name).id
        except NotFoundError:
            found = None
    if found is not None:
        if echo:
            echo(f"reusing dataset {name!r} (id {found})")
        return found
    n_images = images if images is not None else max(100_000, -(-pending // classes))
    t0 = time.perf_counter()
    with sm.begin() as session:
        store = make_queue_store(session, images=n_images, classes=classes, name=name)
        seed_pending(session, store.run_id, pending, seed=seed)
    if echo:
        echo(
            f"seeded {pending:,} pending suggestions ({n_images:,} images × {classes:,} classes) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
    return store.dataset_id


def review_next_latency(
    target: Engine | sessionmaker[Session],
    dataset_id: int,
    *,
    samples: int = 200,
    reviewer: str = "queue-bench",
    class_id: int | None = None,
    warmup: int = 5,
) -> dict[str, Any]:
    """:func:`measure_next_latency` as plain numbers (:meth:`QueueLatency.as_dict`).

    Keys: ``backend``, ``pending``, ``next_p50_ms`` / ``next_p95_ms`` / ``next_max_ms`` (claim_next
    + view + commit), ``decide_p50_ms`` / ``decide_p95_ms`` / ``decide_max_ms``, ``samples``,
    ``plan`` (text), ``indexes`` (names), ``uses_index`` (bool), ``empty_calls``, ``moves``.
    """
    return measure_next_latency(
        target, dataset_id, samples=samples, reviewer=reviewer, class_id=class_id, warmup=warmup
    ).as_dict()


__all__ = [
    "MOVES",
    "Percentiles",
    "QueueLatency",
    "QueueStore",
    "explain_next",
    "make_queue_store",
    "measure_next_latency",
    "prepare_queue",
    "review_next_latency",
    "seed_pending",
]
