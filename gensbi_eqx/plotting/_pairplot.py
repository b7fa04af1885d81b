"""Corner plots of posterior samples, optionally against a reference and the true parameters."""

import os
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import numpy as np

from .._custom_types import ArrayLike
from ._save import _save_png_atomically


Samples: TypeAlias = ArrayLike | Mapping[str, ArrayLike]

_SAMPLE_COLOUR = "tab:blue"
_REFERENCE_COLOUR = "tab:orange"
_TRUE_COLOUR = "tab:red"
# Probability mass enclosed by the reference contours (1 and 2 sigma for a Gaussian).
_CONTOUR_MASSES = (0.95, 0.68)


def _flatten_samples(
    value: Samples, name: str, keys: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str], list[str]]:
    """``(N, d)`` float array, per-column labels and dict keys (empty for a plain array).

    ``keys``: when given and ``value`` is a dict, its entries are taken in this order, so a
    reference dict need not list its keys in the same order as the samples.
    """
    if isinstance(value, Mapping):
        if len(value) == 0:
            raise ValueError(f"`{name}` must not be an empty dict.")
        if keys is not None:
            if set(value) != set(keys):
                raise ValueError(
                    f"`{name}` must have the keys of `samples`, {sorted(keys)}, got "
                    f"{sorted(value)}."
                )
            order = list(keys)
        else:
            order = list(value)
        columns, labels = [], []
        num = None
        for key in order:
            array = np.asarray(value[key], dtype=float)
            if array.ndim not in (1, 2):
                raise ValueError(
                    f"`{name}[{key!r}]` must have shape (N,) or (N, d), got shape {array.shape}."
                )
            if num is not None and array.shape[0] != num:
                raise ValueError(
                    f"every entry of `{name}` must have the same number of rows, got "
                    f"{array.shape[0]} for {key!r} and {num} before it."
                )
            num = array.shape[0]
            if array.ndim == 1:
                columns.append(array[:, None])
                labels.append(str(key))
            else:
                columns.append(array)
                labels.extend(f"{key}[{i}]" for i in range(array.shape[1]))
        flat = np.concatenate(columns, axis=1)
        return flat, labels, order
    array = np.asarray(value, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"`{name}` must have shape (N,) or (N, d), got shape {array.shape}.")
    return array, [f"dim {i}" for i in range(array.shape[1])], []


def _flatten_point(value: Samples, name: str, keys: Sequence[str]) -> np.ndarray:
    """A single point, ``(d,)``: an array, or a dict of arrays/scalars flattened in key order."""
    if isinstance(value, Mapping):
        order = list(value)
        if keys:
            if set(value) != set(keys):
                raise ValueError(
                    f"`{name}` must have the keys of `samples`, {sorted(keys)}, got "
                    f"{sorted(value)}."
                )
            order = list(keys)
        parts = [np.asarray(value[key], dtype=float).reshape(-1) for key in order]
        return np.concatenate(parts) if parts else np.zeros(0)
    return np.asarray(value, dtype=float).reshape(-1)


def _default_limits(arrays: list[np.ndarray], dim: int) -> np.ndarray:
    limits = np.empty((dim, 2))
    for j in range(dim):
        column = np.concatenate([a[:, j] for a in arrays])
        column = column[np.isfinite(column)]
        if column.size == 0:
            raise ValueError(f"`samples` column {j} has no finite values to plot.")
        # Percentiles, not min/max: a handful of stray draws must not squash the bulk.
        lo, hi = np.percentile(column, [0.5, 99.5])
        # A constant column still needs a non-empty range for the histograms.
        pad = 0.05 * (hi - lo) if hi > lo else 0.5 * max(abs(lo), 1.0)
        limits[j] = lo - pad, hi + pad
    return limits


def _contour_levels(counts: np.ndarray) -> list[float]:
    """Count thresholds enclosing ``_CONTOUR_MASSES`` of the histogram, strictly increasing."""
    flat = np.sort(counts.ravel())[::-1]
    total = flat.sum()
    if total <= 0:
        return []
    cumulative = np.cumsum(flat) / total
    indices = [min(int(np.searchsorted(cumulative, m)), flat.size - 1) for m in _CONTOUR_MASSES]
    levels = {float(flat[k]) for k in indices}
    # matplotlib warns about (and ignores) levels outside the open range of the data.
    lo, hi = counts.min(), counts.max()
    return sorted(level for level in levels if lo < level < hi)


def pairplot(
    samples: Samples,
    *,
    labels: Sequence[str] | None = None,
    reference: Samples | None = None,
    true_values: Samples | None = None,
    limits: ArrayLike | Sequence[Sequence[float | int]] | None = None,
    bins: int = 50,
    path: str | os.PathLike | None = None,
):
    """Corner plot: 1-D histograms on the diagonal, 2-D histograms below it.

    Args:
        samples: ``(N, d)`` (or ``(N,)``) array, or a dict ``name -> (N, d_i)`` or ``(N,)``
            arrays, concatenated in dict order into ``d = sum(d_i)`` columns labelled
            ``"name[i]"`` (or ``"name"`` for a 1-D entry).
        labels: ``d`` axis labels, overriding the defaults.
        reference: other samples with the same ``d`` columns (e.g. a reference posterior), same
            forms as ``samples`` (a dict must have the same keys); drawn as outlines and
            probability-mass contours in a second colour. Its row count may differ.
        true_values: ``(d,)`` array, or a dict of ``(d_i,)`` arrays or scalars: the true
            parameters, marked with lines and a point.
        limits: ``(d, 2)`` axis ranges ``(low, high)``; by default the central 99% of the data plus 5%.
        bins: histogram bins per axis.
        path: if given, the figure is also written there as a PNG (atomically: a temporary
            file in the same directory, then ``os.replace``).

    Returns:
        The ``matplotlib.figure.Figure`` (no pyplot state is touched, so nothing needs closing).
    """
    # Imported here so the library does not require matplotlib unless plotting.
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if isinstance(bins, bool) or bins < 1:
        raise ValueError(f"`bins` must be a positive int, got {bins!r}.")
    data, default_labels, keys = _flatten_samples(samples, "samples")
    num, dim = data.shape
    if num == 0 or dim == 0:
        raise ValueError(f"`samples` must be non-empty, got shape {data.shape}.")

    ref = None
    if reference is not None:
        ref, _, _ = _flatten_samples(
            reference, "reference", keys if isinstance(reference, Mapping) and keys else None
        )
        if ref.shape[1] != dim:
            raise ValueError(
                f"`reference` must have {dim} columns like `samples`, got shape {ref.shape}."
            )
        if ref.shape[0] == 0:
            raise ValueError(f"`reference` must be non-empty, got shape {ref.shape}.")

    truth = None
    if true_values is not None:
        truth = _flatten_point(true_values, "true_values", keys)
        if truth.shape != (dim,):
            raise ValueError(
                f"`true_values` must flatten to shape ({dim},) like `samples`, got shape "
                f"{truth.shape}."
            )

    if labels is None:
        labels = default_labels
    elif len(labels) != dim:
        raise ValueError(f"`labels` must have {dim} entries, got {len(labels)}.")

    if limits is None:
        limits = _default_limits([data] + ([ref] if ref is not None else []), dim)
        if truth is not None:
            limits[:, 0] = np.minimum(limits[:, 0], truth)
            limits[:, 1] = np.maximum(limits[:, 1], truth)
    else:
        limits = np.asarray(limits, dtype=float)
        if limits.shape != (dim, 2):
            raise ValueError(f"`limits` must have shape ({dim}, 2), got shape {limits.shape}.")
        if not np.all(limits[:, 0] < limits[:, 1]):
            raise ValueError(
                f"`limits` must have low < high in every row, got {limits.tolist()}."
            )

    panel = 2.0 if dim <= 5 else max(1.0, 10.0 / dim)
    fig = Figure(figsize=(panel * dim + 0.5, panel * dim + 0.5), layout="constrained")
    axes = fig.subplots(dim, dim, squeeze=False)

    for i in range(dim):
        for j in range(dim):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            ax.set_xlim(limits[j])
            if i == j:
                edges = np.linspace(limits[j, 0], limits[j, 1], bins + 1)
                ax.hist(data[:, j], bins=edges, density=True, color=_SAMPLE_COLOUR, alpha=0.5)
                if ref is not None:
                    ax.hist(
                        ref[:, j], bins=edges, density=True, histtype="step",
                        color=_REFERENCE_COLOUR, linewidth=1.5,
                    )
                if truth is not None:
                    ax.axvline(truth[j], color=_TRUE_COLOUR, linewidth=1.0)
                # The density scale of the diagonal is not worth the clutter of a y axis.
                ax.set_yticks([])
            else:
                ax.set_ylim(limits[i])
                range_ = [limits[j], limits[i]]
                counts, x_edges, y_edges = np.histogram2d(
                    data[:, j], data[:, i], bins=bins, range=range_
                )
                # Empty bins are masked so the background stays white.
                ax.pcolormesh(
                    x_edges, y_edges, np.ma.masked_equal(counts.T, 0), cmap="Blues",
                    shading="flat",
                )
                if ref is not None:
                    # A coarser grid than the image: contours of sparse counts are mostly noise.
                    ref_counts, ref_x, ref_y = np.histogram2d(
                        ref[:, j], ref[:, i], bins=max(bins // 2, 5), range=range_
                    )
                    levels = _contour_levels(ref_counts)
                    if levels:
                        centres_x = 0.5 * (ref_x[1:] + ref_x[:-1])
                        centres_y = 0.5 * (ref_y[1:] + ref_y[:-1])
                        ax.contour(
                            centres_x, centres_y, ref_counts.T, levels=levels,
                            colors=_REFERENCE_COLOUR, linewidths=1.0,
                        )
                if truth is not None:
                    ax.axvline(truth[j], color=_TRUE_COLOUR, linewidth=0.8)
                    ax.axhline(truth[i], color=_TRUE_COLOUR, linewidth=0.8)
                    ax.plot(truth[j], truth[i], "s", color=_TRUE_COLOUR, markersize=4)
            if i == dim - 1:
                ax.set_xlabel(labels[j])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(labels[i])
            elif i != j:
                ax.set_yticklabels([])

    handles = [Line2D([], [], color=_SAMPLE_COLOUR, linewidth=4, alpha=0.5, label="samples")]
    if ref is not None:
        handles.append(Line2D([], [], color=_REFERENCE_COLOUR, label="reference"))
    if truth is not None:
        handles.append(Line2D([], [], color=_TRUE_COLOUR, marker="s", label="true value"))
    if len(handles) > 1:
        # The hidden upper triangle leaves the top-right corner free for the legend.
        fig.legend(handles=handles, loc="upper right" if dim > 1 else "outside upper right")

    if path is not None:
        _save_png_atomically(fig, path)
    return fig
