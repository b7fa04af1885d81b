"""The ``HMM`` task of the Simformer paper (Gloeckler et al., "All-in-one simulation-based
inference", ICML 2024): a nonlinear hidden Markov model with continuous hidden states.

Followed: ``nonlinear_marcov_chain`` and the base mask of
``NonlinearMarcovChainAllConditionalTask`` in ``src/scoresbibm/scoresbibm/tasks/
all_conditional_tasks.py`` of mackelab/simformer (commit d33e6a1e; the paper calls it HMM, the
code ``marcov_chain_all_cond``), where probjax's ``Normal(loc, scale)`` takes a standard
deviation.

The hidden states are the parameters ``theta`` themselves and are continuous (a Gaussian random
walk), so there is nothing discrete to marginalise: ``log_joint`` is the plain product of the
Gaussian transition and emission densities, and NUTS runs on all latent entries directly.
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

_NUM_STEPS = 10
_SCALE = 0.5  # standard deviation of the initial state, every transition and every emission


class HMM(AbstractJointDensityTask):
    """HMM: a 10-step Gaussian random walk ``theta``, each state seen through ``x_i = theta_i^2``
    plus noise.

    Prior (ancestral): ``theta_0 ~ N(0, 0.5^2)``, ``theta_i ~ N(theta_{i-1}, 0.5^2)`` for
    ``i = 1..9``; jointly ``theta ~ N(0, 0.25 L L^T)`` with ``L`` the lower-triangular matrix of
    ones (``Cov[theta_i, theta_j] = 0.25 (min(i, j) + 1)``), which is what ``prior`` holds.
    Simulator: independent ``x_i ~ N(theta_i^2, 0.5^2)``.

    Graph (``dependencies``): ``theta_{i-1} -> theta_i`` and ``theta_i -> x_i``. The joint density
    is invariant under ``theta -> -theta``, so conditionals that observe no ``theta`` are
    symmetric and usually bimodal.
    """

    name: ClassVar[str] = "hmm"
    dim_theta: ClassVar[int] = _NUM_STEPS
    dim_x: ClassVar[int] = _NUM_STEPS

    prior: Normal

    def __init__(self):
        factor = _SCALE * np.tril(np.ones((_NUM_STEPS, _NUM_STEPS)))
        covariance = (factor @ factor.T).astype(np.float32)
        self.prior = Normal(np.zeros(_NUM_STEPS, np.float32), covariance)

    @property
    def dependencies(self) -> Dependencies:
        """The published graph over the nodes ``"theta"`` (10 scalars) and ``"x"`` (10)."""
        parents = {("theta", i): [("theta", i - 1)] for i in range(1, _NUM_STEPS)}
        parents.update({("x", i): [("theta", i)] for i in range(_NUM_STEPS)})
        return Dependencies(parents)

    def _simulate(self, key: Key, theta: Float[Array, "n 10"]) -> Float[Array, "n 10"]:
        """One simulation per row of ``theta``."""
        return theta**2 + _SCALE * jr.normal(key, theta.shape, theta.dtype)

    @eqx.filter_jit
    def log_likelihood(
        self, theta: Float[Array, "*batch dim_theta"], x: Float[Array, "*batch dim_x"]
    ) -> Float[Array, "*batch"]:
        """``log p(x | theta)`` for ``theta`` and ``x`` of shape ``(*batch, 10)``."""
        self._check_pair(theta, x)
        return jnp.sum(jss.norm.logpdf(x, theta**2, _SCALE), axis=-1)
