"""The ``Tree`` task of the Simformer paper (Gloeckler et al., "All-in-one simulation-based
inference", ICML 2024): a nonlinear Gaussian model on a tree-shaped graph.

Followed: ``nonlinear_gaussian_tree_task`` and the base mask of
``NonlinearGaussianTreeAllConditionalTask`` in ``src/scoresbibm/scoresbibm/tasks/
all_conditional_tasks.py`` of mackelab/simformer (commit d33e6a1e), where probjax's
``Normal(loc, scale)`` takes a standard deviation. The reference names the variables
``theta1..theta3`` and ``x1..x4``; here they are ``theta[0..2]`` and ``x[0..3]``.
"""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.stats as jss
import numpy as np

from .._custom_types import Array, Float, Key
from ..data import Dependencies
from ._base import AbstractJointDensityTask
from ._distributions import Normal

# theta = L eps with eps ~ N(0, I): theta_0 = eps_0, theta_1 = theta_0 + eps_1,
# theta_2 = theta_0 + eps_2. The ancestral factor L is also the Cholesky factor of the prior.
_TREE_FACTOR = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
_NOISE_SCALE = np.array([0.2, 0.2, 0.6, 0.1], np.float32)


class Tree(AbstractJointDensityTask):
    """Tree: three parameters on a tree, each parent of two nonlinear, noisy observations.

    Prior (ancestral): ``theta_0 ~ N(0, 1)``, ``theta_1 ~ N(theta_0, 1)``,
    ``theta_2 ~ N(theta_0, 1)``; jointly ``theta ~ N(0, L L^T)`` with
    ``L = [[1, 0, 0], [1, 1, 0], [1, 0, 1]]``, which is what ``prior`` holds.
    Simulator: independent Gaussians
    ``x_0 ~ N(sin^2 theta_1, 0.2^2)``, ``x_1 ~ N(0.1 theta_1^2, 0.2^2)``,
    ``x_2 ~ N(0.1 theta_2^2, 0.6^2)``, ``x_3 ~ N(cos^2 theta_2, 0.1^2)``.

    Graph (``dependencies``): ``theta_0 -> theta_1, theta_2``; ``theta_1 -> x_0, x_1``;
    ``theta_2 -> x_2, x_3``. The joint density is invariant under ``theta -> -theta``, and
    ``x_0``, ``x_3`` are periodic in ``theta``, so many conditionals are multimodal.
    """

    name: ClassVar[str] = "tree"
    dim_theta: ClassVar[int] = 3
    dim_x: ClassVar[int] = 4

    prior: Normal

    def __init__(self):
        covariance = (_TREE_FACTOR @ _TREE_FACTOR.T).astype(np.float32)
        self.prior = Normal(np.zeros(3, np.float32), covariance)

    @property
    def dependencies(self) -> Dependencies:
        """The published graph over the nodes ``"theta"`` (3 scalars) and ``"x"`` (4)."""
        return Dependencies(
            {
                ("theta", 1): [("theta", 0)],
                ("theta", 2): [("theta", 0)],
                ("x", 0): [("theta", 1)],
                ("x", 1): [("theta", 1)],
                ("x", 2): [("theta", 2)],
                ("x", 3): [("theta", 2)],
            }
        )

    @staticmethod
    def _mean_x(theta: Float[Array, "*batch 3"]) -> Float[Array, "*batch 4"]:
        theta_1, theta_2 = theta[..., 1], theta[..., 2]
        return jnp.stack(
            [jnp.sin(theta_1) ** 2, 0.1 * theta_1**2, 0.1 * theta_2**2, jnp.cos(theta_2) ** 2],
            axis=-1,
        )

    def _simulate(self, key: Key, theta: Float[Array, "n 3"]) -> Float[Array, "n 4"]:
        """One simulation per row of ``theta``."""
        noise = jr.normal(key, (theta.shape[0], self.dim_x), theta.dtype)
        return self._mean_x(theta) + jnp.asarray(_NOISE_SCALE, theta.dtype) * noise

    @eqx.filter_jit
    def log_likelihood(
        self, theta: Float[Array, "*batch dim_theta"], x: Float[Array, "*batch dim_x"]
    ) -> Float[Array, "*batch"]:
        """``log p(x | theta)`` for ``theta`` ``(*batch, 3)`` and ``x`` ``(*batch, 4)``."""
        self._check_pair(theta, x)
        scale = jnp.asarray(_NOISE_SCALE, x.dtype)
        return jnp.sum(jss.norm.logpdf(x, self._mean_x(theta), scale), axis=-1)
