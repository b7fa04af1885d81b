"""The ``slcp`` benchmark task of sbibm (Lueckmann et al., 2021; Papamakarios et al., 2019)."""

from typing import ClassVar

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Float, Key
from ..data import Dependencies
from ._base import AbstractSBIBMTask
from ._distributions import Uniform


class SLCP(AbstractSBIBMTask):
    """Simple likelihood, complex posterior: four 2-D Gaussian draws whose mean and covariance
    are set by a 5-D parameter.

    Prior: ``theta ~ U(-3, 3)^5``. Simulator, exactly as sbibm's ``slcp``: four iid draws from
    ``N(m, S)`` with ``m = (theta_1, theta_2)``, ``s_1 = theta_3^2``, ``s_2 = theta_4^2``,
    ``rho = tanh(theta_5)`` and
    ``S = [[s_1^2 + 1e-6, rho s_1 s_2], [rho s_1 s_2, s_2^2 + 1e-6]]``.
    ``x`` holds the draws one after the other, ``(u_1, v_1, u_2, v_2, ..., u_4, v_4)``, which is
    how sbibm flattens its ``(n, 4, 2)`` output.
    """

    name: ClassVar[str] = "slcp"
    dim_theta: ClassVar[int] = 5
    dim_x: ClassVar[int] = 8
    num_draws: ClassVar[int] = 4

    prior: Uniform

    def __init__(self):
        self.prior = Uniform(np.full(5, -3.0, np.float32), np.full(5, 3.0, np.float32))

    @property
    def dependencies(self) -> Dependencies:
        """The simulator's graph over ``"theta"`` (5 scalars) and ``"x"`` (8): each draw
        ``(u_k, v_k)`` depends on all of ``theta``, ``v_k`` also on ``u_k`` (their correlation);
        the four draws are independent given ``theta``. For ``gs.UndirectedAttention`` /
        ``gs.DirectedAttention`` (the Simformer paper's graph-masked SLCP)."""
        graph = {}
        for k in range(self.num_draws):
            graph[("x", 2 * k)] = ["theta"]
            graph[("x", 2 * k + 1)] = ["theta", ("x", 2 * k)]
        return Dependencies(graph)

    def _simulate(self, key: Key, theta: Float[Array, "n 5"]) -> Float[Array, "n 8"]:
        """Four draws per row of ``theta``, flattened to ``(u_1, v_1, ..., u_4, v_4)``."""
        n = theta.shape[0]
        loc = theta[:, :2]
        # s_1 and s_2 are standard deviations, so the variances are theta_3^4 and theta_4^4.
        s_1, s_2 = theta[:, 2] ** 2, theta[:, 3] ** 2
        rho = jnp.tanh(theta[:, 4])
        # sbibm's jitter: keeps S positive definite when theta_3 or theta_4 is zero.
        jitter = 1e-6
        off_diagonal = rho * s_1 * s_2
        covariance = jnp.stack(
            [
                jnp.stack([s_1**2 + jitter, off_diagonal], axis=-1),
                jnp.stack([off_diagonal, s_2**2 + jitter], axis=-1),
            ],
            axis=-2,
        )
        cholesky = jnp.linalg.cholesky(covariance)
        noise = jr.normal(key, (n, self.num_draws, 2), theta.dtype)
        draws = loc[:, None, :] + jnp.einsum("nij,ndj->ndi", cholesky, noise)
        return draws.reshape(n, self.dim_x)
