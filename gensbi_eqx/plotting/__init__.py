"""Plots for inspecting samples (matplotlib, imported only when a plot is made)."""

from ._pairplot import pairplot as pairplot

__all__ = ["pairplot"]
