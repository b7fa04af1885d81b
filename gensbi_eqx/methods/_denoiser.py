"""Denoisers: what samplers consume. A denoiser maps ``(t, y, condition_mask)`` to the
estimates ``(x0_hat, eps_hat)``; a trained model wrapped with its method is one, an analytic
Gaussian is another, and a guidance transform is a denoiser wrapping a denoiser."""

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, ConditionMask, Flat, Float, Scalar, ScalarLike
from ._base import AbstractMethod, network_output
from ..models import AbstractAttention, AbstractModel


class AbstractDenoiser(eqx.Module):
    """``(t, y, condition_mask) -> (x0_hat, eps_hat)``, each ``(num_scalars,)``, for ONE example
    in standardised units. Entries where ``condition_mask`` is True are ignored by samplers."""

    method: eqx.AbstractVar[AbstractMethod]

    @abc.abstractmethod
    def __call__(self, t: Scalar, y: Flat, condition_mask: ConditionMask) -> tuple[Flat, Flat]:
        ...

    def score(self, t: ScalarLike, y: Flat, condition_mask: ConditionMask) -> Flat:
        """``grad_y log p_t(y_latent | y_observed)`` on the latent entries."""
        t = jnp.asarray(t, dtype=float)
        _, eps = self(t, y, condition_mask)
        return -eps / self.method.alpha_sigma(t)[1]

    def velocity(self, t: ScalarLike, y: Flat, condition_mask: ConditionMask) -> Flat:
        """The probability-flow ODE's ``dy/dt``."""
        t = jnp.asarray(t, dtype=float)
        x0, eps = self(t, y, condition_mask)
        d_alpha, d_sigma = self.method.alpha_sigma_derivatives(t)
        return d_alpha * x0 + d_sigma * eps


class ModelDenoiser(AbstractDenoiser):
    """A trained model read through its method's parametrisation. ``attention`` is what the
    model attends through (bound to the layout; ``None``: dense); ``metadata`` holds the
    tokens' coordinates for a model with metadata tokens (see `for_condition`)."""

    model: AbstractModel
    method: AbstractMethod
    attention: AbstractAttention | None = None
    metadata: Float[Array, " num_scalars"] | None = None

    def __call__(self, t: Scalar, y: Flat, condition_mask: ConditionMask) -> tuple[Flat, Flat]:
        output = network_output(
            self.model, self.method, t, y, condition_mask, self.attention, self.metadata
        )
        return self.method.denoise(output, t, y)


def for_condition(
    denoiser: AbstractDenoiser,
    y_cond: Flat,
    metadata: Float[Array, " num_scalars"] | None = None,
) -> AbstractDenoiser:
    """``denoiser`` for one condition, used per condition inside ``vmap`` before the solver's
    loop: the model of every `ModelDenoiser` inside it (e.g. under guidance) specialised to the
    observed values ``y_cond`` (`AbstractModel.given`: e.g. an embedding network's summaries,
    computed once), and reading the token coordinates ``metadata`` when given."""
    is_model = lambda node: isinstance(node, ModelDenoiser)

    def specialise(node):
        node = dataclasses.replace(node, model=node.model.given(y_cond))
        return node if metadata is None else dataclasses.replace(node, metadata=metadata)

    return jax.tree.map(lambda node: specialise(node) if is_model(node) else node, denoiser,
                        is_leaf=is_model)
