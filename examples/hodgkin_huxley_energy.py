"""Hodgkin-Huxley: the posterior given the summary statistics with the energy consumption
restricted to an interval (the Simformer paper's section 4.4).

    python examples/hodgkin_huxley_energy.py [--small] [--simulations 20000] [--steps 5000]
        [--abc-simulations 200000] [--out DIR]

One joint Simformer is trained on ``(theta, x)`` of `gs.tasks.HodgkinHuxley` (7 parameters, 8
features, the last being the sodium charge, the "energy" a spike train costs). It answers two
queries for one observation ``x_o``: the posterior given the first seven features with the
energy left out, ``p(theta | x_o[:7])``, and the same with the energy restricted to an
interval of low consumption, ``p(theta, energy | x_o[:7], energy in [lo, hi])`` - the
parameters that would produce the observed activity more cheaply. The interval is the 5-30%
quantiles of the energy under the first query's reference, so about a quarter of the
posterior's mass.

Reference: rejection ABC. ``--abc-simulations`` prior draws are simulated, the first seven
features are z-scored by their prior-predictive sds, and the 1% nearest to ``x_o`` (Euclidean)
are kept: that is the unconstrained reference; those of them whose energy lies in the interval
are the constrained one. The tolerance (the largest kept distance) is printed. ABC at this
budget is broader than the true posterior, so compare shifts and shapes, not widths.

Prints the strategy that met the constraint (``samples.info``), the share of draws inside the
interval, and the means of theta under each query and reference; writes ``energy.png`` (the
marginals of the three conductances and of the energy, model against ABC, unconstrained and
constrained), ``samples.npz`` and ``estimator.eqx`` to ``--out`` (default
``outputs/hodgkin_huxley_energy``).

Measured (2026-12-06, one core of the 2-core CPU, defaults): 20,000 simulations in 39 s,
training 522 s (180,685 parameters), ABC 364 s (tolerance 0.50; 2,000 kept, 500 in the
interval), 2,000 draws per query 127 s. The interval held 35% of the model's draws, so
rejection ran (acceptance 0.355); every constrained draw is inside. Under the constraint the
sodium and potassium conductances shift down as ABC's do (means of gbar_Na 92.2 -> 82.5 for
the model, 95.7 -> 88.8 for ABC; gbar_K 15.1 -> 12.4 and 17.3 -> 13.0). ``--small``: about
40 s.
"""

import argparse
import time
from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from matplotlib.figure import Figure

import gensbi_eqx as gs

SIZES = {
    "default": {"simulations": 20_000, "steps": 5_000, "abc_simulations": 200_000,
                "num_samples": 2_000},
    "small": {"simulations": 1_000, "steps": 100, "abc_simulations": 5_000, "num_samples": 200},
}
MODEL = {
    "default": {},
    "small": {"depth": 1, "dim_value": 8, "dim_id": 8, "dim_condition": 4, "dim_time": 16},
}
NAMES = ["C_m", "gbar_Na", "gbar_K", "g_leak", "E_Na", "E_K", "E_leak"]
SHOWN = [1, 2, 3]  # the conductances
THETA_O = np.array([1.2, 100.0, 15.0, 0.2, 55.0, -80.0, -70.0], np.float32)  # 11 spikes
STATS = slice(0, 7)  # the features given exactly; feature 7 is the energy
ENERGY = 7


def simulate(task, key, num, chunk=10_000):
    """``(theta, x)`` of ``num`` prior simulations, in chunks: each simulation holds its whole
    voltage trace while it runs (200,000 at once would need about 48 GB)."""
    parts = [task.simulate(jr.fold_in(key, i), min(chunk, num - start))
             for i, start in enumerate(range(0, num, chunk))]
    return (np.concatenate([np.asarray(t) for t, _ in parts]),
            np.concatenate([np.asarray(x) for _, x in parts]))


def abc(task, key, num, x_o, keep=0.01):
    """Rejection ABC on the first seven features: ``(theta, x, tolerance)`` of the kept draws."""
    theta, x = simulate(task, key, num)
    scale = x[:, STATS].std(0)
    distance = np.linalg.norm((x[:, STATS] - x_o[STATS]) / scale, axis=1)
    kept = np.argsort(distance)[: max(1, int(keep * num))]
    return theta[kept], x[kept], float(distance[kept[-1]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run with tiny sizes")
    parser.add_argument("--simulations", type=int)
    parser.add_argument("--steps", type=int, help="training steps")
    parser.add_argument("--abc-simulations", type=int)
    parser.add_argument("--num-samples", type=int)
    parser.add_argument("--out", type=Path, default=Path("outputs/hodgkin_huxley_energy"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    size = "small" if args.small else "default"
    for name, value in SIZES[size].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.out.mkdir(parents=True, exist_ok=True)

    task = gs.tasks.HodgkinHuxley()
    start = time.perf_counter()
    theta, x = simulate(task, jr.key(0), args.simulations)
    data = {"theta": theta, "x": x}
    x_o = task.simulator(jr.key(1), jnp.asarray(THETA_O)[None])
    x_o = np.asarray(x_o)[0]
    print(f"simulated {args.simulations:,} in {time.perf_counter() - start:.0f} s; "
          f"x_o = {np.array2string(x_o, precision=2)}")

    start = time.perf_counter()
    model = gs.Simformer.for_data(data, key=jr.key(2), **MODEL[size])
    est = gs.fit(jr.key(3), model, data, training=gs.Training(max_steps=args.steps),
                 progress=not args.no_progress)
    print(f"trained {est.num_parameters:,} parameters in {time.perf_counter() - start:.0f} s")

    start = time.perf_counter()
    ref_theta, ref_x, tolerance = abc(task, jr.key(4), args.abc_simulations, x_o)
    # Low consumption: the 5-30% quantiles of |charge| under the unconstrained reference.
    consumption = np.abs(ref_x[:, ENERGY])
    low, high = np.quantile(consumption, [0.05, 0.30])
    lower, upper = -high, -low  # the charge is negative: less consumption is a smaller |charge|
    in_interval = (ref_x[:, ENERGY] >= lower) & (ref_x[:, ENERGY] <= upper)
    print(f"ABC: {len(ref_theta):,} of {args.abc_simulations:,} prior simulations kept "
          f"(tolerance {tolerance:.2f} in z-scored features), {in_interval.sum():,} of them "
          f"with the energy in [{lower:.0f}, {upper:.0f}] nC/cm^2; "
          f"{time.perf_counter() - start:.0f} s")

    given = x_o.copy()
    given[ENERGY] = np.nan  # the energy is not observed: it is what the constraint bounds
    condition = {"x": jnp.asarray(given)}
    start = time.perf_counter()
    free = est.sample(jr.key(5), condition, args.num_samples)
    box = gs.Box({"x": (np.where(np.arange(8) == ENERGY, lower, -np.inf),
                        np.where(np.arange(8) == ENERGY, upper, np.inf))})
    bound = est.sample(jr.key(6), condition, args.num_samples, constraints=box)
    info = {k: np.round(np.asarray(v), 4).tolist() if k != "strategy" else v
            for k, v in bound.info.items()}
    print(f"drew {args.num_samples:,} draws per query in {time.perf_counter() - start:.0f} s; "
          f"constrained by {info}")
    energy = np.asarray(bound["x"])[:, ENERGY]
    print(f"constrained draws with the energy inside the interval: "
          f"{np.mean((energy >= lower) & (energy <= upper)):.1%}")

    rows = {
        "ABC, energy free": ref_theta,
        "model, energy free": np.asarray(free["theta"]),
        "ABC, energy low": ref_theta[in_interval],
        "model, energy low": np.asarray(bound["theta"]),
    }
    print("mean of theta".ljust(22) + "".join(n.rjust(9) for n in NAMES))
    for label, t in rows.items():
        print(label.ljust(22) + "".join(f"{v:9.2f}" for v in t.mean(0)))

    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, len(SHOWN) + 1)
    styles = {
        "ABC, energy free": ("tab:gray", "-"), "model, energy free": ("tab:blue", "-"),
        "ABC, energy low": ("tab:gray", "--"), "model, energy low": ("tab:red", "-"),
    }
    low_box, high_box = task.prior.low, task.prior.high
    for ax, i in zip(axes, SHOWN):
        bins = np.linspace(float(low_box[i]), float(high_box[i]), 30)
        for label, t in rows.items():
            color, line = styles[label]
            ax.hist(t[:, i], bins=bins, density=True, histtype="step", color=color,
                    linestyle=line, label=label)
        ax.set_xlabel(NAMES[i])
    energies = {
        "ABC, energy free": ref_x[:, ENERGY], "model, energy free": np.asarray(free["x"])[:, ENERGY],
        "ABC, energy low": ref_x[in_interval, ENERGY], "model, energy low": energy,
    }
    bins = np.linspace(np.quantile(ref_x[:, ENERGY], 0.01), 0.0, 30)
    for label, e in energies.items():
        color, line = styles[label]
        axes[-1].hist(e, bins=bins, density=True, histtype="step", color=color, linestyle=line)
    axes[-1].axvspan(lower, upper, color="tab:red", alpha=0.1)
    axes[-1].set_xlabel("sodium charge (nC/cm^2)")
    axes[0].legend(fontsize="small")
    plot_path = args.out / "energy.png"
    fig.savefig(plot_path, dpi=100)
    samples_path = args.out / "samples.npz"
    est_path = args.out / "estimator.eqx"
    np.savez(samples_path, x_o=x_o, lower=lower, upper=upper, abc_theta=ref_theta, abc_x=ref_x,
             free_theta=rows["model, energy free"], bound_theta=rows["model, energy low"],
             bound_energy=energy)
    gs.save(est_path, est)
    print(f"figure:    {plot_path}\nsamples:   {samples_path}\nestimator: {est_path}")


if __name__ == "__main__":
    main()
