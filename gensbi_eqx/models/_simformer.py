"""The Simformer (Gloeckler et al., "All-in-one simulation-based inference", ICML 2024)."""

from collections.abc import Mapping
from typing import Any

import equinox as eqx
from jax.typing import DTypeLike
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, ArrayLike, ConditionMask, EdgeMask, Float, Key, NodeIds, Scalar, Tokens
from ..data import NodeLayout
from ._base import AbstractModel, check_positive_ints, check_shapes
from ._embeddings import GaussianFourierEmbedding
from ._precision import compute_dtype_name
from ._transformer import Transformer, ensure_diagonal


class Simformer(AbstractModel):
    """One token per scalar variable: ``concat[value embedding, node-ID embedding,
    condition embedding * condition_mask]``, a pre-LN transformer whose attention honours an
    ``edge_mask``, and a linear head giving one number per token.

    The defaults are the paper's "small" configuration (about 180k parameters on two moons).
    ``compute_dtype="bfloat16"`` runs the transformer blocks in bfloat16; parameters and the
    embeddings stay float32.
    """

    value_embedding: eqx.nn.Linear
    id_embedding: eqx.nn.Embedding
    condition_embedding: Float[Array, " dim_condition"]
    time_embedding: GaussianFourierEmbedding
    transformer: Transformer
    head: eqx.nn.Linear
    num_nodes: int = eqx.field(static=True)
    hyperparameters: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    def __init__(
        self,
        num_nodes: int,
        *,
        dim_value: int = 20,
        dim_id: int = 20,
        dim_condition: int = 10,
        num_heads: int = 4,
        head_dim: int = 10,
        depth: int = 6,
        widening: int = 3,
        dim_time: int = 128,
        compute_dtype: DTypeLike = "float32",
        key: Key,
    ):
        hyper = dict(
            dim_value=dim_value,
            dim_id=dim_id,
            dim_condition=dim_condition,
            num_heads=num_heads,
            head_dim=head_dim,
            depth=depth,
            widening=widening,
            dim_time=dim_time,
        )
        check_positive_ints(num_nodes=num_nodes, **hyper)
        if dim_time % 2:
            raise ValueError(f"`dim_time` must be even (sin and cos pairs), got {dim_time}.")
        hyper["compute_dtype"] = compute_dtype_name(compute_dtype)
        kv, ki, kc, kt, kf, kh = jr.split(key, 6)
        dim = dim_value + dim_id + dim_condition
        self.value_embedding = eqx.nn.Linear("scalar", dim_value, key=kv)
        self.id_embedding = eqx.nn.Embedding(num_nodes, dim_id, key=ki)
        self.condition_embedding = 0.5 * jr.normal(kc, (dim_condition,))
        self.time_embedding = GaussianFourierEmbedding(dim_time, key=kt)
        self.transformer = Transformer(
            dim, dim_time, depth, num_heads, head_dim, widening,
            compute_dtype=hyper["compute_dtype"], key=kf,
        )
        self.head = eqx.nn.Linear(dim, "scalar", key=kh)
        self.num_nodes = num_nodes
        self.hyperparameters = tuple(hyper.items())

    @classmethod
    def for_data(cls, data: Mapping[str, ArrayLike], *, key: Key, **hyperparameters) -> "Simformer":
        """A Simformer with one token per scalar of the named data ``{name: (N, d) or (N,)}``."""
        return cls(NodeLayout.from_data(data).num_nodes, key=key, **hyperparameters)

    @property
    def config(self) -> dict[str, Any]:
        return {"num_nodes": self.num_nodes, **dict(self.hyperparameters)}

    def __call__(
        self,
        t: Scalar,
        x: Tokens,
        condition_mask: ConditionMask,
        *,
        node_ids: NodeIds | None = None,
        edge_mask: EdgeMask | None = None,
    ) -> Tokens:
        """See `AbstractModel`; ``node_ids (num_nodes,)`` selects each token's learned ID
        (default ``arange``; out-of-range ids are clamped by the lookup, not caught)."""
        n = self.num_nodes
        check_shapes(
            x=(x, (n,)), condition_mask=(condition_mask, (n,)), node_ids=(node_ids, (n,)),
            edge_mask=(edge_mask, (n, n)),
        )
        if node_ids is None:
            node_ids = jnp.arange(n)
        if edge_mask is not None:
            edge_mask = ensure_diagonal(edge_mask)
        values = jax.vmap(self.value_embedding)(x)
        ids = jax.vmap(self.id_embedding)(node_ids)
        conditions = condition_mask[:, None] * self.condition_embedding
        tokens = jnp.concatenate([values, ids, conditions], axis=-1)
        h = self.transformer(tokens, self.time_embedding(t), edge_mask)  # float32 out
        return jax.vmap(self.head)(h)
