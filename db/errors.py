"""Errors the store raises for users: each message is one line saying what, where and what to do."""


class StoreError(Exception):
    """Base class of every user-facing store error."""


class NotFoundError(StoreError):
    """A dataset, class, image, suggestion or run that does not exist."""


class ConflictError(StoreError):
    """Someone else changed the same record first (optimistic concurrency); reload and retry."""


class LabelFileError(StoreError):
    """A label file that cannot be imported; the message names file and line."""

    def __init__(self, path: str, line: int | None, problem: str, fix: str = "") -> None:
        where = f"{path}:{line}" if line is not None else path
        msg = f"{where}: {problem}"
        if fix:
            msg += f"; {fix}"
        super().__init__(msg)
        self.path, self.line, self.problem = path, line, problem


__all__ = ["ConflictError", "LabelFileError", "NotFoundError", "StoreError"]
