"""Review decisions from a file and the suggestion list as a file — the CLI side of the review screen.

Decisions go through :func:`db.review.decide`, exactly as the app's keys do.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from common.atomic import atomic_open
from db.datasets import class_by_key, get_dataset
from db.errors import LabelFileError, StoreError
from db.queries import pending_for_cell, pending_rows
from db.review import Decision, decide

DECISION_COLUMNS = ("ImageID", "LabelName", "Decision")
SUGGESTION_COLUMNS = ("ImageID", "LabelName", "Score", "Prior", "Rank")
_COUNTER = {Decision.ACCEPT: "accepted", Decision.REJECT: "rejected", Decision.SKIP: "skipped"}


@dataclass
class ReviewReport:
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    by_line: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + self.rejected + self.skipped


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    name = path.name
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in DECISION_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise LabelFileError(
                    name,
                    1,
                    f"missing column(s) {', '.join(missing)}",
                    "the header must be ImageID,LabelName,Decision",
                )
            for row in reader:
                yield reader.line_num, row
    except UnicodeDecodeError as err:
        raise LabelFileError(name, None, f"not UTF-8 text ({err.reason})", "save the file as UTF-8") from None


def apply_decisions(session: Session, dataset_name: str, path: Path, annotator: str) -> ReviewReport:
    """Apply ``ImageID,LabelName,Decision`` rows (accept / reject / skip) as ``annotator``.

    The whole file is one unit of work: the caller's transaction rolls back on the first bad row.

    Raises:
        LabelFileError: naming the line — unknown image or class, bad decision, no pending
            suggestion for the cell, or a conflict with another annotator.
    """
    if not path.is_file():
        raise LabelFileError(str(path), None, "no such file", "check the path")
    ds = get_dataset(session, dataset_name)
    report = ReviewReport()
    for line, row in _rows(path):
        image_key, label_key = (row.get("ImageID") or "").strip(), (row.get("LabelName") or "").strip()
        try:
            decision = Decision.parse(row.get("Decision") or "")
        except ValueError as err:
            raise LabelFileError(path.name, line, str(err), "use accept, reject or skip") from None
        sugg = pending_for_cell(session, ds.id, image_key, label_key)
        if sugg is None:
            raise LabelFileError(
                path.name,
                line,
                f"no pending suggestion for image {image_key!r}, class {label_key!r}",
                "list them with `labelmend suggestions`",
            )
        try:
            decide(session, sugg.id, decision, annotator)
        except StoreError as err:
            raise LabelFileError(path.name, line, str(err)) from None
        counter = _COUNTER[decision]
        setattr(report, counter, getattr(report, counter) + 1)
        report.by_line.append(line)
    return report


def write_suggestions_csv(
    session: Session, dataset_name: str, out: Path, *, class_key: str | None = None, top: int | None = None
) -> int:
    """Write pending suggestions, best first, as ``ImageID,LabelName,Score,Prior,Rank``; returns rows."""
    ds = get_dataset(session, dataset_name)
    class_id = class_by_key(session, ds.id, class_key).id if class_key is not None else None
    n = 0
    with atomic_open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(SUGGESTION_COLUMNS)
        for n, (img, key, score, prior) in enumerate(
            pending_rows(session, ds.id, class_id=class_id, top=top), 1
        ):
            w.writerow([img, key, f"{score:.6f}", "" if prior is None else f"{prior:.6f}", n])
    return n


__all__ = [
    "DECISION_COLUMNS",
    "SUGGESTION_COLUMNS",
    "ReviewReport",
    "apply_decisions",
    "write_suggestions_csv",
]
