"""Import benchmark: our OpenImages importer against the plain driver (sqlite3 or PostgreSQL COPY).

Both sides start from a fresh database with the same migrated schema and load the same
generated files (``LabelName,DisplayName`` classes and ``ImageID,Source,LabelName,Confidence``
labels, sorted by ImageID like the real files) in one transaction:

- ours: :func:`db.io.import_openimages` without an image folder (images are registered from the
  ImageIDs), i.e. streaming parse, staging, set-based validation, merge, and one audit event per
  new label;
- raw: the ``csv`` module, dicts for class and image ids, ``executemany`` in batches of 50,000
  into ``label_class``, ``image`` and ``label`` (no validation, no audit events).

On PostgreSQL (``db_url``; its ``public`` schema is dropped and migrated afresh before each side)
raw is :func:`raw_copy_import`: the ``csv`` module, dicts for ids, and ``COPY … FROM STDIN`` of
``label_class``, then of ``image`` and ``label`` rows in batches, in one transaction (psycopg);
ours is the same :func:`db.io.import_openimages`, which also loads through COPY (:mod:`db.bulk`).

The ratio ours / raw is the figure of merit (goal ≤ 1.5 on SQLite, ≤ 1.3 on PostgreSQL). Times are
wall seconds, including the commit, excluding schema creation and file generation.
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy.engine import make_url

from db.engine import make_engine, make_sessionmaker
from db.io import ImportReport, import_openimages
from db.migrate import upgrade

CACHE_KIB = 262_144  # the page cache db.io uses for an import on SQLite
_STRIDE = 7919  # prime: (start + j * stride) % C is distinct for j < C when C is not a multiple


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds and this process's CPU seconds (user + system) of one run.

    SQLite runs inside the process, so CPU seconds are a fair measure on a busy machine too.
    """

    wall_s: float
    cpu_s: float


class _Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> Timing:
        return Timing(time.perf_counter() - self.wall, time.process_time() - self.cpu)


@dataclass(frozen=True)
class ImportBenchResult:
    rows: int
    classes: int
    images: int
    ours: Timing
    raw: Timing
    report: ImportReport
    raw_tuned: Timing | None = None
    backend: str = "sqlite"

    @property
    def ratio(self) -> float:
        """ours / raw wall time (raw with SQLite's default 2 MiB page cache)."""
        return self.ours.wall_s / self.raw.wall_s if self.raw.wall_s > 0 else float("inf")

    @property
    def ratio_cpu(self) -> float:
        """ours / raw CPU time."""
        return self.ours.cpu_s / self.raw.cpu_s if self.raw.cpu_s > 0 else float("inf")

    @property
    def ratio_tuned(self) -> float | None:
        """ours / raw wall time, raw with the same page cache as ours (None when not measured)."""
        if self.raw_tuned is None:
            return None
        return self.ours.wall_s / self.raw_tuned.wall_s if self.raw_tuned.wall_s > 0 else float("inf")


def generate_openimages(
    folder: Path, *, rows: int, classes: int, images: int, seed: int = 0
) -> tuple[Path, Path]:
    """Write ``bench-classes.csv`` and ``bench-labels.csv`` (OpenImages formats) under ``folder``.

    Each image gets ``rows // images`` (+1 for the first ``rows % images``) distinct classes;
    Confidence is 1 with probability 0.6. Rows are sorted by ImageID.

    Returns:
        (labels path, classes path).
    """
    if not 0 < images <= rows or classes <= 0 or rows > images * classes or classes % _STRIDE == 0:
        raise ValueError("need 0 < images <= rows <= images * classes")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    keys = np.array([f"/m/bench{j:05d}" for j in range(classes)], dtype=object)
    cls_path = folder / "bench-classes.csv"
    pd.DataFrame({"LabelName": keys, "DisplayName": [f"Class {j}, bench" for j in range(classes)]}).to_csv(
        cls_path, index=False
    )
    ids = rng.permutation(np.unique(rng.integers(0, 2**63 - 1, size=images * 2, dtype=np.int64)))[:images]
    image_ids = np.sort(np.array([f"{v:016x}" for v in ids], dtype=object))
    counts = np.full(images, rows // images, dtype=np.int64)
    counts[: rows % images] += 1
    img = np.repeat(np.arange(images), counts)
    j = np.arange(rows) - np.repeat(np.cumsum(counts) - counts, counts)
    start = rng.integers(0, classes, size=images)
    cls = (start[img] + j * _STRIDE) % classes
    conf = (rng.random(rows) < 0.6).astype(np.int8)
    labels_path = folder / "bench-labels.csv"
    pd.DataFrame(
        {"ImageID": image_ids[img], "Source": "verification", "LabelName": keys[cls], "Confidence": conf}
    ).to_csv(labels_path, index=False)
    return labels_path, cls_path


def _fresh_db(path: Path) -> str:
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def fresh_pg(url: str) -> None:
    """Drop the ``public`` schema of the PostgreSQL database ``url`` and migrate it afresh.

    Everything in that schema is lost: give an empty database made for the benchmark.
    """
    with psycopg.connect(_libpq(url), autocommit=True) as con:
        con.execute("DROP SCHEMA IF EXISTS public CASCADE")
        con.execute("CREATE SCHEMA public")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    with psycopg.connect(_libpq(url), autocommit=True) as con:
        con.execute("CHECKPOINT")  # neither side pays for the other's dirty pages


def _libpq(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as a libpq connection string."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"{parsed.render_as_string()} is not a PostgreSQL URL; give postgresql+psycopg://…")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def run_ours(db_path: Path | str, labels: Path, classes: Path) -> tuple[Timing, ImportReport]:
    """Import with labelmend into a fresh database; returns (time incl. commit, report).

    Args:
        db_path: a SQLite file (recreated), or a PostgreSQL URL (its schema recreated, :func:`fresh_pg`).
    """
    if isinstance(db_path, str):
        fresh_pg(db_path)
        engine = make_engine(db_path)
    else:
        engine = make_engine(_fresh_db(db_path))
    sm = make_sessionmaker(engine)
    with engine.connect():
        pass  # open the pooled connection before timing (both sides time from a ready connection)
    clock = _Clock()
    with sm.begin() as session:
        report = import_openimages(session, labels=labels, classes=classes, dataset="bench", author="bench")
    timing = clock.stop()
    engine.dispose()
    return timing, report


def _raw_rows(
    labels: Path, ds: int, class_id: dict[str, int], next_id: int, now: object, batch: int
) -> Iterator[tuple[list[tuple[object, ...]], list[tuple[object, ...]]]]:
    """The plain loaders' rows: ``csv`` module, a dict of image ids (new ids from ``next_id``).

    Yields ``(image rows, label rows)`` every ``batch`` labels and once at the end: image rows
    ``(id, dataset_id, external_id, path, split, created_at)``, label rows ``(image_id, class_id,
    value, source, author, created_at, updated_at, version)``.
    """
    image_id: dict[str, int] = {}
    new_images: list[tuple[object, ...]] = []
    new_labels: list[tuple[object, ...]] = []
    with labels.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for ext, _source, key, conf in reader:
            img = image_id.get(ext)
            if img is None:
                img = image_id[ext] = next_id
                next_id += 1
                new_images.append((img, ds, ext, ext + ".jpg", "train", now))
            new_labels.append((img, class_id[key], int(conf), "import", "bench", now, now, 1))
            if len(new_labels) >= batch:
                yield new_images, new_labels
                new_images, new_labels = [], []
    yield new_images, new_labels


def run_raw(
    db_path: Path, labels: Path, classes: Path, *, cache_kib: int | None = None, batch: int = 50_000
) -> Timing:
    """Plain sqlite3: csv module, dict id maps, executemany; returns the time incl. commit.

    Args:
        cache_kib: page cache size for the run (None = SQLite's default, 2 MiB).
    """
    _fresh_db(db_path)
    con = sqlite3.connect(db_path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        con.execute(f"PRAGMA {pragma}")  # the same connection settings as db.engine
    if cache_kib is not None:
        con.execute(f"PRAGMA cache_size=-{cache_kib}")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    clock = _Clock()
    con.execute("BEGIN IMMEDIATE")
    ds = con.execute(
        "INSERT INTO dataset (name, image_root, description, created_at) VALUES ('bench', '', '', ?)", (now,)
    ).lastrowid
    with classes.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    con.executemany(
        'INSERT INTO label_class (dataset_id, "key", display_name, position) VALUES (?, ?, ?, ?)',
        [(ds, k, n, i) for i, (k, n) in enumerate(rows)],
    )
    class_id = dict(con.execute('SELECT "key", id FROM label_class WHERE dataset_id = ?', (ds,)).fetchall())
    next_id = (con.execute("SELECT MAX(id) FROM image").fetchone()[0] or 0) + 1
    for new_images, new_labels in _raw_rows(labels, ds, class_id, next_id, now, batch):
        con.executemany(
            "INSERT INTO image (id, dataset_id, external_id, path, split, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            new_images,
        )
        con.executemany(
            "INSERT INTO label (image_id, class_id, value, source, author, created_at, updated_at, version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            new_labels,
        )
    con.execute("COMMIT")
    timing = clock.stop()
    con.close()
    return timing


def raw_copy_import(url: str, classes_csv: Path, labels_csv: Path, *, batch: int = 200_000) -> Timing:
    """Plain PostgreSQL COPY of the same rows into the same tables; returns the time incl. commit.

    Expects a freshly migrated database (:func:`fresh_pg`). One transaction: insert the dataset,
    COPY ``label_class`` from the classes file, read the ids back into a dict, then stream the
    labels file with the ``csv`` module, giving each new ImageID the next id, and COPY ``image``
    and ``label`` rows every ``batch`` labels. No validation, no audit events.
    """
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(_libpq(url)) as con:
        con.execute("SELECT 1")  # a ready connection, as ours has
        con.rollback()
        clock = _Clock()
        with con.cursor() as cur:
            row = cur.execute(
                "INSERT INTO dataset (name, image_root, description, created_at) "
                "VALUES ('bench', '', '', %s) RETURNING id",
                (now,),
            ).fetchone()
            assert row is not None
            ds = int(row[0])
            with classes_csv.open(encoding="utf-8", newline="") as fh:
                reader = csv.reader(fh)
                next(reader)
                with cur.copy(
                    'COPY label_class (dataset_id, "key", display_name, position) FROM STDIN'
                ) as cp:
                    for i, (key, name) in enumerate(reader):
                        cp.write_row((ds, key, name, i))
            class_id = dict(
                cur.execute('SELECT "key", id FROM label_class WHERE dataset_id = %s', (ds,)).fetchall()
            )
            row = cur.execute("SELECT COALESCE(MAX(id), 0) FROM image").fetchone()
            assert row is not None
            next_id = int(row[0]) + 1
            for new_images, new_labels in _raw_rows(labels_csv, ds, class_id, next_id, now, batch):
                with cur.copy(
                    "COPY image (id, dataset_id, external_id, path, split, created_at) FROM STDIN"
                ) as cp:
                    for r in new_images:
                        cp.write_row(r)
                with cur.copy(
                    "COPY label (image_id, class_id, value, source, author, created_at, updated_at, version) "
                    "FROM STDIN"
                ) as cp:
                    for r in new_labels:
                        cp.write_row(r)
        con.commit()
        return clock.stop()


def _label_fingerprint(db: Path | str) -> tuple[int, int, int]:
    sql = "SELECT COUNT(*), SUM(l.value), COUNT(DISTINCT l.image_id) FROM label l"
    if isinstance(db, str):
        with psycopg.connect(_libpq(db)) as pg:
            row = pg.execute(sql).fetchone()
            assert row is not None
            return int(row[0]), int(row[1] or 0), int(row[2])
    con = sqlite3.connect(db)
    try:
        row = con.execute(sql).fetchone()
        return int(row[0]), int(row[1] or 0), int(row[2])
    finally:
        con.close()


def run_import_bench(
    workdir: Path,
    *,
    rows: int = 1_000_000,
    classes: int = 600,
    images: int = 100_000,
    seed: int = 0,
    tuned_raw: bool = False,
    db_url: str | None = None,
) -> ImportBenchResult:
    """Generate the files, import them both ways, check both stores hold the same labels.

    Args:
        tuned_raw: also time raw sqlite3 with the same page cache as ours (SQLite only).
        db_url: a PostgreSQL database to run both sides in (its ``public`` schema is dropped and
            migrated afresh before each); None = two SQLite files under ``workdir``.

    Raises:
        RuntimeError: the two databases disagree (label count, positives or labelled images).
    """
    labels, cls = generate_openimages(workdir, rows=rows, classes=classes, images=images, seed=seed)
    if db_url is not None:
        ours, report = run_ours(db_url, labels, cls)
        a = _label_fingerprint(db_url)
        fresh_pg(db_url)
        raw = raw_copy_import(db_url, cls, labels)
        b = _label_fingerprint(db_url)
        if a != b:
            raise RuntimeError(f"the two imports disagree: ours {a}, raw {b} (labels, positives, images)")
        return ImportBenchResult(rows, classes, images, ours, raw, report, None, "postgresql")
    ours_db, raw_db = workdir / "ours.db", workdir / "raw.db"
    ours, report = run_ours(ours_db, labels, cls)
    raw = run_raw(raw_db, labels, cls)
    a, b = _label_fingerprint(ours_db), _label_fingerprint(raw_db)
    if a != b:
        raise RuntimeError(f"the two imports disagree: ours {a}, raw {b} (labels, positives, images)")
    tuned = run_raw(raw_db, labels, cls, cache_kib=CACHE_KIB) if tuned_raw else None
    return ImportBenchResult(rows, classes, images, ours, raw, report, tuned)


__all__ = [
    "ImportBenchResult",
    "Timing",
    "fresh_pg",
    "generate_openimages",
    "raw_copy_import",
    "run_import_bench",
    "run_ours",
    "run_raw",
]
