"""What every sampler is: a configured strategy that draws the latent scalars of ONE example.

Samplers integrate in ``s in [0, 1]`` with ``t = 1 - s (1 - t_min)``, so diffrax always steps
forward, from noise (``t = 1``) to data (``t = t_min``). Observed entries have zero drift and
zero diffusion and are restored exactly at the end, so they are never noised or moved.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import ConditionMask, Flat, Key
from ..methods import AbstractDenoiser, AbstractMethod


class AbstractSampler(eqx.Module):
    """``sampler(key, denoiser, y_cond, condition_mask) -> y``: one draw of the latent entries
    of one example (``vmap`` outside); entries where ``condition_mask`` is True come back as
    ``y_cond`` has them. Settings are fields, checked when the sampler is built."""

    @abc.abstractmethod
    def __call__(
        self, key: Key, denoiser: AbstractDenoiser, y_cond: Flat, condition_mask: ConditionMask
    ) -> Flat:
        ...

    def check_method(self, method: AbstractMethod) -> None:
        """Raise a ValueError if this sampler cannot drive ``method`` (checked before tracing)."""

    @property
    def evaluations(self) -> int | None:
        """Denoiser evaluations per draw, or None when the solver chooses (adaptive steps)."""
        return None


def check_positive_int(value, argument: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")


def check_positive(value, argument: str) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"`{argument}` must be a positive number, got {value!r}.")


def method_time(method: AbstractMethod, s):
    """``(t, dt/ds)`` at solver time ``s``: ``t = 1 - s (1 - t_min)``."""
    span = 1.0 - method.t_min
    return 1.0 - span * s, span


def data_vanishes_at_noise_end(method: AbstractMethod) -> bool:
    """Whether ``alpha(1) = 0``: then the drift ``f = alpha'/alpha`` blows up at ``t = 1``."""
    # Static method parameters make this concrete even while a caller is being traced.
    with jax.ensure_compile_time_eval():
        alpha, _ = method.alpha_sigma(1.0)
        return bool(alpha == 0)


def initial_state(
    key: Key, denoiser: AbstractDenoiser, y_cond: Flat, condition_mask: ConditionMask
) -> Flat:
    """Where every sampler starts: ``N(0, prior_std^2)`` on latent entries, ``y_cond`` elsewhere."""
    noise = denoiser.method.prior_std() * jr.normal(key, y_cond.shape)
    return jnp.where(condition_mask, y_cond, noise)


def reverse_ode_field(s, y, args):
    """The probability-flow ODE in solver time: ``dy/ds``, zero on observed entries."""
    denoiser, mask = args
    t, span = method_time(denoiser.method, s)
    return jnp.where(mask, 0.0, -span * denoiser.velocity(t, y, mask))
