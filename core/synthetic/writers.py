"""Write a generated dataset to disk in the OpenImages formats the importer reads, plus its truth.

Layout under ``out_dir``::

    images/<ImageID>.jpg   (or .png)   the rendered images, config.image_size px square, RGB
    classes.csv    LabelName,DisplayName                 one row per class, with header
    labels.csv     ImageID,Source,LabelName,Confidence   annotated cells only; Source "verification",
                                                         Confidence 1 (positive) or 0 (negative)
    truth.csv      ImageID,Source,LabelName,Confidence   every cell (N × C rows); Source "truth"
    splits.csv     ImageID,Split                         Split is train / val / test
    synthetic.json seed, n_images, the SceneConfig and the generating prevalence (provenance)

OpenImages' own class file has no header; ours has one (``LabelName,DisplayName``). Rows are in
image order, then class order.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.constants import NEGATIVE, POSITIVE, UNKNOWN
from core.synthetic.scenes import SyntheticDataset

logger = logging.getLogger(__name__)

_IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG"}


@dataclass(frozen=True)
class WrittenDataset:
    """Paths of a dataset written by :func:`write_dataset`."""

    root: Path
    images_dir: Path
    classes_csv: Path
    labels_csv: Path
    truth_csv: Path
    splits_csv: Path
    metadata_json: Path


def _check_annotations(annotations: np.ndarray, ds: SyntheticDataset) -> np.ndarray:
    a = np.asarray(annotations)
    if a.shape != ds.truth.shape:
        raise ValueError(f"annotations have shape {a.shape}: expected {ds.truth.shape} (images × classes)")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"annotations have dtype {a.dtype}: expected int8 with 1 / 0 / -1")
    if a.size and not np.isin(a, (POSITIVE, NEGATIVE, UNKNOWN)).all():
        bad = np.setdiff1d(np.unique(a), (POSITIVE, NEGATIVE, UNKNOWN))
        raise ValueError(f"annotations hold values {bad.tolist()}: only 1, 0 and -1 are allowed")
    known = a != UNKNOWN
    n_wrong = int((a[known] != ds.truth[known]).sum())
    if n_wrong:
        logger.warning("annotations disagree with the truth on %d cells", n_wrong)
    return a.astype(np.int8, copy=False)


def _cells_frame(ds: SyntheticDataset, values: np.ndarray, source: str) -> pd.DataFrame:
    rows, cols = np.nonzero(values != UNKNOWN)  # row-major: image order, then class order
    return pd.DataFrame(
        {
            "ImageID": np.asarray(ds.image_ids, dtype=object)[rows],
            "Source": source,
            "LabelName": np.asarray(ds.class_ids, dtype=object)[cols],
            "Confidence": values[rows, cols].astype(np.int64),
        }
    )


def _save_images(args: tuple[SyntheticDataset, list[int], Path, str, int]) -> None:
    ds, indices, images_dir, fmt, quality = args
    for i in indices:
        path = images_dir / f"{ds.image_ids[i]}.{fmt}"
        image = ds.render(i)
        if fmt == "jpg":
            image.save(path, _IMAGE_FORMATS[fmt], quality=quality)
        else:
            image.save(path, _IMAGE_FORMATS[fmt])


def write_dataset(
    ds: SyntheticDataset,
    out_dir: Path | str,
    *,
    annotations: np.ndarray,
    image_format: str = "jpg",
    jpeg_quality: int = 92,
    workers: int = 1,
) -> WrittenDataset:
    """Render every image and write the dataset files (see the module docstring for the layout).

    Existing files of the same names are overwritten.

    Args:
        ds: the generated dataset.
        out_dir: target folder, created if needed.
        annotations: int8 (N, C), 1 / 0 / -1 (e.g. from :func:`core.synthetic.fpc`); its 1 and 0
            cells become ``labels.csv``. A cell that disagrees with the truth is written as given
            (and logged), so simulated annotator errors are possible.
        image_format: ``"jpg"`` or ``"png"``.
        jpeg_quality: JPEG quality 1..95.
        workers: processes rendering images (1 = in this process).

    Returns:
        The written paths.

    Raises:
        ValueError: on annotations of the wrong shape or values, or a bad format or worker count.
    """
    if image_format not in _IMAGE_FORMATS:
        raise ValueError(f"image_format={image_format!r}: use one of {', '.join(_IMAGE_FORMATS)}")
    if workers < 1:
        raise ValueError(f"workers={workers}: must be >= 1")
    annotations = _check_annotations(annotations, ds)
    root = Path(out_dir)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)

    n = len(ds)
    if workers == 1 or n < 2 * workers:
        _save_images((ds, list(range(n)), images_dir, image_format, jpeg_quality))
    else:
        chunks = [list(c) for c in np.array_split(np.arange(n), 4 * workers) if len(c)]
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_save_images, [(ds, c, images_dir, image_format, jpeg_quality) for c in chunks])

    paths = WrittenDataset(
        root=root,
        images_dir=images_dir,
        classes_csv=root / "classes.csv",
        labels_csv=root / "labels.csv",
        truth_csv=root / "truth.csv",
        splits_csv=root / "splits.csv",
        metadata_json=root / "synthetic.json",
    )
    classes = pd.DataFrame({"LabelName": ds.class_ids, "DisplayName": ds.class_names})
    classes.to_csv(paths.classes_csv, index=False)
    _cells_frame(ds, annotations, "verification").to_csv(paths.labels_csv, index=False)
    _cells_frame(ds, ds.truth, "truth").to_csv(paths.truth_csv, index=False)
    pd.DataFrame({"ImageID": ds.image_ids, "Split": ds.splits}).to_csv(paths.splits_csv, index=False)
    meta = {
        "seed": ds.seed,
        "n_images": n,
        "config": asdict(ds.config),
        "prevalence": dict(zip(ds.class_ids, ds.prevalence.round(6).tolist(), strict=True)),
        "image_format": image_format,
    }
    paths.metadata_json.write_text(json.dumps(meta, indent=2) + "\n")
    return paths
