"""The posterior given n i.i.d. trials, composed from a trained single-trial model.

    python benchmarks/iid_trials.py [--trials 1 5 20 100] [--num-samples 500] [--steps 200]

A Simformer is trained once with `gs.fit` defaults (VE, 10,000 simulations of GaussianLinear
with ``dim = 2``; cached in benchmarks/.cache). For each n, three parameter draws from the
prior are observed n times, and ``est.sample(key, {"x": gs.Trials(X, prior=task.prior)}, ...)``
draws the posterior with the default correction (`gs.sampling.GaussCorrection()`, which hands
over to the composed posterior's Gaussian fit at high noise; ``--handover``), the same
composing at every noise level (``handover=None``), the Jacobian correction and the naive sum
of scores, with the reverse SDE of ``--steps`` steps.
The exact posterior is Gaussian: precision ``(1 + n) / 0.1``, mean ``sum(x) / (1 + n)``.
Reported per observation: the mean's largest error in posterior sds, the ratio of sds, and the
wall time per call (it grows linearly in n: one network call per trial and step, plus the
Gaussian correction's single-trial draws, or the Jacobian correction's Jacobian per trial and
step).

``--task two_moons``: the same with the two-moons model trained by `gs.fit` defaults (cached),
n = 10 trials of three prior draws, against a reference from the exact likelihood (the tall
posterior on a 2001 x 2001 grid over the prior box, cells drawn by mass and jittered within
them); C2ST (sbibm's) of 1,000 draws against as many reference draws (older rows, those
without a ``handover`` field, compared 10,000 reference draws with 1,000: their C2ST of 0.909 =
10/11 is the majority class, not a measurement). The prior is the task's (uniform), which the
composition reads through its mean and covariance.

Rows go to benchmarks/results/iid_trials.jsonl.
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
CORRECTIONS = {
    "gauss": gs.sampling.GaussCorrection(),  # hands over to the Gaussian fit at high noise
    "gauss_everywhere": gs.sampling.GaussCorrection(handover=None),  # composes at every noise
    "jacobian": gs.sampling.JacobianCorrection(),
    "none": gs.sampling.NoCorrection(),
}


def trained(task):
    if CACHE.exists():
        return gs.load(CACHE)
    theta, x = task.simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    est = gs.fit(jr.key(2), gs.Simformer.for_data(data, key=jr.key(1)), data, progress=False)
    CACHE.parent.mkdir(exist_ok=True)
    gs.save(CACHE, est)
    return est


def two_moons_log_likelihood(theta, x):
    """``log p(x | theta)`` of sbibm's two moons, ``theta (..., 2)``, ``x (2,)``."""
    offset = np.stack([-np.abs(theta[..., 0] + theta[..., 1]) / np.sqrt(2),
                       (-theta[..., 0] + theta[..., 1]) / np.sqrt(2)], -1)
    u = x - offset - np.array([0.25, 0.0])
    r = np.hypot(u[..., 0], u[..., 1])
    # a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2); polar coordinates add 1 / r.
    log_p = -0.5 * ((r - 0.1) / 0.01) ** 2 - np.log(0.01 * np.sqrt(2 * np.pi)) - np.log(np.pi * r)
    return np.where(u[..., 0] > 0, log_p, -np.inf)


def two_moons_reference(xs, num, rng):
    """``num`` draws of the posterior given the trials ``xs (n, 2)``, from a grid."""
    grid = np.linspace(-1.0, 1.0, 2001)
    theta = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1)
    log_post = sum(two_moons_log_likelihood(theta, x) for x in xs)
    weights = np.exp(log_post - log_post.max()).ravel()
    cells = rng.choice(weights.size, num, p=weights / weights.sum())
    step = grid[1] - grid[0]
    return theta.reshape(-1, 2)[cells] + rng.uniform(-step / 2, step / 2, (num, 2))


def two_moons(args):
    task = gs.tasks.TwoMoons()
    path = HERE / ".cache" / "two_moons_ve_10000_4000_1.eqx"
    if path.exists():
        est = gs.load(path)
    else:
        theta, x = task.simulate(jr.key(0), 10_000)
        data = {"theta": theta, "x": x}
        est = gs.fit(jr.key(2), gs.Simformer.for_data(data, key=jr.key(1)), data, progress=False)
        gs.save(path, est)
    sampler = gs.SDE(steps=args.steps)
    rng = np.random.default_rng(0)
    n = 10
    theta = np.asarray(task.prior.sample(jr.key(7), 3))
    xs = np.stack([np.asarray(task.simulator(jr.key(70 + i), np.repeat(t[None], n, 0)))
                   for i, t in enumerate(theta)])
    references = [two_moons_reference(x, 10_000, rng) for x in xs]
    for correction in args.corrections or ("gauss", "gauss_everywhere", "none"):
        query = {"x": gs.Trials(xs, prior=task.prior, correction=CORRECTIONS[correction])}
        start = time.perf_counter()
        draws = np.asarray(est.sample(jr.key(1), query, 1_000, sampler=sampler)["theta"])
        seconds = time.perf_counter() - start
        finite = np.isfinite(draws).all(-1)
        # As many reference draws as finite draws: with unequal sets chance is not 0.5.
        c2sts = [gs.diagnostics.c2st(ref[: finite[:, i].sum()], draws[finite[:, i], i])
                 for i, ref in enumerate(references)]
        row = {"task": "two_moons", "n": n, "correction": correction, "handover": args.handover,
               "date": time.strftime("%Y-%m-%d"), "num_samples": 1_000, "steps": args.steps,
               "seconds": seconds, "c2st": c2sts, "finite": float(finite.mean())}
        print(json.dumps(row), flush=True)
        with open(OUT, "a") as f:
            f.write(json.dumps(row) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 5, 20, 100])
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--jacobian-up-to", type=int, default=5)
    parser.add_argument("--corrections", nargs="+", choices=sorted(CORRECTIONS), default=None)
    parser.add_argument("--handover", type=float, default=1.0, help="GaussCorrection(handover=)")
    parser.add_argument("--task", choices=("gaussian_linear", "two_moons"), default="gaussian_linear")
    args = parser.parse_args()
    CORRECTIONS["gauss"] = gs.sampling.GaussCorrection(handover=args.handover)
    if args.task == "two_moons":
        return two_moons(args)
    task = gs.tasks.GaussianLinear(dim=2)
    est = trained(task)
    sampler = gs.SDE(steps=args.steps)
    for n in args.trials:
        theta = np.asarray(task.prior.sample(jr.key(n), 3))
        xs = np.stack([np.asarray(task.simulator(jr.key(100 * n + i), np.repeat(t[None], n, 0)))
                       for i, t in enumerate(theta)])  # (3, n, 2)
        mean = xs.sum(1) / (1 + n)
        sd = np.sqrt(0.1 / (1 + n))
        for correction in args.corrections or CORRECTIONS:
            if correction == "jacobian" and n > args.jacobian_up_to:
                continue  # a Jacobian per trial and step: slow, and unstable already at n = 5
            query = {"x": gs.Trials(xs, prior=task.prior, correction=CORRECTIONS[correction])}
            est.sample(jr.key(0), query, args.num_samples, sampler=sampler)  # compile
            start = time.perf_counter()
            draws = est.sample(jr.key(1), query, args.num_samples, sampler=sampler)["theta"]
            draws = np.asarray(jax.block_until_ready(draws))  # (S, 3, 2)
            seconds = time.perf_counter() - start
            error = (draws.mean(0) - mean) / sd  # (3, 2): per observation and entry
            ratio = draws.std(0, ddof=1) / sd
            row = {
                "task": "gaussian_linear", "n": n, "correction": correction,
                "handover": args.handover, "date": time.strftime("%Y-%m-%d"),
                "num_samples": args.num_samples, "steps": args.steps, "seconds": seconds,
                "mean_error_sd": np.round(np.abs(error).max(1), 3).tolist(),
                "sd_ratio": np.round(ratio, 3).tolist(),
                "finite": bool(np.isfinite(draws).all()),
            }
            print(json.dumps(row), flush=True)
            OUT.parent.mkdir(exist_ok=True)
            with open(OUT, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
