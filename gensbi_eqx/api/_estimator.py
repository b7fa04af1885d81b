"""A trained model with everything needed to answer queries in the user's units."""

import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, EdgeMask, Key
from ..data import NodeLayout, Standardiser, condition_vector
from ..methods import AbstractMethod
from ..models import AbstractModel, DependencyMask
from ..sampling import ModelDenoiser, sample_conditionals
from ..training import History


def _positive_int(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")
    return int(value)


class Estimator(eqx.Module):
    """A model trained on named nodes, answering any conditional.

    ``model`` holds the EMA weights chosen by validation; ``standardiser`` maps user units to
    the model's; ``edge_mask`` is what the model attends through (a fixed mask, a
    `DependencyMask` from declared dependencies, or ``None``: dense); ``history`` records the
    training run.
    """

    model: AbstractModel
    method: AbstractMethod
    layout: NodeLayout
    standardiser: Standardiser
    edge_mask: EdgeMask | DependencyMask | None = None
    history: History | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.model.num_nodes != self.layout.num_nodes:
            raise ValueError(
                f"`model` has {self.model.num_nodes} nodes but `layout` has "
                f"{self.layout.num_nodes}."
            )

    @property
    def denoiser(self) -> ModelDenoiser:
        return ModelDenoiser(self.model, self.method, self.edge_mask)

    def sample(
        self,
        key: Key,
        condition: Mapping[str, ArrayLike],
        num_samples: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        s_churn: float = 0.0,
        s_min: float = 0.0,
        s_max: float = math.inf,
        s_noise: float = 1.0,
    ) -> dict[str, Array]:
        """Draw from ``p(unobserved | condition)``.

        **Arguments:**
        - `key`: a `jax.random` key.
        - `condition`: ``{name: (*batch, d)}`` observed values in user units; NaN entries are not
          observed, and nodes left out are not observed. A leading batch shape samples every
          conditional at once.
        - `num_samples`: draws per condition.
        - `sampler`: ``"sde"`` (reverse SDE, Euler-Maruyama, ``steps`` default 500), ``"ode"``
          (probability-flow ODE: adaptive Tsit5 with ``rtol``/``atol``, or fixed-step Heun when
          ``steps`` is given) or ``"edm"`` (EDM only: Karras et al.'s Heun sampler, ``steps``
          default 18, with stochastic churn ``s_churn``, ``s_min``, ``s_max``, ``s_noise``).
          Default: the method's own (``"sde"`` for VE/VP, ``"ode"`` for flow matching,
          ``"edm"`` for EDM).

        **Returns:** ``{name: (num_samples, *batch, d)}`` for every node not fully observed, in
        user units; observed entries of partly observed nodes are the given values, unchanged.
        """
        num_samples = _positive_int(num_samples, "num_samples")
        if steps is not None:
            steps = _positive_int(steps, "steps")
        sampler = self.method.default_sampler if sampler is None else sampler
        if sampler not in ("sde", "ode", "edm"):
            raise ValueError(f"`sampler` must be 'sde', 'ode' or 'edm', got {sampler!r}.")
        churn = (float(s_churn), float(s_min), float(s_max), float(s_noise))
        if sampler != "edm" and churn != (0.0, 0.0, math.inf, 1.0):
            raise ValueError("`s_churn`, `s_min`, `s_max` and `s_noise` apply to sampler='edm' only.")
        given = condition_vector(self.layout, condition)
        observed = ~np.isnan(given)
        if observed.all(axis=-1).any():
            raise ValueError(
                "`condition` observes every node, so there is nothing to sample; leave some "
                "node (or entry, as NaN) unobserved."
            )
        self._check_conditional(observed)
        batch = given.shape[:-1]
        flat_given = given.reshape(-1, self.layout.num_nodes)
        flat_observed = observed.reshape(flat_given.shape)
        y_cond = self.standardiser(jnp.asarray(np.where(flat_observed, flat_given, 0.0)))
        z = sample_conditionals(
            key,
            self.denoiser,
            y_cond,
            jnp.asarray(flat_observed),
            num_samples,
            sampler,
            steps,
            rtol,
            atol,
            churn,
        )
        samples = jnp.where(flat_observed, flat_given, self.standardiser.inverse(z))
        samples = samples.reshape((num_samples,) + batch + (self.layout.num_nodes,))
        wanted = [
            name
            for name in self.layout.names
            if not observed[..., self.layout.slices[name]].all()
        ]
        return self.layout.unflatten(samples, wanted)

    def _check_conditional(self, observed: np.ndarray) -> None:
        """A conditional model answers only the conditional it was trained for."""
        fixed = self.model.fixed_condition_mask
        if fixed is None or (observed == np.asarray(fixed)).all():
            return
        slices = self.layout.slices
        given = [n for n in self.layout.names if np.asarray(fixed)[slices[n]].all()]
        inferred = [n for n in self.layout.names if n not in given]
        raise ValueError(
            f"This {type(self.model).__name__} answers only p({', '.join(inferred)} | "
            f"{', '.join(given)}): `condition` must give every entry of {given} and nothing of "
            f"{inferred}. Train a joint model (Simformer, Flux1Joint) for other conditionals."
        )

    def save(self, path) -> None:
        """Write this estimator to ``path`` atomically (see `gensbi_eqx.save`)."""
        from ._serialise import save

        save(path, self)

    @property
    def num_parameters(self) -> int:
        """Number of scalars in the model's floating-point arrays."""
        leaves = jax.tree.leaves(eqx.filter(self.model, eqx.is_inexact_array))
        return sum(math.prod(x.shape) for x in leaves)
