"""Import / Export: import a label file by server path (or upload a small one); download the labels.

The import formats, their labels and whether they take a classes file come from the importers
table (:class:`db.io.ImportFormat`, :func:`db.io.importer_for`); the import runs
:func:`db.io.import_labels` in one transaction: a bad line is one error naming the file and line,
and nothing changes. Exports stream the current labels (with provenance) to a file under
``LABELMEND_HOME/exports`` and offer it for download. Both are refused on the server without the
import / export permission; imported labels are recorded under the signed-in user.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.auth import Permission, PermissionDenied
from app.web import MAX_UPLOAD_MB, guarded, state
from app.web.components import md_escape
from db.datasets import get_dataset
from db.engine import labelmend_home
from db.errors import StoreError
from db.io import (
    ExportFormat,
    ImportFormat,
    importer_for,
    list_export_formats,
    list_import_formats,
    recent_exports,
)
from db.models import Split

EXPORT_KEY = "export_ready"
SUFFIX = {
    ExportFormat.OPENIMAGES: ".csv",
    ExportFormat.CSV: ".csv",
    ExportFormat.PARQUET: ".parquet",
    ExportFormat.JSON: ".json",
}
MIME = {".csv": "text/csv", ".parquet": "application/octet-stream", ".json": "application/json"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
#: Label file types the uploader accepts: every import format's (the format is chosen separately).
UPLOAD_TYPES = sorted({suffix for fmt in list_import_formats() for suffix in importer_for(fmt).suffixes})


def _opt_path(text: str) -> Path | None:
    return Path(text.strip()).expanduser() if text.strip() else None


def _save_upload(upload: Any, folder: Path) -> Path:
    """Write an uploaded file under ``folder`` with a safe name (kept for error messages)."""
    name = _SAFE_NAME.sub("_", Path(upload.name).name) or "upload"
    path = folder / name
    path.write_bytes(upload.getvalue())
    return path


def _run_import(
    fmt: ImportFormat, dataset: str, labels: Path, classes: Path | None, images: Path | None, split: str
) -> str:
    return guarded.import_file(
        state.get_store(),
        state.identity(),
        fmt,
        dataset=dataset,
        labels=labels,
        classes=classes,
        images=images,
        split=split,
    )


def _on_import() -> None:
    if state.guard(Permission.IMPORT) is None:
        return
    ss = st.session_state
    fmt = ImportFormat(ss["import-kind"])
    takes_classes = importer_for(fmt).classes
    dataset = str(ss.get("import-dataset") or "").strip()
    if not dataset:
        state.flash("error", "Give the dataset a name.")
        return
    images, split = _opt_path(ss.get("import-images") or ""), ss["import-split"]
    upload_dir = Path(tempfile.mkdtemp(prefix="upload-", dir=_ensure(labelmend_home() / "uploads")))
    try:
        if ss["import-source"] == "upload":
            if ss.get("import-upload") is None:
                state.flash("error", "Choose a label file to upload.")
                return
            labels = _save_upload(ss["import-upload"], upload_dir)
            up_classes = ss.get("import-upload-classes") if takes_classes else None
            classes = _save_upload(up_classes, upload_dir) if up_classes is not None else None
        else:
            labels_path = _opt_path(ss.get("import-path") or "")
            if labels_path is None:
                state.flash("error", "Give the label file's path on the server.")
                return
            labels = labels_path
            classes = _opt_path(ss.get("import-classes") or "") if takes_classes else None
        summary = _run_import(fmt, dataset, labels, classes, images, split)
    except PermissionDenied as err:
        state.flash("error", f"Refused: {err}")
        return
    except (StoreError, ValueError, FileNotFoundError) as err:
        state.flash("error", f"Nothing imported: {err}")
        return
    finally:
        shutil.rmtree(upload_dir, ignore_errors=True)
    ss[state.DATASET_KEY] = dataset
    state.flash("success", summary)


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _import_form(default_dataset: str) -> None:
    st.markdown("#### Import labels")
    fmt = st.radio(
        "Format",
        list_import_formats(),
        format_func=lambda value: importer_for(value).label,
        key="import-kind",
    )
    takes_classes = importer_for(fmt or list_import_formats()[0]).classes
    c1, c2 = st.columns(2)
    c1.text_input(
        "Dataset", default_dataset, key="import-dataset", help="An existing dataset, or a new name."
    )
    c2.selectbox("Split of new images", [s.value for s in Split], key="import-split")
    source = st.segmented_control(
        "Source",
        ["path", "upload"],
        format_func={"path": "Path on the server", "upload": f"Upload (≤ {MAX_UPLOAD_MB} MB)"}.__getitem__,
        default="path",
        key="import-source",
    )
    if source == "upload":
        st.file_uploader("Label file", key="import-upload", type=UPLOAD_TYPES)
        if takes_classes:
            st.file_uploader(
                "Classes file (LabelName,DisplayName), optional", key="import-upload-classes", type=["csv"]
            )
    else:
        st.text_input(
            "Label file path",
            key="import-path",
            placeholder="/data/oidv6-train-annotations-human-imagelabels.csv",
        )
        if takes_classes:
            st.text_input("Classes file path (LabelName,DisplayName), optional", key="import-classes")
    st.text_input(
        "Image folder on the server, optional",
        key="import-images",
        help="Images are served only from inside this folder.",
    )
    st.button("Import", key="import-run", type="primary", on_click=_on_import)


def _on_export(dataset: str) -> None:
    who = state.guard(Permission.EXPORT)
    if who is None:
        return
    fmt = ExportFormat(st.session_state["export-format"])
    out_dir = _ensure(labelmend_home() / "exports")
    out = out_dir / f"{_SAFE_NAME.sub('_', dataset)}-{fmt.value}{SUFFIX[fmt]}"
    try:
        report = guarded.export_file(state.get_store(), who, dataset=dataset, fmt=fmt, out=out)
    except PermissionDenied as err:
        state.flash("error", f"Refused: {err}")
        return
    except (StoreError, ValueError, OSError) as err:
        state.flash("error", f"Export failed: {err}")
        return
    st.session_state[EXPORT_KEY] = (fmt.value, list(report.files), report.summary())


def _recent(dataset: str) -> None:
    """The dataset's last exports: when, by whom, format, labels (``export_record``)."""
    with state.get_store().read() as s:
        records = recent_exports(s, get_dataset(s, dataset).id, limit=10)
    if not records:
        return
    with st.expander(f"Recent exports ({len(records)})"):
        st.dataframe(
            pd.DataFrame(
                {
                    "when": [state.as_utc(r.created_at) for r in records],
                    "by": [r.author for r in records],
                    "format": [r.format for r in records],
                    "labels": [r.labels for r in records],
                    "files": [", ".join(Path(f).name for f in r.files) for r in records],
                }
            ),
            hide_index=True,
        )


def _export(dataset: str) -> None:
    st.markdown("#### Export the cleaned labels")
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    c1.selectbox("Format", list_export_formats(), key="export-format")
    c2.button("Prepare export", key="export-run", on_click=_on_export, args=(dataset,), width="stretch")
    _recent(dataset)
    ready = st.session_state.get(EXPORT_KEY)
    if not ready:
        return
    fmt, files, summary = ready
    st.caption(md_escape(summary))
    for i, name in enumerate(files):
        path = Path(name)
        if not path.is_file():
            continue
        st.download_button(
            f"Download {path.name}",
            data=path.read_bytes(),
            file_name=path.name,
            mime=MIME.get(path.suffix, "application/octet-stream"),
            key=f"export-download-{fmt}-{i}",
            on_click="ignore",
        )


def render() -> None:
    state.show_flashes()
    who = state.identity()
    if who is None or not (who.can(Permission.IMPORT) or who.can(Permission.EXPORT)):
        who = state.require_page(Permission.IMPORT)  # shows the refusal and stops the page
    ds = state.current_dataset(state.get_store())
    left, right = st.columns(2, gap="large")
    with left:
        if who.can(Permission.IMPORT):
            _import_form(ds.name if ds else "default")
    with right:
        if not who.can(Permission.EXPORT):
            pass
        elif ds is None:
            st.info("Import a dataset first; its labels can then be exported here.")
        else:
            _export(ds.name)


render()
