"""Import and export of label files: OpenImages, COCO, CSV/Parquet tables, labelmend JSON.

Imports go by format through one table (:mod:`db.io.importers`: :class:`ImportFormat`,
:func:`import_labels`, :func:`list_import_formats`), exports through another
(:mod:`db.io.export`: :class:`ExportFormat`, :func:`export_labels`, :func:`list_export_formats`).
Every importer takes an open write ``session`` (never commits), streams its file through one
staging table (:mod:`db.io._stage`), reports the first bad line as a one-line
:class:`~db.errors.LabelFileError`, and returns an :class:`ImportReport`. Exporters stream
labels with provenance to a file.
"""

from db.io._report import ImportReport
from db.io.coco import AbsentPolicy, import_coco, import_label_json
from db.io.export import (
    ExportFormat,
    ExportReport,
    classes_file_for,
    export_labels,
    list_export_formats,
    recent_exports,
    record_export,
    write_class_counts_csv,
)
from db.io.images import IMAGE_SUFFIXES, FoundImage, ImageScan, image_size, resolve_inside
from db.io.importers import Importer, ImportFormat, import_labels, importer_for, list_import_formats
from db.io.openimages import OPENIMAGES_COLUMNS, import_openimages
from db.io.tabular import TableFormat, import_table, read_class_file

__all__ = [
    "IMAGE_SUFFIXES",
    "OPENIMAGES_COLUMNS",
    "AbsentPolicy",
    "ExportFormat",
    "ExportReport",
    "FoundImage",
    "ImageScan",
    "ImportFormat",
    "ImportReport",
    "Importer",
    "TableFormat",
    "classes_file_for",
    "export_labels",
    "image_size",
    "import_coco",
    "import_label_json",
    "import_labels",
    "import_openimages",
    "import_table",
    "importer_for",
    "list_export_formats",
    "list_import_formats",
    "read_class_file",
    "recent_exports",
    "record_export",
    "resolve_inside",
    "write_class_counts_csv",
]
