"""How training draws its times: where on the path the loss is spent.

Every method's loss is an average over ``t``; the distribution of ``t`` decides which noise
levels the network learns best. Each distribution is drawn in ``[t_min, 1]`` of the method that
asks, so one object works for every method.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, Float, Key


class AbstractTimes(eqx.Module):
    """A distribution of training times in ``[method.t_min, 1]``, given by its quantile
    function, so that a batch can draw its times stratified (one per quantile stratum), which
    lowers the variance of the loss at no cost."""

    @abc.abstractmethod
    def quantile(self, u: Float[Array, "*shape"], method) -> Float[Array, "*shape"]:
        """The time at probability ``u`` in ``[0, 1]``, for ``method``."""

    def sample(self, key: Key, method, shape: tuple[int, ...] = ()) -> Float[Array, "..."]:
        """Independent draws."""
        return self.quantile(jr.uniform(key, shape), method)

    def stratified(self, key: Key, method, n: int) -> Float[Array, " n"]:
        """``n`` draws, one in each of ``n`` equal-probability strata (in order)."""
        return self.quantile((jnp.arange(n) + jr.uniform(key, (n,))) / n, method)


def _standard_normal_quantile(u: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    # A uniform draw of exactly 0 would give -inf; keep every quantile finite.
    tiny = jnp.finfo(jnp.result_type(u, float)).eps
    return jax.scipy.special.ndtri(jnp.clip(u, tiny, 1.0 - tiny))


def _check_std(std) -> None:
    if not (isinstance(std, (int, float)) and not isinstance(std, bool) and std > 0):
        raise ValueError(f"`std` must be a positive number, got {std!r}.")


class UniformTimes(AbstractTimes):
    """``t ~ U[t_min, 1]`` (score-based diffusion as in Song et al. 2021; the Simformer's)."""

    def quantile(self, u, method):
        return method.t_min + (1.0 - method.t_min) * u


class LogitNormalTimes(AbstractTimes):
    """``t = t_min + (1 - t_min) sigmoid(u)``, ``u ~ N(mean, std^2)``: more weight in the middle
    of the path (Esser et al. 2024 for flow matching, where ``logit(t)`` is the log
    noise-to-signal ratio)."""

    mean: float = eqx.field(static=True, default=0.0)
    std: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        _check_std(self.std)

    def quantile(self, u, method):
        logit = self.mean + self.std * _standard_normal_quantile(u)
        return method.t_min + (1.0 - method.t_min) * jax.nn.sigmoid(logit)


class LogNormalNoise(AbstractTimes):
    """``log(sigma(t) / alpha(t)) ~ N(mean, std^2)``, clipped to the path's range: the noise
    level itself is log-normal, as in EDM (Karras et al. 2022: ``mean = -1.2``, ``std = 1.2``
    for unit-variance data). The time is the method's inverse of its noise-to-signal ratio."""

    mean: float = eqx.field(static=True, default=-1.2)
    std: float = eqx.field(static=True, default=1.2)

    def __check_init__(self):
        _check_std(self.std)

    def quantile(self, u, method):
        return method.time_of_log_ratio(self.mean + self.std * _standard_normal_quantile(u))


def bisect_time(method, log_ratio: Float[Array, "..."], iterations: int = 40) -> Float[Array, "..."]:
    """The time in ``[t_min, 1]`` where ``log(sigma / alpha)`` (increasing in ``t``) equals
    ``log_ratio``, by bisection; ratios beyond the path's range give its ends."""

    @jnp.vectorize  # alpha_sigma takes one time
    def ratio(t):
        alpha, sigma = method.alpha_sigma(t)
        return jnp.log(sigma) - jnp.log(alpha)

    low = jnp.full_like(log_ratio, method.t_min)
    high = jnp.ones_like(log_ratio)

    def halve(_, bounds):
        low, high = bounds
        mid = 0.5 * (low + high)
        below = ratio(mid) < log_ratio
        return jnp.where(below, mid, low), jnp.where(below, high, mid)

    low, high = jax.lax.fori_loop(0, iterations, halve, (low, high))
    return 0.5 * (low + high)
