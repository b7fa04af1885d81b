"""Draws from any conditional of an estimator for a set of joint simulations, chunk by chunk."""

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import jax.random as jr
import numpy as np

from .._custom_types import ArrayLike, Key
from ._checks import as_float_array, check_finite, check_positive_int, names_tuple


@runtime_checkable
class SupportsSample(Protocol):
    """Anything with ``sample(key, condition, num_samples) -> {name: (num_samples, *batch,
    *shape)}``, like :class:`gensbi_eqx.Estimator`."""

    def sample(self, key: Key, condition: Mapping[str, ArrayLike], num_samples: int, /): ...


class ConditionalSamples(NamedTuple):
    """Draws of the inferred nodes for every simulation, flattened and concatenated.

    ``samples (num_samples, N, d)``; ``truths (N, d)``, the simulated values they should be
    calibrated against; ``labels`` (``d`` names such as ``"theta[0]"``).
    """

    samples: np.ndarray
    truths: np.ndarray
    labels: tuple[str, ...]


def node_labels(name: str, shape: tuple[int, ...]) -> list[str]:
    """``theta`` for a scalar node (given as ``(N,)``), ``theta[i]`` for a vector,
    ``theta[i, j]`` beyond (as `gensbi_eqx.plotting.pairplot` labels columns)."""
    if shape == ():
        return [name]
    return [f"{name}[{', '.join(map(str, index))}]" for index in np.ndindex(*shape)]


def sampled_node(draws: Mapping[str, ArrayLike], name: str) -> np.ndarray:
    """Node ``name`` of what ``estimator.sample`` returned, as a NumPy array; a ValueError if
    the estimator left out that node of ``infer``."""
    if name not in draws:
        raise ValueError(
            f"`estimator.sample` returned nodes {list(draws)}, without {name!r} of `infer`."
        )
    return np.asarray(draws[name])


def _check_truths(
    truths: Mapping[str, ArrayLike], infer: tuple[str, ...]
) -> dict[str, np.ndarray]:
    if not isinstance(truths, Mapping):
        raise TypeError(
            f"`truths` must be a dict of joint draws like {{'theta': theta, 'x': x}}, got "
            f"{type(truths).__name__}."
        )
    missing = [name for name in infer if name not in truths]
    if missing:
        raise ValueError(
            f"`infer` names {missing}, which `truths` does not hold; it holds {list(truths)}."
        )
    if all(name in infer for name in truths):
        raise ValueError(
            f"`infer` names every node of `truths` ({list(truths)}); leave at least one node to "
            f"condition on."
        )
    arrays = {}
    for name, value in truths.items():
        array = as_float_array(value, f"truths[{name!r}]")
        if array.ndim == 0 or array.shape[0] == 0:
            raise ValueError(
                f"`truths[{name!r}]` must have shape (N, *shape) with N >= 1, got {array.shape}."
            )
        check_finite(array, f"truths[{name!r}]")
        arrays[name] = array
    sizes = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"Every node of `truths` must have the same N (first axis), got {sizes}.")
    return arrays


def conditional_samples(
    key: Key, estimator: SupportsSample, truths: Mapping[str, ArrayLike], *,
    infer: str | Sequence[str] = ("theta",), num_samples: int = 1000, batch_size: int = 100,
) -> ConditionalSamples:
    """Sample ``p(infer | rest)`` for every joint draw in ``truths``.

    The shared first step of :func:`sbc`, :func:`tarp` and :func:`hpd_coverage`; call it once
    and pass its arrays to :func:`sbc_from_samples`, :func:`tarp_from_samples` and
    :func:`hpd_coverage_from_samples` to run several diagnostics on one set of draws.

    **Arguments:**
    - `key`: a `jax.random` key.
    - `estimator`: anything with ``sample(key, condition, num_samples)`` returning
      ``{name: (num_samples, *batch, *shape)}``, like :class:`gensbi_eqx.Estimator`.
    - `truths`: joint draws ``{name: (N, *shape)}`` (prior then simulator). Every node not in
      ``infer`` is conditioned on, so ``infer=("theta",)`` checks the posterior and
      ``infer=("x",)`` the likelihood.
    - `infer`: the node(s) to sample and test.
    - `num_samples`: draws per simulation.
    - `batch_size`: simulations per call to ``estimator.sample``, to bound memory. The last
      chunk is padded to full size (the padding is thrown away) so that a compiled sampler sees
      one shape.

    **Returns:** :class:`ConditionalSamples` with ``samples (num_samples, N, d)``,
    ``truths (N, d)`` and ``labels`` (``d``), the inferred nodes flattened in ``infer`` order.
    """
    infer = names_tuple(infer, "infer")
    arrays = _check_truths(truths, infer)
    num_samples = check_positive_int(num_samples, "num_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    given = [name for name in arrays if name not in infer]
    num = next(iter(arrays.values())).shape[0]
    chunk = min(batch_size, num)
    num_chunks = -(-num // chunk)
    pieces = []
    for i, chunk_key in enumerate(jr.split(key, num_chunks)):
        rows = np.arange(i * chunk, (i + 1) * chunk)
        valid = rows < num
        rows = np.where(valid, rows, i * chunk)
        condition = {name: arrays[name][rows] for name in given}
        draws = estimator.sample(chunk_key, condition, num_samples)
        columns = []
        for name in infer:
            value = sampled_node(draws, name)
            node_shape = arrays[name].shape[1:]
            size = math.prod(node_shape)
            if value.shape[:2] != (num_samples, chunk) or math.prod(value.shape[2:]) != size:
                raise ValueError(
                    f"`estimator.sample` returned {name!r} of shape {value.shape}; expected "
                    f"(num_samples, batch, *shape) = {(num_samples, chunk) + node_shape}."
                )
            check_finite(value, f"estimator.sample(...)[{name!r}]")
            columns.append(value.reshape(num_samples, chunk, size)[:, valid])
        pieces.append(np.concatenate(columns, axis=-1))
    samples = np.concatenate(pieces, axis=1)
    targets = np.concatenate([arrays[name].reshape(num, -1) for name in infer], axis=-1)
    labels = tuple(label for name in infer for label in node_labels(name, arrays[name].shape[1:]))
    return ConditionalSamples(samples, targets, labels)
