"""Simulation-based calibration: histograms of the ranks of true values among posterior draws."""

import os
from collections.abc import Sequence

import numpy as np

from .._custom_types import ArrayLike
from ._save import _save_png_atomically


_RANK_COLOUR = "tab:blue"
_BAND_COLOUR = "0.6"
# Probability that one bin's count falls inside its shaded band under exact calibration.
_BAND_MASS = 0.99
# Simulations per bin aimed for by default, and the most bins a panel gets.
_PER_BIN = 20
_MAX_BINS = 30


def _default_bins(num_sims: int, num_ranks: int) -> int:
    """About ``num_sims / 20`` bins, at most ``_MAX_BINS``, dividing ``num_ranks`` if possible."""
    target = max(1, min(num_sims // _PER_BIN, _MAX_BINS, num_ranks))
    divisors = [b for b in range(1, target + 1) if num_ranks % b == 0]
    best = divisors[-1]
    # An uneven split is better than far fewer bins (num_ranks may be prime).
    return best if 2 * best >= target else target


def _binomial_interval(n: int, p: float, mass: float) -> tuple[int, int]:
    """Central interval of ``Binomial(n, p)`` holding at least ``mass`` of the probability."""
    if p >= 1.0:
        return n, n
    k = np.arange(n + 1)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    log_pmf = (
        log_factorial[n] - log_factorial[k] - log_factorial[n - k]
        + k * np.log(p) + (n - k) * np.log1p(-p)
    )
    cdf = np.cumsum(np.exp(log_pmf - log_pmf.max()))
    cdf /= cdf[-1]
    tail = (1.0 - mass) / 2
    lower = int(np.searchsorted(cdf, tail))
    upper = int(np.searchsorted(cdf, 1.0 - tail))
    return lower, min(upper, n)


def sbc_rank_plot(
    ranks: ArrayLike,
    num_samples: int,
    *,
    labels: Sequence[str] | None = None,
    bins: int | None = None,
    path: str | os.PathLike | None = None,
):
    """Histogram of simulation-based-calibration ranks, one panel per parameter dimension.

    For each of ``N`` simulations ``(theta_i, x_i)`` from the prior predictive, the rank of
    ``theta_i`` among ``num_samples`` posterior draws given ``x_i`` is uniform on
    ``{0, ..., num_samples}`` when the posterior is calibrated. A U shape means overconfident
    (too narrow) posteriors, a hump underconfident ones, a slope a bias.

    The ranks are grouped into ``bins`` bins of consecutive ranks; bin ``k`` holds the
    ``w_k`` ranks ``r`` with ``r * bins // (num_samples + 1) == k`` (all ``w_k`` equal when
    ``bins`` divides ``num_samples + 1``). The dashed line is the expected count
    ``N * w_k / (num_samples + 1)``, and the shaded band is the central 99% interval of the
    ``Binomial(N, w_k / (num_samples + 1))`` count of that bin. The band holds for each bin
    separately, so about 1% of bins fall outside it even under perfect calibration.

    Args:
        ranks: ``(N, d)`` (or ``(N,)``) integer ranks in ``[0, num_samples]``.
        num_samples: posterior draws each rank was computed against.
        labels: ``d`` panel titles; by default ``"dim 0"``, ``"dim 1"``, ...
        bins: bins per panel, in ``[1, num_samples + 1]``; by default about ``N / 20``, at most
            30, and dividing ``num_samples + 1`` evenly where such a count is near that.
        path: if given, the figure is also written there as a PNG (atomically).

    Returns:
        The ``matplotlib.figure.Figure`` (no pyplot state is touched, so nothing needs closing).
    """
    from matplotlib.figure import Figure

    if isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}.")
    ranks = np.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    if ranks.ndim != 2 or ranks.shape[0] == 0 or ranks.shape[1] == 0:
        raise ValueError(
            f"`ranks` must have shape (N,) or (N, d) with N, d >= 1, got shape {ranks.shape}."
        )
    if ranks.dtype.kind == "f":
        if not np.all(np.isfinite(ranks)) or not np.all(ranks == np.round(ranks)):
            raise ValueError("`ranks` must be whole numbers, got non-integer values.")
        ranks = ranks.astype(np.int64)
    elif ranks.dtype.kind not in "iu":
        raise ValueError(f"`ranks` must be integers, got dtype {ranks.dtype}.")
    low, high = int(ranks.min()), int(ranks.max())
    if low < 0 or high > num_samples:
        raise ValueError(
            f"`ranks` must lie in [0, num_samples] = [0, {num_samples}], got values in "
            f"[{low}, {high}]."
        )
    num_sims, dim = ranks.shape
    num_ranks = num_samples + 1

    if labels is None:
        labels = [f"dim {i}" for i in range(dim)]
    elif len(labels) != dim:
        raise ValueError(
            f"`labels` must have {dim} entries (one per column of `ranks`), got {len(labels)}."
        )

    if bins is None:
        bins = _default_bins(num_sims, num_ranks)
    elif isinstance(bins, bool) or not 1 <= bins <= num_ranks:
        raise ValueError(
            f"`bins` must be an int in [1, num_samples + 1] = [1, {num_ranks}], got {bins!r}."
        )

    rank_bin = np.arange(num_ranks) * bins // num_ranks
    widths = np.bincount(rank_bin, minlength=bins)
    # Bin k spans ranks starts[k] .. starts[k + 1] - 1, drawn as [start - 0.5, end + 0.5].
    edges = np.concatenate([[0], np.cumsum(widths)]) - 0.5
    shares = widths / num_ranks
    expected = num_sims * shares
    intervals = {}
    for share in np.unique(shares):
        intervals[share] = _binomial_interval(num_sims, float(share), _BAND_MASS)
    lower = np.array([intervals[s][0] for s in shares], dtype=float)
    upper = np.array([intervals[s][1] for s in shares], dtype=float)

    ncols = min(dim, 4)
    nrows = -(-dim // ncols)
    # At least wide enough for the one-line legend above a single panel.
    width = max(3.0 * ncols + 0.5, 5.0)
    fig = Figure(figsize=(width, 2.6 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for j, ax in enumerate(axes):
        if j >= dim:
            ax.set_visible(False)
            continue
        counts = np.bincount(rank_bin[ranks[:, j]], minlength=bins)
        ax.stairs(
            upper, edges, baseline=lower, fill=True, color=_BAND_COLOUR, alpha=0.35,
            label=f"{_BAND_MASS:.0%} band (uniform)",
        )
        ax.stairs(expected, edges, color="k", linestyle="--", linewidth=1.0, label="expected")
        ax.stairs(counts, edges, fill=True, color=_RANK_COLOUR, alpha=0.45, label="ranks")
        ax.stairs(counts, edges, color=_RANK_COLOUR, linewidth=1.0)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0, 1.1 * max(counts.max(), upper.max()))
        ax.set_title(labels[j])
        if j // ncols == nrows - 1 or j + ncols >= dim:
            ax.set_xlabel(f"rank among {num_samples} draws")
        if j % ncols == 0:
            ax.set_ylabel("count")
    # Above the panels, where it cannot hide a bin.
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=3,
        fontsize="small",
    )

    if path is not None:
        _save_png_atomically(fig, path)
    return fig
