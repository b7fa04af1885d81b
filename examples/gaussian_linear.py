"""Gaussian linear: a trained Simformer's posterior against the exact one.

    python examples/gaussian_linear.py [--small] [--dim 5] [--steps 2000] [--out DIR]

sbibm's ``gaussian_linear`` task (``gs.tasks.GaussianLinear``): ``theta ~ N(0, 0.1 I)`` and
``x | theta ~ N(theta, 0.1 I)``, conjugate, so the posterior is known in closed form
(``task.true_posterior(x_o)``: ``N(x_o / 2, 0.05 I)``). The example trains a Simformer on the
joint, draws the posterior for one observation and overlays the analytic marginal densities on
the histograms of the draws. It prints, per dimension, the error of the posterior mean (in
posterior standard deviations) and the ratio of the sampled to the exact standard deviation.

Writes ``marginals.png`` and ``posterior_samples.npy`` to ``--out`` (default
``outputs/gaussian_linear``). sbibm uses ``--dim 10``
(twice the tokens, about twice the time per step). With the defaults (10,000 simulations, 2,000
steps, 2,000 draws of the 500-step reverse SDE) 2.9 minutes on a 2-core CPU, max mean error
0.05 posterior sds and sd ratios 1.02-1.12; ``--small`` (a smoke test, not an accurate
posterior) 20 s including compilation.
"""

import argparse
import time
from pathlib import Path

import jax.random as jr
import numpy as np
from matplotlib.figure import Figure

import gensbi_eqx as gs

# A real run, and a quick one that goes through every step (explicit flags win over both).
SIZES = {
    "default": {"simulations": 10_000, "steps": 2_000, "num_samples": 2_000, "sampler_steps": 500},
    "small": {"simulations": 1_000, "steps": 100, "num_samples": 500, "sampler_steps": 20},
}
# The Simformer paper's small model by default; a narrow, shallow one for --small.
MODEL = {
    "default": {},
    "small": {"depth": 1, "dim_value": 8, "dim_id": 8, "dim_condition": 4, "dim_time": 16},
}


def normal_pdf(z, mean, sd):
    return np.exp(-0.5 * ((z - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run with tiny sizes")
    parser.add_argument("--dim", type=int, default=5, help="dimension of theta and of x")
    parser.add_argument("--simulations", type=int)
    parser.add_argument("--steps", type=int, help="training steps")
    parser.add_argument("--num-samples", type=int)
    parser.add_argument("--sampler-steps", type=int, help="reverse-SDE steps")
    parser.add_argument("--out", type=Path, default=Path("outputs/gaussian_linear"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    size = "small" if args.small else "default"
    for name, value in SIZES[size].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.out.mkdir(parents=True, exist_ok=True)

    task = gs.tasks.GaussianLinear(args.dim)
    theta, x = task.simulate(jr.key(0), args.simulations)
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(1), **MODEL[size])
    start = time.perf_counter()
    est = gs.fit(
        jr.key(2), model, data, method=gs.VESDE(), training=gs.Training(max_steps=args.steps),
        progress=not args.no_progress,
    )
    print(f"trained {est.num_parameters:,} parameters in {time.perf_counter() - start:.0f} s")

    # One observation from a known parameter (fixed keys: the same run gives the same numbers).
    theta_o = task.prior.sample(jr.key(3), 1)
    x_o = task.simulator(jr.key(4), theta_o)[0]
    start = time.perf_counter()
    post = est.sample(
        jr.key(5), {"x": x_o}, args.num_samples, sampler=gs.SDE(steps=args.sampler_steps)
    )
    samples = np.asarray(post["theta"])  # (num_samples, dim)
    print(f"drew {len(samples):,} posterior samples (reverse SDE, {args.sampler_steps} steps) "
          f"in {time.perf_counter() - start:.0f} s")

    exact = task.true_posterior(x_o)
    mean, sd = np.asarray(exact.mean), np.sqrt(np.diag(np.asarray(exact.covariance)))
    # Mean error in posterior sds: sampling noise alone gives about 1 / sqrt(num_samples).
    mean_error = (samples.mean(0) - mean) / sd
    sd_ratio = samples.std(0) / sd
    print("dim   mean error (posterior sds)   sd sampled / exact")
    for i in range(args.dim):
        print(f"{i:3d}   {mean_error[i]:+26.3f}   {sd_ratio[i]:18.3f}")
    print(f"max |mean error| = {np.abs(mean_error).max():.3f} sd, "
          f"sd ratio in [{sd_ratio.min():.3f}, {sd_ratio.max():.3f}] "
          f"(sampling noise alone: about {1 / np.sqrt(len(samples)):.3f} sd)")

    columns = min(args.dim, 5)
    rows = -(-args.dim // columns)
    fig = Figure(figsize=(2.6 * columns, 2.4 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i >= args.dim:
            ax.set_visible(False)
            continue
        grid = np.linspace(mean[i] - 4 * sd[i], mean[i] + 4 * sd[i], 200)
        ax.hist(samples[:, i], bins=40, range=(grid[0], grid[-1]), density=True,
                color="tab:blue", alpha=0.5, label="Simformer")
        ax.plot(grid, normal_pdf(grid, mean[i], sd[i]), color="tab:orange", label="exact")
        ax.axvline(float(theta_o[0, i]), color="tab:red", linewidth=1, label="true theta")
        ax.set_xlabel(f"theta[{i}]")
        ax.set_yticks([])
    axes[0].legend(fontsize="x-small", loc="upper left")
    fig.suptitle(f"Gaussian linear ({args.dim}-D): posterior marginals")

    plot_path = args.out / "marginals.png"
    fig.savefig(plot_path, dpi=100)
    samples_path = args.out / "posterior_samples.npy"
    np.save(samples_path, samples)
    print(f"marginals:         {plot_path}\nposterior samples: {samples_path}")


if __name__ == "__main__":
    main()
