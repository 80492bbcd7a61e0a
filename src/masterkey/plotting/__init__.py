"""Figures: one style for all plots (see :mod:`masterkey.plotting.style`)."""
