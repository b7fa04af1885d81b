"""Sampler defaults by measurement: the fewest network evaluations per method that keep the
accuracy of the 500-step reverse SDE.

    # exact Gaussian denoiser: mean and variance errors of each sampler on narrow conditionals
    python benchmarks/sampler_study.py gaussian --methods ve edm fm vp
    # trained models: C2ST of each sampler against sbibm references (models cached on disk)
    python benchmarks/sampler_study.py trained --task two_moons --methods edm --seeds 1 2 \
        --observations 1 2 3

``gaussian``: a 4-D Gaussian joint (two parameters, two data; correlations 0.9) with the exact
denoiser of `tests/gaussian_oracle.py`; each sampler draws ``--num-samples`` from the posterior
given the data (posterior standard deviations 0.1 and 0.3 in standardised units, the narrow case
where a sampler's variance error shows) and we report the mean error in posterior standard
deviations and the variance ratio, per parameter. C2ST alone barely sees a 10-30% variance error.

``trained``: the library's default Simformer trained with ``gs.fit`` (the method's defaults,
``--max-steps``) once per seed and cached under ``benchmarks/.cache/``; then 10,000 posterior
draws per observation with each sampler, C2ST (`c2st_jax`) against the reference, and the
draw time. Results append to ``benchmarks/results/sampler_study.jsonl``; ``report`` writes
``sampler_study.md``.
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gensbi_eqx as gs
from gensbi_eqx._atomic import atomic_writer
from gensbi_eqx.samplers._base import initial_state

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from gaussian_oracle import (  # noqa: E402
    NARROW_COV,
    NARROW_MASK,
    NARROW_MEAN,
    NARROW_Y,
    GaussianDenoiser,
    gaussian_conditional,
)

RESULTS = Path(__file__).parent / "results"
CACHE = Path(__file__).parent / ".cache"
METHODS = {"ve": gs.VESDE, "vp": gs.VPSDE, "fm": gs.FlowMatching, "edm": gs.EDM}
TASKS = {
    "two_moons": gs.tasks.TwoMoons,
    "gaussian_mixture": gs.tasks.GaussianMixture,
    "slcp": gs.tasks.SLCP,
}


class Ancestral(gs.samplers.AbstractSampler):
    """A candidate not adopted: ancestral sampling (DDPM's reverse step, DDIM with eta = 1) on
    the method's path at ``t_i = linspace(1, t_min, steps + 1)``: each step draws ``y_s`` from
    ``q(y_s | y_t, x0 = x0_hat)``, ``y_s = alpha_s x0_hat + sigma_s (k eps_hat + sqrt(1 - k^2)
    z)`` with ``k = alpha_t sigma_s / (alpha_s sigma_t)``. Using the point estimate ``x0_hat``
    drops ``Var[x0 | y_t]`` from every step, so the draws are too narrow unless the steps are
    small (the exact-Gaussian rows)."""

    steps: int = eqx.field(static=True)

    @property
    def evaluations(self) -> int:
        return self.steps

    def __call__(self, key, denoiser, y_cond, condition_mask):
        method = denoiser.method
        times = jnp.linspace(1.0, method.t_min, self.steps + 1)
        k_init, k_steps = jr.split(key)

        def step(y, inputs):
            t, s, step_key = inputs
            x0_hat, eps_hat = denoiser(t, y, condition_mask)
            alpha_t, sigma_t = method.alpha_sigma(t)
            alpha_s, sigma_s = method.alpha_sigma(s)
            kept = jnp.clip((alpha_t * sigma_s) / (alpha_s * sigma_t), 0.0, 1.0)
            noise = kept * eps_hat + jnp.sqrt(1.0 - kept**2) * jr.normal(step_key, y.shape)
            return jnp.where(condition_mask, y, alpha_s * x0_hat + sigma_s * noise), None

        y = initial_state(k_init, denoiser, y_cond, condition_mask)
        y, _ = jax.lax.scan(step, y, (times[:-1], times[1:], jr.split(k_steps, self.steps)))
        return jnp.where(condition_mask, y_cond, y)


def candidates(method: str) -> list[str]:
    """Sampler specs tried for a method (`sampler_of`); the SDE-500 reference comes first."""
    odes = [f"heun:{k}" for k in (5, 8, 10, 15, 20, 30)]
    ancestral = [f"anc:{k}" for k in (10, 20, 30, 50, 100)]
    if method == "fm":
        return ["tsit5:1e-5"] + odes + ancestral
    sdes = ["sde:500", "sde:50", "sde:100", "sde:200"]
    if method == "edm":
        return sdes + [f"edm:{k}" for k in (6, 8, 10, 12, 18, 32, 50)] + odes + ancestral
    return sdes + odes + ancestral


def sampler_of(spec: str):
    kind, value = spec.split(":")
    if kind == "heun":
        return gs.ODE(diffrax.Heun(), steps=int(value))
    if kind == "sde":
        return gs.SDE(steps=int(value))
    if kind == "edm":
        return gs.EDMSampler(steps=int(value))
    if kind == "anc":
        return Ancestral(steps=int(value))
    if kind == "tsit5":
        return gs.ODE(rtol=float(value), atol=float(value))
    raise SystemExit(f"unknown sampler {spec!r}")


def gaussian(args) -> None:
    # theta (2) and x (2): the narrow posterior of `gaussian_oracle` (sds 0.1 and 0.3).
    post_mean, post_cov = gaussian_conditional(NARROW_MEAN, NARROW_COV, NARROW_MASK, NARROW_Y)
    post_var = np.diag(post_cov)
    mask, y_cond = jnp.asarray(NARROW_MASK), jnp.asarray(NARROW_Y)
    lines = []
    for name in args.methods:
        method = METHODS[name]()
        denoiser = GaussianDenoiser(jnp.asarray(NARROW_MEAN), jnp.asarray(NARROW_COV), method)
        for spec in args.samplers or candidates(name):
            sampler = sampler_of(spec)
            draw = jax.jit(jax.vmap(lambda k: sampler(k, denoiser, y_cond, mask)))
            z = np.asarray(draw(jr.split(jr.key(0), args.num_samples)))[:, :2]
            mean_error = (z.mean(0) - post_mean) / np.sqrt(post_var)
            variance_ratio = z.var(0) / post_var
            row = dict(kind="gaussian", method=name, sampler=spec,
                       evaluations=sampler.evaluations, num_samples=args.num_samples,
                       mean_error=mean_error.tolist(), variance_ratio=variance_ratio.tolist(),
                       date=str(datetime.date.today()))
            lines.append(row)
            print(json.dumps(row), flush=True)
    with open(RESULTS / "sampler_study.jsonl", "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in lines)


def trained_estimator(task: str, method: str, seed: int, simulations: int, max_steps: int):
    path = CACHE / f"{task}_{method}_{simulations}_{max_steps}_{seed}.eqx"
    if path.exists():
        return gs.load(path)
    theta, x = TASKS[task]().simulate(jr.key(seed), simulations)
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(seed + 1))
    est = gs.fit(jr.key(seed + 2), model, data, method=METHODS[method](),
                 training=gs.Training(max_steps=max_steps), progress=False)
    CACHE.mkdir(exist_ok=True)
    gs.save(path, est)
    return est


def trained(args) -> None:
    for name in args.methods:
        for seed in args.seeds:
            est = trained_estimator(args.task, name, seed, args.simulations, args.max_steps)
            for spec in args.samplers or candidates(name):
                sampler = sampler_of(spec)
                for j, i in enumerate(args.observations):
                    reference = gs.tasks.load_reference(args.task, i)
                    x_o = jnp.asarray(reference.observation).reshape(-1)
                    draw = lambda k: jax.block_until_ready(est.sample(
                        jr.key(k), {"x": x_o}, args.num_samples, sampler=sampler)["theta"])
                    if j == 0:
                        draw(0)  # compile; other observations reuse the compiled sampler
                    start = time.perf_counter()
                    samples = np.asarray(draw(seed + 10 * i))
                    seconds = time.perf_counter() - start
                    c2st = float(gs.diagnostics.c2st_jax(samples, np.asarray(reference.samples)))
                    row = dict(kind="trained", task=args.task, method=name, seed=seed,
                               observation=i, sampler=spec, evaluations=sampler.evaluations,
                               c2st=c2st, seconds=seconds, max_steps=args.max_steps,
                               simulations=args.simulations, date=str(datetime.date.today()))
                    with open(RESULTS / "sampler_study.jsonl", "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)


def report(args) -> None:
    rows = [json.loads(line) for line in open(RESULTS / "sampler_study.jsonl")]
    dates = sorted({r["date"] for r in rows})
    lines = [
        "# Sampler study",
        "",
        f"`python benchmarks/sampler_study.py gaussian|trained ...`, {dates[0]} to {dates[-1]}, "
        "this project's 2-core x86_64 CPU machine (no GPU), jax on the CPU. Draw times are "
        "wall-clock on a machine shared with other jobs: compare them as ratios in one row group.",
        "",
        "Samplers: `sde:N` Euler-Maruyama on the reverse SDE (`gs.SDE(steps=N)`), `heun:N` the "
        "probability-flow ODE by Heun (`gs.ODE(diffrax.Heun(), steps=N)`, 2N evaluations), "
        "`tsit5:tol` adaptive Tsit5, `edm:N` `gs.EDMSampler(steps=N)` (2N - 1 evaluations), "
        "`anc:N` ancestral sampling (DDPM's reverse step; a candidate not adopted, defined in "
        "the script).",
        "",
        "## Exact Gaussian denoiser (narrow posterior)",
        "",
        "10,000 draws per sampler from the posterior of a 4-D Gaussian joint with posterior sds "
        "0.1 and 0.3 (standardised units). Mean error in posterior sds (standard error 0.01) and "
        "variance ratio sampled / exact (standard error 0.014), per parameter.",
        "",
        "| method | sampler | NFE | mean error (sd) | variance ratio |",
        "|---|---|---|---|---|",
    ]
    gaussian = [r for r in rows if r["kind"] == "gaussian"]
    gaussian.sort(key=lambda r: (r["method"], r["sampler"].split(":")[0], r["evaluations"] or 0))
    for r in gaussian:
        lines.append(
            f"| {r['method']} | {r['sampler']} | {r['evaluations'] or 'adaptive'} | "
            + ", ".join(f"{v:+.3f}" for v in r["mean_error"]) + " | "
            + ", ".join(f"{v:.3f}" for v in r["variance_ratio"]) + " |"
        )
    lines += [
        "",
        "## Trained models: C2ST",
        "",
        "The default Simformer trained by `gs.fit` (the method's defaults, `max_steps` below), "
        "10,000 draws per sbibm observation, C2ST by `c2st_jax` against the reference. Spread: "
        "the sd over observations (one seed) or of the per-seed means (several).",
        "",
        "| task | method | steps | sampler | NFE | C2ST per observation | mean | spread | "
        "draw time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups = {}
    for r in rows:
        if r["kind"] == "trained":
            key = (r["task"], r["method"], r["max_steps"], r["sampler"])
            groups.setdefault(key, []).append(r)
    for (task, method, steps, spec), group in groups.items():
        per_seed = {}
        for r in group:
            per_seed.setdefault(r["seed"], []).append(r["c2st"])
        means = [np.mean(v) for v in per_seed.values()]
        spread = np.std(means) if len(means) > 1 else np.std([r["c2st"] for r in group])
        by_obs = ", ".join(f"{r['c2st']:.3f}" for r in sorted(group, key=lambda r: r["observation"]))
        lines.append(
            f"| {task} | {method} | {steps} | {spec} | {group[0]['evaluations'] or 'adaptive'} | "
            f"{by_obs} | {np.mean(means):.3f} | {spread:.3f} | "
            f"{np.median([r['seconds'] for r in group]):.1f} |"
        )
    with atomic_writer(RESULTS / "sampler_study.md") as f:
        f.write(("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["gaussian", "trained", "report"])
    parser.add_argument("--task", default="two_moons", choices=sorted(TASKS))
    parser.add_argument("--methods", nargs="+", default=["edm"], choices=sorted(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--observations", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--max-steps", type=int, default=4000)
    parser.add_argument("--samplers", nargs="+", default=None,
                        help="sampler specs to try (default: every candidate of the method)")
    parser.add_argument("--num-samples", type=int, default=10_000)
    args = parser.parse_args()
    {"gaussian": gaussian, "trained": trained, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
