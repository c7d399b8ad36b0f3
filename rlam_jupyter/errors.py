"""Exceptions users see; each message names the problem and the fix."""

from __future__ import annotations


class RlamError(Exception):
    """Base class for every error rlam-jupyter raises on purpose."""


class StoreWriteError(RlamError):
    """The trace store refused a write (disk full, read-only); nothing computed is lost."""


class StoreReadError(RlamError):
    """The trace store cannot be read (unknown schema version, unreadable file)."""


class UnknownRunError(RlamError):
    """A run or step id that is not in the store."""
