"""Generative methods as Gaussian probability paths ``y_t = alpha(t) x_0 + sigma(t) eps``.

Time runs from data (``t = t_min``) to noise (``t = 1``) for every method. A method knows its
path, what the network is trained to predict, and how to turn a prediction into the clean-data
and noise estimates ``(x0_hat, eps_hat)`` from which every sampler's vector field follows:

- score ``= -eps_hat / sigma``;
- probability-flow velocity ``dy/dt = alpha' x0_hat + sigma' eps_hat``;
- reverse SDE drift ``f y - g^2 score`` with ``f = alpha'/alpha`` and
  ``g^2 = d sigma^2/dt - 2 f sigma^2``.

What the network predicts (``prediction``):

- ``"noise"``: ``eps``;
- ``"velocity"``: ``dy/dt = alpha' x0 + sigma' eps``;
- ``"denoised"``: a preconditioned denoiser (EDM): the output ``F`` is read as
  ``x0_hat = c_skip(t) y + c_out(t) F``; such a method defines ``target`` and ``denoise`` itself.

The network sees the noised tokens scaled by ``input_scale(t)`` and the noise level as
``noise_input(t)`` (``t`` itself unless a method says otherwise). Training draws ``t`` from
the method's ``times`` (`gensbi_eqx.methods.UniformTimes` unless a method says otherwise).

Methods never know which model they drive.
"""

import abc
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp

from .._config import from_config, subclasses, to_config
from .._custom_types import Array, ArrayLike, ConditionMask, Flat, Float, Key, Scalar, ScalarLike
from ._times import AbstractTimes, bisect_time


class AbstractMethod(eqx.Module):
    """A probability path plus its training target and its parametrisation."""

    t_min: eqx.AbstractClassVar[float]
    prediction: eqx.AbstractClassVar[Literal["noise", "velocity", "denoised"]]
    times: eqx.AbstractVar[AbstractTimes]

    @abc.abstractmethod
    def alpha_sigma(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        """Scale of the data and of the noise at time ``t``."""

    @property
    def config(self) -> dict[str, Any]:
        """``{"class": name, **constructor keyword arguments}`` as JSON values; `from_config`
        rebuilds the method."""
        return to_config(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "AbstractMethod":
        """The method that `config` (from ``method.config``) describes."""
        return from_config(config, subclasses(AbstractMethod, AbstractTimes))

    def alpha_sigma_derivatives(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        """``(d alpha/dt, d sigma/dt)`` by forward-mode autodiff of the path."""
        t = jnp.asarray(t, dtype=float)
        _, tangents = jax.jvp(self.alpha_sigma, (t,), (jnp.ones_like(t),))
        return tangents

    def drift_diffusion(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        """``(f, g^2)`` of the forward SDE ``dy = f y dt + g dW`` whose marginals are the path."""
        alpha, sigma = self.alpha_sigma(t)
        d_alpha, d_sigma = self.alpha_sigma_derivatives(t)
        f = d_alpha / alpha
        return f, 2 * sigma * d_sigma - 2 * f * sigma**2

    def sample_time(self, key: Key, shape: tuple[int, ...] = ()) -> Float[Array, "..."]:
        """Training times, drawn from ``times`` in ``[t_min, 1]``."""
        return self.times.sample(key, self, shape)

    def time_of_log_ratio(self, log_ratio: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
        """The time at which ``log(sigma / alpha)`` equals ``log_ratio`` (clipped to the path's
        range); methods with a closed form override this bisection."""
        return bisect_time(self, jnp.asarray(log_ratio, dtype=float))

    def prior_std(self) -> Scalar:
        """Standard deviation of ``y_1`` for standardised data, where sampling starts."""
        alpha, sigma = self.alpha_sigma(1.0)
        return jnp.sqrt(alpha**2 + sigma**2)

    def input_scale(self, t: ScalarLike) -> Scalar:
        """Scale that gives the noised tokens unit variance before they enter the network."""
        alpha, sigma = self.alpha_sigma(t)
        return jax.lax.rsqrt(alpha**2 + sigma**2)

    def noise_input(self, t: ScalarLike) -> Scalar:
        """What the network is told about the noise level at time ``t``."""
        return jnp.asarray(t, dtype=float)

    def target(self, x0: Flat, eps: Flat, t: ScalarLike) -> Flat:
        """What the network is trained to output at ``y_t = alpha x0 + sigma eps``."""
        if self.prediction == "noise":
            return eps
        if self.prediction != "velocity":
            raise NotImplementedError(f"{type(self).__name__} must define `target` itself.")
        d_alpha, d_sigma = self.alpha_sigma_derivatives(t)
        return d_alpha * x0 + d_sigma * eps

    def denoise(self, output: Flat, t: ScalarLike, y: Flat) -> tuple[Flat, Flat]:
        """``(x0_hat, eps_hat)`` from the network's ``output`` at ``(t, y)``."""
        alpha, sigma = self.alpha_sigma(t)
        if self.prediction == "noise":
            return (y - sigma * output) / alpha, output
        if self.prediction != "velocity":
            raise NotImplementedError(f"{type(self).__name__} must define `denoise` itself.")
        d_alpha, d_sigma = self.alpha_sigma_derivatives(t)
        # Solve [alpha sigma; alpha' sigma'] [x0; eps] = [y; v]; the determinant never vanishes
        # on the paths used here, even where alpha or sigma does.
        det = alpha * d_sigma - sigma * d_alpha
        return (d_sigma * y - sigma * output) / det, (alpha * output - d_alpha * y) / det


def network_output(
    model,
    method: AbstractMethod,
    t: ScalarLike,
    y: Flat,
    condition_mask: ConditionMask,
    attention=None,
    metadata: Float[Array, " num_scalars"] | None = None,
) -> Flat:
    """The model's raw output at ``(t, y)``: latent tokens are rescaled to unit variance first;
    observed tokens are clean data and enter as they are. The model receives the noise level
    as the method encodes it, ``method.noise_input(t)``. ``attention`` (a
    `gensbi_eqx.models.AbstractAttention`, bound to the layout, or ``None``: dense) gives the
    attention mask for this ``condition_mask``; ``metadata`` is each token's coordinate, for
    models with metadata tokens."""
    t = jnp.asarray(t, dtype=float)
    y_in = jnp.where(condition_mask, y, method.input_scale(t) * y)
    edge_mask = None if attention is None else attention(condition_mask)
    extra = {} if metadata is None else {"metadata": metadata}
    return model(method.noise_input(t), y_in, condition_mask, edge_mask=edge_mask, **extra)
