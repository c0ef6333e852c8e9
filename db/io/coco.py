"""Import JSON label files: COCO ``instances_*.json`` and labelmend's own JSON export.

COCO:
- classes: one per category, in category-id order. The class key is the category ``name`` when
  every name is unique (the usual case), otherwise the category ``id`` as text for all of them;
  the display name is always the name.
- images: one per entry of ``images``; external id = ``file_name`` without its extension,
  path = ``file_name`` (relative to the image folder; with ``--images`` each file must exist).
  Width/height come from the JSON.
- labels: a category with at least one instance in an image is positive; every other category
  of that image is negative (``absent="negative"``, COCO is exhaustively annotated) or unknown
  (``absent="unknown"``: no row).

The JSON is parsed whole with ``json.load`` (COCO files are JSON documents, not line-based;
train2017 is ~450 MB in memory). Rows are then generated from numpy arrays a block of images at
a time and streamed through the shared staging (:mod:`db.io._stage`), never as one Python object
per cell. Errors name the JSON element (``annotations[17] has no "category_id"``) instead of a
line, since problems are found per element.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from common.choice import Choice
from db.errors import LabelFileError
from db.io._report import ImportReport, ProgressFn
from db.io._stage import LabelImport
from db.io._text import is_unsafe_path, quote
from db.io.images import resolve_inside
from db.io.tabular import CHUNK_ROWS
from db.models import Split


class AbsentPolicy(Choice, kind="absent policy", message="--absent must be one of {valid}, got {value}"):
    """What a COCO category without instances in an image means for that image."""

    NEGATIVE = "negative"
    UNKNOWN = "unknown"


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"file {str(path)!r} does not exist")
    try:
        with path.open("rb") as fh:
            return json.load(fh)
    except UnicodeDecodeError as err:
        raise LabelFileError(path.name, None, "the file is not UTF-8 text", "save it as UTF-8 JSON") from err
    except json.JSONDecodeError as err:
        raise LabelFileError(
            path.name, err.lineno, f"not valid JSON ({err.msg} at column {err.colno})", "fix the JSON syntax"
        ) from err


def _field(path: Path, obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise LabelFileError(path.name, None, f"{where} is not a JSON object", "fix that entry")
    if key not in obj:
        raise LabelFileError(path.name, None, f"{where} has no {quote(key)}", "add it or remove the entry")
    return obj[key]


def _top_lists(path: Path, doc: Any, keys: Sequence[str], what: str, fix: str) -> list[list[Any]]:
    if not isinstance(doc, dict):
        raise LabelFileError(path.name, None, f"not {what}: the top level is not a JSON object", fix)
    out = []
    for key in keys:
        if key not in doc:
            raise LabelFileError(path.name, None, f"not {what}: missing key {quote(key)}", fix)
        if not isinstance(doc[key], list):
            raise LabelFileError(path.name, None, f"not {what}: {quote(key)} is not a list", fix)
        out.append(doc[key])
    return out


def _image_record(
    path: Path, folder: Path | None, ext: str, file: Any, width: Any, height: Any, where: str
) -> tuple[str, str, int | None, int | None]:
    if (
        not isinstance(file, str)
        or is_unsafe_path(file)
        or file.endswith("/")
        or PurePosixPath(file).name in ("", ".")
    ):
        raise LabelFileError(
            path.name, None, f"{where} file {quote(file)} is not a path inside the image folder", "fix it"
        )
    if folder is not None:
        try:
            real = resolve_inside(folder, file)
        except ValueError as err:
            raise LabelFileError(path.name, None, f"{where}: {err}", "fix the path") from err
        if not real.is_file():
            raise LabelFileError(
                path.name,
                None,
                f"{where}: no image file {quote(file)} under {folder}",
                "add the file or remove the image",
            )
    w = width if isinstance(width, int) and not isinstance(width, bool) else None
    h = height if isinstance(height, int) and not isinstance(height, bool) else None
    return ext, file, w, h


def _unique_ids(path: Path, ids: list[Any], what: str) -> pd.Index:
    index = pd.Index(ids, dtype=object)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise LabelFileError(path.name, None, f"{what} id {quote(dup)} appears twice", "keep one entry")
    return index


def _positions(path: Path, index: pd.Index, values: list[Any], what: str, field: str) -> np.ndarray:
    pos = index.get_indexer(pd.Index(values, dtype=object)) if values else np.zeros(0, dtype=np.int64)
    if (pos < 0).any():
        i = int(np.flatnonzero(pos < 0)[0])
        raise LabelFileError(
            path.name,
            None,
            f"annotations[{i}] refers to {field} {quote(values[i])}, which is not in {quote(what)}",
            "fix the id or remove the annotation",
        )
    return pos.astype(np.int64)


def import_coco(
    session: Session,
    *,
    annotations: Path,
    images: Path | None = None,
    dataset: str = "default",
    absent: AbsentPolicy | str = AbsentPolicy.NEGATIVE,
    split: str = Split.TRAIN.value,
    author: str = "import",
    progress: ProgressFn | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import a COCO instances file as image-level multi-labels (one transaction).

    Args:
        session: an open write session; nothing is committed here.
        annotations: ``instances_*.json``.
        images: the image folder (each ``file_name`` must exist under it); None = no check.
        absent: ``negative`` (default) or ``unknown`` for categories with no instance.
        split: split of newly registered images.

    Returns:
        What was read (rows = cells generated), added, changed and registered.

    Raises:
        LabelFileError: not JSON, not COCO (names the missing key), or a bad element.
    """
    policy = AbsentPolicy.from_str(str(absent))
    doc = _load_json(annotations)
    imgs, anns, cats = _top_lists(
        annotations,
        doc,
        ("images", "annotations", "categories"),
        "a COCO instances file",
        "pass an instances_*.json file (it has images, annotations and categories)",
    )
    del doc
    cat_ids = [_field(annotations, c, "id", f"categories[{j}]") for j, c in enumerate(cats)]
    names = [str(_field(annotations, c, "name", f"categories[{j}]")) for j, c in enumerate(cats)]
    order = sorted(range(len(cats)), key=lambda j: (str(type(cat_ids[j])), cat_ids[j]))
    cat_ids, names = [cat_ids[j] for j in order], [names[j] for j in order]
    cat_index = _unique_ids(annotations, cat_ids, "category")
    keys = names if len(set(names)) == len(names) else [str(c) for c in cat_ids]

    img_ids = [_field(annotations, im, "id", f"images[{i}]") for i, im in enumerate(imgs)]
    img_index = _unique_ids(annotations, img_ids, "image")
    records = []
    for i, im in enumerate(imgs):
        file = _field(annotations, im, "file_name", f"images[{i}]")
        rec = _image_record(annotations, images, "", file, im.get("width"), im.get("height"), f"images[{i}]")
        records.append((str(PurePosixPath(file).with_suffix("")), *rec[1:]))
    ext_ids = np.array([r[0] for r in records], dtype=object)
    del imgs

    ann_img = [_field(annotations, a, "image_id", f"annotations[{k}]") for k, a in enumerate(anns)]
    ann_cat = [_field(annotations, a, "category_id", f"annotations[{k}]") for k, a in enumerate(anns)]
    del anns
    n_cls = len(keys)
    codes = np.unique(
        _positions(annotations, img_index, ann_img, "images", "image_id") * n_cls
        + _positions(annotations, cat_index, ann_cat, "categories", "category_id")
    )
    del ann_img, ann_cat

    with LabelImport(session, annotations, dataset=dataset, images=images, split=split, author=author) as imp:
        imp.add_classes(
            annotations.name, [(j + 1, k, n) for j, k, n in zip(range(n_cls), keys, names, strict=True)]
        )
        imp.register_images(records, annotations.name)
        del records
        key_arr = np.array(keys, dtype=object)
        for lines, img_pos, cls_pos, values in _coco_cells(codes, len(ext_ids), n_cls, policy, chunk_rows):
            imp.add_chunk(
                lines,
                pd.Series(ext_ids[img_pos], dtype=object),
                pd.Series(key_arr[cls_pos], dtype=object),
                values,
            )
            if progress is not None:
                progress("labels", int(img_pos[-1]) + 1 if len(img_pos) else 0, len(ext_ids))
        return imp.finish(progress)


def _coco_cells(
    codes: np.ndarray, n_img: int, n_cls: int, policy: AbsentPolicy, chunk_rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Cells a block of images at a time.

    Args:
        codes: sorted unique positive cells ``image_pos * n_cls + class_pos``, int64.

    Yields:
        ``(row numbers, image positions, class positions, values int8)``, each shape (k,).
    """
    if n_cls == 0:
        return
    block = max(1, chunk_rows // n_cls)
    row = 0
    for a in range(0, n_img, block):
        b = min(n_img, a + block)
        lo, hi = np.searchsorted(codes, [a * n_cls, b * n_cls])
        pos = codes[lo:hi]
        if policy is AbsentPolicy.NEGATIVE:
            values = np.zeros((b - a) * n_cls, dtype=np.int8)
            values[pos - a * n_cls] = 1
            cells = np.arange(a * n_cls, b * n_cls, dtype=np.int64)
        else:
            values = np.ones(len(pos), dtype=np.int8)
            cells = pos
        if len(cells) == 0:
            continue
        lines = np.arange(row, row + len(cells), dtype=np.int64) + 1
        row += len(cells)
        yield lines, cells // n_cls, cells % n_cls, values


# ------------------------------------------------------------------------- labelmend JSON

_JSON_FIX = 'pass a file written by `labelmend export --format json` (keys "classes" and "images")'


def import_label_json(
    session: Session,
    *,
    path: Path,
    dataset: str = "default",
    images: Path | None = None,
    split: str = Split.TRAIN.value,
    author: str = "import",
    progress: ProgressFn | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import labelmend's JSON export (:func:`db.io.export.export_labels` format ``json``).

    Top level ``{"classes": [{"key", "display_name"}], "images": [{"image", "file",
    "positives": [keys], "negatives": [keys], "split"?}]}``; other keys are ignored.

    Raises:
        LabelFileError: naming the element (``images[3].positives``) that is wrong.
    """
    doc = _load_json(path)
    cls_list, img_list = _top_lists(path, doc, ("classes", "images"), "a labelmend JSON export", _JSON_FIX)
    del doc
    classes = []
    for j, c in enumerate(cls_list):
        key = _field(path, c, "key", f"classes[{j}]")
        name = c.get("display_name", key)
        if not isinstance(key, str) or not isinstance(name, str):
            raise LabelFileError(
                path.name, None, f"classes[{j}] key and display_name must be text", "fix the entry"
            )
        classes.append((j + 1, key, name))
    known = {k for _, k, _ in classes}
    valid_splits = {s.value for s in Split}
    records, splits, cells = [], [], []
    for i, im in enumerate(img_list):
        where = f"images[{i}]"
        ext = _field(path, im, "image", where)
        if not isinstance(ext, str) or not ext:
            raise LabelFileError(
                path.name, None, f"{where}.image must be a non-empty text id", "fix the entry"
            )
        records.append(
            _image_record(path, images, ext, im.get("file", ext), im.get("width"), im.get("height"), where)
        )
        if "split" in im:
            if im["split"] not in valid_splits:
                raise LabelFileError(
                    path.name, None, f"{where}.split {quote(im['split'])} is not train, val or test", "fix it"
                )
            splits.append((i + 1, ext, im["split"]))
        seen: dict[str, int] = {}
        for field, value in (("positives", 1), ("negatives", 0)):
            keys = im.get(field, [])
            if not isinstance(keys, list):
                raise LabelFileError(
                    path.name, None, f"{where}.{field} is not a list", "write a list of class keys"
                )
            for key in keys:
                if key not in known:
                    raise LabelFileError(
                        path.name,
                        None,
                        f"{where}.{field} has class {quote(key)}, which is not in classes",
                        "add it",
                    )
                if seen.get(key, value) != value:
                    raise LabelFileError(
                        path.name,
                        None,
                        f"{where} lists class {quote(key)} as both positive and negative",
                        "keep one",
                    )
                seen[key] = value
                cells.append((ext, key, value))
    del img_list
    with LabelImport(session, path, dataset=dataset, images=images, split=split, author=author) as imp:
        imp.add_classes(path.name, classes)
        imp.register_images(records, path.name)
        for a in range(0, len(cells), chunk_rows):
            part = cells[a : a + chunk_rows]
            imp.add_chunk(
                np.arange(a + 1, a + 1 + len(part), dtype=np.int64),
                pd.Series([c[0] for c in part], dtype=object),
                pd.Series([c[1] for c in part], dtype=object),
                np.array([c[2] for c in part], dtype=np.int8),
            )
            if progress is not None:
                progress("labels", a + len(part), len(cells))
        if splits:
            imp.set_splits(path.name, splits)
        return imp.finish(progress)


__all__ = ["AbsentPolicy", "import_coco", "import_label_json"]
