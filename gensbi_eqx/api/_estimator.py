"""A trained model with everything needed to answer queries in the user's units."""

import math
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, EdgeMask, Key
from .._sharding import data_parallel
from ..data import NodeData, NodeLayout, Standardiser, interval_bounds, query_vectors
from ..methods import AbstractMethod
from ..models import AbstractModel, DependencyMask, Flux1
from ..models._flux1 import check_one_time_per_token
from ..sampling import (
    AbstractDenoiser,
    ModelDenoiser,
    interval,
    linear,
    log_prob,
    sample_conditionals,
    with_metadata,
)
from ..training import History


def _positive_int(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")
    return int(value)


@eqx.filter_jit
def _log_prob_batch(denoiser, y, observed, keys, metadata, trace, num_probes, rtol, atol):
    """`log_prob` over a batch ``(batch, num_scalars)``; one compile per batch size."""

    def one(y_i, observed_i, key_i, metadata_i):
        d = denoiser if metadata_i is None else with_metadata(denoiser, metadata_i)
        return log_prob(
            d, y_i, observed_i, trace=trace, key=key_i, num_probes=num_probes, rtol=rtol, atol=atol
        )

    return jax.vmap(one)(y, observed, keys, metadata)


class Estimator(eqx.Module):
    """A model trained on named nodes, answering any conditional.

    ``model`` holds the EMA weights chosen by validation; ``standardiser`` maps user units to
    the model's; ``edge_mask`` is what the model attends through (a fixed mask, a
    `DependencyMask` from declared dependencies, or ``None``: dense); ``history`` records the
    training run; ``time_standardiser`` maps the times of `Series` nodes to the model's
    units (``None`` without such nodes).
    """

    model: AbstractModel
    method: AbstractMethod
    layout: NodeLayout
    standardiser: Standardiser
    edge_mask: EdgeMask | DependencyMask | None = None
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

    def _query(self, condition, predict=None, argument: str = "condition", free: bool = True):
        """``(given, metadata, predicted)`` of a query (`query_vectors`), with each token's
        time in the model's units (``None`` without nodes with times); with ``free``, the free
        points of nodes with times are spread over their training range (else NaN)."""
        scaler = self.time_standardiser
        ranges = None
        if scaler is not None and free:
            low, width = np.asarray(scaler.mean), np.asarray(scaler.std)
            ranges = {}
            for name in self.layout.metadata_nodes:
                first = self.layout.slices[name].start
                ranges[name] = (float(low[first]), float(low[first] + width[first]))
        given, times, predicted = query_vectors(self.layout, condition, predict, argument, ranges)
        if isinstance(self.model, Flux1):  # it would read only the first channel's times
            check_one_time_per_token(condition, self.layout, argument)
        metadata = None if scaler is None else np.asarray(scaler(jnp.asarray(times)))
        return given, metadata, predicted

    @property
    def denoiser(self) -> ModelDenoiser:
        return ModelDenoiser(self.model, self.method, self.edge_mask)

    def sample(
        self,
        key: Key,
        condition: Mapping[str, NodeData],
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
        constraints: Mapping | None = None,
        linear_constraints: tuple[ArrayLike, ArrayLike] | None = None,
        guidance_scale: float = 1.0,
        resample_steps: int = 0,
        chunk_size: int | None = None,
        devices: Sequence[jax.Device] | int | None = None,
        predict: Mapping[str, ArrayLike | Sequence] | None = None,
    ) -> dict[str, Array]:
        """Draw from ``p(unobserved | condition)``.

        **Arguments:**
        - `key`: a `jax.random` key.
        - `condition`: ``{name: (*batch, d)}`` observed values in user units; NaN entries are not
          observed, and nodes left out are not observed. A leading batch shape samples every
          conditional at once. A node trained with times takes ``gs.Series(values, times)``:
          any number of points up to its ``T``, at any times.
        - `num_samples`: draws per condition.
        - `predict`: ``{name: times}`` with ``times`` of shape ``(n,)`` or ``(*batch, n)``: also
          draw the nodes with times at these times (the posterior predictive, from the same
          reverse process). Observed plus predicted points of a node are at most its ``T``; its
          other points are drawn at times spread over the training range and dropped.
        - `sampler`: ``"sde"`` (reverse SDE, Euler-Maruyama, ``steps`` default 500), ``"ode"``
          (probability-flow ODE: adaptive Tsit5 with ``rtol``/``atol``, or fixed-step Heun when
          ``steps`` is given) or ``"edm"`` (EDM only: Karras et al.'s Heun sampler, ``steps``
          default 18, with stochastic churn ``s_churn``, ``s_min``, ``s_max``, ``s_noise``).
          Default: the method's own (``"sde"`` with 500 steps for VE/VP, ``"ode"`` with 20 Heun
          steps for flow matching, ``"edm"`` with 18 steps for EDM).
        - `constraints`: ``{name: (lower, upper)}`` in user units (numbers or arrays of the
          node's shape; ``None`` / ``-inf`` / ``inf`` for no bound): sample the conditional
          restricted to the box, on parameters or on data nodes alike ("the posterior given
          that x lies in this box"), by guided diffusion (`gensbi_eqx.guidance.interval`).
        - `linear_constraints`: ``(A, b)`` for ``A @ z <= b`` with ``A`` of shape
          ``(k, num_scalars)`` over the flat vector of all nodes in layout order (user units).
        - `guidance_scale`: sharpness of the guidance; 1 is calibrated.
        - `resample_steps`: RePaint resampling rounds per step (``sampler="sde"`` only), which
          help guidance reach the constrained law.
        - `chunk_size`: at most this many draws (over all conditions) at once, one chunk after
          the other, which bounds working memory (e.g. a million draws, or a thousand
          observations); the result is the same as without chunks, up to rounding.
        - `devices`: split the draws over ``None`` (all local devices), a count of local
          devices, or a list of jax devices.

        **Returns:** ``{name: (num_samples, *batch, d)}`` for every node without times that is
        not fully observed, in user units (observed entries of partly observed nodes are the
        given values, unchanged), and ``{name: (num_samples, *batch, n, *channels)}`` for each
        node in `predict`, at its times in the order given.
        """
        num_samples = _positive_int(num_samples, "num_samples")
        if steps is not None:
            steps = _positive_int(steps, "steps")
        if sampler is None:
            sampler = self.method.default_sampler
            steps = self.method.default_steps if steps is None else steps
        if sampler not in ("sde", "ode", "edm"):
            raise ValueError(f"`sampler` must be 'sde', 'ode' or 'edm', got {sampler!r}.")
        churn = (float(s_churn), float(s_min), float(s_max), float(s_noise))
        if sampler != "edm" and churn != (0.0, 0.0, math.inf, 1.0):
            raise ValueError("`s_churn`, `s_min`, `s_max` and `s_noise` apply to sampler='edm' only.")
        given, metadata, predicted = self._query(condition, predict)
        observed = ~np.isnan(given)
        if observed.all(axis=-1).any():
            raise ValueError(
                "`condition` observes every node, so there is nothing to sample; leave some "
                "node (or entry, as NaN) unobserved."
            )
        self._check_conditional(observed)
        batch = given.shape[:-1]
        flat_given = given.reshape(-1, self.layout.num_scalars)
        flat_observed = observed.reshape(flat_given.shape)
        y_cond = self.standardiser(jnp.asarray(np.where(flat_observed, flat_given, 0.0)))
        if isinstance(resample_steps, bool) or not isinstance(resample_steps, (int, np.integer)):
            raise ValueError(f"`resample_steps` must be a non-negative int, got {resample_steps!r}.")
        if chunk_size is not None:
            chunk_size = _positive_int(chunk_size, "chunk_size")
        denoiser = self._guided(constraints, linear_constraints, guidance_scale)
        mask = jnp.asarray(flat_observed)
        if metadata is not None:
            metadata = jnp.asarray(np.broadcast_to(metadata, given.shape).reshape(flat_given.shape))
        parallel = data_parallel(devices)
        if parallel is not None:
            denoiser, y_cond, mask, metadata = parallel.replicate((denoiser, y_cond, mask, metadata))
        z = sample_conditionals(
            key,
            denoiser,
            y_cond,
            mask,
            num_samples,
            sampler,
            steps,
            rtol,
            atol,
            churn,
            int(resample_steps),
            chunk_size,
            parallel,
            metadata,
        )
        samples = jnp.where(flat_observed, flat_given, self.standardiser.inverse(z))
        samples = samples.reshape((num_samples,) + batch + (self.layout.num_scalars,))
        wanted = [
            name
            for name in self.layout.names
            if name not in self.layout.metadata_nodes
            and not observed[..., self.layout.slices[name]].all()
        ]
        result = self.layout.unflatten(samples, wanted)
        for name, index in predicted.items():
            result[name] = samples[..., jnp.asarray(index)]
        return result

    def _guided(self, constraints, linear_constraints, scale) -> AbstractDenoiser:
        """The model's denoiser, guided towards the constraints (given in user units)."""
        denoiser = self.denoiser
        mean = np.asarray(self.standardiser.mean)
        std = np.asarray(self.standardiser.std)
        if constraints is not None:
            lower, upper = interval_bounds(self.layout, constraints)
            # Standardising is increasing per entry, so bounds map to bounds (and +-inf to +-inf).
            denoiser = interval(denoiser, (lower - mean) / std, (upper - mean) / std, scale=scale)
        if linear_constraints is not None:
            if not (isinstance(linear_constraints, (tuple, list)) and len(linear_constraints) == 2):
                raise ValueError(
                    f"`linear_constraints` must be a pair (A, b), got {linear_constraints!r}."
                )
            A = np.asarray(linear_constraints[0], dtype=np.float32)
            b = np.asarray(linear_constraints[1], dtype=np.float32)
            n = self.layout.num_scalars
            if A.ndim != 2 or A.shape[1] != n:
                raise ValueError(
                    f"`linear_constraints` A must have shape (num_constraints, {n}) over the flat "
                    f"nodes {dict(zip(self.layout.names, self.layout.shapes))}, got {A.shape}."
                )
            # A z <= b with z = mean + std * u  <=>  (A diag(std)) u <= b - A mean.
            denoiser = linear(denoiser, A * std, b - A @ mean, scale=scale)
        return denoiser

    def log_prob(
        self,
        values: Mapping[str, NodeData],
        condition: Mapping[str, NodeData] | None = None,
        *,
        trace: str = "exact",
        key: Key | None = None,
        num_probes: int = 1,
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> Array:
        """``log p(values | condition)`` in the user's units, by the probability-flow ODE.

        **Arguments:**
        - `values`: ``{name: (*batch, d)}``, the point at which to evaluate the density; a NaN
          entry (or a node left out) is not part of the point and must be in `condition`.
        - `condition`: ``{name: (*batch, d)}`` observed values (NaN: not observed). Every entry
          of every node must be in exactly one of `values` and `condition`.
        - `trace`: ``"exact"`` (Jacobian trace; cost grows with the number of scalars) or
          ``"hutchinson"`` (unbiased estimate with ``num_probes`` Rademacher probes; needs
          `key`).
        - `rtol`, `atol`: the adaptive Tsit5 solve (PID controller).

        **Returns:** ``(*batch,)``. It is the density of what ``sample(..., sampler="ode")``
        draws (the same ODE, started from the same noise), including the standardisation's
        Jacobian; see `gensbi_eqx.sampling.log_prob` for what is integrated.
        """
        condition = {} if condition is None else condition
        both_timed = [
            n for n in self.layout.metadata_nodes if n in values and n in condition
        ] if isinstance(values, Mapping) and isinstance(condition, Mapping) else []
        if both_timed:
            raise ValueError(
                f"Node(s) {both_timed} have times: give each wholly in `values` or in "
                "`condition`, not split between them."
            )
        point, point_times, _ = self._query(values, None, "values", free=False)
        given, given_times, _ = self._query(condition, None, "condition", free=False)
        point, given = np.broadcast_arrays(point, given)
        metadata = None
        if point_times is not None:
            # A node with times sits in one of the two; the other holds NaN times for it.
            metadata = np.where(np.isnan(point_times), given_times, point_times)
        observed = ~np.isnan(given)
        valued = ~np.isnan(point)
        both = observed & valued
        if both.any():
            raise ValueError(
                f"Entries {self._entries(both)} are in both `values` and `condition`; each entry "
                "belongs to one of them."
            )
        if not (observed | valued).all():
            raise ValueError(
                f"Entries {self._entries(~(observed | valued))} are in neither `values` nor "
                "`condition`; give each scalar a value or a condition (marginals are not "
                "available from a density of all latent scalars)."
            )
        self._check_conditional(observed)
        if trace not in ("exact", "hutchinson"):
            raise ValueError(f"`trace` must be 'exact' or 'hutchinson', got {trace!r}.")
        if trace == "hutchinson" and key is None:
            raise ValueError("`key` is required with trace='hutchinson'.")
        num_probes = _positive_int(num_probes, "num_probes")
        batch = point.shape[:-1]
        flat_observed = observed.reshape(-1, self.layout.num_scalars)
        y = self.standardiser(jnp.asarray(np.where(observed, given, point)))
        keys = None if key is None else jax.random.split(key, flat_observed.shape[0])
        if metadata is not None:
            metadata = jnp.asarray(
                np.broadcast_to(metadata, point.shape).reshape(flat_observed.shape)
            )
        log_density = _log_prob_batch(
            self.denoiser,
            y.reshape(flat_observed.shape),
            jnp.asarray(flat_observed),
            keys,
            metadata,
            trace,
            num_probes,
            rtol,
            atol,
        )
        # Standardised = (user - mean) / std, so each latent scalar contributes -log std.
        jacobian = jnp.sum(jnp.where(flat_observed, 0.0, jnp.log(self.standardiser.std)), axis=-1)
        return (log_density - jacobian).reshape(batch)

    def _entries(self, which: np.ndarray) -> list[str]:
        """Labels ``name[index]`` of the scalars flagged in any row of ``which``."""
        flagged = which.reshape(-1, self.layout.num_scalars).any(axis=0)
        return [
            f"{name}[{k}]"
            for name in self.layout.names
            for k, hit in enumerate(flagged[self.layout.slices[name]])
            if hit
        ]

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
