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
    """A distribution of training times; ``times.sample(key, method, shape)`` lies in
    ``[method.t_min, 1]``."""

    @abc.abstractmethod
    def sample(self, key: Key, method, shape: tuple[int, ...] = ()) -> Float[Array, "..."]:
        ...


def _check_std(std) -> None:
    if not (isinstance(std, (int, float)) and not isinstance(std, bool) and std > 0):
        raise ValueError(f"`std` must be a positive number, got {std!r}.")


class UniformTimes(AbstractTimes):
    """``t ~ U[t_min, 1]`` (score-based diffusion as in Song et al. 2021; the Simformer's)."""

    def sample(self, key: Key, method, shape: tuple[int, ...] = ()) -> Float[Array, "..."]:
        return jr.uniform(key, shape, minval=method.t_min, maxval=1.0)


class LogitNormalTimes(AbstractTimes):
    """``t = t_min + (1 - t_min) sigmoid(u)``, ``u ~ N(mean, std^2)``: more weight in the middle
    of the path (Esser et al. 2024 for flow matching, where ``logit(t)`` is the log
    noise-to-signal ratio)."""

    mean: float = eqx.field(static=True, default=0.0)
    std: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        _check_std(self.std)

    def sample(self, key: Key, method, shape: tuple[int, ...] = ()) -> Float[Array, "..."]:
        u = jax.nn.sigmoid(self.mean + self.std * jr.normal(key, shape))
        return method.t_min + (1.0 - method.t_min) * u


class LogNormalNoise(AbstractTimes):
    """``log(sigma(t) / alpha(t)) ~ N(mean, std^2)``, clipped to the path's range: the noise
    level itself is log-normal, as in EDM (Karras et al. 2022: ``mean = -1.2``, ``std = 1.2``
    for unit-variance data). The time is the method's inverse of its noise-to-signal ratio."""

    mean: float = eqx.field(static=True, default=-1.2)
    std: float = eqx.field(static=True, default=1.2)

    def __check_init__(self):
        _check_std(self.std)

    def sample(self, key: Key, method, shape: tuple[int, ...] = ()) -> Float[Array, "..."]:
        log_ratio = self.mean + self.std * jr.normal(key, shape)
        return method.time_of_log_ratio(log_ratio)


def bisect_time(method, log_ratio: Float[Array, "..."], iterations: int = 40) -> Float[Array, "..."]:
    """The time in ``[t_min, 1]`` where ``log(sigma / alpha)`` (increasing in ``t``) equals
    ``log_ratio``, by bisection; ratios beyond the path's range give its ends."""

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
