"""Attention masks from declared dependencies (Simformer, Gloeckler et al. 2024, Sec. 3, the
attention masks that encode a known dependency structure).

Every function here acts on ONE example and is jit- and vmap-able; callers ``vmap`` over a batch
of condition masks. Conventions: ``base[i, j]`` is True when node i depends on node j (j is a
parent of i in the simulator's DAG; the diagonal is treated as True), ``condition_mask[i]`` is True
when node i is observed, and the returned ``edge_mask[i, j]`` is True when token i may attend to
token j. Every returned mask has a True diagonal.

Policies (each an `AbstractAttention`, passed to ``gs.fit(..., attention=...)``):

- `DenseAttention`: no structure; every token attends to every token (the model skips masking).
- `FixedAttention`: one given ``edge_mask`` for every condition.
- `UndirectedAttention`: the moral graph of the DAG. Each node attends to its parents, its children and
  its co-parents (the other parents of its children). It does not change with the condition mask,
  so it can be computed once.
- `DirectedAttention`: the paper's minimal faithful mask, recomputed for each condition mask (Webb et
  al. 2018, "Faithful inversion of generative models for effective amortized inference", used by
  the Simformer for its directed masks). Observed nodes keep their rows of ``base`` (they attend
  to what they depend on in the generative direction). Latent nodes are eliminated one at a time
  from the moral graph; each attends to its neighbours that are not yet eliminated (latent or
  observed) and those neighbours are joined pairwise (fill-in). The result is faithful to the
  inverse factorisation ``p(latent | observed) = prod_v p(v | attended(v))``. With nothing
  observed the mask is ``base`` itself (the generative factorisation of the joint).
"""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._config import subclasses
from .._custom_types import Array, ArrayLike, Bool, ConditionMask, EdgeMask
from ..data import Dependencies, NodeLayout

BaseMask = Bool[ArrayLike, "num_scalars num_scalars"]
ConditionLike = Bool[ArrayLike, " num_scalars"]


def _with_diagonal(base: BaseMask) -> EdgeMask:
    base = jnp.asarray(base, dtype=bool)
    if base.ndim != 2 or base.shape[0] != base.shape[1]:
        raise ValueError(f"`base` must be a square (num_scalars, num_scalars) mask, got {base.shape}.")
    return base | jnp.eye(base.shape[0], dtype=bool)


def dense_mask(base: BaseMask) -> EdgeMask:
    """Every token attends to every token: the all-True ``(num_scalars, num_scalars)`` mask."""
    base = jnp.asarray(base, dtype=bool)
    return jnp.ones(base.shape, dtype=bool)


def undirected_mask(base: BaseMask) -> EdgeMask:
    """The moral graph of the DAG ``base`` (``[i, j]``: i depends on j).

    Node i attends to itself, its parents, its children and its co-parents. The result is
    symmetric and contains ``base`` and ``base.T``.
    """
    base = _with_diagonal(base)
    counts = base.astype(jnp.int32)
    # [i, j] > 0 when some node k depends on both i and j (k = i or k = j covers base and base.T).
    shared_child = (counts.T @ counts) > 0
    return base | base.T | shared_child


def directed_mask(base: BaseMask, condition_mask: ConditionLike) -> EdgeMask:
    """The minimal faithful mask for one condition mask (the Simformer's directed mask).

    Args:
        base: ``(num_scalars, num_scalars)`` bool, ``[i, j]`` True when i depends on j. Must be a
            DAG apart from its diagonal (``Dependencies.adjacency`` guarantees this).
        condition_mask: ``(num_scalars,)`` bool, True where a node is observed. May be traced.

    Returns:
        ``(num_scalars, num_scalars)`` bool. Observed rows equal ``base``. Latent rows come from
        eliminating the latent nodes of the moral graph in this order (the one of the Simformer
        reference implementation): the candidates are first the latent nodes without latent
        children; once a node is eliminated, its latent parents become candidates too. Each step
        eliminates the candidate with the fewest entries in its row of the filled-in moral graph
        (eliminated nodes and itself included); ties go to the candidate with the most eliminated
        parents, then to the highest index. The eliminated node attends to itself and to its
        neighbours not yet eliminated, which are then joined pairwise. Nothing observed: ``base``.
    """
    base = _with_diagonal(base)
    observed = jnp.asarray(condition_mask, dtype=bool)
    num_scalars = base.shape[0]
    if observed.shape != (num_scalars,):
        raise ValueError(
            f"`condition_mask` must have shape ({num_scalars},) to match `base`, got "
            f"{tuple(observed.shape)}."
        )
    eye = jnp.eye(num_scalars, dtype=bool)
    parents = base & ~eye  # [i, j]: j is a parent of i
    latent = ~observed
    index = jnp.arange(num_scalars)
    has_latent_child = jnp.any(parents & latent[:, None], axis=0)

    def eliminate(_, state):
        filled, inverse, eliminated, candidates, eliminated_parents = state
        # There are at most num_scalars latent nodes, so the fixed-length loop idles once none is
        # left. Masking the updates with `active` makes an idle step a no-op without selecting
        # between whole matrices, which would dominate the cost under vmap.
        active = jnp.any(candidates)
        degree = jnp.where(candidates, jnp.sum(filled, axis=1), num_scalars + 1)
        fewest = candidates & (degree == jnp.min(degree))
        score = jnp.where(fewest, eliminated_parents, -1)
        v = jnp.max(jnp.where(fewest & (score == jnp.max(score)), index, 0))
        neighbours = filled[v] & ~eliminated & active
        eliminated = eliminated.at[v].set(eliminated[v] | active)
        return (
            filled | (neighbours[:, None] & neighbours[None, :]),
            inverse.at[v].set(jnp.where(active, neighbours, inverse[v])),
            eliminated,
            (candidates | (parents[v] & active)) & latent & ~eliminated,
            eliminated_parents + (parents[:, v] & active).astype(jnp.int32),
        )

    state = (
        undirected_mask(base),
        jnp.zeros_like(base),
        jnp.zeros(num_scalars, dtype=bool),
        latent & ~has_latent_child,
        jnp.zeros(num_scalars, dtype=jnp.int32),
    )
    _, inverse, _, _, _ = jax.lax.fori_loop(0, num_scalars, eliminate, state)
    inverse = jnp.where(jnp.any(observed), inverse | eye, base)
    return jnp.where(observed[:, None], base, inverse)


class AbstractAttention(eqx.Module):
    """What a joint model attends through. Called with ONE example's condition mask, it gives
    that example's ``(num_scalars, num_scalars)`` attention mask, or ``None`` (attend densely).

    A policy built from named dependencies is first bound to the data's layout (`bind`, which
    `gensbi_eqx.fit` does); methods evaluate it per example wherever they call a model
    (``network_output``), so training and sampling recompute directed masks inside ``jit``.
    """

    @abc.abstractmethod
    def __call__(self, condition_mask: ConditionMask) -> EdgeMask | None:
        ...

    def bind(self, layout: NodeLayout) -> "AbstractAttention":
        """This policy over the scalars of ``layout`` (checked against it)."""
        return self

    @property
    def config(self) -> dict[str, Any]:
        """A JSON-able description of the unbound policy; `from_config` rebuilds it."""
        return {"class": type(self).__name__}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "AbstractAttention":
        """The unbound policy that ``config`` describes (bind it to a layout to use it)."""
        kinds = subclasses(AbstractAttention)
        kind = kinds.get(config.get("class"))
        if kind is None:
            raise ValueError(f"Unknown attention policy {config.get('class')!r}.")
        return kind._from_config(config)

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> "AbstractAttention":
        return cls()


class DenseAttention(AbstractAttention):
    """Every token attends to every token: no mask at all."""

    def __call__(self, condition_mask: ConditionMask) -> None:
        return None


class FixedAttention(AbstractAttention):
    """One ``edge_mask`` (``[i, j]``: token i attends to token j) for every condition mask."""

    edge_mask: Bool[Array, "num_scalars num_scalars"]

    def __init__(self, edge_mask: Bool[ArrayLike, "num_scalars num_scalars"]):
        edge_mask = jnp.asarray(edge_mask)
        if edge_mask.ndim != 2 or edge_mask.shape[0] != edge_mask.shape[1]:
            raise ValueError(f"`edge_mask` must be a square bool array, got shape {edge_mask.shape}.")
        if edge_mask.dtype != jnp.bool_:
            raise ValueError(f"`edge_mask` must be a bool array, got {edge_mask.dtype}.")
        self.edge_mask = edge_mask

    def bind(self, layout: NodeLayout) -> "FixedAttention":
        n = layout.num_scalars
        if self.edge_mask.shape != (n, n):
            raise ValueError(
                f"`edge_mask` must have shape ({n}, {n}) for this data, got {self.edge_mask.shape}."
            )
        return self

    def __call__(self, condition_mask: ConditionMask) -> EdgeMask:
        return self.edge_mask

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "edge_mask": np.asarray(self.edge_mask).astype(int).tolist()}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> "FixedAttention":
        return cls(np.asarray(config["edge_mask"], dtype=bool))


class _DependencyAttention(AbstractAttention):
    dependencies: Dependencies = eqx.field(static=True)
    base: Bool[Array, "num_scalars num_scalars"] | None = None

    def __check_init__(self):
        if not isinstance(self.dependencies, Dependencies):
            raise TypeError(
                "`dependencies` must be a gs.Dependencies, e.g. gs.Dependencies({'x': ['theta']}), "
                f"got {type(self.dependencies).__name__}."
            )

    def bind(self, layout: NodeLayout):
        base = jnp.asarray(np.asarray(self.dependencies.adjacency(layout)))
        return type(self)(self.dependencies, base)

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "dependencies": self.dependencies.config}

    @classmethod
    def _from_config(cls, config: dict[str, Any]):
        return cls(Dependencies.from_config(config["dependencies"]))

    def _base(self) -> Bool[Array, "num_scalars num_scalars"]:
        if self.base is None:
            raise ValueError(
                f"This {type(self).__name__} is not bound to a layout yet; gs.fit binds it."
            )
        return self.base


class UndirectedAttention(_DependencyAttention):
    """The moral graph of declared ``dependencies`` (`undirected_mask`): the same mask for every
    condition mask. The Simformer paper's default for known structure."""

    def __call__(self, condition_mask: ConditionMask) -> EdgeMask:
        return undirected_mask(self._base())


class DirectedAttention(_DependencyAttention):
    """The minimal faithful mask of declared ``dependencies`` for each example's condition mask
    (`directed_mask`), recomputed inside ``jit``."""

    def __call__(self, condition_mask: ConditionMask) -> EdgeMask:
        return directed_mask(self._base(), condition_mask)

