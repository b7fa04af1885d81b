"""The posterior given n i.i.d. trials, composed from a trained single-trial model.

    python benchmarks/iid_trials.py [--trials 1 5 20 100] [--num-samples 500] [--steps 200]

A Simformer is trained once with `gs.fit` defaults (VE, 10,000 simulations of GaussianLinear
with ``dim = 2``; cached in benchmarks/.cache). For each n, three parameter draws from the
prior are observed n times, and ``est.sample(key, {"x": gs.Trials(X, prior=task.prior)}, ...)``
draws the posterior with the default correction and with the naive sum of scores, with the
reverse SDE of ``--steps`` steps. The exact posterior is Gaussian: precision ``(1 + n) / 0.1``,
mean ``sum(x) / (1 + n)``. Reported: the mean's error in posterior sds, the ratio of sds, and
the wall time per call (its cost grows linearly in n: one network call and, corrected, one
Jacobian per trial and step). Rows go to benchmarks/results/iid_trials.jsonl.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np

import gensbi_eqx as gs

HERE = Path(__file__).parent
CACHE = HERE / ".cache" / "iid_gaussian_linear_2.eqx"
OUT = HERE / "results" / "iid_trials.jsonl"


def trained(task):
    if CACHE.exists():
        return gs.load(CACHE)
    theta, x = task.simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    est = gs.fit(jr.key(2), gs.Simformer.for_data(data, key=jr.key(1)), data, progress=False)
    CACHE.parent.mkdir(exist_ok=True)
    gs.save(CACHE, est)
    return est


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 5, 20, 100])
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    task = gs.tasks.GaussianLinear(dim=2)
    est = trained(task)
    sampler = gs.SDE(steps=args.steps)
    for n in args.trials:
        theta = np.asarray(task.prior.sample(jr.key(n), 3))
        xs = np.stack([np.asarray(task.simulator(jr.key(100 * n + i), np.repeat(t[None], n, 0)))
                       for i, t in enumerate(theta)])  # (3, n, 2)
        mean = xs.sum(1) / (1 + n)
        sd = np.sqrt(0.1 / (1 + n))
        for corrected in (True, False):
            query = {"x": gs.Trials(xs, prior=task.prior, corrected=corrected)}
            est.sample(jr.key(0), query, args.num_samples, sampler=sampler)  # compile
            start = time.perf_counter()
            draws = est.sample(jr.key(1), query, args.num_samples, sampler=sampler)["theta"]
            draws = np.asarray(jax.block_until_ready(draws))  # (S, 3, 2)
            seconds = time.perf_counter() - start
            error = (draws.mean(0) - mean) / sd
            ratio = draws.std(0, ddof=1) / sd
            row = {
                "n": n, "corrected": corrected, "date": time.strftime("%Y-%m-%d"),
                "num_samples": args.num_samples, "steps": args.steps, "seconds": seconds,
                "max_mean_error_sd": float(np.abs(error).max()),
                "sd_ratio_min": float(ratio.min()), "sd_ratio_max": float(ratio.max()),
                "finite": bool(np.isfinite(draws).all()),
            }
            print(json.dumps(row), flush=True)
            OUT.parent.mkdir(exist_ok=True)
            with open(OUT, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
