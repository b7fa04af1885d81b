"""Plots for inspecting samples, calibration and training (matplotlib, imported only when a plot
is made)."""

from ._coverage import coverage_plot as coverage_plot
from ._loss import plot_loss as plot_loss
from ._pairplot import pairplot as pairplot
from ._sbc import sbc_rank_plot as sbc_rank_plot

__all__ = ["coverage_plot", "pairplot", "plot_loss", "sbc_rank_plot"]
