"""Expected coverage of credible regions against their credibility level."""

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .._custom_types import ArrayLike
from ._save import _save_png_atomically


Band = ArrayLike | Sequence[ArrayLike]


def _unit_vector(value, name: str, size: int | None) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"`{name}` must have shape (K,) with K >= 1, got shape {array.shape}.")
    if size is not None and array.size != size:
        raise ValueError(
            f"`{name}` must have shape ({size},) like `levels`, got shape {array.shape}."
        )
    if np.any(np.isnan(array)):
        raise ValueError(f"`{name}` must lie in [0, 1], got NaN.")
    if not np.all((array >= 0) & (array <= 1)):
        raise ValueError(
            f"`{name}` must lie in [0, 1], got values in [{array.min():.4g}, {array.max():.4g}]."
        )
    return array


def _band_pair(value: Band, name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, np.ndarray):
        parts = list(value) if value.ndim == 2 else [value]
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        parts = [value]
    if len(parts) != 2:
        raise ValueError(
            f"`{name}` must be a pair (lower, upper) of ({size},) arrays, got {len(parts)} "
            "entries."
        )
    lower = _unit_vector(parts[0], f"{name}[0]", size)
    upper = _unit_vector(parts[1], f"{name}[1]", size)
    if not np.all(lower <= upper):
        raise ValueError(f"`{name}` must have lower <= upper at every level.")
    return lower, upper


def coverage_plot(
    levels: ArrayLike,
    coverage: ArrayLike | Mapping[str, ArrayLike],
    *,
    labels: Sequence[str] | None = None,
    band: Band | Mapping[str, Band] | None = None,
    path: str | os.PathLike | None = None,
):
    """Expected coverage against credibility level, with the diagonal of exact calibration.

    At credibility level ``alpha``, a calibrated posterior's ``alpha`` credible regions contain
    the true parameter with probability ``alpha``. A curve above the diagonal means the regions
    are too wide (conservative), below it too narrow (overconfident, the dangerous side).

    Args:
        levels: ``(K,)`` credibility levels in ``[0, 1]``.
        coverage: ``(K,)`` empirical coverage at ``levels``, or ``(C, K)`` for ``C`` curves, or
            a dict ``label -> (K,)`` of curves (e.g. ``{"TARP": ..., "HPD": ...}``).
        labels: curve names for an array ``coverage`` (one for ``(K,)``, ``C`` for
            ``(C, K)``); a dict's keys are its names, so ``labels`` must then be ``None``.
        band: an uncertainty band (e.g. bootstrap quantiles) shaded around a curve: a pair
            ``(lower, upper)`` of ``(K,)`` arrays (or a ``(2, K)`` array) when there is one
            curve, or a dict ``label -> (lower, upper)`` for some of the curves of a dict
            ``coverage``.
        path: if given, the figure is also written there as a PNG (atomically).

    Returns:
        The ``matplotlib.figure.Figure`` (no pyplot state is touched, so nothing needs closing).
    """
    from matplotlib.figure import Figure

    levels = _unit_vector(levels, "levels", None)
    size = levels.size

    if isinstance(coverage, Mapping):
        if len(coverage) == 0:
            raise ValueError("`coverage` must not be an empty dict.")
        if labels is not None:
            raise ValueError(
                "`labels` must be None when `coverage` is a dict (its keys name the curves), "
                f"got {list(labels)!r}."
            )
        curves = {
            str(key): _unit_vector(value, f"coverage[{key!r}]", size)
            for key, value in coverage.items()
        }
    else:
        array = np.asarray(coverage, dtype=float)
        rows = array[None] if array.ndim == 1 else array
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise ValueError(
                f"`coverage` must have shape ({size},) or (C, {size}), got shape {array.shape}."
            )
        if labels is None:
            labels = ["coverage"] if len(rows) == 1 else [f"curve {i}" for i in range(len(rows))]
        elif len(labels) != rows.shape[0]:
            raise ValueError(
                f"`labels` must have {rows.shape[0]} entries (one per curve in `coverage`), got "
                f"{len(labels)}."
            )
        if len(set(labels)) != len(labels):
            raise ValueError(f"`labels` must be distinct, got {list(labels)!r}.")
        curves = {
            str(label): _unit_vector(row, "coverage", size) for label, row in zip(labels, rows)
        }

    bands = {}
    if band is not None:
        if isinstance(band, Mapping):
            unknown = set(band) - set(curves)
            if unknown:
                raise ValueError(
                    f"`band` must name curves of `coverage`, {sorted(curves)}, got unknown "
                    f"{sorted(unknown)}."
                )
            bands = {key: _band_pair(value, f"band[{key!r}]", size) for key, value in band.items()}
        elif len(curves) != 1:
            raise ValueError(
                f"`band` must be a dict naming its curve when there are {len(curves)} curves."
            )
        else:
            bands = {next(iter(curves)): _band_pair(band, "band", size)}

    order = np.argsort(levels, kind="stable")
    fig = Figure(figsize=(5.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="k", linestyle="--", linewidth=1.0, label="ideal")
    for k, (label, values) in enumerate(curves.items()):
        colour = f"C{k}"
        if label in bands:
            lower, upper = bands[label]
            ax.fill_between(levels[order], lower[order], upper[order], color=colour, alpha=0.25,
                            linewidth=0)
        ax.plot(levels[order], values[order], color=colour, linewidth=1.5, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage")
    ax.text(0.04, 0.96, "above the diagonal: conservative", ha="left", va="top",
            fontsize="small", color="0.3", transform=ax.transAxes)
    ax.text(0.96, 0.04, "below: overconfident", ha="right", va="bottom", fontsize="small",
            color="0.3", transform=ax.transAxes)
    ax.legend(loc="center right", fontsize="small")

    if path is not None:
        _save_png_atomically(fig, path)
    return fig
