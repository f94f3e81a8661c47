"""Every error mpqlib raises on purpose derives from :class:`MpqlibError`.

The command line turns an ``MpqlibError`` into one line on stderr and exit code 2; anything
else is a bug and keeps its traceback. Each subclass also derives from the built-in exception
a caller would naturally catch (``ValueError``, ``RuntimeError``), so existing ``except``
clauses keep working.
"""

from __future__ import annotations


class MpqlibError(Exception):
    """Base of every deliberate mpqlib error: the message says what was wrong and how to fix it."""


class ConfigError(MpqlibError, ValueError):
    """A configuration value of the wrong type or out of range (config files, CLI flags, API)."""


class DataError(MpqlibError, RuntimeError):
    """A dataset is missing, corrupt, or does not fit the model (channels, size, labels)."""


class PolicyError(MpqlibError, ValueError):
    """A policy names unknown layers, misses layers, or holds bits outside the allowed range."""


class BudgetError(MpqlibError, ValueError):
    """A budget that cannot be parsed or met."""


class CheckpointError(MpqlibError, RuntimeError):
    """A checkpoint that is missing, corrupt, or does not fit the model."""


class TrainingError(MpqlibError, RuntimeError):
    """Training went wrong in a way that must stop it (a non-finite loss, say)."""


class ReadOnlyError(MpqlibError, RuntimeError):
    """A step or result that a read-only run (``MPQ_READ_ONLY``) would have to compute: the
    message names the ``mpq study run`` command that computes it."""
