"""Coverage of credible regions: how often does the truth fall in the region of level alpha?

Both tests here reduce each simulation ``n`` to one number, its credibility ``f_n``: the share
of samples that are "more central" than the truth. The truth lies in the region of level alpha
when ``f_n < alpha``; for an exact posterior ``f_n`` is uniform, so the coverage curve
``alpha -> mean_n(f_n < alpha)`` is the diagonal. The tests differ in what "central" means:

- :func:`hpd_coverage`: higher density (highest posterior density regions; the "expected
  coverage" of Hermans et al., 2022, *A trust crisis in simulation-based inference?*);
- :func:`tarp`: closer to a random reference point (Lemos et al., 2023, *Sampling-based accuracy
  testing of posterior estimators for general inference*), which needs samples only.

Both curves are expected coverage, so the names say which regions they cover. Each test comes
twice: ``name(key, estimator, truths, ...)`` draws from an estimator, ``name_from_samples`` takes
samples drawn elsewhere.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.stats

from .._custom_types import Array, ArrayLike, Float, Key
from ._checks import as_float_array, check_finite, check_positive_int, samples_and_truths
from ._draws import SupportsSample, conditional_samples


LogProb = Callable[[Float[Array, "m batch dim"]], Float[ArrayLike, "m batch"]]


@dataclasses.dataclass(frozen=True)
class CoverageResult:
    """A coverage curve and the credibility of each truth it is made of.

    ``levels (K,)``: credibility levels alpha in ``[0, 1]``; ``coverage (K,)``: share of truths
    inside their region of level alpha; ``credibility (N,)``: per simulation, the share of
    samples more central than the truth (the smallest level whose region holds it);
    ``num_samples``; ``p_value``: Kolmogorov-Smirnov test that ``credibility`` is uniform (up to
    the ``1 / num_samples`` steps of a share); ``method``: ``"tarp"``, ``"hpd (kde)"`` or
    ``"hpd (log_prob)"``.

    Reading the curve: below the diagonal, the regions are too small (overconfident); above,
    too large (underconfident). For TARP this holds over most levels, but an overconfident
    estimator also piles some credibilities near 0, which lifts the start of its curve above the
    diagonal; ``max_deviation`` and ``p_value`` catch both.
    """

    levels: Float[np.ndarray, " num_levels"]
    coverage: Float[np.ndarray, " num_levels"]
    credibility: Float[np.ndarray, " batch"]
    num_samples: int
    p_value: float
    method: str

    @property
    def max_deviation(self) -> float:
        """Largest distance of the curve from the diagonal."""
        return float(np.max(np.abs(self.coverage - self.levels)))

    @property
    def signed_area(self) -> float:
        """Area between the curve and the diagonal (negative: below it)."""
        return float(np.trapezoid(self.coverage - self.levels, self.levels))

    def summary(self) -> str:
        at = [np.argmin(np.abs(self.levels - a)) for a in (0.5, 0.9, 0.95)]
        rows = ", ".join(f"{self.levels[i]:.2f} -> {self.coverage[i]:.3f}" for i in at)
        return (
            f"Coverage ({self.method}): {self.credibility.shape[0]} simulations x "
            f"{self.num_samples} samples; level -> coverage: {rows}; max deviation from the "
            f"diagonal {self.max_deviation:.3f}, signed area {self.signed_area:+.3f}; KS p-value "
            f"of uniform credibility {self.p_value:.3g}."
        )


def _coverage_result(credibility: np.ndarray, num_samples: int, num_levels: int, method: str):
    num_levels = check_positive_int(num_levels, "num_levels", minimum=2)
    levels = np.linspace(0.0, 1.0, num_levels)
    coverage = np.mean(credibility[None, :] < levels[:, None], axis=1)
    p_value = float(scipy.stats.kstest(credibility, "uniform").pvalue)
    return CoverageResult(levels, coverage, credibility, num_samples, p_value, method)


def tarp_from_samples(
    key: Key,
    samples: ArrayLike,
    truths: ArrayLike,
    *,
    references: ArrayLike | None = None,
    num_levels: int = 101,
) -> CoverageResult:
    """Tests of Accuracy with Random Points (TARP; Lemos et al., 2023).

    For simulation ``n``, the region of level alpha is the ball around a reference point
    ``r_n`` holding a share alpha of the samples; the truth's credibility is the share of samples
    closer to ``r_n`` than the truth. Distances are Euclidean after mapping the box spanned by
    ``truths`` onto the unit cube (per dimension ``(v - min) / (max - min)``), so every
    dimension counts alike whatever its units; by default ``r_n`` is uniform in that cube, as in
    the paper's normalised setting.

    **Arguments:**
    - `key`: a `jax.random` key for the reference points (unused when `references` is given).
    - `samples`: ``(num_samples, N, d)``; ``samples[:, n]`` are drawn given simulation ``n``.
    - `truths`: ``(N, d)``, the values that produced the simulations.
    - `references`: ``(N, d)`` reference points in the units of `truths` (or ``(d,)``, one for
      all); default uniform in the box of `truths`.
    - `num_levels`: points of the coverage curve, evenly spaced in ``[0, 1]``.

    **Returns:** :class:`CoverageResult` (``method="tarp"``).
    """
    samples, truths = samples_and_truths(samples, truths)
    low, high = truths.min(axis=0), truths.max(axis=0)
    width = high - low
    # A constant dimension (possible only with given references) keeps its own units.
    scale = np.where(width > 0, width, 1.0)
    if references is None:
        if not np.all(width > 0):
            raise ValueError(
                f"`truths` (shape {truths.shape}) must vary in every dimension to span the box "
                f"the reference points are drawn from; pass `references` otherwise."
            )
        unit_references = np.asarray(jr.uniform(key, truths.shape), dtype=samples.dtype)
    else:
        refs = as_float_array(references, "references")
        if refs.shape not in (truths.shape, truths.shape[1:]):
            raise ValueError(
                f"`references` must have shape (N, d) = {truths.shape} or (d,) = "
                f"{truths.shape[1:]}, got {refs.shape}."
            )
        check_finite(refs, "references")
        unit_references = np.broadcast_to((refs - low) / scale, truths.shape)
    unit_samples = (samples - low) / scale
    unit_truths = (truths - low) / scale
    sample_distance = np.linalg.norm(unit_samples - unit_references, axis=-1)
    truth_distance = np.linalg.norm(unit_truths - unit_references, axis=-1)
    credibility = np.mean(sample_distance < truth_distance, axis=0)
    return _coverage_result(credibility, samples.shape[0], num_levels, "tarp")


@jax.jit
def _kde_credibility(
    samples: Float[Array, "num_samples batch dim"], truths: Float[Array, "batch dim"]
) -> Float[Array, " batch"]:
    num_samples, _, dim = samples.shape
    # Scott's rule, as scipy.stats.gaussian_kde: kernel covariance = factor^2 * sample covariance.
    factor = num_samples ** (-1.0 / (dim + 4))

    def one(args):
        x, t = args
        centred = x - x.mean(axis=0)
        covariance = centred.T @ centred / (num_samples - 1) * factor**2
        cholesky = jnp.linalg.cholesky(covariance)
        z = jax.scipy.linalg.solve_triangular(cholesky, x.T, lower=True).T
        zt = jax.scipy.linalg.solve_triangular(cholesky, t, lower=True)
        pairwise = -0.5 * jnp.sum((z[:, None] - z[None]) ** 2, axis=-1)
        # Leave-one-out for the samples: a sample's own kernel would inflate its density
        # relative to the truth's, which no sample was fitted to.
        pairwise = jnp.where(jnp.eye(num_samples, dtype=bool), -jnp.inf, pairwise)
        log_density = jax.nn.logsumexp(pairwise, axis=1) - jnp.log(num_samples - 1)
        log_density_truth = jax.nn.logsumexp(-0.5 * jnp.sum((z - zt) ** 2, axis=-1)) - jnp.log(
            num_samples
        )
        return jnp.mean(log_density > log_density_truth)

    # One simulation at a time: the pairwise table is num_samples^2 per simulation.
    return jax.lax.map(one, (jnp.moveaxis(samples, 1, 0), truths))


def hpd_coverage_from_samples(
    samples: ArrayLike,
    truths: ArrayLike,
    *,
    log_prob: LogProb | None = None,
    num_levels: int = 101,
) -> CoverageResult:
    """Expected coverage of highest-density credible regions.

    A truth's credibility is the share of its samples whose density exceeds the density at the
    truth. Densities come from `log_prob` when given; otherwise from a Gaussian kernel density
    estimate fitted to each simulation's samples (Scott's bandwidth on the sample covariance, as
    ``scipy.stats.gaussian_kde``; each sample's density leaves its own kernel out). The KDE
    costs ``num_samples^2 * d`` per simulation and blurs sharp posteriors in more than a few
    dimensions; prefer `log_prob` when the density is known.

    **Arguments:**
    - `samples`: ``(num_samples, N, d)`` with at least 2 samples; ``samples[:, n]`` are drawn
      given simulation ``n``.
    - `truths`: ``(N, d)``, the values that produced the simulations.
    - `log_prob`: optional; maps values ``(m, N, d)`` to ``(m, N)``, the log-density of
      ``values[:, n]`` under the distribution of simulation ``n`` (``-inf`` allowed).
    - `num_levels`: points of the coverage curve, evenly spaced in ``[0, 1]``.

    **Returns:** :class:`CoverageResult` (``method`` ``"hpd (log_prob)"`` or ``"hpd (kde)"``).
    """
    samples, truths = samples_and_truths(samples, truths)
    num_samples, num = samples.shape[:2]
    if log_prob is None:
        if num_samples < 2:
            raise ValueError(
                f"`samples` must hold at least 2 samples per simulation for a KDE, got shape "
                f"{samples.shape}."
            )
        flat = np.flatnonzero(np.any(samples.std(axis=0) == 0, axis=-1))
        if flat.size:
            raise ValueError(
                f"`samples` (shape {samples.shape}) must vary in every dimension for a KDE, but "
                f"do not for simulations {flat[:10].tolist()}; pass `log_prob`."
            )
        credibility = np.asarray(
            _kde_credibility(jnp.asarray(samples, jnp.float32), jnp.asarray(truths, jnp.float32)),
            dtype=np.float64,
        )
        if not np.all(np.isfinite(credibility)):
            raise ValueError(
                "The KDE failed (samples of some simulation lie in a lower-dimensional "
                "subspace); pass `log_prob`."
            )
        method = "hpd (kde)"
    else:
        values = np.concatenate([truths[None], samples])
        log_density = np.asarray(log_prob(jnp.asarray(values)), dtype=np.float64)
        if log_density.shape != (num_samples + 1, num):
            raise ValueError(
                f"`log_prob` must map values of shape (m, N, d) = {values.shape} to (m, N) = "
                f"{(num_samples + 1, num)}, got {log_density.shape}."
            )
        if np.isnan(log_density).any() or np.isposinf(log_density).any():
            raise ValueError("`log_prob` returned NaN or +inf; it must be finite or -inf.")
        credibility = np.mean(log_density[1:] > log_density[0], axis=0)
        method = "hpd (log_prob)"
    return _coverage_result(credibility, num_samples, num_levels, method)


def tarp(
    key: Key, estimator: SupportsSample, truths: Mapping[str, ArrayLike], *,
    infer: str | Sequence[str] = ("theta",), num_samples: int = 1000, batch_size: int = 100,
    references: ArrayLike | None = None,
    num_levels: int = 101,
) -> CoverageResult:
    """TARP of any conditional of an estimator: :func:`tarp_from_samples` on samples of
    ``p(infer | rest)`` drawn from `estimator` for each joint draw in `truths` (see
    :func:`conditional_samples` for the arguments it shares)."""
    key_samples, key_references = jr.split(key)
    draws = conditional_samples(
        key_samples, estimator, truths, infer=infer, num_samples=num_samples, batch_size=batch_size
    )
    return tarp_from_samples(
        key_references, draws.samples, draws.truths, references=references, num_levels=num_levels
    )


def hpd_coverage(
    key: Key, estimator: SupportsSample, truths: Mapping[str, ArrayLike], *,
    infer: str | Sequence[str] = ("theta",), num_samples: int = 1000, batch_size: int = 100,
    log_prob: LogProb | None = None,
    num_levels: int = 101,
) -> CoverageResult:
    """Expected coverage of highest posterior density regions of any conditional of an
    estimator: :func:`hpd_coverage_from_samples` on samples of ``p(infer | rest)`` drawn from
    `estimator` for each joint draw in `truths` (see :func:`conditional_samples` for the
    arguments it shares)."""
    draws = conditional_samples(
        key, estimator, truths, infer=infer, num_samples=num_samples, batch_size=batch_size
    )
    return hpd_coverage_from_samples(
        draws.samples, draws.truths, log_prob=log_prob, num_levels=num_levels
    )
