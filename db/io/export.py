"""Export a dataset's current labels with provenance, streamed from the database.

Formats (:class:`ExportFormat`; ``list_export_formats()`` for help texts and tests):

- ``openimages``: ``ImageID,Source,LabelName,Confidence`` (the columns the importer reads;
  Source = the label's source: import / review / edit), plus ``<stem>-classes.csv``
  (``LabelName,DisplayName``, column order) next to it.
- ``csv`` / ``parquet``: ``image,label,value,source,author,updated_at`` (UTC, ISO 8601 in CSV).
- ``json``: ``{"format", "dataset", "exported_at", "classes": [{"key", "display_name",
  "position"}], "images": [{"image", "file", "split", "positives": [keys], "negatives": [keys],
  "provenance": {key: {"source", "author", "updated_at"}}}]}``, every image (also unlabelled ones).

Rows come from a streamed query (``yield_per``: a server-side cursor on PostgreSQL) ordered by
image then class, and are written as they arrive; the file appears atomically
(:mod:`common.atomic`: a failed export leaves the old file, or none, and no temporary file). Values: 1 = positive, 0 = negative; unknown cells are not written.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.atomic import atomic_open, atomic_path
from common.choice import Choice
from db.datasets import classes as dataset_classes
from db.datasets import get_dataset
from db.models import Dataset, ExportRecord, Image, Label, LabelClass
from db.stats import ClassCounts, n_images

BATCH_ROWS = 50_000
JSON_FORMAT_TAG = "labelmend-labels/1"
#: ``progress(n)``: a count, the labels (images for json) written so far, every 10,000. Not the
#: ``(fraction, message)`` shape of :data:`common.progress.Progress` (nor the import's
#: ``db.io._report.ProgressFn``).
ProgressCallback = Callable[[int], None]


class ExportFormat(Choice, kind="export format", message="{kind} {value} is not one of {valid}"):
    """The export file formats (module docstring); ``from_str`` takes any case."""

    OPENIMAGES = "openimages"
    CSV = "csv"
    PARQUET = "parquet"
    JSON = "json"


def list_export_formats() -> list[str]:
    return list(ExportFormat.values())


@dataclass(frozen=True)
class ExportReport:
    dataset: str
    format: str
    files: tuple[str, ...]
    labels: int
    images: int
    classes: int
    seconds: float

    def summary(self) -> str:
        return (
            f"exported {self.labels:,} labels of {self.images:,} images and {self.classes:,} classes "
            f"({self.format}) to {', '.join(self.files)} in {self.seconds:.2f} s"
        )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Timestamps as aware UTC (SQLite returns them naive, in UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _iso(value: dt.datetime | None) -> str:
    v = _utc(value)
    return v.isoformat() if v is not None else ""


def _label_rows(session: Session, dataset_id: int) -> Iterator[Any]:
    """(external_id, key, value, source, author, updated_at) per label, by image then class."""
    stmt = (
        select(Image.external_id, LabelClass.key, Label.value, Label.source, Label.author, Label.updated_at)
        .select_from(Label)
        .join(Image, Image.id == Label.image_id)
        .join(LabelClass, LabelClass.id == Label.class_id)
        .where(Image.dataset_id == dataset_id)
        .order_by(Label.image_id, Label.class_id)
        .execution_options(yield_per=BATCH_ROWS)
    )
    yield from session.execute(stmt)


def _tick(progress: ProgressCallback | None, n: int) -> None:
    if progress is not None and n % 10_000 == 0:
        progress(n)


def _write_openimages(session: Session, dataset_id: int, out: Path, progress: ProgressCallback | None) -> int:
    n = 0
    with atomic_open(out, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["ImageID", "Source", "LabelName", "Confidence"])
        for ext, key, value, source, _author, _updated in _label_rows(session, dataset_id):
            w.writerow((ext, source, key, value))
            n += 1
            _tick(progress, n)
    with atomic_open(classes_file_for(out), "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["LabelName", "DisplayName"])
        for c in dataset_classes(session, dataset_id):
            w.writerow((c.key, c.display_name))
    return n


def _write_csv(session: Session, dataset_id: int, out: Path, progress: ProgressCallback | None) -> int:
    n = 0
    with atomic_open(out, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["image", "label", "value", "source", "author", "updated_at"])
        for ext, key, value, source, author, updated in _label_rows(session, dataset_id):
            w.writerow((ext, key, value, source, author, _iso(updated)))
            n += 1
            _tick(progress, n)
    return n


PARQUET_SCHEMA = pa.schema(
    [
        ("image", pa.string()),
        ("label", pa.string()),
        ("value", pa.int8()),
        ("source", pa.string()),
        ("author", pa.string()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _write_parquet(session: Session, dataset_id: int, out: Path, progress: ProgressCallback | None) -> int:
    n = 0
    cols: list[list[Any]] = [[] for _ in PARQUET_SCHEMA.names]

    def flush(writer: pq.ParquetWriter) -> None:
        writer.write_batch(pa.record_batch(cols, schema=PARQUET_SCHEMA))
        for c in cols:
            c.clear()

    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, PARQUET_SCHEMA) as writer:
        for ext, key, value, source, author, updated in _label_rows(session, dataset_id):
            for c, v in zip(cols, (ext, key, value, source, author, _utc(updated)), strict=True):
                c.append(v)
            n += 1
            if len(cols[0]) >= BATCH_ROWS:
                flush(writer)
                _tick(progress, n - n % 10_000)
        if cols[0] or n == 0:
            flush(writer)
    return n


def _write_json(session: Session, dataset_id: int, out: Path, progress: ProgressCallback | None) -> int:
    ds_name = session.get_one(Dataset, dataset_id).name
    head = {
        "format": JSON_FORMAT_TAG,
        "dataset": ds_name,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "classes": [
            {"key": c.key, "display_name": c.display_name, "position": c.position}
            for c in dataset_classes(session, dataset_id)
        ],
    }
    stmt = (
        select(
            Image.id,
            Image.external_id,
            Image.path,
            Image.split,
            LabelClass.key,
            Label.value,
            Label.source,
            Label.author,
            Label.updated_at,
        )
        .select_from(Image)
        .outerjoin(Label, Label.image_id == Image.id)
        .outerjoin(LabelClass, LabelClass.id == Label.class_id)
        .where(Image.dataset_id == dataset_id)
        .order_by(Image.id, Label.class_id)
        .execution_options(yield_per=BATCH_ROWS)
    )
    n = 0
    with atomic_open(out, "w", encoding="utf-8") as fh:
        opening = json.dumps(head, ensure_ascii=False)[:-1]
        fh.write(opening + ', "images": [')
        current: dict[str, Any] | None = None
        current_id = None
        first = True
        for img_id, ext, path, split, key, value, source, author, updated in session.execute(stmt):
            if img_id != current_id:
                if current is not None:
                    fh.write(("\n" if first else ",\n") + json.dumps(current, ensure_ascii=False))
                    first = False
                current_id = img_id
                current = {
                    "image": ext,
                    "file": path,
                    "split": split,
                    "positives": [],
                    "negatives": [],
                    "provenance": {},
                }
            if key is not None and current is not None:
                current["positives" if value == 1 else "negatives"].append(key)
                current["provenance"][key] = {"source": source, "author": author, "updated_at": _iso(updated)}
                n += 1
                _tick(progress, n)
        if current is not None:
            fh.write(("\n" if first else ",\n") + json.dumps(current, ensure_ascii=False))
        fh.write("\n]}\n")
    return n


_WRITERS: dict[ExportFormat, Callable[[Session, int, Path, ProgressCallback | None], int]] = {
    ExportFormat.OPENIMAGES: _write_openimages,
    ExportFormat.CSV: _write_csv,
    ExportFormat.PARQUET: _write_parquet,
    ExportFormat.JSON: _write_json,
}


def classes_file_for(out: Path) -> Path:
    """The classes file written next to an OpenImages export: ``<stem>-classes.csv``."""
    return out.with_name(f"{out.stem}-classes.csv")


def export_labels(
    session: Session,
    *,
    dataset: str,
    fmt: ExportFormat | str,
    out: Path,
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Write the current labels of ``dataset`` to ``out`` in format ``fmt``.

    Args:
        session: a (read) session; nothing is written to the database.
        progress: called with the number of labels written so far, every 10,000.

    Returns:
        Files written and counts.

    Raises:
        NotFoundError: no such dataset.
        ValueError: unknown format.

    Example:
        >>> with store.read() as s:  # doctest: +SKIP
        ...     export_labels(s, dataset="pets", fmt="csv", out=Path("pets.csv"))
    """
    t0 = time.perf_counter()
    kind = ExportFormat.from_str(fmt)
    ds = get_dataset(session, dataset)
    n = _WRITERS[kind](session, ds.id, out, progress)
    files = (str(out), str(classes_file_for(out))) if kind is ExportFormat.OPENIMAGES else (str(out),)
    return ExportReport(
        dataset=dataset,
        format=kind.value,
        files=files,
        labels=n,
        images=n_images(session, ds.id),
        classes=len(dataset_classes(session, ds.id)),
        seconds=time.perf_counter() - t0,
    )


def record_export(session: Session, report: ExportReport, author: str) -> ExportRecord:
    """Record a finished export of ``report.dataset`` under ``author`` (call in a write session).

    Raises:
        NotFoundError: no such dataset.
        ValueError: ``author`` is empty.
    """
    author = author.strip()
    if not author:
        raise ValueError("an export is recorded under a name; pass the user's name")
    record = ExportRecord(
        dataset_id=get_dataset(session, report.dataset).id,
        author=author,
        format=report.format,
        files=list(report.files),
        labels=report.labels,
    )
    session.add(record)
    session.flush()
    return record


def recent_exports(session: Session, dataset_id: int, limit: int = 20) -> list[ExportRecord]:
    """The newest ``limit`` exports of a dataset, newest first."""
    q = select(ExportRecord).where(ExportRecord.dataset_id == dataset_id).order_by(ExportRecord.id.desc())
    return list(session.scalars(q.limit(limit)))


def write_class_counts_csv(counts: list[ClassCounts], out: Path) -> None:
    """Per-class counts as CSV: ``key,display_name,position,positive,negative,unknown``."""
    with atomic_open(out, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["key", "display_name", "position", "positive", "negative", "unknown"])
        for c in counts:
            w.writerow((c.key, c.display_name, c.position, c.positive, c.negative, c.unknown))


__all__ = [
    "JSON_FORMAT_TAG",
    "ExportFormat",
    "ExportReport",
    "classes_file_for",
    "export_labels",
    "list_export_formats",
    "recent_exports",
    "record_export",
    "write_class_counts_csv",
]
