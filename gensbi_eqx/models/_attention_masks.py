"""Attention masks from declared dependencies (Simformer, Gloeckler et al. 2024, Sec. 3, the
attention masks that encode a known dependency structure).

Every function here acts on ONE example and is jit- and vmap-able; callers ``vmap`` over a batch
of condition masks. Conventions: ``base[i, j]`` is True when node i depends on node j (j is a
parent of i in the simulator's DAG; the diagonal is treated as True), ``condition_mask[i]`` is True
when node i is observed, and the returned ``edge_mask[i, j]`` is True when token i may attend to
token j. Every returned mask has a True diagonal.

Policies (``MASK_POLICIES``):

- ``"dense"``: no structure; every token attends to every token. ``attention_mask`` returns the
  all-True mask so that the result is always an array; a model may skip masking altogether when
  the policy is ``"dense"``.
- ``"undirected"``: the moral graph of the DAG. Each node attends to its parents, its children and
  its co-parents (the other parents of its children). It does not change with the condition mask,
  so it can be computed once.
- ``"directed"``: the paper's minimal faithful mask, recomputed for each condition mask (Webb et
  al. 2018, "Faithful inversion of generative models for effective amortized inference", used by
  the Simformer for its directed masks). Observed nodes keep their rows of ``base`` (they attend
  to what they depend on in the generative direction). Latent nodes are eliminated one at a time
  from the moral graph; each attends to its neighbours that are not yet eliminated (latent or
  observed) and those neighbours are joined pairwise (fill-in). The result is faithful to the
  inverse factorisation ``p(latent | observed) = prod_v p(v | attended(v))``. With nothing
  observed the mask is ``base`` itself (the generative factorisation of the joint).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Bool, ConditionMask, EdgeMask
from ..data import Dependencies, NodeLayout

MASK_POLICIES = ("dense", "undirected", "directed")

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


def attention_mask(policy: str, base: BaseMask, condition_mask: ConditionLike) -> EdgeMask:
    """The ``(num_scalars, num_scalars)`` attention mask of a policy in ``MASK_POLICIES`` for one
    example: ``"dense"`` (all True), ``"undirected"`` (moral graph, ignores ``condition_mask``)
    or ``"directed"`` (minimal faithful mask for this ``condition_mask``). ``policy`` is a Python
    string (static under jit)."""
    if policy == "dense":
        return dense_mask(base)
    if policy == "undirected":
        return undirected_mask(base)
    if policy == "directed":
        return directed_mask(base, condition_mask)
    raise ValueError(f"`policy` must be one of {MASK_POLICIES}, got {policy!r}.")


class DependencyMask(eqx.Module):
    """Declared dependencies under a policy: called with ONE example's condition mask, it gives
    that example's attention mask (``None`` for ``"dense"``: the model then attends densely).

    Models take it in place of a fixed ``edge_mask`` wherever a method reads them
    (``gensbi_eqx.methods.network_output``), so training and sampling recompute the directed mask
    for every example's condition mask inside ``jit``.
    """

    base: Bool[Array, "num_scalars num_scalars"]
    policy: str = eqx.field(static=True)
    dependencies: Dependencies | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.policy not in MASK_POLICIES:
            raise ValueError(f"`mask_policy` must be one of {MASK_POLICIES}, got {self.policy!r}.")

    @classmethod
    def from_dependencies(
        cls, dependencies: Dependencies, layout: NodeLayout, policy: str
    ) -> "DependencyMask":
        """The base mask of ``dependencies`` over ``layout``'s scalars, under ``policy``."""
        if not isinstance(dependencies, Dependencies):
            raise TypeError(
                "`dependencies` must be a gs.Dependencies, e.g. gs.Dependencies({'x': ['theta']}), "
                f"got {type(dependencies).__name__}."
            )
        base = jnp.asarray(np.asarray(dependencies.adjacency(layout)))
        return cls(base, policy, dependencies)

    def __call__(self, condition_mask: ConditionMask) -> EdgeMask | None:
        if self.policy == "dense":
            return None
        return attention_mask(self.policy, self.base, condition_mask)


def edge_mask_for(
    edge_mask: EdgeMask | DependencyMask | None, condition_mask: ConditionMask
) -> EdgeMask | None:
    """The attention mask a model gets for one example: a fixed mask as it is, a
    `DependencyMask` evaluated at ``condition_mask``."""
    if isinstance(edge_mask, DependencyMask):
        return edge_mask(condition_mask)
    return edge_mask


__all__ = [
    "DependencyMask",
    "MASK_POLICIES",
    "attention_mask",
    "dense_mask",
    "directed_mask",
    "edge_mask_for",
    "undirected_mask",
]
