"""An exact denoiser for a Gaussian joint, and the closed-form answers samplers should reach.

For ``x0 ~ N(mean, covariance)`` every quantity a sampler needs has a closed form, so sampler
tests can separate the sampler's own error from a network's approximation error.
"""

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from gensbi_eqx.methods import EDM, AbstractDenoiser, AbstractMethod
from gensbi_eqx.samplers import SDE, AbstractSampler, AdaptiveSDE, EDMSampler, ODE


def solve_spd(
    c: Float[Array, "n n"], b: Float[Array, " n"]
) -> Float[Array, " n"]:
    """``c^-1 b`` for a small symmetric positive definite ``c``, by a Cholesky factorisation
    unrolled over the (static) size.

    Samplers evaluate the oracle for every draw at every step, so this runs on batches of tens
    of thousands of 4 x 4 systems: elementwise arithmetic over the batch is about ten times
    faster on the CPU than ``jnp.linalg.solve``, which makes one LAPACK call per system.
    Cholesky needs no pivoting for a positive definite matrix and is backward stable.
    """
    n = b.shape[0]
    lower = [[None] * n for _ in range(n)]
    for j in range(n):
        lower[j][j] = jnp.sqrt(c[j, j] - sum(lower[j][k] ** 2 for k in range(j)))
        for i in range(j + 1, n):
            dot = sum(lower[i][k] * lower[j][k] for k in range(j))
            lower[i][j] = (c[i, j] - dot) / lower[j][j]
    z = []  # L z = b
    for i in range(n):
        z.append((b[i] - sum(lower[i][k] * z[k] for k in range(i))) / lower[i][i])
    x = [None] * n  # L^T x = z
    for i in reversed(range(n)):
        x[i] = (z[i] - sum(lower[k][i] * x[k] for k in range(i + 1, n))) / lower[i][i]
    return jnp.stack(x)


# A narrow posterior, where a sampler's variance error shows (C2ST barely sees 10-30%):
# theta ~ N(0, I_2) and x_i = theta_i + noise, so that the posterior sds given NARROW_Y's x are
# 0.1 and 0.3. Used by tests/test_samplers.py and benchmarks/sampler_study.py.
_NARROW_NOISE_SD = np.array([0.1005, 0.3145])
NARROW_MEAN = np.zeros(4)
NARROW_COV = np.block([[np.eye(2), np.eye(2)], [np.eye(2), np.diag(1 + _NARROW_NOISE_SD**2)]])
NARROW_Y = np.array([0.0, 0.0, 0.8, -1.2])  # the theta entries are ignored
NARROW_MASK = np.array([False, False, True, True])


class GaussianDenoiser(AbstractDenoiser):
    """The exact ``(E[x0 | y], E[eps | y])`` for ``x0 ~ N(mean, covariance)`` under ``method``'s
    path, where observed entries (``condition_mask``) are clean ``x0`` and latent entries are
    ``y = alpha x0 + sigma eps``.

    With ``a = where(mask, 1, alpha)`` and ``s = where(mask, 0, sigma)``, ``y = a x0 + s eps`` is
    Gaussian with mean ``a mean`` and covariance ``C = diag(a) Sigma diag(a) + diag(s^2)``, so
    ``E[x0 | y] = mean + Sigma diag(a) C^-1 (y - a mean)`` and
    ``E[eps | y] = diag(s) C^-1 (y - a mean)``. The mask is traced, hence ``where`` rather than
    boolean indexing; ``C`` stays positive definite at ``alpha = 0`` (flow matching at
    ``t = 1``) and at ``sigma = 0`` (``Sigma`` is), so `solve_spd` applies.
    """

    mean: Float[Array, " num_scalars"]
    covariance: Float[Array, "num_scalars num_scalars"]
    method: AbstractMethod

    def __init__(self, mean, covariance, method: AbstractMethod):
        self.mean = jnp.asarray(mean, dtype=float)
        self.covariance = jnp.asarray(covariance, dtype=float)
        self.method = method

    def __check_init__(self):
        (n,) = self.mean.shape
        if self.covariance.shape != (n, n):
            raise ValueError(
                f"`covariance` must be ({n}, {n}) to match `mean`, got {self.covariance.shape}."
            )

    def __call__(
        self,
        t: Float[Array, ""],
        y: Float[Array, " num_scalars"],
        condition_mask: Bool[Array, " num_scalars"],
    ) -> tuple[Float[Array, " num_scalars"], Float[Array, " num_scalars"]]:
        alpha, sigma = self.method.alpha_sigma(t)
        a = jnp.where(condition_mask, 1.0, alpha)
        s = jnp.where(condition_mask, 0.0, sigma)
        c = a[:, None] * self.covariance * a[None, :] + jnp.diag(s**2)
        w = solve_spd(c, y - a * self.mean)
        x0 = self.mean + self.covariance @ (a * w)
        eps = s * w
        return x0, eps


def gaussian_conditional(
    mean: np.ndarray, cov: np.ndarray, observed_mask: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(num_latent,)`` and covariance ``(num_latent, num_latent)`` of the latent entries
    (``~observed_mask``) of ``N(mean, cov)`` given ``values[observed_mask]``; ``values`` is
    ``(num_scalars,)`` and its latent entries are ignored."""
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    obs = np.asarray(observed_mask, dtype=bool)
    lat = ~obs
    if not obs.any():
        return mean[lat], cov[np.ix_(lat, lat)]
    gain = np.linalg.solve(cov[np.ix_(obs, obs)], cov[np.ix_(obs, lat)]).T
    residual = np.asarray(values, dtype=np.float64)[obs] - mean[obs]
    cond_mean = mean[lat] + gain @ residual
    cond_cov = cov[np.ix_(lat, lat)] - gain @ cov[np.ix_(obs, lat)]
    return cond_mean, 0.5 * (cond_cov + cond_cov.T)


def continuous_sampler_law(
    method: AbstractMethod,
    sampler: AbstractSampler,
    cond_mean: np.ndarray,
    cond_cov: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of what ``sampler``, integrated exactly, returns for the latent
    entries, given the exact denoiser of the conditional ``N(cond_mean, cond_cov)``.

    Samplers start from ``N(0, prior_std^2 I)``, while the noised conditional at ``t = 1`` is
    ``N(alpha_1 m, alpha_1^2 S + sigma_1^2 I)``; unless ``alpha_1 = 0`` and
    ``prior_std = sigma_1`` (flow matching) that mismatch survives to ``t_min``. Both the
    noised conditional's covariance ``lam_t = alpha_t^2 S + sigma_t^2`` and the reverse dynamics
    share ``S``'s eigenvectors, so per eigen-direction a deviation ``d`` of the mean and ``D`` of
    the variance at ``t = 1`` are scaled, on the way to ``t_0 = t_min``, by

    - probability-flow ODE: ``d * sqrt(lam_0/lam_1)``, ``D * lam_0/lam_1``;
    - reverse SDE (exact score): ``d * r``, ``D * r^2`` with ``r = (lam_0/lam_1)(alpha_1/alpha_0)``

    (integrate ``dd/dt = (f + k g^2/lam) d`` with ``k = 1/2`` (ODE) or ``1`` (SDE), using
    ``d lam/dt = 2 f lam + g^2``). The returned law is of ``y_{t_min}``, i.e.
    ``alpha_0 x0 + sigma_0 eps``, which is what samplers return. The probability-flow law is
    that of `ODE` and of `EDMSampler` without churn (a discretisation of the same ODE); the
    reverse-SDE law is that of `SDE` and `AdaptiveSDE`. Other samplers (churn, `Resampled`)
    have neither and are refused.
    """
    cond_mean = np.asarray(cond_mean, dtype=np.float64)
    cond_cov = np.asarray(cond_cov, dtype=np.float64)
    alpha_0, sigma_0 = (float(v) for v in method.alpha_sigma(method.t_min))
    alpha_1, sigma_1 = (float(v) for v in method.alpha_sigma(1.0))
    prior_var = float(method.prior_std()) ** 2
    eigvals, eigvecs = np.linalg.eigh(cond_cov)
    lam_0 = alpha_0**2 * eigvals + sigma_0**2
    lam_1 = alpha_1**2 * eigvals + sigma_1**2
    m_rot = eigvecs.T @ cond_mean
    if isinstance(sampler, ODE) or (isinstance(sampler, EDMSampler) and sampler.s_churn == 0):
        mean_gain = np.sqrt(lam_0 / lam_1)
    elif isinstance(sampler, (SDE, AdaptiveSDE)):
        mean_gain = (lam_0 / lam_1) * (alpha_1 / alpha_0)
    else:
        raise ValueError(f"no closed-form continuous law for {sampler!r}")
    # The prior mean is 0, so the mean deviation at t = 1 is -alpha_1 m.
    out_mean = alpha_0 * m_rot - mean_gain * alpha_1 * m_rot
    out_var = lam_0 + mean_gain**2 * (prior_var - lam_1)
    return eigvecs @ out_mean, (eigvecs * out_var) @ eigvecs.T


def edm_sampler_law(
    method: EDM,
    cond_mean: np.ndarray,
    cond_cov: np.ndarray,
    steps: int,
    s_churn: float = 0.0,
    s_min: float = 0.0,
    s_max: float = math.inf,
    s_noise: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of what ``EDMSampler(steps, s_churn, ...)`` returns for the latent
    entries, exactly (float64), given the exact denoiser of the conditional ``N(m, S)``.

    The denoiser is affine, ``D(y) = m + S (S + sigma^2)^-1 (y - m)``, so in the eigenbasis of
    ``S`` (eigenvalue ``s``) every step of Karras' Algorithm 2 maps ``y - m`` to ``a (y - m)``
    after churn adds independent noise of variance ``(sigma_hat^2 - sigma^2) s_noise^2``: with
    ``k(sigma) = sigma / (s + sigma^2)`` (the slope ``(y - D(y)) / sigma`` per unit of ``y - m``),
    Euler gives ``a = 1 + h k(sigma_hat)`` and Heun ``a = 1 + h (k(sigma_hat) + k(sigma_next)
    a_Euler) / 2``, ``h = sigma_next - sigma_hat``. Mean and variance are iterated from the start
    ``N(0, prior_std^2)``; the discretisation error is this law minus the conditional.
    """
    cond_mean = np.asarray(cond_mean, dtype=np.float64)
    eigvals, eigvecs = np.linalg.eigh(np.asarray(cond_cov, dtype=np.float64))
    m = eigvecs.T @ cond_mean
    low = method.sigma_min ** (1 / method.rho)
    width = method.sigma_max ** (1 / method.rho) - low
    sigmas = np.append((low + np.linspace(1.0, 0.0, steps) * width) ** method.rho, 0.0)
    gamma_churn = min(s_churn / steps, math.sqrt(2) - 1)
    slope = lambda sigma: sigma / (eigvals + sigma**2)
    mean = np.zeros_like(m)
    var = np.full_like(m, method.sigma_data**2 + method.sigma_max**2)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        gamma = gamma_churn if s_min <= sigma <= s_max else 0.0
        sigma_hat = sigma * (1 + gamma)
        var = var + (sigma_hat**2 - sigma**2) * s_noise**2
        h = sigma_next - sigma_hat
        gain = 1 + h * slope(sigma_hat)
        if sigma_next > 0:
            gain = 1 + h * 0.5 * (slope(sigma_hat) + slope(sigma_next) * gain)
        mean = m + gain * (mean - m)
        var = gain**2 * var
    return eigvecs @ mean, (eigvecs * var) @ eigvecs.T


def assert_gaussian_moments(samples, mean, cov, mean_allowance, cov_allowance, label):
    """Sample mean and covariance of ``samples (N, d)`` within 5 standard errors plus the
    allowances of ``N(mean, cov)``. For Gaussian data ``Var(mean_i) = cov_ii / N`` and
    ``Var(cov_ij) = (cov_ii cov_jj + cov_ij^2) / N``; the covariance allowance is relative to
    ``sqrt(cov_ii cov_jj)``."""
    n = samples.shape[0]
    samples = np.asarray(samples, dtype=np.float64)
    assert np.all(np.isfinite(samples)), f"{label}: non-finite samples"
    sd = np.sqrt(np.diag(cov))
    scale = np.outer(sd, sd)
    mean_err = np.abs(samples.mean(0) - mean)
    mean_tol = 5 * sd / np.sqrt(n) + mean_allowance
    assert np.all(mean_err <= mean_tol), f"{label}: mean error {mean_err} > {mean_tol}"
    cov_err = np.abs(np.cov(samples, rowvar=False) - cov)
    cov_tol = 5 * np.sqrt((scale**2 + cov**2) / n) + cov_allowance * scale
    assert np.all(cov_err <= cov_tol), f"{label}: covariance error\n{cov_err}\n> {cov_tol}"
