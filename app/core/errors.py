"""The base of every expected failure, and of every stop the user asked for.

An expected failure is one the user can act on (a full disk, a damaged file, a model folder
missing a shard): it carries one plain sentence naming the file and the problem, and callers
catch it by this base. Anything else that escapes is a bug: it goes to the crash dialog with
its traceback, never to the user as a made-up sentence.
"""

from __future__ import annotations


class ExpectedError(Exception):
    """A failure with one plain sentence for the user (never a traceback).

    Attributes:
        message: the sentence; it names the file and the problem.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Cancellation(Exception):  # noqa: N818 (a stop the user asked for, not an error)
    """Work stopped because the user asked it to (Stop, Cancel, closing the window)."""
