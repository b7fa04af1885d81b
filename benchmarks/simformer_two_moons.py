"""Speed of the default Simformer on two moons (batch 256): train step, compile, sampling.

    python benchmarks/simformer_two_moons.py [--train-steps 2000] [--repeats 3]

Prints the median train-step time after compilation, the train step's compile time, and the
time to draw 10,000 posterior samples with each sampler (after a warm-up call, with
``block_until_ready``). The model is trained for ``--train-steps`` first so that the adaptive
ODE solver sees a realistic vector field.
"""

import argparse
import platform
import statistics
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import gensbi_eqx as gs
from gensbi_eqx.training import StructuredMasks, default_optimizer, make_train_step


def timed(fn, *args, repeats):
    """(first-call seconds, median of ``repeats`` later calls)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-steps", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--train-step-only", action="store_true", help="skip fitting and sampling")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}, "
          f"jax {jax.__version__}")

    task = gs.tasks.TwoMoons()
    theta, x = task.simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(1))
    method = gs.VESDE()

    # The train step exactly as `fit` builds it: loss, grad, clipped Adam, EMA.
    optimizer = default_optimizer(10_000)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    masks = StructuredMasks(is_parameter=(True, True, False, False))
    step = make_train_step(method, masks, optimizer, 256, 4)
    x_train = jnp.asarray(jr.normal(jr.key(2), (9_000, 4)))

    start = time.perf_counter()
    compiled = step.lower(x_train, model, model, opt_state, jr.key(0), jnp.asarray(0)).compile()
    compile_s = time.perf_counter() - start
    state = (model, model, opt_state)
    for i in range(10):  # warm-up
        state = compiled(x_train, *state, jr.key(i), jnp.asarray(i))[:3]
    jax.block_until_ready(state)
    times = []
    for i in range(200):
        start = time.perf_counter()
        out = compiled(x_train, *state, jr.key(i), jnp.asarray(i))
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
        state = out[:3]
    num_parameters = sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
    print(f"parameters: {num_parameters:,}")
    print(f"train step (batch 256): median {1e3 * statistics.median(times):.1f} ms over 200 steps; "
          f"compile {compile_s:.1f} s")

    if args.train_step_only:
        return
    start = time.perf_counter()
    est = gs.fit(jr.key(3), model, data, method=method,
                 training=gs.Training(max_steps=args.train_steps), progress=False)
    print(f"fit, {args.train_steps} steps incl. compile and validation: {time.perf_counter() - start:.0f} s")

    x_o = {"x": jnp.zeros(2)}
    for label, sampler in [
        ("sde, Euler-Maruyama 500 steps", gs.SDE(steps=500)),
        ("ode, adaptive Tsit5 rtol=atol=1e-3", gs.ODE(rtol=1e-3, atol=1e-3)),
        ("ode, adaptive Tsit5 rtol=atol=1e-5", gs.ODE(rtol=1e-5, atol=1e-5)),
        ("ode, Heun 50 steps", gs.ODE(diffrax.Heun(), steps=50)),
    ]:
        fn = lambda k: est.sample(k, x_o, args.num_samples, sampler=sampler)["theta"]
        first, median = timed(fn, jr.key(4), repeats=args.repeats)
        print(f"{args.num_samples:,} posterior samples, {label}: median {median:.1f} s "
              f"(first call incl. compile {first:.1f} s)")


if __name__ == "__main__":
    main()
