"""The import formats in one table: what each format's importer takes, and one dispatcher.

The mirror of :mod:`db.io.export`. Formats (:class:`ImportFormat`; ``list_import_formats()`` for
help texts, menus and ``pytest.mark.parametrize``):

- ``openimages``: ``ImageID,Source,LabelName,Confidence`` CSV (:func:`db.io.import_openimages`);
  optional classes file, optional per-image ``ImageID,Split`` file.
- ``coco``: a COCO ``instances_*.json`` (:func:`db.io.import_coco`); classes are its categories;
  ``absent`` says what a category without instances in an image means.
- ``csv`` / ``parquet``: a table ``image,label,value`` (:func:`db.io.import_table`); optional
  classes file.
- ``json``: labelmend's own JSON export (:func:`db.io.import_label_json`); classes come from it.

Every format takes an optional image folder and the split of newly registered images.
:func:`import_labels` runs any of them with one set of keywords and refuses, in one line, an
option the format does not take (a classes file for ``coco``, say), so nothing is silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from common.choice import Choice
from db.io._report import ImportReport, ProgressFn
from db.io.coco import AbsentPolicy, import_coco, import_label_json
from db.io.openimages import import_openimages
from db.io.tabular import CHUNK_ROWS, TableFormat, import_table
from db.models import Split


class ImportFormat(Choice, kind="import format", message="{kind} {value} is not one of {valid}"):
    """The label file formats :func:`import_labels` reads (module docstring); ``from_str`` takes any case."""

    OPENIMAGES = "openimages"
    COCO = "coco"
    CSV = "csv"
    PARQUET = "parquet"
    JSON = "json"


@dataclass(frozen=True)
class Importer:
    """One format's import function and what it takes.

    Attributes:
        function: ``function(session, *, <file_keyword>=Path, dataset, images, split, author,
            progress, chunk_rows, ...) -> ImportReport``; one transaction of the caller's session.
        label: the format's name in menus (the web Import page).
        summary: one sentence on what the import does (CLI help).
        file_help: what the label file holds (CLI help of its option).
        file_option: what users call the label file: the CLI option ``--<file_option>``
            (``labels``; ``annotations`` for COCO).
        file_keyword: the keyword ``function`` takes the label file under.
        suffixes: file name endings of the label file, lower case, without the dot (upload pickers).
        classes_help: what the optional ``LabelName,DisplayName`` classes file means for this
            format; None = the format takes no classes file (its classes come from the label file).
        splits: takes an ``ImageID,Split`` file that overrides ``split`` per image.
        absent: takes an :class:`~db.io.AbsentPolicy` (categories without instances in an image).
        fixed: keywords always passed to ``function`` (``fmt`` of the table reader).
    """

    function: Callable[..., ImportReport]
    label: str
    summary: str
    file_help: str
    suffixes: tuple[str, ...]
    file_option: str = "labels"
    file_keyword: str = "labels"
    classes_help: str | None = None
    splits: bool = False
    absent: bool = False
    fixed: tuple[tuple[str, Any], ...] = ()

    @property
    def classes(self) -> bool:
        """Whether the format takes a ``LabelName,DisplayName`` classes file."""
        return self.classes_help is not None


_TABLE_CLASSES = "Optional LabelName,DisplayName CSV; then keys must be in it."

IMPORTERS: dict[ImportFormat, Importer] = {
    ImportFormat.OPENIMAGES: Importer(
        function=import_openimages,
        label="OpenImages CSV (ImageID,Source,LabelName,Confidence)",
        summary="Import OpenImages V6 human-verified image labels, classes and image folder.",
        file_help="ImageID,Source,LabelName,Confidence CSV (Confidence 1 / 0).",
        suffixes=("csv",),
        classes_help="LabelName,DisplayName CSV (header optional).",
        splits=True,
    ),
    ImportFormat.COCO: Importer(
        function=import_coco,
        label="COCO instances JSON",
        summary="Import a COCO instances file as image-level labels (category present = positive).",
        file_help="COCO instances_*.json.",
        suffixes=("json",),
        file_option="annotations",
        file_keyword="annotations",
        absent=True,
    ),
    ImportFormat.CSV: Importer(
        function=import_table,
        label="CSV table (image,label,value)",
        summary="Import a CSV table image,label,value; unknown labels become classes (unless --classes).",
        file_help="CSV with columns image,label,value (1 / 0).",
        suffixes=("csv",),
        classes_help=_TABLE_CLASSES,
        fixed=(("fmt", TableFormat.CSV),),
    ),
    ImportFormat.PARQUET: Importer(
        function=import_table,
        label="Parquet table (image,label,value)",
        summary="Import a Parquet table image,label,value; unknown labels become classes (unless --classes).",
        file_help="Parquet with columns image, label (text), value (integer 1 / 0).",
        suffixes=("parquet", "pq"),
        classes_help=_TABLE_CLASSES,
        fixed=(("fmt", TableFormat.PARQUET),),
    ),
    ImportFormat.JSON: Importer(
        function=import_label_json,
        label="labelmend JSON export",
        summary="Import labelmend's own JSON export (classes, images, positives / negatives).",
        file_help="JSON written by `labelmend export --format json`.",
        suffixes=("json",),
        file_keyword="path",
    ),
}


def list_import_formats() -> list[str]:
    """Every :class:`ImportFormat` value, in definition order."""
    return list(ImportFormat.values())


def importer_for(fmt: ImportFormat | str) -> Importer:
    """The table entry of ``fmt``.

    Raises:
        ValueError: ``fmt`` is not an import format (the message lists the valid ones).
    """
    return IMPORTERS[ImportFormat.from_str(fmt)]


def import_labels(
    session: Session,
    fmt: ImportFormat | str,
    *,
    labels: Path,
    dataset: str = "default",
    classes: Path | None = None,
    images: Path | None = None,
    split: Split | str = Split.TRAIN,
    splits: Path | None = None,
    absent: AbsentPolicy | str | None = None,
    author: str = "import",
    progress: ProgressFn | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import the label file ``labels`` of format ``fmt`` into ``dataset`` (one transaction).

    Args:
        session: an open write session; nothing is committed here (the caller commits, or rolls
            back on an error so nothing changes).
        fmt: an :class:`ImportFormat` or its value (any case).
        labels: the label file (for ``coco`` the instances file).
        dataset: dataset name; created if missing.
        classes: ``LabelName,DisplayName`` CSV, for formats whose entry has ``classes``.
        images: image folder, scanned recursively; None = images come from the label rows.
        split: split of newly registered images (a :class:`~db.models.Split` or its value).
        splits: ``ImageID,Split`` CSV overriding ``split`` per image (``openimages`` only).
        absent: what a category without instances in an image means (``coco`` only; None = the
            importer's default, negative).
        author: recorded on every label and audit event.
        progress: ``(phase, done, total)`` callback (:data:`db.io._report.ProgressFn`).
        chunk_rows: rows per streamed chunk.

    Returns:
        What was read, added, changed and registered.

    Raises:
        ValueError: an unknown format, or an option the format does not take (one line).
        LabelFileError: the first bad line of any file (``file:line: problem; fix``).
        FileNotFoundError: a file or folder does not exist.

    Example:
        >>> with store.write() as s:  # doctest: +SKIP
        ...     import_labels(s, "csv", labels=Path("labels.csv"), dataset="pets")
    """
    key = ImportFormat.from_str(fmt)
    entry = IMPORTERS[key]
    for given, takes, what in (
        (classes, entry.classes, "classes file"),
        (splits, entry.splits, "splits file"),
        (absent, entry.absent, "absent policy"),
    ):
        if given is not None and not takes:
            raise ValueError(f"import format {key.value!r} takes no {what}; leave it out")
    options: dict[str, Any] = dict(entry.fixed)
    if classes is not None:
        options["classes"] = classes
    if splits is not None:
        options["splits"] = splits
    if absent is not None:
        options["absent"] = AbsentPolicy.from_str(absent)
    return entry.function(
        session,
        **{entry.file_keyword: labels},
        dataset=dataset,
        images=images,
        split=str(split),
        author=author,
        progress=progress,
        chunk_rows=chunk_rows,
        **options,
    )


__all__ = ["IMPORTERS", "ImportFormat", "Importer", "import_labels", "importer_for", "list_import_formats"]
