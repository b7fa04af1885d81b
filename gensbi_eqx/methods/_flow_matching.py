"""Flow matching (Lipman et al. 2023) with the conditional optimal-transport path."""

from typing import Any, ClassVar, Literal

import jax.numpy as jnp

from .._custom_types import Scalar, ScalarLike
from ._base import AbstractMethod


class FlowMatching(AbstractMethod):
    """``y_t = (1 - t) x0 + t eps``; the network predicts the velocity ``eps - x0``.

    Sampled by the probability-flow ODE; its reverse SDE is singular at ``t = 1`` (``alpha = 0``),
    so ``sampler="sde"`` is refused. The default is 20 fixed Heun steps (40 network
    evaluations): on two moons after 4,000 training steps it scored the C2ST of adaptive Tsit5
    at ``rtol = 1e-5`` (0.720 vs 0.716) with about a tenth of the evaluations
    (``benchmarks/fm_ode_steps.py``).
    """

    t_min: ClassVar[float] = 0.0
    prediction: ClassVar[Literal["velocity"]] = "velocity"
    default_sampler: ClassVar[Literal["ode"]] = "ode"
    default_steps: ClassVar[int] = 20

    def alpha_sigma(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        t = jnp.asarray(t, dtype=float)
        return 1.0 - t, t

    @property
    def config(self) -> dict[str, Any]:
        return {}
