"""Change one label cell, with optimistic concurrency and an audit event.

Every function takes a ``session`` first and never commits: the caller frames the unit of work
(``with sessionmaker.begin() as session: ...``), so a label change and its audit event are
written together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import ConflictError, NotFoundError
from db.models import Image, Label, LabelClass, LabelEvent, utcnow


@dataclass(frozen=True)
class CellState:
    """The state of one (image, class) cell: ``value`` 1 / 0 / None (unknown); ``version`` 0 when unknown."""

    value: int | None
    version: int
    source: str | None = None
    author: str | None = None


def get_cell(session: Session, image_id: int, class_id: int) -> CellState:
    """The current value and version of a cell (version 0 = unknown, no row)."""
    row = session.execute(
        select(Label.value, Label.version, Label.source, Label.author).where(
            Label.image_id == image_id, Label.class_id == class_id
        )
    ).first()
    if row is None:
        return CellState(None, 0)
    return CellState(row.value, row.version, row.source, row.author)


def set_label(
    session: Session,
    *,
    image_id: int,
    class_id: int,
    value: int | None,
    author: str,
    source: str,
    reason: str,
    expected_version: int | None = None,
    suggestion_id: int | None = None,
) -> CellState:
    """Set a cell to 1 (positive), 0 (negative) or None (unknown) and append the audit event.

    Args:
        value: 1, 0, or None to make the cell unknown again (its row is deleted).
        expected_version: the version the caller saw (0 = it saw the cell unknown). If the cell
            changed since, :class:`ConflictError` is raised and nothing is written. ``None`` skips
            the check but the write is still atomic against concurrent writers.
        reason: why, for the audit log (e.g. ``"accepted suggestion 17"``).

    Returns:
        The new state of the cell. Setting a cell to the value it has writes nothing.

    Raises:
        ConflictError: the cell changed since ``expected_version``.
        NotFoundError: no such image or class.
        ValueError: ``value`` is not 1, 0 or None.
    """
    if value not in (0, 1, None):
        raise ValueError(f"label value must be 1, 0 or None (unknown), got {value!r}")
    dataset_id = session.scalar(select(Image.dataset_id).where(Image.id == image_id))
    if dataset_id is None:
        raise NotFoundError(f"image {image_id} does not exist")
    class_dataset = session.scalar(select(LabelClass.dataset_id).where(LabelClass.id == class_id))
    if class_dataset != dataset_id:
        raise NotFoundError(f"class {class_id} does not exist in the dataset of image {image_id}")

    current = get_cell(session, image_id, class_id)
    if expected_version is not None and current.version != expected_version:
        raise ConflictError(_changed_message(image_id, class_id, current))
    if current.value == value:
        return current

    now = utcnow()
    cell = (Label.image_id == image_id, Label.class_id == class_id)
    if value is None:
        done = session.execute(delete(Label).where(*cell, Label.version == current.version)).rowcount
        new = CellState(None, 0)
    elif current.version == 0:
        try:
            with session.begin_nested():
                session.add(
                    Label(
                        image_id=image_id,
                        class_id=class_id,
                        value=value,
                        source=source,
                        author=author,
                        created_at=now,
                        updated_at=now,
                        version=1,
                    )
                )
                session.flush()
            done = 1
        except IntegrityError:
            done = 0
        new = CellState(value, 1, source, author)
    else:
        done = session.execute(
            update(Label)
            .where(*cell, Label.version == current.version)
            .values(value=value, source=source, author=author, updated_at=now, version=Label.version + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        new = CellState(value, current.version + 1, source, author)
    if done != 1:
        raise ConflictError(_changed_message(image_id, class_id, get_cell(session, image_id, class_id)))

    session.add(
        LabelEvent(
            dataset_id=dataset_id,
            image_id=image_id,
            class_id=class_id,
            before=current.value,
            after=value,
            author=author,
            source=source,
            reason=reason,
            suggestion_id=suggestion_id,
            created_at=now,
        )
    )
    session.flush()
    return new


def _changed_message(image_id: int, class_id: int, now: CellState) -> str:
    state = {1: "positive", 0: "negative", None: "unknown"}[now.value]
    who = f" by {now.author}" if now.author else ""
    return (
        f"label of image {image_id}, class {class_id} was changed meanwhile (now {state}{who}, "
        f"version {now.version}); reload and decide again"
    )


__all__ = ["CellState", "get_cell", "set_label"]
