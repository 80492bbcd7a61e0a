"""Errors a user can cause and fix (bad config, unknown model, corrupt file ...).

Rules end with the one-line message of a :class:`UserError` instead of a
traceback; every message names the cause and the fix.
"""


class UserError(Exception):
    """An error caused by the user's input; ``str(err)`` names cause and fix."""
