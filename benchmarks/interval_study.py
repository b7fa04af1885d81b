"""Constraints on data nodes with trained models, against exact references.

    python benchmarks/interval_study.py [--tasks gl2 gl10 two_moons] [--steps 5000]
        [--num-samples 4000] [--strategies default guidance]

For each task a Simformer is trained once with `gs.fit` defaults (10,000 simulations, at most
``--steps`` steps; cached in benchmarks/.cache) and asked for the joint given that ``x`` lies
in a box, by each strategy: ``default`` (`gs.Rejection()`, handing over to `gs.SMC()` below
20% acceptance), ``smc`` (`gs.SMC()`: unit-variance twist, 4 particles per draw),
``smc-unit-x1`` (one particle per draw), ``smc-tweedie-x1`` (Tweedie's twist, which costs a
JVP and a VJP of the network per step), ``rejection`` (never handing over) and ``guidance``
(the 200-step guided reverse SDE alone). Rows also record the share of distinct draws (SMC
returns resampled particles, and repeated draws alone raise a C2ST: an exact law with a third
of its draws repeated scores 0.54 in 4 dimensions and 0.67 in 20).

References: Gaussian linear is exact in closed form (``x ~ N(0, 0.2 I)`` truncated to the box,
entry by entry, then ``theta | x ~ N(x / 2, 0.05 I)``; an observed ``x`` entry enters
``theta | x`` only). Two moons and Tree: rejection on the simulator (prior draws whose ``x``
falls in the box; exact, and cheap for boxes of a few percent).

Reported per case: the strategy that ran and its acceptance or ESS; the share of draws inside
the box; the share farther than 6 reference sds from the reference mean in some entry; the
largest error of a latent mean in reference sds; the range of sd ratios; the C2ST of all
latent entries against the reference; and, as the yardstick of the issue, the same model's
unconstrained C2ST: ``p(theta | x = box centre)`` against the exact posterior (Gaussian
linear), or the model's joint against simulated pairs (two moons, Tree). Rows go to benchmarks/results/interval_study.jsonl; ``--report`` prints them as the
table of benchmarks/results/interval_study.md.
"""

import argparse
import json
import time
from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from scipy import stats

import gensbi_eqx as gs

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
OUT = HERE / "results" / "interval_study.jsonl"
INF = np.inf

# Boxes on x: (name, lower, upper, observed x entries {index: value} or {}).
SD_X = np.sqrt(0.2)
GL_CASES = {
    "gl2": [
        ("x0 bulk [0, 0.3]", [0.0, -INF], [0.3, INF], {}),
        ("x0 2.2-2.5 sd [1, 1.1]", [1.0, -INF], [1.1, INF], {}),
        ("x0 2.2-2.5 sd, x1 observed", [1.0, -INF], [1.1, INF], {1: 0.5}),
        ("x all bulk [0, 0.3]^2", [0.0, 0.0], [0.3, 0.3], {}),
        ("x all 2-3 sd", [2 * SD_X] * 2, [3 * SD_X] * 2, {}),
    ],
    "gl10": [
        ("x0 2-3 sd", [2 * SD_X] + [-INF] * 9, [3 * SD_X] + [INF] * 9, {}),
        ("x all bulk [-0.2, 0.2]^10", [-0.2] * 10, [0.2] * 10, {}),
        ("x0..2 2-3 sd", [2 * SD_X] * 3 + [-INF] * 7, [3 * SD_X] * 3 + [INF] * 7, {}),
    ],
}
SIMULATOR_CASES = {
    "two_moons": [
        ("x bulk", [0.0, -0.2], [0.2, 0.0], {}),
        ("x tail [0.3, 0.4] x [0.2, 0.3]", [0.3, 0.2], [0.4, 0.3], {}),  # 0.1% of the mass
    ],
    # x_1 ~ N(0.1 theta_1^2, 0.2^2): the box needs |theta_1| near 2.5-3, either sign.
    "tree": [("x1 in [0.6, 1.0]", [-INF, 0.6, -INF, -INF], [INF, 1.0, INF, INF], {})],
}


def trained(task_name, task, steps):
    path = CACHE / f"interval_{task_name}_{steps}.eqx"
    if path.exists():
        return gs.load(path), None
    theta, x = task.simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(1))
    start = time.perf_counter()
    est = gs.fit(jr.key(2), model, data, training=gs.Training(max_steps=steps), progress=False)
    seconds = time.perf_counter() - start
    CACHE.mkdir(exist_ok=True)
    gs.save(path, est)
    return est, seconds


def gaussian_reference(dim, lower, upper, observed, n, rng):
    """Exact draws of (theta, latent x) given x in the box and the observed x entries."""
    x = np.empty((n, dim))
    for i in range(dim):
        if i in observed:
            x[:, i] = observed[i]
        else:
            a, b = lower[i] / SD_X, upper[i] / SD_X
            x[:, i] = stats.truncnorm.rvs(a, b, scale=SD_X, size=n, random_state=rng)
    theta = 0.5 * x + np.sqrt(0.05) * rng.standard_normal((n, dim))
    latent = [i for i in range(dim) if i not in observed]
    return np.concatenate([theta, x[:, latent]], axis=1)


def simulator_reference(task, lower, upper, n):
    """Exact draws of (theta, x) given x in the box: prior draws whose simulation falls in it."""
    kept = []
    key = jr.key(7)
    while sum(len(k) for k in kept) < n:
        key, sub = jr.split(key)
        theta, x = task.simulate(sub, 2_000_000)
        theta, x = np.asarray(theta), np.asarray(x)
        inside = np.all((x >= lower) & (x <= upper), axis=1)
        kept.append(np.concatenate([theta[inside], x[inside]], axis=1))
    return np.concatenate(kept)[:n]


def strategy_sampler(name):
    return {
        "default": None,
        "smc": gs.SMC(),
        "smc-unit-x1": gs.SMC(oversample=1),
        "smc-tweedie-x1": gs.SMC(variance=gs.guidance.TweedieVariance(), oversample=1),
        "rejection": gs.Rejection(fallback=None, max_rounds=1000),
        "guidance": gs.SDE(steps=200),
    }[name]


def summarise(draws, reference, lower, upper, x_draws):
    ref_mean, ref_sd = reference.mean(0), reference.std(0)
    inside = np.all((x_draws >= lower) & (x_draws <= upper), axis=1)
    far = np.any(np.abs(draws - ref_mean) > 6 * ref_sd, axis=1)
    finite = np.all(np.isfinite(draws), axis=1)
    ratio = draws[finite].std(0) / ref_sd
    return {
        "distinct": float(len(np.unique(draws, axis=0)) / len(draws)),
        "inside": float(inside.mean()),
        "far": float(far.mean()),
        "mean_error_sd": float(np.max(np.abs(draws[finite].mean(0) - ref_mean) / ref_sd)),
        "sd_ratio": [float(np.min(ratio)), float(np.max(ratio))],
        # as many reference draws as finite ones: chance is 0.5 only for sets of equal size
        "c2st": float(gs.diagnostics.c2st(reference[: finite.sum()], draws[finite])),
    }


def run_case(est, task_name, case, strategies, n, baseline, rng, reference):
    name, lower, upper, observed = case
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    dim = lower.shape[0]
    condition = {}
    if observed:
        given = np.full(dim, np.nan, np.float32)
        for i, v in observed.items():
            given[i] = v
        condition = {"x": jnp.asarray(given)}
    rows = []
    for strategy in strategies:
        start = time.perf_counter()
        samples = est.sample(
            jr.key(3), condition, n, constraints=gs.Box({"x": (lower, upper)}),
            sampler=strategy_sampler(strategy),
        )
        seconds = time.perf_counter() - start
        theta, x = np.asarray(samples["theta"]), np.asarray(samples["x"])
        latent = [i for i in range(dim) if i not in observed]
        draws = np.concatenate([theta, x[:, latent]], axis=1)
        info = {k: (np.asarray(v).tolist() if k != "strategy" else v) for k, v in samples.info.items()}
        row = {
            "date": time.strftime("%Y-%m-%d"), "task": task_name, "case": name,
            "strategy": strategy, "seconds": round(seconds, 1), "info": info,
            "unconstrained_c2st": baseline, "num_samples": n,
            **summarise(draws, reference, lower, upper, x),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        with OUT.open("a") as f:
            f.write(json.dumps(row) + "\n")
    return rows


def joint_baseline(est, task, n):
    """C2ST of the model's joint (nothing observed) against simulated pairs: the yardstick for
    tasks without a closed-form posterior."""
    drawn = est.sample(jr.key(5), {}, n)
    theta, x = task.simulate(jr.key(6), n)
    model = np.concatenate([np.asarray(drawn["theta"]), np.asarray(drawn["x"])], axis=1)
    truth = np.concatenate([np.asarray(theta), np.asarray(x)], axis=1)
    return float(gs.diagnostics.c2st(truth, model))


def unconstrained_baseline(est, task, dim, centre, n):
    """C2ST of the model's p(theta | x = centre) against the exact posterior."""
    post = np.asarray(est.sample(jr.key(5), {"x": jnp.asarray(centre, jnp.float32)}, n)["theta"])
    truth = np.asarray(task.true_posterior(jnp.asarray(centre, jnp.float32)).sample(jr.key(6), n))
    return float(gs.diagnostics.c2st(truth, post))


def report():
    """The rows of the jsonl file as a markdown table, latest row per (task, case, strategy)."""
    rows = {}
    for line in OUT.open():
        row = json.loads(line)
        rows[(row["task"], row["case"], row["strategy"])] = row
    print("| task | box on x | strategy | ran | acceptance / ESS | distinct | inside | beyond 6 sd "
          "| mean error (sd) | sd ratio | C2ST | unconstrained C2ST | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (task, case, strategy), row in rows.items():
        info = row["info"]
        ran = info.get("strategy", "")
        stat = f"acc {info['acceptance']:.3f}" if "acceptance" in info else ""
        if "ess" in info:
            stat = (stat + ", " if stat else "") + f"ESS {info['ess']:.2f}"
        base = row["unconstrained_c2st"]
        distinct = row.get("distinct")
        print(
            f"| {task} | {case} | {strategy} | {ran} | {stat} | "
            f"{'' if distinct is None else f'{distinct:.2f}'} | {row['inside']:.4f} | "
            f"{row['far']:.4f} | {row['mean_error_sd']:.3f} | "
            f"{row['sd_ratio'][0]:.2f}-{row['sd_ratio'][1]:.2f} | {row['c2st']:.3f} | "
            f"{'' if base is None else f'{base:.3f}'} | {row['seconds']:.0f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="print the results as a table")
    parser.add_argument("--tasks", nargs="+", default=["gl2", "gl10", "two_moons", "tree"])
    parser.add_argument("--strategies", nargs="+", default=["default", "guidance"])
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--num-samples", type=int, default=4_000)
    parser.add_argument("--cases", nargs="+", help="only the cases whose names contain these")
    args = parser.parse_args()
    if args.report:
        return report()
    rng = np.random.default_rng(0)
    for task_name in args.tasks:
        if task_name in SIMULATOR_CASES:
            task = {"two_moons": gs.tasks.TwoMoons, "tree": gs.tasks.Tree}[task_name]()
            cases = SIMULATOR_CASES[task_name]
        else:
            dim = int(task_name[2:])
            task = gs.tasks.GaussianLinear(dim=dim)
            cases = GL_CASES[task_name]
        est, seconds = trained(task_name, task, args.steps)
        baseline = None
        print(f"{task_name}: trained in {seconds} s (None: cached)", flush=True)
        for case in cases:
            name, lower, upper, observed = case
            if args.cases and not any(part in name for part in args.cases):
                continue
            lower_a, upper_a = np.asarray(lower, float), np.asarray(upper, float)
            if task_name in SIMULATOR_CASES:
                reference = simulator_reference(task, lower_a, upper_a, args.num_samples)
                if baseline is None:
                    baseline = joint_baseline(est, task, args.num_samples)
            else:
                reference = gaussian_reference(dim, lower_a, upper_a, observed, args.num_samples, rng)
                centre = np.where(np.isfinite(lower_a) & np.isfinite(upper_a),
                                  (np.nan_to_num(lower_a) + np.nan_to_num(upper_a)) / 2, 0.0)
                for i, v in observed.items():
                    centre[i] = v
                baseline = unconstrained_baseline(est, task, dim, centre, args.num_samples)
            run_case(est, task_name, case, args.strategies, args.num_samples, baseline, rng, reference)


if __name__ == "__main__":
    main()
