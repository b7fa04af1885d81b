"""Draws inside a bounded prior's support: `fit` with and without ``gs.Node(bounds=...)``.

    python benchmarks/bounded_support.py --case two_moons --bounds on
    python benchmarks/bounded_support.py --report

One process trains one estimator and appends one row to benchmarks/results/bounded_support.jsonl;
run ``--bounds on`` and ``--bounds off`` of a case side by side (one per core) for the same
budget. Both use the same simulations, model, key and training settings; ``on`` declares the
parameters' support from the task's prior (``gs.Node(bounds=task.prior.support)``).

- ``two_moons``: 10,000 simulations, `gs.fit` defaults (stopping by itself), 10,000 draws with
  the default sampler for sbibm's observations 1-3; C2ST (sbibm's) against the references.
- ``sird``: the setup of examples/sird.py (beta on a 20-point grid, 10 random times per
  compartment, 10,000 simulations, a depth-2 Simformer trained on the posterior by flow
  matching, 3,000 steps of batch 128); 2,000 draws of ``(rates, beta)`` for 3 prior draws
  observed at fresh times.
- ``lotka_volterra``: 10,000 simulations at 10 random times per species, a joint Simformer
  with defaults, 3,000 steps of batch 128; 2,000 draws of ``theta`` for 3 prior draws observed
  at fresh times.

Reported: draws outside the closed support, draws exactly on a bound, and (two moons) the C2ST.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np

import gensbi_eqx as gs

OUT = Path(__file__).parent / "results" / "bounded_support.jsonl"


def count_outside(draws, lower, upper):
    """``(outside the closed support, on a bound)``, counted per draw (any entry)."""
    draws = draws.reshape(draws.shape[0], -1, lower.size)
    beyond = ((draws < lower) | (draws > upper)).any(-1)
    on = ((draws == lower) | (draws == upper)).any(-1)
    return int(beyond.sum()), int(on.sum()), int(beyond.size)


def observed_series(task):
    """Three prior draws observed at 10 fresh random times per channel, as one batch."""
    theta_o = np.asarray(task.prior.sample(jr.key(3), 3))
    times_o = np.asarray(task.sample_times(jr.key(4), 3, 10))
    return gs.Series(np.asarray(task.simulator(jr.key(5), theta_o, times_o)), times_o)


def two_moons(bounded, seed):
    task = gs.tasks.TwoMoons()
    theta, x = task.simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    nodes = {"theta": gs.Node(bounds=task.prior.support)} if bounded else None
    model = gs.Simformer.for_data(data, key=jr.key(1 + 100 * seed))
    start = time.perf_counter()
    est = gs.fit(jr.key(2 + 100 * seed), model, data, nodes=nodes, progress=False)
    train_s = time.perf_counter() - start
    lower, upper = (np.asarray(b) for b in task.prior.support)
    c2sts, outside, on, total, sample_s = [], 0, 0, 0, 0.0
    for i in (1, 2, 3):
        ref = task.reference(i)
        start = time.perf_counter()
        draws = est.sample(jr.key(10 + i + 100 * seed), {"x": ref.observation}, 10_000)["theta"]
        draws = np.asarray(jax.block_until_ready(draws))
        sample_s += time.perf_counter() - start
        counts = count_outside(draws, lower, upper)
        outside, on, total = outside + counts[0], on + counts[1], total + counts[2]
        c2sts.append(gs.diagnostics.c2st(ref.samples, draws))
    return est, train_s, sample_s, outside, on, total, {"c2st": c2sts}


def sird(bounded, seed):
    grid = np.linspace(0.0, 50.0, 20, dtype=np.float32)
    task = gs.tasks.SIRD(times=grid)
    key_theta, key_times, key_x = jr.split(jr.key(0), 3)
    theta = task.prior.sample(key_theta, 10_000)
    times = task.sample_times(key_times, 10_000, 10)
    x = task.simulator(key_x, theta, times)
    data = {"rates": theta[:, :2], "beta": gs.Series(theta[:, 2:], grid), "x": gs.Series(x, times)}
    lower, upper = (np.asarray(b) for b in task.prior.support)
    nodes = None
    if bounded:
        nodes = {"rates": gs.Node(bounds=(lower[:2], upper[:2])),
                 "beta": gs.Node(bounds=(lower[2:], upper[2:]))}
    model = gs.Simformer.for_data(data, key=jr.key(1 + 100 * seed), depth=2)
    start = time.perf_counter()
    est = gs.fit(
        jr.key(2 + 100 * seed), model, data, nodes=nodes, method=gs.FlowMatching(),
        condition_masks=gs.PosteriorMasks(parameters=("rates", "beta")),
        training=gs.Training(max_steps=3_000, batch_size=128), progress=False,
    )
    train_s = time.perf_counter() - start
    observed = observed_series(task)
    start = time.perf_counter()
    draws = est.sample(jr.key(6), {"x": observed}, 2_000, predict={"beta": grid})
    draws = np.concatenate([np.asarray(draws["rates"]), np.asarray(draws["beta"])], axis=-1)
    sample_s = time.perf_counter() - start
    return (est, train_s, sample_s, *count_outside(draws, lower, upper), {})


def lotka_volterra(bounded, seed):
    task = gs.tasks.LotkaVolterra()
    k_theta, k_times, k_x = jr.split(jr.key(0), 3)
    theta = task.prior.sample(k_theta, 10_000)
    times = task.sample_times(k_times, 10_000, 10)
    data = {"theta": theta, "x": gs.Series(task.simulator(k_x, theta, times), times)}
    nodes = {"theta": gs.Node(bounds=task.prior.support)} if bounded else None
    model = gs.Simformer.for_data(data, key=jr.key(1 + 100 * seed))
    start = time.perf_counter()
    est = gs.fit(
        jr.key(2 + 100 * seed), model, data, nodes=nodes,
        training=gs.Training(max_steps=3_000, batch_size=128), progress=False,
    )
    train_s = time.perf_counter() - start
    observed = observed_series(task)
    start = time.perf_counter()
    draws = np.asarray(est.sample(jr.key(6), {"x": observed}, 2_000)["theta"])
    sample_s = time.perf_counter() - start
    lower, upper = (np.asarray(b) for b in task.prior.support)
    return (est, train_s, sample_s, *count_outside(draws, lower, upper), {})


CASES = {"two_moons": two_moons, "sird": sird, "lotka_volterra": lotka_volterra}


def report():
    rows = {}
    for line in OUT.read_text().splitlines():
        row = json.loads(line)
        rows[(row["case"], row["bounds"], row.get("seed", 0))] = row
    print("| case | bounds | seed | steps | train s | draws | outside | on a bound | sample s "
          "| C2ST obs 1-3 (mean) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (case, bounds, seed), r in sorted(rows.items()):
        c2st = r.get("c2st")
        c2st = "-" if not c2st else (
            f"{' / '.join(f'{c:.3f}' for c in c2st)} ({np.mean(c2st):.3f})"
        )
        print(f"| {case} | {bounds} | {seed} | {r['steps']} | {r['train_s']:.0f} | {r['draws']:,} | "
              f"{r['outside']} ({r['outside'] / r['draws']:.2%}) | {r['on_bound']} | "
              f"{r['sample_s']:.0f} | {c2st} |")
    for bounds in ("off", "on"):
        c2sts = [r["c2st"] for (case, b, _), r in rows.items() if b == bounds and r.get("c2st")]
        if c2sts:
            seeds = np.mean(c2sts, axis=1)
            print(f"\nTwo moons, bounds {bounds}: C2ST mean over {len(c2sts)} seeds x 3 observations "
                  f"{np.mean(c2sts):.3f}; per-seed means {', '.join(f'{m:.3f}' for m in seeds)}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--bounds", choices=("on", "off"))
    parser.add_argument("--seed", type=int, default=0, help="keys of the model, fit and draws")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.report:
        return report()
    if args.case is None or args.bounds is None:
        parser.error("--case and --bounds are required (or --report)")
    est, train_s, sample_s, outside, on, total, extra = CASES[args.case](args.bounds == "on", args.seed)
    row = {
        "case": args.case, "bounds": args.bounds, "seed": args.seed, "date": time.strftime("%Y-%m-%d"),
        "steps": len(est.history.train_loss), "best_step": est.history.best_step, "train_s": train_s, "sample_s": sample_s,
        "draws": total, "outside": outside, "on_bound": on, **extra,
    }
    print(json.dumps(row))
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
