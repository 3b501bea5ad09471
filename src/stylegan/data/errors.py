"""The one exception type the data layer raises for problems a user can fix."""

from __future__ import annotations


class DatasetError(ValueError):
    """A problem with the training data or its configuration, as one line: what, where, how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))
