"""Flow matching (Lipman et al. 2023) with the conditional optimal-transport path."""

from typing import ClassVar, Literal

import jax
import jax.numpy as jnp

from .._custom_types import Array, ArrayLike, Float, Scalar, ScalarLike
from ._base import AbstractMethod
from ._times import AbstractTimes, UniformTimes


class FlowMatching(AbstractMethod):
    """``y_t = (1 - t) x0 + t eps``; the network predicts the velocity ``eps - x0``; training
    times from ``times``.

    Sampled by the probability-flow ODE (`gensbi_eqx.ODE`); its reverse SDE is singular at
    ``t = 1`` (``alpha = 0``), so SDE samplers are refused.
    """

    times: AbstractTimes = UniformTimes()
    t_min: ClassVar[float] = 0.0
    prediction: ClassVar[Literal["velocity"]] = "velocity"

    def alpha_sigma(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        t = jnp.asarray(t, dtype=float)
        return 1.0 - t, t

    def time_of_log_ratio(self, log_ratio: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
        # sigma / alpha = t / (1 - t), so t is the logistic function of the log ratio.
        return jax.nn.sigmoid(jnp.asarray(log_ratio, dtype=float))
