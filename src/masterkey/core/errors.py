"""Errors a user can cause and fix.

Numerical functions raise ``ValueError``/``TypeError`` when they are misused (wrong shapes, unknown
names): that is a bug in the caller.  Whatever a *user* of the workflow can fix raises a
:class:`UserError`; a rule then ends with its one-line message instead of a traceback
(:func:`masterkey.core.rules.run_rule`).  Two subclasses name what to fix:

* :class:`ConfigError`: a config key (wrong value, a path it names does not exist, ...);
* :class:`StaleFileError`: a file the workflow wrote earlier is missing, unreadable or does not
  match its producer any more.  The hint how to rebuild it is added at the workflow boundary
  (:func:`masterkey.core.rules.run_rule`), not by the code that detects the problem.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["UserError", "ConfigError", "StaleFileError"]


class UserError(Exception):
    """An error caused by the user's input; ``str(err)`` names the cause and the fix."""


class ConfigError(UserError):
    """A config value the user has to change: ``key`` is its dotted path (``clustering.k``).

    >>> str(ConfigError("clustering.k", "needs at least 2 clusters"))
    'config key clustering.k: needs at least 2 clusters'
    """

    def __init__(self, key: str, message: str, *, verbatim: bool = False):
        self.key = key
        super().__init__(message if verbatim else f"config key {key}: {message}")


class StaleFileError(UserError):
    """A workflow file (``path``) that is missing, unreadable or out of date (``reason``).

    >>> str(StaleFileError("results/kernels/demo.npz", "is unreadable"))
    'results/kernels/demo.npz is unreadable'
    """

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path} {reason}")
