"""Simulation-based calibration (Talts et al., 2018): ranks of the truths among the samples.

If ``theta ~ p(theta)``, ``x ~ p(x | theta)`` and the samples come from the exact
``p(theta | x)``, the rank of each ``theta`` among its samples is uniform on
``{0, ..., num_samples}``, dimension by dimension. A U-shaped rank histogram means an
overconfident (too narrow) estimator, a hump an underconfident one, a slope a biased one.
"""

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats

from .._custom_types import ArrayLike, Float, Int, Key
from ._checks import check_positive_int, samples_and_truths
from ._draws import SupportsSample, conditional_samples


def _default_bins(num: int, num_samples: int) -> int:
    # About 10 expected ranks per bin keeps the chi-square approximation sound; more than 20
    # bins spreads the evidence of a U shape or a slope too thin.
    return max(2, min(20, num // 10, num_samples + 1))


def _chi_square_p_values(ranks: np.ndarray, num_samples: int, bins: int) -> np.ndarray:
    """p-value per column of a chi-square test that ``ranks`` is uniform on 0..num_samples."""
    # Bins of whole ranks, as equal as they can be; the expected counts follow their widths,
    # so the test stays exact when num_samples + 1 is not a multiple of bins.
    groups = np.array_split(np.arange(num_samples + 1), bins)
    edges = np.array([g[0] for g in groups] + [num_samples + 1])
    expected = ranks.shape[0] * np.diff(edges) / (num_samples + 1)
    p_values = []
    for column in ranks.T:
        observed = np.histogram(column, bins=edges)[0]
        p_values.append(scipy.stats.chisquare(observed, expected).pvalue)
    return np.asarray(p_values, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class SBCResult:
    """Ranks of SBC and a uniformity test per dimension.

    ``ranks (N, d)``: per simulation and dimension, how many of its samples lie below the truth;
    ``num_samples``, the samples per truth (ranks lie in ``[0, num_samples]``); ``labels``
    (``d`` names); ``p_values (d,)`` of a chi-square test that the ranks of each dimension are
    uniform, on ``bins`` groups of consecutive ranks. A small p-value (e.g. below 0.01 / d) flags
    a miscalibrated dimension.
    """

    ranks: Int[np.ndarray, "batch dim"]
    num_samples: int
    labels: tuple[str, ...]
    p_values: Float[np.ndarray, " dim"]
    bins: int

    @classmethod
    def from_ranks(
        cls,
        ranks: ArrayLike,
        num_samples: int,
        *,
        labels: Sequence[str] | None = None,
        bins: int | None = None,
    ) -> "SBCResult":
        """Test ranks made elsewhere (from samples, :func:`sbc_from_samples` makes them).

        `ranks`: ``(N, d)`` ints in ``[0, num_samples]``; `labels`: ``d`` names (default
        ``"dim i"``); `bins`: groups for the chi-square test (default ``min(20, N // 10)``, at
        least 2).
        """
        num_samples = check_positive_int(num_samples, "num_samples")
        array = np.asarray(ranks)
        if array.ndim != 2 or 0 in array.shape or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"`ranks` must be an (N, d) array of ints, got shape {array.shape} and dtype "
                f"{array.dtype}."
            )
        if array.min() < 0 or array.max() > num_samples:
            raise ValueError(
                f"`ranks` must lie in [0, num_samples] = [0, {num_samples}], got values from "
                f"{array.min()} to {array.max()}."
            )
        dim = array.shape[1]
        labels = tuple(f"dim {i}" for i in range(dim)) if labels is None else tuple(labels)
        if len(labels) != dim:
            raise ValueError(f"`labels` must hold {dim} names, one per column, got {len(labels)}.")
        if bins is None:
            bins = _default_bins(array.shape[0], num_samples)
        bins = check_positive_int(bins, "bins", minimum=2)
        if bins > num_samples + 1:
            raise ValueError(
                f"`bins` must be at most num_samples + 1 = {num_samples + 1}, got {bins}."
            )
        p_values = _chi_square_p_values(array, num_samples, bins)
        return cls(array.astype(np.int64), num_samples, labels, p_values, bins)

    @property
    def normalised_ranks(self) -> Float[np.ndarray, "batch dim"]:
        """``ranks / num_samples``, in ``[0, 1]``; uniform when calibrated."""
        return self.ranks / self.num_samples

    def summary(self) -> str:
        """One line per dimension: p-value, mean normalised rank and the share of ranks in the
        outer tenth, each with its value for a calibrated estimator."""
        u = self.normalised_ranks
        mean = u.mean(axis=0)
        outer = lambda v: (v < 0.05) | (v > 0.95)  # noqa: E731
        tails = np.mean(outer(u), axis=0)
        # Ranks are whole numbers, so the calibrated share is not exactly 0.1 for few samples.
        expected = np.mean(outer(np.arange(self.num_samples + 1) / self.num_samples))
        width = max(len(label) for label in self.labels)
        lines = [
            f"SBC: {self.ranks.shape[0]} simulations x {self.num_samples} samples; chi-square "
            f"test of uniform ranks on {self.bins} bins.",
            f"{'':{width}}  p-value  mean rank (0.5)  outer 10% ({expected:.3f}; more: "
            f"overconfident, less: underconfident)",
        ]
        for label, p, m, t in zip(self.labels, self.p_values, mean, tails):
            lines.append(f"{label:{width}}  {p:7.3g}  {m:15.3f}  {t:.3f}")
        return "\n".join(lines)


def sbc(
    key: Key, estimator: SupportsSample, truths: Mapping[str, ArrayLike], *,
    infer: str | Sequence[str] = ("theta",), num_samples: int = 1000, batch_size: int = 100,
    bins: int | None = None,
) -> SBCResult:
    """Simulation-based calibration of any conditional of an estimator.

    **Arguments:**
    - `key`: a `jax.random` key.
    - `estimator`: anything with ``sample(key, condition, num_samples)`` returning
      ``{name: (num_samples, *batch, *shape)}``, like :class:`gensbi_eqx.Estimator`.
    - `truths`: joint draws ``{name: (N, *shape)}``, e.g. ``{"theta": theta, "x": x}`` from the
      prior and the simulator. Every node not in ``infer`` is conditioned on.
    - `infer`: the node(s) tested: ``("theta",)`` for the posterior, ``("x",)`` for the
      likelihood.
    - `num_samples`: samples per simulation.
    - `batch_size`: simulations per call to ``estimator.sample`` (see
      :func:`conditional_samples`).
    - `bins`: groups of ranks for the chi-square test (see :meth:`SBCResult.from_ranks`).

    **Returns:** :class:`SBCResult`.
    """
    draws = conditional_samples(
        key, estimator, truths, infer=infer, num_samples=num_samples, batch_size=batch_size
    )
    return sbc_from_samples(draws.samples, draws.truths, labels=draws.labels, bins=bins)


def sbc_from_samples(
    samples: ArrayLike,
    truths: ArrayLike,
    *,
    labels: Sequence[str] | None = None,
    bins: int | None = None,
) -> SBCResult:
    """Simulation-based calibration of samples drawn elsewhere.

    **Arguments:**
    - `samples`: ``(num_samples, N, d)``; ``samples[:, n]`` are drawn given simulation ``n``.
    - `truths`: ``(N, d)``, the values that produced the simulations.
    - `labels`: ``d`` names (default ``"dim i"``).
    - `bins`: groups of ranks for the chi-square test (see :meth:`SBCResult.from_ranks`).

    **Returns:** :class:`SBCResult`, whose ``ranks (N, d)`` count the samples below each truth.
    """
    samples, truths = samples_and_truths(samples, truths)
    ranks = np.sum(samples < truths[None], axis=0).astype(np.int64)
    return SBCResult.from_ranks(ranks, samples.shape[0], labels=labels, bins=bins)
