"""A pre-LayerNorm transformer over the tokens of one example, run with ``lax.scan`` over layers."""

import equinox as eqx
from jax.typing import DTypeLike
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, EdgeMask, Float, Key
from ._precision import compute_dtype_name
from ._stack import make_stack, run_stack


class MaskedSelfAttention(eqx.Module):
    """Multi-head self-attention in which token ``i`` attends to token ``j`` iff
    ``edge_mask[i, j]``, through ``jax.nn.dot_product_attention`` (XLA's implementation in
    float32, which materialises the ``(heads, tokens, tokens)`` scores: memory quadratic in
    the number of tokens, see benchmarks/scale_study.py)."""

    query: eqx.nn.Linear
    key_proj: eqx.nn.Linear
    value: eqx.nn.Linear
    output: eqx.nn.Linear
    num_heads: int = eqx.field(static=True)
    head_dim: int = eqx.field(static=True)

    def __init__(self, dim: int, num_heads: int, head_dim: int, *, key: Key):
        kq, kk, kv, ko = jr.split(key, 4)
        inner = num_heads * head_dim
        self.query = eqx.nn.Linear(dim, inner, key=kq)
        self.key_proj = eqx.nn.Linear(dim, inner, key=kk)
        self.value = eqx.nn.Linear(dim, inner, key=kv)
        self.output = eqx.nn.Linear(inner, dim, key=ko)
        self.num_heads = num_heads
        self.head_dim = head_dim

    def __call__(
        self, h: Float[Array, "num_scalars dim"], edge_mask: EdgeMask | None
    ) -> Float[Array, "num_scalars dim"]:
        n = h.shape[0]

        def heads(layer):
            return jax.vmap(layer)(h).reshape(n, self.num_heads, self.head_dim)

        mask = None if edge_mask is None else edge_mask[None]  # same mask for every head
        out = jax.nn.dot_product_attention(
            heads(self.query), heads(self.key_proj), heads(self.value), mask=mask
        )
        return jax.vmap(self.output)(out.reshape(n, self.num_heads * self.head_dim))


class TransformerBlock(eqx.Module):
    """Pre-LN block: ``h + attn(LN(h))``, then ``h + MLP(LN(h) + W c)`` where ``c`` is the
    (time) context, injected into every block so depth does not wash it out."""

    attention_norm: eqx.nn.LayerNorm
    attention: MaskedSelfAttention
    mlp_norm: eqx.nn.LayerNorm
    context: eqx.nn.Linear
    mlp_in: eqx.nn.Linear
    mlp_out: eqx.nn.Linear

    def __init__(
        self,
        dim: int,
        context_dim: int,
        num_heads: int,
        head_dim: int,
        widening: int,
        *,
        key: Key,
    ):
        ka, kc, ki, ko = jr.split(key, 4)
        self.attention_norm = eqx.nn.LayerNorm(dim)
        self.attention = MaskedSelfAttention(dim, num_heads, head_dim, key=ka)
        self.mlp_norm = eqx.nn.LayerNorm(dim)
        self.context = eqx.nn.Linear(context_dim, dim, key=kc)
        self.mlp_in = eqx.nn.Linear(dim, widening * dim, key=ki)
        self.mlp_out = eqx.nn.Linear(widening * dim, dim, key=ko)

    def __call__(
        self,
        h: Float[Array, "num_scalars dim"],
        context: Float[Array, " context_dim"],
        edge_mask: EdgeMask | None,
    ) -> Float[Array, "num_scalars dim"]:
        h = h + self.attention(jax.vmap(self.attention_norm)(h), edge_mask)
        z = jax.vmap(self.mlp_norm)(h) + jax.nn.gelu(self.context(context))
        z = jax.vmap(self.mlp_out)(jax.nn.gelu(jax.vmap(self.mlp_in)(z)))
        return h + z


class Transformer(eqx.Module):
    """``depth`` identical blocks, stored stacked and run with ``lax.scan`` (see ``_stack``),
    then a final LayerNorm."""

    blocks: TransformerBlock  # every array leaf has a leading ``depth`` axis
    final_norm: eqx.nn.LayerNorm
    depth: int = eqx.field(static=True)
    compute_dtype: str = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        context_dim: int,
        depth: int,
        num_heads: int,
        head_dim: int,
        widening: int,
        *,
        compute_dtype: DTypeLike = "float32",
        key: Key,
    ):
        if depth < 1:
            raise ValueError(f"`depth` must be >= 1, got {depth}.")
        self.blocks = make_stack(
            lambda k: TransformerBlock(dim, context_dim, num_heads, head_dim, widening, key=k),
            depth,
            key=key,
        )
        self.final_norm = eqx.nn.LayerNorm(dim)
        self.depth = depth
        self.compute_dtype = compute_dtype_name(compute_dtype)

    def __call__(
        self,
        h: Float[Array, "num_scalars dim"],
        context: Float[Array, " context_dim"],
        edge_mask: EdgeMask | None = None,
    ) -> Float[Array, "num_scalars dim"]:
        dtype = self.compute_dtype
        context = context.astype(dtype)
        h = run_stack(
            self.blocks, h.astype(dtype), lambda block, h: block(h, context, edge_mask), dtype
        )
        return jax.vmap(self.final_norm)(h.astype(jnp.float32))


def ensure_diagonal(edge_mask: EdgeMask) -> EdgeMask:
    """Every token may attend to itself; it also keeps softmax rows from being empty."""
    return edge_mask | jnp.eye(edge_mask.shape[0], dtype=bool)
