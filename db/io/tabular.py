"""Import CSV and Parquet label tables with columns ``image, label, value`` (and the CSV reader
the OpenImages importer shares).

- ``image``: an image's external id, or (with an image folder) its path relative to the folder;
- ``label``: a class key; unknown keys become new classes (display name = key) unless a classes
  file is given, in which case every key must be in it or already in the dataset;
- ``value``: 1 (positive) or 0 (negative); CSV also accepts ``1.0``/``0.0``. Other columns
  (e.g. ``source, author, updated_at`` written by the exporter) are ignored.

Files are streamed in chunks (pandas' C parser for CSV, ``iter_batches`` for Parquet); the
whole import is one transaction of the caller's session. CSV line numbers are physical lines
(header = line 1) as long as no quoted field contains a line break; for Parquet the number after
``file:`` is the 1-based row.
"""

from __future__ import annotations

import csv
import enum
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from db.errors import LabelFileError
from db.io._report import ImportReport, ProgressFn
from db.io._stage import Chunk, LabelImport
from db.io._text import parse_values, quote
from db.io.images import scan_with_progress
from db.models import Split

TABLE_COLUMNS = ("image", "label", "value")
CHUNK_ROWS = 200_000


class TableFormat(enum.StrEnum):
    CSV = "csv"
    PARQUET = "parquet"

    @classmethod
    def from_path(cls, path: Path) -> TableFormat:
        return cls.PARQUET if path.suffix.lower() in (".parquet", ".pq") else cls.CSV


# ------------------------------------------------------------------------- CSV reading


def _first_bad_utf8(path: Path) -> tuple[int, int, int]:
    """(line, column, byte) of the first byte sequence that is not UTF-8."""
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return n, err.start + 1, raw[err.start]
    return 1, 1, 0


def _not_utf8(path: Path) -> LabelFileError:
    line, col, byte = _first_bad_utf8(path)
    return LabelFileError(
        path.name, line, f"byte 0x{byte:02x} at column {col} is not UTF-8 text", "save the file as UTF-8"
    )


def _parser_error(path: Path, err: Exception) -> LabelFileError:
    """pandas' tokenizer error as one line with the line number where pandas gives one."""
    text = " ".join(str(err).split())
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return LabelFileError(
            path.name,
            int(m.group(2)),
            f"{m.group(3)} fields where the header has {m.group(1)}",
            "quote fields that contain commas, or remove the extra fields",
        )
    m = re.search(r"EOF inside string starting at row (\d+)", text)
    if m:
        return LabelFileError(
            path.name, int(m.group(1)) + 1, "a quoted field starting here never ends", 'close or remove the "'
        )
    return LabelFileError(
        path.name, None, f"cannot parse the file ({text})", "save it as comma-separated text"
    )


def _empty(path: Path, columns: Sequence[str]) -> LabelFileError:
    return LabelFileError(
        path.name, 1, "the file is empty", f"the first line must be the header {','.join(columns)}"
    )


@contextmanager
def _parse_errors(path: Path, columns: Sequence[str]) -> Iterator[None]:
    """Turn the CSV parser's exceptions into one-line :class:`LabelFileError`."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise _not_utf8(path) from err
    except pd.errors.EmptyDataError as err:
        raise _empty(path, columns) from err
    except (pd.errors.ParserError, ValueError) as err:
        raise _parser_error(path, err) from err


_READ_OPTIONS = {
    "index_col": False,
    "dtype": object,
    "na_filter": False,
    "keep_default_na": False,
    "skip_blank_lines": False,
    "encoding": "utf-8",
    "engine": "c",
}


def read_header(path: Path, columns: Sequence[str]) -> dict[str, str]:
    """Check a CSV header names ``columns`` (case and spaces ignored); maps wanted → actual name.

    Raises:
        LabelFileError: empty file, not UTF-8, unparsable, or a column missing (``file:1``).
    """
    want = ",".join(columns)
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if not head.removeprefix(b"\xef\xbb\xbf").strip():
        raise _empty(path, columns)
    with _parse_errors(path, columns):
        fields = [str(f) for f in pd.read_csv(path, nrows=0, **_READ_OPTIONS).columns]  # type: ignore[call-overload]
    by_name = {f.strip().lower(): f for f in fields}
    missing = [c for c in columns if c.lower() not in by_name]
    if missing:
        raise LabelFileError(
            path.name,
            1,
            f"missing column {quote(missing[0])} (the header is {quote(','.join(fields))})",
            f"the first line must name the columns {want}",
        )
    return {c: by_name[c.lower()] for c in columns}


def _check_first_row(path: Path) -> None:
    """The first data row may not have more fields than the header (pandas would shift it)."""
    with path.open(encoding="utf-8-sig", newline="", errors="replace") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, [])
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) > len(header):
                    raise LabelFileError(
                        path.name,
                        reader.line_num,
                        f"{len(row)} fields where the header has {len(header)}",
                        "quote fields that contain commas, or remove the extra fields",
                    )
                return
        except csv.Error:
            return  # pandas reports what is wrong, with its line


def read_csv_chunks(
    path: Path,
    columns: Sequence[str],
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: ProgressFn | None = None,
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Stream a CSV file's ``columns`` as text, ``chunk_rows`` rows at a time.

    Blank lines are skipped (but counted). CRLF line ends, a UTF-8 BOM and quoted fields with
    commas or quotes are handled by the parser.

    Yields:
        ``(lines, frame)``: physical line numbers, shape (n,) int64, and a frame with exactly
        ``columns`` (wanted names), Python str values, no NaN.

    Raises:
        LabelFileError: empty file, missing column, non-UTF-8 bytes, a row with too many fields.
    """
    names = read_header(path, columns)
    _check_first_row(path)
    total = path.stat().st_size
    row0 = 0
    with path.open("rb") as fh:
        with _parse_errors(path, columns):  # all columns: usecols would hide rows with extra fields
            reader = pd.read_csv(fh, chunksize=chunk_rows, **_READ_OPTIONS)  # type: ignore[call-overload]
        while True:
            with _parse_errors(path, columns):
                chunk = next(reader, None)
            if chunk is None:
                break
            if not set(names.values()) <= set(chunk.columns):
                raise LabelFileError(path.name, 1, "the header could not be read", "check the first line")
            frame = chunk.rename(columns={v: k for k, v in names.items()})[list(columns)]
            lines = np.arange(row0, row0 + len(frame), dtype=np.int64) + 2
            row0 += len(frame)
            blank = np.ones(len(frame), dtype=bool)
            for c in columns:
                blank &= (frame[c] == "").to_numpy(dtype=bool)
            if blank.any():
                frame, lines = frame[~blank], lines[~blank]
            if progress is not None:
                progress("labels", min(fh.tell(), total), total)
            yield lines, frame.reset_index(drop=True)


def read_class_file(path: Path) -> list[tuple[int, str, str]]:
    """Rows ``(line, key, display_name)`` of a ``LabelName,DisplayName`` file (header optional).

    The header is recognised by its first field ``LabelName`` (any case). Display names may
    contain commas inside quotes and need not be unique.

    Raises:
        LabelFileError: empty, not UTF-8, unparsable, or a row without exactly two fields.
    """
    out: list[tuple[int, str, str]] = []
    line = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if not out and line == 1 and row[0].strip().lower() == "labelname":
                    continue
                if len(row) != 2:
                    raise LabelFileError(
                        path.name,
                        line,
                        f"{len(row)} fields where a class row has 2 (LabelName,DisplayName)",
                        "quote display names that contain commas",
                    )
                out.append((line, row[0], row[1]))
    except UnicodeDecodeError as err:
        raise _not_utf8(path) from err
    except csv.Error as err:
        raise LabelFileError(path.name, line + 1, f"cannot parse the row ({err})", "fix its quotes") from err
    if not out:
        raise LabelFileError(
            path.name, max(line, 1), "no classes in the file", "list one LabelName,DisplayName per line"
        )
    return out


# ------------------------------------------------------------------------- Parquet reading

_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string)


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return any(f(t) for f in _TEXT_TYPES) or str(t) == "string_view"


def _parquet_columns(path: Path) -> tuple[pq.ParquetFile, dict[str, str]]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise LabelFileError(
            path.name, None, f"not a readable Parquet file ({err})", "write it with pandas.to_parquet"
        ) from err
    schema = pf.schema_arrow
    by_name = {n.strip().lower(): n for n in schema.names}
    missing = [c for c in TABLE_COLUMNS if c not in by_name]
    if missing:
        raise LabelFileError(
            path.name,
            None,
            f"missing column {quote(missing[0])} (columns: {quote(','.join(schema.names))})",
            "name the columns image, label, value",
        )
    names = {c: by_name[c] for c in TABLE_COLUMNS}
    for col in ("image", "label"):
        t = schema.field(names[col]).type
        if not _is_text(t):
            raise LabelFileError(
                path.name,
                None,
                f"column {quote(col)} has type {t}, not text",
                f'store it as strings (df["{col}"].astype(str))',
            )
    t = schema.field(names["value"]).type
    if not (pa.types.is_integer(t) or pa.types.is_boolean(t)):
        raise LabelFileError(
            path.name,
            None,
            f'column "value" has type {t}, not integer',
            'store 1/0 as integers (df["value"].astype("int8"))',
        )
    return pf, names


def read_parquet_chunks(
    path: Path, *, chunk_rows: int = CHUNK_ROWS, progress: ProgressFn | None = None
) -> Iterator[tuple[np.ndarray, pd.DataFrame, np.ndarray]]:
    """Stream a Parquet label table in record batches.

    Yields:
        ``(rows, frame, values)``: 1-based row numbers (n,) int64; ``image``/``label`` as str
        (plus ``value`` as str when a value is bad); values int8 (n,): 1, 0, or -1 where the
        stored number is not 0 or 1.

    Raises:
        LabelFileError: not Parquet, a missing column, a wrong dtype, or an empty cell (null).
    """
    pf, names = _parquet_columns(path)
    total = pf.metadata.num_rows
    row0 = 0
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=list(names.values())):
        n = batch.num_rows
        rows = np.arange(row0, row0 + n, dtype=np.int64) + 1
        for col, name in names.items():
            arr = batch.column(name)
            if arr.null_count:
                first = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
                raise LabelFileError(
                    path.name, int(rows[first]), f"empty {col}", "fill it in or delete the row"
                )
        frame = pd.DataFrame(
            {
                "image": batch.column(names["image"]).cast(pa.string()).to_pandas(),
                "label": batch.column(names["label"]).cast(pa.string()).to_pandas(),
            }
        )
        raw = batch.column(names["value"]).cast(pa.int64()).to_numpy()
        values = np.where(raw == 1, 1, np.where(raw == 0, 0, -1)).astype(np.int8)
        if (values < 0).any():  # the numbers as written, for the error message
            frame["value"] = pd.Series(raw).astype(str)
        row0 += n
        if progress is not None:
            progress("labels", row0, total)
        yield rows, frame, values


# ------------------------------------------------------------------------- import


def import_table(
    session: Session,
    *,
    labels: Path,
    dataset: str = "default",
    images: Path | None = None,
    classes: Path | None = None,
    fmt: TableFormat | str | None = None,
    split: str = Split.TRAIN.value,
    author: str = "import",
    progress: ProgressFn | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import a CSV or Parquet table ``image, label, value`` into ``dataset`` (one transaction).

    Args:
        session: an open write session; nothing is committed here.
        labels: the table; ``fmt`` None picks Parquet for ``.parquet``/``.pq``, else CSV.
        images: image folder, scanned recursively (external id = relative path without
            extension); rows may name an image by id or by path. Without it, images are
            registered from the rows with path = the value given (must stay inside the root).
        classes: optional ``LabelName,DisplayName`` file; then unknown keys are errors.
        split: split of newly registered images.

    Returns:
        What was read, added, changed and registered.

    Raises:
        LabelFileError: the first bad line (``file:line: problem; fix``); nothing is written.

    Example:
        >>> with store.write() as s:  # doctest: +SKIP
        ...     import_table(s, labels=Path("labels.csv"), dataset="pets")
    """
    kind = TableFormat(fmt) if fmt is not None else TableFormat.from_path(labels)
    if not labels.is_file():
        raise FileNotFoundError(f"label file {str(labels)!r} does not exist")
    where = str(images) if images is not None else ""

    def unknown_image(key: str) -> tuple[str, str]:
        return (
            f"image {quote(key)} is neither an image id nor a file under {where}",
            "add the image file or remove the row",
        )

    with LabelImport(
        session,
        labels,
        dataset=dataset,
        images=images,
        split=split,
        author=author,
        images_from_labels=None if images is not None else "",
        classes_from_labels=classes is None,
        match_paths=images is not None,
        unknown_class=lambda k: (
            f"class {quote(k)} is not in the classes file",
            "add it to the classes file or remove the row",
        ),
        unknown_image=unknown_image,
    ) as imp:
        if classes is not None:
            imp.add_classes(classes.name, read_class_file(classes))
        if images is not None:
            imp.register_folder(images, "relpath", progress)
        chunks: Iterable[Chunk]
        if kind is TableFormat.CSV:
            chunks = (
                (lines, f["image"], f["label"], parse_values(f["value"]), f["value"])
                for lines, f in read_csv_chunks(
                    labels, TABLE_COLUMNS, chunk_rows=chunk_rows, progress=progress
                )
            )
        else:
            chunks = (
                (rows, f["image"], f["label"], values, f.get("value"))
                for rows, f, values in read_parquet_chunks(labels, chunk_rows=chunk_rows, progress=progress)
            )
        imp.add_chunks(chunks)
        return imp.finish(progress)


__all__ = [
    "CHUNK_ROWS",
    "TABLE_COLUMNS",
    "ProgressFn",
    "TableFormat",
    "import_table",
    "read_class_file",
    "read_csv_chunks",
    "read_header",
    "read_parquet_chunks",
    "scan_with_progress",
]
