"""A trained model with everything needed to answer queries in the user's units."""

import math
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Key
from .._sharding import data_parallel
from ..data import NodeData, NodeLayout, Standardiser
from ..methods import AbstractMethod, ModelDenoiser
from ..models import AbstractAttention, AbstractModel, DenseAttention
from ..samplers import ODE, SMC, AbstractSampler, Rejection, default_sampler
from ..sampling import AbstractTrace, ExactTrace, log_prob_batch, sample_conditionals
from ..sampling._log_prob import check_trace
from ..training import History
from ._constraints import AbstractConstraint
from ._query import check_conditional, check_support, density_query, flat_query
from ._samples import Samples
from ._strategies import draw_constrained
from ._trials import Trials, draw_trials


def _positive_int(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")
    return int(value)


class Estimator(eqx.Module):
    """A model trained on named nodes, answering any conditional.

    ``model`` holds the EMA weights chosen by validation; ``standardiser`` maps user units to
    the model's; ``attention`` is what the model attends through (bound to ``layout``);
    ``history`` records the training run; ``time_standardiser`` maps the times of `Series`
    nodes to the model's units (``None`` without such nodes).
    """

    model: AbstractModel
    method: AbstractMethod
    layout: NodeLayout
    standardiser: Standardiser
    attention: AbstractAttention = DenseAttention()
    history: History | None = eqx.field(static=True, default=None)
    time_standardiser: Standardiser | None = None

    def __check_init__(self):
        if self.model.num_scalars != self.layout.num_scalars:
            raise ValueError(
                f"`model` has {self.model.num_scalars} scalars but `layout` has "
                f"{self.layout.num_scalars}."
            )
        if self.layout.has_metadata != (self.time_standardiser is not None):
            raise ValueError(
                "`time_standardiser` must be given exactly when `layout` has nodes with times, "
                f"got {self.time_standardiser!r} for {self.layout.metadata_nodes}."
            )

    @property
    def denoiser(self) -> ModelDenoiser:
        """The model read through its method, in standardised units."""
        return ModelDenoiser(self.model, self.method, self.attention)

    @property
    def num_parameters(self) -> int:
        """Number of scalars in the model's floating-point arrays."""
        leaves = jax.tree.leaves(eqx.filter(self.model, eqx.is_inexact_array))
        return sum(math.prod(x.shape) for x in leaves)

    def sample(
        self,
        key: Key,
        condition: Mapping[str, NodeData | Trials],
        num_samples: int,
        *,
        sampler: AbstractSampler | Rejection | SMC | None = None,
        constraints: AbstractConstraint | Sequence[AbstractConstraint] | None = None,
        predict: Mapping[str, Array | Sequence] | None = None,
        chunk_size: int | None = None,
        devices: Sequence[jax.Device] | int | None = None,
    ) -> Samples:
        """Draw from ``p(unobserved | condition)``.

        **Arguments:**
        - `key`: a `jax.random` key.
        - `condition`: ``{name: (*batch, d)}`` observed values in user units; NaN entries are
          not observed, and nodes left out are not observed. A leading batch shape samples
          every conditional at once. A node trained with times takes ``gs.Series(values,
          times)``: any number of points up to its ``T``, at any times. A node given as
          ``gs.Trials(X)`` (``X``: ``(*batch, n, *shape)``) holds ``n`` i.i.d. observations:
          the draws are from the posterior given all of them, composed from the model's
          single-observation scores (docs/how-to/iid-trials.md).
        - `num_samples`: draws per condition.
        - `sampler`: e.g. ``gs.SDE(steps=500)``, ``gs.ODE(diffrax.Heun(), steps=20)``,
          ``gs.EDMSampler()``, ``gs.Resampled(gs.SDE(), rounds=2)``; default: the method's
          (`gensbi_eqx.samplers.default_sampler`). With `constraints` it also names the
          strategy: ``gs.Rejection()`` (the default), ``gs.SMC()``, or a plain sampler for
          guided diffusion alone.
        - `constraints`: ``gs.Box({name: (lower, upper)})`` and/or ``gs.LinearInequality(A,
          b)`` in user units (one or a list): the conditional restricted to them, on
          parameters or data nodes alike. By default rejection from the model's own draws,
          and sequential Monte Carlo where the constraints are improbable (acceptance below
          20%); ``samples.info`` says which ran and with what acceptance or effective sample
          size (docs/how-to/constraints.md). `SMC` draws all particles of a condition at
          once: `chunk_size` and `devices` do not apply to it.
        - `predict`: ``{name: times}`` with ``times`` of shape ``(n,)`` or ``(*batch, n)``: also
          draw the nodes with times at these times (the posterior predictive, from the same
          reverse process). Observed plus predicted points of a node are at most its ``T``.
        - `chunk_size`: at most this many draws (over all conditions) at once, one chunk after
          the other, which bounds working memory; the draws are the same, up to rounding.
        - `devices`: split the draws over ``None`` (all local devices), a count of local
          devices, or a list of jax devices.

        **Returns:** `Samples`, a mapping ``{name: (num_samples, *batch, d)}`` for every node
        without times that is not fully observed, in user units (observed entries of partly
        observed nodes are the given values, unchanged), and ``{name: (num_samples, *batch, n,
        *channels)}`` for each node in `predict`, at its times in the order given.
        """
        num_samples = _positive_int(num_samples, "num_samples")
        if isinstance(condition, Mapping) and any(isinstance(v, Trials) for v in condition.values()):
            return self._sample_trials(
                key, condition, num_samples, sampler, constraints, predict, chunk_size, devices
            )
        if constraints is None:
            if isinstance(sampler, (Rejection, SMC)):
                raise ValueError(
                    f"`sampler={type(sampler).__name__}(...)` draws under constraints; pass "
                    "`constraints` too, or a plain sampler such as gs.SDE()."
                )
            sampler = default_sampler(self.method) if sampler is None else sampler
        elif sampler is None:
            sampler = Rejection()
        if not isinstance(sampler, (AbstractSampler, Rejection, SMC)):
            raise TypeError(
                "`sampler` must be a sampler such as gs.SDE() or gs.ODE() (or, with "
                f"`constraints`, gs.Rejection() or gs.SMC()), got {sampler!r}."
            )
        if chunk_size is not None:
            chunk_size = _positive_int(chunk_size, "chunk_size")
        given, metadata, predicted = flat_query(
            self.layout, self.model, self.time_standardiser, condition, predict
        )
        observed = ~np.isnan(given)
        if observed.all(axis=-1).any():
            raise ValueError(
                "`condition` observes every node, so there is nothing to sample; leave some "
                "node (or entry, as NaN) unobserved."
            )
        check_conditional(self.model, self.layout, observed)
        check_support(self.layout, self.standardiser, given, "condition")
        batch = given.shape[:-1]
        flat_given = given.reshape(-1, self.layout.num_scalars)
        flat_observed = observed.reshape(flat_given.shape)
        y_cond = self.standardiser(jnp.asarray(np.where(flat_observed, flat_given, 0.0)))
        denoiser = self.denoiser
        mask = jnp.asarray(flat_observed)
        if metadata is not None:
            metadata = jnp.asarray(np.broadcast_to(metadata, given.shape).reshape(flat_given.shape))
        parallel = data_parallel(devices)
        if parallel is not None:
            denoiser, y_cond, mask, metadata = parallel.replicate((denoiser, y_cond, mask, metadata))
        options = {"chunk_size": chunk_size, "parallel": parallel, "metadata": metadata}
        info = {}
        if constraints is None:
            z = sample_conditionals(key, denoiser, y_cond, mask, num_samples, sampler, **options)
        else:
            z, info = draw_constrained(
                key, denoiser, constraints, sampler, self.layout, self.standardiser,
                y_cond, mask, num_samples, **options,
            )
            # Per-condition reports take the query's batch shape.
            info = {
                name: np.reshape(value, batch) if np.ndim(value) == 1 else value
                for name, value in info.items()
            }
        samples = jnp.where(flat_observed, flat_given, self.standardiser.inverse(z))
        samples = samples.reshape((num_samples,) + batch + (self.layout.num_scalars,))
        wanted = [
            name
            for name in self.layout.names
            if name not in self.layout.metadata_nodes
            and not observed[..., self.layout.slices[name]].all()
        ]
        draws = self.layout.unflatten(samples, wanted)
        for name, index in predicted.items():
            draws[name] = samples[..., jnp.asarray(index)]
        return Samples(draws, sampler, info)

    def _sample_trials(
        self, key, condition, num_samples, sampler, constraints, predict, chunk_size, devices
    ) -> Samples:
        unsupported = {"constraints": constraints, "predict": predict,
                       "chunk_size": chunk_size, "devices": devices}
        given = [name for name, value in unsupported.items() if value is not None]
        if given:
            raise ValueError(f"`{given[0]}` is not available with gs.Trials in `condition`.")
        sampler = default_sampler(self.method) if sampler is None else sampler
        if not isinstance(sampler, AbstractSampler):
            raise TypeError(
                "`sampler` with gs.Trials must be a sampler such as gs.SDE(), got "
                f"{sampler!r}."
            )
        samples, observed, info = draw_trials(key, self, condition, num_samples, sampler)
        wanted = [
            name for name in self.layout.names
            if not observed[..., self.layout.slices[name]].all()
        ]
        return Samples(self.layout.unflatten(samples, wanted), sampler, info)

    def log_prob(
        self,
        values: Mapping[str, NodeData],
        condition: Mapping[str, NodeData] | None = None,
        *,
        key: Key | None = None,
        trace: AbstractTrace = ExactTrace(),
        ode: ODE = ODE(),
    ) -> Array:
        """``log p(values | condition)`` in the user's units, by the probability-flow ODE.

        **Arguments:**
        - `values`: ``{name: (*batch, d)}``, the point at which to evaluate the density; a NaN
          entry (or a node left out) is not part of the point and must be in `condition`.
        - `condition`: ``{name: (*batch, d)}`` observed values (NaN: not observed). Every entry
          of every node must be in exactly one of `values` and `condition`.
        - `key`: a `jax.random` key, needed by a `Hutchinson` trace.
        - `trace`: ``gs.sampling.ExactTrace()`` (cost grows with the number of scalars) or
          ``gs.sampling.Hutchinson(num_probes)`` (unbiased; needs `key`).
        - `ode`: the probability-flow solve (default adaptive Tsit5 at ``rtol = atol = 1e-5``).

        **Returns:** ``(*batch,)``: the density of what ``sample(..., sampler=ode)`` draws (the
        same ODE, started from the same noise), including the Jacobian of the map to the
        model's units (standardisation, and the bounds of nodes declared bounded: ``-inf``
        outside them); see
        `gensbi_eqx.sampling.log_prob` for what is integrated.
        """
        condition = {} if condition is None else condition
        if any(isinstance(v, Trials) for part in (values, condition) for v in part.values()):
            raise ValueError(
                "`log_prob` takes no gs.Trials: the composition gives draws, not densities."
            )
        check_trace(trace, key)
        point, observed, metadata = density_query(
            self.layout, self.model, self.time_standardiser, values, condition
        )
        check_support(self.layout, self.standardiser, np.where(observed, point, np.nan), "condition")
        batch = point.shape[:-1]
        flat_observed = observed.reshape(-1, self.layout.num_scalars)
        flat_point = jnp.asarray(point.reshape(flat_observed.shape))
        y = self.standardiser(flat_point)
        keys = None if key is None else jax.random.split(key, flat_observed.shape[0])
        if metadata is not None:
            metadata = jnp.asarray(metadata.reshape(flat_observed.shape))
        log_density = log_prob_batch(
            self.denoiser, y, jnp.asarray(flat_observed), keys, metadata, trace, ode
        )
        # The density of the latent scalars in user units: each gains log |dz/dx|.
        latent = jnp.asarray(~flat_observed)
        log_det = self.standardiser.log_abs_det_jacobian(flat_point)
        log_density = log_density + jnp.sum(jnp.where(latent, log_det, 0.0), axis=-1)
        # Outside a declared support the density is zero.
        beyond = jnp.any(latent & self.standardiser.outside(flat_point), axis=-1)
        return jnp.where(beyond, -jnp.inf, log_density).reshape(batch)
