"""Figures: one style (:mod:`.style`) and figure functions per stage that return a ``Figure``.

The rule scripts save them with :func:`~.style.save_figure` (PDF and PNG, fixed metadata).

References
----------
The figures reproduce those of [A], [Q] and [B] (see the README's paper map).
"""

from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style, save_figure, show_kernel

__all__ = ["COLUMN_WIDTH", "TEXT_WIDTH", "apply_style", "save_figure", "show_kernel"]
