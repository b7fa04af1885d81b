"""Models with non-trivial weights for tests of what a network reads."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def randomised(model, key, scale: float = 0.3):
    """The model with every floating-point weight jittered by ``scale * N(0, 1)``: fresh Flux
    blocks are the identity (zero-initialised modulation) and output zero, which would make
    tests of what the network depends on vacuous.

    The jitter is drawn with numpy from a generator seeded by ``key``, so the same key and
    weights of the same shapes give the same model. Drawing it with jax costs a compilation of
    one random op per weight, 15 s of CPU for a small Flux1; numpy costs nothing. Call it
    outside of ``jit``.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    rng = np.random.default_rng(np.asarray(key, dtype=np.uint32).ravel().tolist())
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree.flatten(params)
    leaves = [
        jnp.asarray((np.asarray(p) + scale * rng.standard_normal(p.shape)).astype(p.dtype))
        for p in leaves
    ]
    return eqx.combine(jax.tree.unflatten(treedef, leaves), static)


def random_model(make, seed: int = 0, std: float = 0.5):
    """The model ``make(key)`` with every floating-point weight drawn from ``N(0, std^2)``.

    ``make`` is traced (``eqx.filter_eval_shape``), not run, and the weights are filled from
    numpy: building a model eagerly compiles one initialisation op per weight shape, seconds
    per model on a CPU. ``for_data`` constructors read their data concretely, which
    ``jax.ensure_compile_time_eval`` allows while tracing.
    """

    def traced(key):
        with jax.ensure_compile_time_eval():
            return make(key)

    skeleton = eqx.filter_eval_shape(traced, jax.random.key(0))
    rng = np.random.default_rng(seed)
    fill = lambda s: jnp.asarray(rng.normal(0.0, std, s.shape).astype(s.dtype))
    return jax.tree.map(lambda s: fill(s) if isinstance(s, jax.ShapeDtypeStruct) else s, skeleton)
