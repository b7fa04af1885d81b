"""Two moons, end to end: simulate, train a Simformer, sample the posterior, plot it.

    python examples/two_moons.py [--small] [--steps 5000] [--num-samples 10000] [--out DIR]

Writes ``posterior_samples.npy``, ``pairplot.png`` and the trained ``estimator.eqx`` to the
output folder (default ``outputs/two_moons``) and prints where they are. About 4 minutes on a
2-core CPU with the defaults (4.4 measured while the machine was shared with other jobs);
``--small`` (1,000 simulations, 200 steps, 500 samples: a smoke test, not an accurate posterior)
takes 26 s including compilation.
"""

import argparse
import time
from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gensbi_eqx as gs
from gensbi_eqx.plotting import pairplot

# Sizes of a real run and of a quick one that goes through every step (flags given on the
# command line win over both).
SIZES = {
    "default": {"simulations": 10_000, "steps": 5_000, "num_samples": 10_000},
    "small": {"simulations": 1_000, "steps": 200, "num_samples": 500},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run with tiny sizes")
    parser.add_argument("--simulations", type=int)
    parser.add_argument("--steps", type=int, help="training steps")
    parser.add_argument("--num-samples", type=int)
    parser.add_argument("--sampler", choices=["ode", "sde"], default="ode")
    parser.add_argument("--out", type=Path, default=Path("outputs/two_moons"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    for name, value in SIZES["small" if args.small else "default"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.out.mkdir(parents=True, exist_ok=True)

    task = gs.tasks.TwoMoons()
    theta, x = task.simulate(jr.key(0), args.simulations)
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(1))

    start = time.perf_counter()
    est = gs.fit(
        jr.key(2), model, data, method=gs.VESDE(), training=gs.Training(max_steps=args.steps),
        progress=not args.no_progress,
    )
    print(f"trained {est.num_parameters:,} parameters in {time.perf_counter() - start:.0f} s "
          f"(best validation loss at step {est.history.best_step})")

    x_o = jnp.array([0.0, 0.0])  # the classic observation: the posterior is two crescents
    start = time.perf_counter()
    # A loose ODE tolerance is plenty for a plot and takes a third of the evaluations of 1e-5.
    sampler = gs.ODE(rtol=1e-3, atol=1e-3) if args.sampler == "ode" else gs.SDE(steps=500)
    post = est.sample(jr.key(3), {"x": x_o}, args.num_samples, sampler=sampler)
    theta_samples = np.asarray(post["theta"])
    print(f"drew {len(theta_samples):,} posterior samples ({args.sampler}) in "
          f"{time.perf_counter() - start:.0f} s")

    samples_path = args.out / "posterior_samples.npy"
    np.save(samples_path, theta_samples)
    plot_path = args.out / "pairplot.png"
    pairplot({"theta": theta_samples}, path=plot_path)
    est_path = args.out / "estimator.eqx"
    gs.save(est_path, est)
    print(f"posterior samples: {samples_path}\npairplot:          {plot_path}\n"
          f"estimator:         {est_path}")


if __name__ == "__main__":
    main()
