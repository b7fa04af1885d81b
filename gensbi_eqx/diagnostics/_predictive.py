"""Posterior predictive checks: does data simulated from the posterior look like the data?"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Key
from ._checks import as_float_array, check_positive_int, names_tuple
from ._draws import SupportsSample, node_labels, sampled_node


Simulator = Callable[[Key, Float[Array, "num_samples dim_theta"]], ArrayLike]


@dataclasses.dataclass(frozen=True)
class PredictiveResult:
    """Posterior predictive samples and where the observation falls among them.

    ``samples (S, d_x)``: simulations from posterior draws (rows with non-finite values
    dropped); ``parameters (S, d_theta)``: the posterior draws behind them; ``observed (d_x,)``;
    ``quantile (d_x,)``: share of predictive samples below the observation (near 0 or 1: the
    model does not reproduce that entry); ``z_score (d_x,)``: distance of the observation from
    the predictive mean in predictive standard deviations; ``labels`` (``d_x``);
    ``num_dropped``: simulations dropped for non-finite values. NaN entries of the observation
    (not observed) give NaN summaries.
    """

    samples: Float[np.ndarray, "num_samples dim_x"]
    parameters: Float[np.ndarray, "num_samples dim_theta"]
    observed: Float[np.ndarray, " dim_x"]
    quantile: Float[np.ndarray, " dim_x"]
    z_score: Float[np.ndarray, " dim_x"]
    labels: tuple[str, ...]
    num_dropped: int

    def summary(self) -> str:
        width = max(len(label) for label in self.labels)
        lines = [
            f"Posterior predictive: {self.samples.shape[0]} simulations "
            f"({self.num_dropped} dropped as non-finite).",
            f"{'':{width}}  observed  quantile  z-score",
        ]
        for row in zip(self.labels, self.observed, self.quantile, self.z_score):
            lines.append("{:{w}}  {:8.3g}  {:8.3f}  {:+7.2f}".format(*row, w=width))
        return "\n".join(lines)


def posterior_predictive(
    key: Key,
    estimator: SupportsSample,
    simulator: Simulator,
    condition: Mapping[str, ArrayLike],
    *,
    infer: str | Sequence[str] = ("theta",),
    num_samples: int = 1000,
) -> PredictiveResult:
    """Sample the posterior for one observation, simulate from it, compare with the observation.

    **Arguments:**
    - `key`: a `jax.random` key.
    - `estimator`: anything with ``sample(key, condition, num_samples)`` returning
      ``{name: (num_samples, *shape)}``, like :class:`gensbi_eqx.Estimator`.
    - `simulator`: ``simulator(key, theta)`` mapping ``(num_samples, d_theta)`` to
      ``(num_samples, d_x)``, e.g. ``task.simulator``.
    - `condition`: ONE observation ``{name: (*shape)}``, e.g. ``{"x": x_o}``; its nodes,
      flattened and concatenated in order, are what the simulator must reproduce.
    - `infer`: the posterior node(s), flattened and concatenated in order into ``theta``.
    - `num_samples`: posterior draws, one simulation each.

    **Returns:** :class:`PredictiveResult`.
    """
    infer = names_tuple(infer, "infer")
    num_samples = check_positive_int(num_samples, "num_samples")
    if not isinstance(condition, Mapping) or not condition:
        raise ValueError(
            f"`condition` must be a non-empty dict like {{'x': x_o}}, got {condition!r}."
        )
    overlap = [name for name in infer if name in condition]
    if overlap:
        raise ValueError(f"`infer` names {overlap}, which `condition` gives; infer other nodes.")
    observed = {
        name: as_float_array(value, f"condition[{name!r}]") for name, value in condition.items()
    }
    key_posterior, key_simulator = jr.split(key)
    draws = estimator.sample(key_posterior, condition, num_samples)
    columns = []
    for name in infer:
        value = sampled_node(draws, name)
        if value.ndim == 0 or value.shape[0] != num_samples:
            raise ValueError(
                f"`estimator.sample` returned {name!r} of shape {value.shape}; expected "
                f"(num_samples, *shape) with num_samples = {num_samples}."
            )
        columns.append(value.reshape(num_samples, -1))
    theta = np.concatenate(columns, axis=1)
    x_o = np.concatenate([v.reshape(-1) for v in observed.values()])
    simulated = simulator(key_simulator, jnp.asarray(theta))
    simulated = as_float_array(simulated, "simulator(key, theta)")
    if simulated.shape != (num_samples, x_o.shape[0]):
        raise ValueError(
            f"`simulator` must map theta of shape {theta.shape} to (num_samples, d_x) = "
            f"{(num_samples, x_o.shape[0])} (d_x from `condition`), got {simulated.shape}."
        )
    finite = np.all(np.isfinite(simulated), axis=1)
    if finite.sum() < 2:
        raise ValueError(
            f"`simulator` returned {int(finite.sum())} finite simulations of {num_samples}; at "
            f"least 2 are needed."
        )
    kept, parameters = simulated[finite], theta[finite]
    with np.errstate(invalid="ignore", divide="ignore"):
        quantile = np.where(np.isnan(x_o), np.nan, np.mean(kept < x_o, axis=0))
        z_score = (x_o - kept.mean(axis=0)) / kept.std(axis=0, ddof=1)
    labels = tuple(label for name, v in observed.items() for label in node_labels(name, v.shape))
    return PredictiveResult(
        kept, parameters, x_o, quantile, z_score, labels, int(num_samples - finite.sum())
    )
