"""Import OpenImages V6 human-verified image labels.

Files (the real formats):

- labels: ``ImageID,Source,LabelName,Confidence`` with that header; Confidence 1 = verified
  present, 0 = verified absent (``1.0``/``0.0`` accepted). ``Source`` is read but not stored:
  every imported label gets source ``import`` (the audit event's reason names the file).
- classes: ``LabelName,DisplayName`` with or without a header; display names may contain
  commas (quoted) and repeat (OpenImages V6 repeats 12 of them); keys (MIDs) are unique.
- images: ``<ImageID>.jpg`` (or ``.jpeg``/``.png``/``.webp``) under the image folder. Every
  image in the folder is registered, also those no label row mentions (all their labels
  unknown). A row whose image has no file is an error. Without a folder, images are registered
  from the ImageIDs in the label file with path ``<ImageID>.jpg`` (used by the benchmark, and
  for label files whose images arrive later).
- splits (optional): ``ImageID,Split`` (header optional), split one of train/val/test.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session

from db.errors import LabelFileError
from db.io._report import ImportReport, ProgressFn
from db.io._stage import LabelImport
from db.io._text import parse_values, quote
from db.io.tabular import CHUNK_ROWS, read_class_file, read_csv_chunks
from db.models import Split

OPENIMAGES_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")


def read_split_file(path: Path) -> Iterator[tuple[int, str, str]]:
    """Stream rows ``(line, image_id, split)`` of an ``ImageID,Split`` file (header optional).

    Raises:
        LabelFileError: not UTF-8, unparsable, or a row without exactly two fields.
    """
    line = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if line == 1 and row[0].strip().lower() == "imageid":
                    continue
                if len(row) != 2:
                    raise LabelFileError(
                        path.name, line, f"{len(row)} fields where a row has 2 (ImageID,Split)", "fix the row"
                    )
                yield line, row[0], row[1].strip().lower()
    except UnicodeDecodeError as err:
        raise LabelFileError(
            path.name, line + 1, "the file is not UTF-8 text", "save the file as UTF-8"
        ) from err
    except csv.Error as err:
        raise LabelFileError(path.name, line + 1, f"cannot parse the row ({err})", "fix its quotes") from err


def import_openimages(
    session: Session,
    *,
    labels: Path,
    classes: Path | None = None,
    images: Path | None = None,
    dataset: str = "default",
    split: str = Split.TRAIN.value,
    splits: Path | None = None,
    author: str = "import",
    progress: ProgressFn | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import OpenImages labels (and classes, images, splits) into ``dataset`` in one transaction.

    Args:
        session: an open write session; nothing is committed here (the caller commits, or
            rolls back on an error so nothing changes).
        labels: ``ImageID,Source,LabelName,Confidence`` CSV.
        classes: ``LabelName,DisplayName`` CSV; None = use the dataset's existing classes.
        images: folder of ``<ImageID>.<ext>`` files; None = register images from the label rows
            with path ``<ImageID>.jpg``.
        split: split of newly registered images; ``splits`` (``ImageID,Split``) overrides it
            per image.
        author: recorded on every label and audit event.
        progress: ``(phase, done, total)`` callback: "images" (files), "labels" (bytes), "merge".

    Returns:
        What was read, added, changed and registered.

    Raises:
        LabelFileError: the first bad line of any file, as ``file:line: problem; fix``.
        FileNotFoundError: a file or folder does not exist.

    Example:
        >>> with store.write() as s:  # doctest: +SKIP
        ...     report = import_openimages(s, labels=Path("l.csv"), classes=Path("c.csv"))
    """
    for f in (labels, classes, splits):
        if f is not None and not f.is_file():
            raise FileNotFoundError(f"file {str(f)!r} does not exist")
    where = str(images) if images is not None else ""
    skipped: dict[str, str] = {}

    def unknown_image(key: str) -> tuple[str, str]:
        if key in skipped:
            return (
                f"the image file of ImageID {quote(key)} is not usable ({skipped[key]})",
                "replace the file",
            )
        return f"no image file for ImageID {quote(key)} under {where}", "add the image or remove the row"

    def unknown_class(key: str) -> tuple[str, str]:
        if classes is not None:
            return (
                f"class {quote(key)} is not in the class file",
                "add it to the classes file or remove the row",
            )
        return (
            f"class {quote(key)} is not a class of dataset {quote(dataset)}",
            "pass --classes FILE listing it",
        )

    with LabelImport(
        session,
        labels,
        dataset=dataset,
        images=images,
        split=split,
        author=author,
        images_from_labels=".jpg" if images is None else None,
        value_column="Confidence",
        unknown_class=unknown_class,
        unknown_image=unknown_image,
    ) as imp:
        if classes is not None:
            imp.add_classes(classes.name, read_class_file(classes))
        if images is not None:
            for rel, why in imp.register_folder(images, "stem", progress):
                skipped[PurePosixPath(rel).stem] = why
        imp.add_chunks(
            (lines, f["ImageID"], f["LabelName"], parse_values(f["Confidence"]), f["Confidence"])
            for lines, f in read_csv_chunks(
                labels, OPENIMAGES_COLUMNS, chunk_rows=chunk_rows, progress=progress
            )
        )
        if splits is not None and not imp.failed:
            imp.set_splits(splits.name, read_split_file(splits))
        return imp.finish(progress)


__all__ = ["OPENIMAGES_COLUMNS", "import_openimages", "read_split_file"]
