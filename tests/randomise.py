"""Models with non-trivial weights for tests of what a network reads."""

import equinox as eqx
import jax
import jax.random as jr


@eqx.filter_jit  # one compile instead of one eager op per weight shape
def randomised(model, key, scale: float = 0.3):
    """The model with every floating-point weight jittered by ``scale * N(0, 1)``: fresh Flux
    blocks are the identity (zero-initialised modulation) and output zero, which would make
    tests of what the network depends on vacuous."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree.flatten(params)
    keys = jr.split(key, len(leaves))
    leaves = [p + scale * jr.normal(k, p.shape) for p, k in zip(leaves, keys)]
    return eqx.combine(jax.tree.unflatten(treedef, leaves), static)
