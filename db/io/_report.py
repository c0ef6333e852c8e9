"""What an import tells its caller: progress while it runs, and an :class:`ImportReport` at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: ``progress(phase, done, total)``, in counts: phase "images" counts files; "labels" counts bytes
#: (CSV), rows (Parquet, labelmend JSON) or images (COCO); "merge" has no total (None). Not the
#: ``(fraction, message)`` shape of :data:`common.progress.Progress` used by training and jobs.
ProgressFn = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class ImportReport:
    """What one import did. ``seconds`` is wall time; label counts are cells."""

    dataset: str
    file: str
    rows_read: int
    labels_added: int
    labels_changed: int
    labels_unchanged: int
    images_registered: int
    classes_added: int
    seconds: float
    duplicate_rows: int = 0
    images_skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One line for people: rows read, cells added/changed/unchanged, registrations, time."""
        return (
            f"{self.file}: {self.rows_read:,} rows read; labels {self.labels_added:,} added, "
            f"{self.labels_changed:,} changed, {self.labels_unchanged:,} unchanged; "
            f"{self.images_registered:,} images and {self.classes_added:,} classes registered; "
            f"{self.seconds:.2f} s"
        )


__all__ = ["ImportReport", "ProgressFn"]
