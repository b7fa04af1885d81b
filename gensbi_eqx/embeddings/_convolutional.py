"""Small convolutional embeddings for series and images: strided convolutions that halve the
resolution at each layer, then a two-layer perceptron to the summaries."""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Float, Key
from .._arguments import check_positive_ints
from ._base import AbstractEmbedding


def _convolutions(dims: int, channels: int, features: int, depth: int, kernel: int, key: Key):
    keys = jr.split(key, depth)
    sizes = [channels] + [features] * depth
    return tuple(
        eqx.nn.Conv(dims, sizes[i], sizes[i + 1], kernel, stride=2, padding=kernel // 2,
                    key=keys[i])
        for i in range(depth)
    )


def _halved(size: int, depth: int, kernel: int) -> int:
    """Length of an axis after ``depth`` stride-2 convolutions with padding ``kernel // 2``."""
    for _ in range(depth):
        size = (size + 2 * (kernel // 2) - kernel) // 2 + 1
    return size


def _strided(convolution: eqx.nn.Conv, h: Float[Array, "channels *spatial"]) -> Array:
    """``convolution(h)`` (stride 2, padding ``kernel // 2``) as one matrix product over
    patches: XLA's CPU convolution is several times slower inside `fit`'s fused training loop
    (a ``while`` loop) than outside it, a matrix product is not."""
    kernel = convolution.kernel_size
    spatial = h.shape[1:]
    h = jnp.pad(h, [(0, 0)] + [(k // 2, k // 2) for k in kernel])
    out = tuple(_halved(s, 1, k) for s, k in zip(spatial, kernel))
    offsets = np.stack(np.meshgrid(*[np.arange(k) for k in kernel], indexing="ij"), -1)
    patches = jnp.stack([
        h[(slice(None),) + tuple(slice(o, o + 2 * (n - 1) + 1, 2) for o, n in zip(offset, out))]
        for offset in offsets.reshape(-1, len(kernel))
    ], axis=-1)  # (channels, *out, prod(kernel))
    weight = convolution.weight.reshape(convolution.out_channels, convolution.in_channels, -1)
    result = jnp.einsum("c...k,dck->d...", patches, weight)
    return result + convolution.bias if convolution.bias is not None else result


class _ConvolutionalEmbedding(AbstractEmbedding):
    convolutions: tuple[eqx.nn.Conv, ...]
    head: eqx.nn.MLP
    num_summaries: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    features: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)

    def _features(self, values: Float[Array, "channels *spatial"]) -> Float[Array, " summaries"]:
        h = values
        for convolution in self.convolutions:
            h = jax.nn.gelu(_strided(convolution, h))
        return self.head(h.reshape(-1))


class SeriesEmbedding(_ConvolutionalEmbedding):
    """A series of ``length`` points (values ``(length,)`` or ``(length, channels)``) to
    ``(num_summaries,)``: ``depth`` stride-2 1-D convolutions of ``features`` channels (kernel
    ``kernel_size``), GELU, then a perceptron with one hidden layer of ``hidden`` units."""

    length: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(
        self,
        length: int,
        num_summaries: int = 8,
        *,
        channels: int = 1,
        features: int = 16,
        depth: int = 3,
        kernel_size: int = 5,
        hidden: int = 64,
        key: Key,
    ):
        check_positive_ints(length=length, num_summaries=num_summaries, channels=channels,
                            features=features, depth=depth, kernel_size=kernel_size,
                            hidden=hidden)
        k_conv, k_head = jr.split(key)
        self.length, self.num_summaries, self.channels = length, num_summaries, channels
        self.features, self.depth, self.kernel_size, self.hidden = (
            features, depth, kernel_size, hidden
        )
        self.convolutions = _convolutions(1, channels, features, depth, kernel_size, k_conv)
        flat = features * _halved(length, depth, kernel_size)
        self.head = eqx.nn.MLP(flat, num_summaries, hidden, 1, activation=jax.nn.gelu,
                               key=k_head)

    def __call__(self, values: Float[Array, "length *channels"]) -> Float[Array, " num_summaries"]:
        expected = (self.length,) if self.channels == 1 else (self.length, self.channels)
        if values.shape not in (expected, (self.length, self.channels)):
            raise ValueError(f"`values` must have shape {expected}, got {values.shape}.")
        return self._features(values.reshape(self.length, self.channels).T)

    @property
    def config(self) -> dict[str, Any]:
        return dict(length=self.length, num_summaries=self.num_summaries, channels=self.channels,
                    features=self.features, depth=self.depth, kernel_size=self.kernel_size,
                    hidden=self.hidden)


class ImageEmbedding(_ConvolutionalEmbedding):
    """An image (values ``(height, width)`` or ``(height, width, channels)``) to
    ``(num_summaries,)``: ``depth`` stride-2 2-D convolutions of ``features`` channels (kernel
    ``kernel_size``), GELU, then a perceptron with one hidden layer of ``hidden`` units."""

    height: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(
        self,
        height: int,
        width: int,
        num_summaries: int = 8,
        *,
        channels: int = 1,
        features: int = 16,
        depth: int = 3,
        kernel_size: int = 3,
        hidden: int = 64,
        key: Key,
    ):
        check_positive_ints(height=height, width=width, num_summaries=num_summaries,
                            channels=channels, features=features, depth=depth,
                            kernel_size=kernel_size, hidden=hidden)
        k_conv, k_head = jr.split(key)
        self.height, self.width, self.num_summaries, self.channels = (
            height, width, num_summaries, channels
        )
        self.features, self.depth, self.kernel_size, self.hidden = (
            features, depth, kernel_size, hidden
        )
        self.convolutions = _convolutions(2, channels, features, depth, kernel_size, k_conv)
        flat = features * math.prod(_halved(s, depth, kernel_size) for s in (height, width))
        self.head = eqx.nn.MLP(flat, num_summaries, hidden, 1, activation=jax.nn.gelu,
                               key=k_head)

    def __call__(self, values: Float[Array, "height width *channels"]) -> Float[Array, " num_summaries"]:
        shape = (self.height, self.width, self.channels)
        if values.shape not in (shape, shape[:2] if self.channels == 1 else shape):
            raise ValueError(f"`values` must have shape {shape}, got {values.shape}.")
        return self._features(jnp.moveaxis(values.reshape(shape), -1, 0))

    @property
    def config(self) -> dict[str, Any]:
        return dict(height=self.height, width=self.width, num_summaries=self.num_summaries,
                    channels=self.channels, features=self.features, depth=self.depth,
                    kernel_size=self.kernel_size, hidden=self.hidden)
