"""The ``two_moons`` benchmark task of sbibm (Lueckmann et al., 2021)."""

import math
from typing import ClassVar

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Float, Key
from ._base import AbstractSBIBMTask
from ._distributions import Uniform


class TwoMoons(AbstractSBIBMTask):
    """Two moons: a 2-D parameter maps to a crescent whose posterior has two modes.

    Prior: ``theta ~ U(-1, 1)^2``. Simulator: ``a ~ U(-pi/2, pi/2)``, ``r ~ N(0.1, 0.01^2)``,
    ``p = (r cos a + 0.25, r sin a)`` and
    ``x = p + (-|theta_1 + theta_2| / sqrt(2), (-theta_1 + theta_2) / sqrt(2))``,
    exactly as sbibm's ``two_moons``.
    """

    name: ClassVar[str] = "two_moons"
    dim_theta: ClassVar[int] = 2
    dim_x: ClassVar[int] = 2

    prior: Uniform

    def __init__(self):
        self.prior = Uniform(-np.ones(2, np.float32), np.ones(2, np.float32))

    def _simulate(self, key: Key, theta: Float[Array, "n 2"]) -> Float[Array, "n 2"]:
        """One simulation per row of ``theta``."""
        n = theta.shape[0]
        dtype = theta.dtype
        key_a, key_r = jr.split(key)
        a = jr.uniform(key_a, (n,), dtype, -math.pi / 2, math.pi / 2)
        r = 0.1 + 0.01 * jr.normal(key_r, (n,), dtype)
        p = jnp.stack([r * jnp.cos(a) + 0.25, r * jnp.sin(a)], axis=-1)
        # sbibm rotates theta by -pi/4 and folds the first coordinate with |.|, which is what
        # puts two posterior modes at +-(theta_1 + theta_2).
        theta_1, theta_2 = theta[:, 0], theta[:, 1]
        offset = jnp.stack(
            [-jnp.abs(theta_1 + theta_2) / math.sqrt(2), (-theta_1 + theta_2) / math.sqrt(2)],
            axis=-1,
        )
        return p + offset
