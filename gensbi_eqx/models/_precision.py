"""Mixed precision: float32 parameters, optionally bfloat16 activations."""

import equinox as eqx
import jax
import jax.numpy as jnp

COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype_name(dtype) -> str:
    """The canonical name of a compute dtype (``jnp.bfloat16``, ``"bfloat16"``, ...)."""
    try:
        name = jnp.dtype(dtype).name
    except TypeError:
        name = None
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"`compute_dtype` must be one of {COMPUTE_DTYPES}, got {dtype!r}.")
    return name


def cast_floating(tree, dtype):
    """``tree`` with its floating-point arrays cast to ``dtype`` (other leaves untouched)."""
    dtype = jnp.dtype(dtype)
    return jax.tree.map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, tree)
