"""Denoisers: what samplers consume. A denoiser maps ``(t, y, condition_mask)`` to the
estimates ``(x0_hat, eps_hat)``; a trained model wrapped with its method is one, an analytic
Gaussian is another, and a guidance transform is a denoiser wrapping a denoiser."""

import abc

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import ConditionMask, EdgeMask, Scalar, ScalarLike, Tokens
from ..methods import AbstractMethod, network_output
from ..models import AbstractModel, DependencyMask


class AbstractDenoiser(eqx.Module):
    """``(t, y, condition_mask) -> (x0_hat, eps_hat)``, each ``(num_nodes,)``, for ONE example
    in standardised units. Entries where ``condition_mask`` is True are ignored by samplers."""

    method: eqx.AbstractVar[AbstractMethod]

    @abc.abstractmethod
    def __call__(self, t: Scalar, y: Tokens, condition_mask: ConditionMask) -> tuple[Tokens, Tokens]:
        ...

    def score(self, t: ScalarLike, y: Tokens, condition_mask: ConditionMask) -> Tokens:
        """``grad_y log p_t(y_latent | y_observed)`` on the latent entries."""
        t = jnp.asarray(t, dtype=float)
        _, eps = self(t, y, condition_mask)
        return -eps / self.method.alpha_sigma(t)[1]

    def velocity(self, t: ScalarLike, y: Tokens, condition_mask: ConditionMask) -> Tokens:
        """The probability-flow ODE's ``dy/dt``."""
        t = jnp.asarray(t, dtype=float)
        x0, eps = self(t, y, condition_mask)
        d_alpha, d_sigma = self.method.alpha_sigma_derivatives(t)
        return d_alpha * x0 + d_sigma * eps


class ModelDenoiser(AbstractDenoiser):
    """A trained model read through its method's parametrisation."""

    model: AbstractModel
    method: AbstractMethod
    edge_mask: EdgeMask | DependencyMask | None = None

    def __call__(self, t: Scalar, y: Tokens, condition_mask: ConditionMask) -> tuple[Tokens, Tokens]:
        output = network_output(self.model, self.method, t, y, condition_mask, self.edge_mask)
        return self.method.denoise(output, t, y)
