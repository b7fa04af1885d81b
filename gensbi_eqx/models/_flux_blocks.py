"""The building blocks of the Flux transformers (Esser et al. 2024, "Scaling rectified flow
transformers"; Black Forest Labs' FLUX.1): adaptive-LayerNorm modulation from the time
embedding, QK RMS-norm, rotary positions, double-stream (MMDiT) and single-stream blocks.

Every modulation starts at zero (adaLN-Zero, Peebles & Xie 2023): a fresh block is the
identity and the final layer outputs zero, which keeps deep stacks stable early in training.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, EdgeMask, Float, Key, Scalar
from ._embeddings import GaussianFourierEmbedding
from ._ids import apply_rope

Tokens2D = Float[Array, "num_tokens hidden"]
Angles = Float[Array, "num_tokens half_head_dim"]


def _zero_linear(in_features: int, out_features: int, *, key: Key) -> eqx.nn.Linear:
    linear = eqx.nn.Linear(in_features, out_features, key=key)
    return eqx.tree_at(
        lambda l: (l.weight, l.bias), linear, (jnp.zeros_like(linear.weight), jnp.zeros_like(linear.bias))
    )


def _layer_norm(hidden: int) -> eqx.nn.LayerNorm:
    """LayerNorm without its own scale and shift: the modulation supplies them."""
    return eqx.nn.LayerNorm(hidden, eps=1e-6, use_weight=False, use_bias=False)


def _modulate(x: Tokens2D, norm: eqx.nn.LayerNorm, shift, scale) -> Tokens2D:
    return jax.vmap(norm)(x) * (1 + scale) + shift


class TimeEmbedding(eqx.Module):
    """The conditioning vector of every block: Fourier features of the noise level, then an MLP."""

    fourier: GaussianFourierEmbedding
    linear_in: eqx.nn.Linear
    linear_out: eqx.nn.Linear

    def __init__(self, hidden: int, dim_fourier: int = 256, *, key: Key):
        kf, ki, ko = jr.split(key, 3)
        self.fourier = GaussianFourierEmbedding(dim_fourier, key=kf)
        self.linear_in = eqx.nn.Linear(dim_fourier, hidden, key=ki)
        self.linear_out = eqx.nn.Linear(hidden, hidden, key=ko)

    def __call__(self, t: Scalar) -> Float[Array, " hidden"]:
        return self.linear_out(jax.nn.silu(self.linear_in(self.fourier(t))))


class Modulation(eqx.Module):
    """``count`` vectors (shifts, scales, gates) of width ``hidden`` from the time embedding."""

    linear: eqx.nn.Linear
    count: int = eqx.field(static=True)

    def __init__(self, hidden: int, count: int, *, key: Key):
        self.linear = _zero_linear(hidden, count * hidden, key=key)
        self.count = count

    def __call__(self, vec: Float[Array, " hidden"]) -> list[Float[Array, " hidden"]]:
        return jnp.split(self.linear(jax.nn.silu(vec)), self.count)


class QKNorm(eqx.Module):
    """RMS-normalise queries and keys per head (learned scales): keeps attention logits bounded."""

    query: eqx.nn.RMSNorm
    key: eqx.nn.RMSNorm

    def __init__(self, head_dim: int):
        self.query = eqx.nn.RMSNorm(head_dim, eps=1e-6)
        self.key = eqx.nn.RMSNorm(head_dim, eps=1e-6)

    def __call__(self, q, k):
        per_head = lambda norm, x: jax.vmap(jax.vmap(norm))(x)
        return per_head(self.query, q), per_head(self.key, k)


def split_heads(qkv: Float[Array, "num_tokens three_hidden"], num_heads: int):
    """Fused ``[q, k, v]`` projections -> three ``(num_tokens, heads, head_dim)`` arrays."""
    q, k, v = jnp.split(qkv.reshape(qkv.shape[0], 3, num_heads, -1), 3, axis=1)
    return q[:, 0], k[:, 0], v[:, 0]


def attention(q, k, v, angles: Angles, edge_mask: EdgeMask | None) -> Tokens2D:
    """Multi-head attention of normalised ``(num_tokens, heads, head_dim)`` queries and keys
    after rotary positions, through ``jax.nn.dot_product_attention`` (XLA's implementation in
    float32: the scores are materialised). ``edge_mask[i, j]``: token i attends to token j."""
    q, k = apply_rope(q, angles), apply_rope(k, angles)
    mask = None if edge_mask is None else edge_mask[None]  # same mask for every head
    out = jax.nn.dot_product_attention(q, k, v, mask=mask)
    return out.reshape(q.shape[0], -1)


class StreamLayers(eqx.Module):
    """One stream's own weights in a double-stream block."""

    modulation: Modulation
    norm: eqx.nn.LayerNorm
    qkv: eqx.nn.Linear
    qk_norm: QKNorm
    projection: eqx.nn.Linear
    mlp_in: eqx.nn.Linear
    mlp_out: eqx.nn.Linear

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, *, key: Key):
        km, kq, kp, ki, ko = jr.split(key, 5)
        mlp_hidden = int(hidden * mlp_ratio)
        self.modulation = Modulation(hidden, 6, key=km)
        self.norm = _layer_norm(hidden)
        self.qkv = eqx.nn.Linear(hidden, 3 * hidden, use_bias=qkv_bias, key=kq)
        self.qk_norm = QKNorm(hidden // num_heads)
        self.projection = eqx.nn.Linear(hidden, hidden, key=kp)
        self.mlp_in = eqx.nn.Linear(hidden, mlp_hidden, key=ki)
        self.mlp_out = eqx.nn.Linear(mlp_hidden, hidden, key=ko)

    def qkv_and_modulation(self, x: Tokens2D, vec):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(vec)
        qkv = jax.vmap(self.qkv)(_modulate(x, self.norm, shift1, scale1))
        return qkv, (gate1, shift2, scale2, gate2)

    def update(self, x: Tokens2D, attended: Tokens2D, modulation) -> Tokens2D:
        gate1, shift2, scale2, gate2 = modulation
        x = x + gate1 * jax.vmap(self.projection)(attended)
        mlp = lambda z: self.mlp_out(jax.nn.gelu(self.mlp_in(z)))
        return x + gate2 * jax.vmap(mlp)(_modulate(x, self.norm, shift2, scale2))


class DoubleStreamBlock(eqx.Module):
    """MMDiT block: two token streams with their own weights and ONE joint attention over both.
    The first stream (``a``) comes first in the joint sequence."""

    a: StreamLayers
    b: StreamLayers
    num_heads: int = eqx.field(static=True)

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, *, key: Key):
        ka, kb = jr.split(key)
        self.a = StreamLayers(hidden, num_heads, mlp_ratio, qkv_bias, key=ka)
        self.b = StreamLayers(hidden, num_heads, mlp_ratio, qkv_bias, key=kb)
        self.num_heads = num_heads

    def __call__(
        self,
        streams: tuple[Float[Array, "tokens_a hidden"], Float[Array, "tokens_b hidden"]],
        vec: Float[Array, " hidden"],
        angles: Float[Array, "tokens_a+tokens_b half_head_dim"],
    ) -> tuple[Float[Array, "tokens_a hidden"], Float[Array, "tokens_b hidden"]]:
        """``streams = (a, b)``; ``angles`` are the rotary angles of ``concat([a, b])``."""
        a, b = streams
        qkv_a, mod_a = self.a.qkv_and_modulation(a, vec)
        qkv_b, mod_b = self.b.qkv_and_modulation(b, vec)
        # Each stream normalises its own queries and keys; attention is joint over both.
        qa, ka, va = split_heads(qkv_a, self.num_heads)
        qb, kb, vb = split_heads(qkv_b, self.num_heads)
        qa, ka = self.a.qk_norm(qa, ka)
        qb, kb = self.b.qk_norm(qb, kb)
        joint = lambda x, y: jnp.concatenate([x, y])
        attended = attention(joint(qa, qb), joint(ka, kb), joint(va, vb), angles, None)
        n = a.shape[0]
        return self.a.update(a, attended[:n], mod_a), self.b.update(b, attended[n:], mod_b)


class SingleStreamBlock(eqx.Module):
    """Parallel attention + MLP over one token sequence (one fused input projection, one fused
    output projection), honouring an ``edge_mask``."""

    modulation: Modulation
    norm: eqx.nn.LayerNorm
    linear_in: eqx.nn.Linear
    qk_norm: QKNorm
    linear_out: eqx.nn.Linear
    num_heads: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, *, key: Key):
        # One fused projection for q, k, v and the MLP, so ``qkv_bias`` covers the MLP's input
        # bias too.
        ki, ko, km = jr.split(key, 3)
        mlp_hidden = int(hidden * mlp_ratio)
        self.modulation = Modulation(hidden, 3, key=km)
        self.norm = _layer_norm(hidden)
        self.linear_in = eqx.nn.Linear(hidden, 3 * hidden + mlp_hidden, use_bias=qkv_bias, key=ki)
        self.qk_norm = QKNorm(hidden // num_heads)
        self.linear_out = eqx.nn.Linear(hidden + mlp_hidden, hidden, key=ko)
        self.num_heads = num_heads
        self.hidden = hidden

    def __call__(
        self,
        x: Tokens2D,
        vec: Float[Array, " hidden"],
        angles: Angles,
        edge_mask: EdgeMask | None = None,
    ) -> Tokens2D:
        shift, scale, gate = self.modulation(vec)
        projected = jax.vmap(self.linear_in)(_modulate(x, self.norm, shift, scale))
        qkv, mlp = projected[:, : 3 * self.hidden], projected[:, 3 * self.hidden :]
        q, k, v = split_heads(qkv, self.num_heads)
        q, k = self.qk_norm(q, k)
        attended = attention(q, k, v, angles, edge_mask)
        out = jax.vmap(self.linear_out)(jnp.concatenate([attended, jax.nn.gelu(mlp)], axis=-1))
        return x + gate * out


class FinalLayer(eqx.Module):
    """Modulated LayerNorm, then a linear map to the output channels (zero at initialisation)."""

    modulation: Modulation
    norm: eqx.nn.LayerNorm
    linear: eqx.nn.Linear

    def __init__(self, hidden: int, out_channels: int, *, key: Key):
        km, kl = jr.split(key)
        self.modulation = Modulation(hidden, 2, key=km)
        self.norm = _layer_norm(hidden)
        self.linear = _zero_linear(hidden, out_channels, key=kl)

    def __call__(self, x: Tokens2D, vec: Float[Array, " hidden"]) -> Float[Array, "num_tokens out"]:
        shift, scale = self.modulation(vec)
        return jax.vmap(self.linear)(_modulate(x, self.norm, shift, scale))


def check_flux_hyperparameters(**hyper) -> int:
    """Validate the hyperparameters the Flux models share; return the width
    ``hidden = sum(axes_dim) * num_heads``."""
    for name in ("num_heads", "depth", "depth_single_blocks"):
        if name in hyper:
            value, low = hyper[name], 1 if name == "num_heads" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    axes_dim = hyper["axes_dim"]
    if not axes_dim or any(not isinstance(a, int) or a < 2 or a % 2 for a in axes_dim):
        raise ValueError(
            "`axes_dim` (features per head per position axis, rotated in pairs) must be a "
            f"non-empty tuple of positive even ints, got {axes_dim!r}."
        )
    if not hyper["mlp_ratio"] > 0:
        raise ValueError(f"`mlp_ratio` must be positive, got {hyper['mlp_ratio']!r}.")
    if not hyper["theta"] > 0:
        raise ValueError(f"`theta` (the RoPE base) must be positive, got {hyper['theta']!r}.")
    return sum(axes_dim) * hyper["num_heads"]
