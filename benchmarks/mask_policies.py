"""All-conditional accuracy of the Simformer per attention-mask policy, on Tree and HMM.

    python benchmarks/mask_policies.py [--tasks tree hmm] [--policies dense undirected directed]
        [--simulations 10000] [--max-steps 10000] [--conditionals 10] [--num-samples 10000] [--sampler sde] [--steps 500]
        [--classifier jax]
        [--references DIR] [--references-only] [--out benchmarks/results/mask_policies]

For each task: draw ``--conditionals`` random conditionals from the joint (a random subset of
the scalars observed, at least one observed and one latent), draw MCMC reference samples of
each (numpyro NUTS, cached as ``.npz`` under ``--references``), then for each policy train the
default Simformer (VE) with the task's dependencies on ``--simulations`` simulations, sample
every conditional in one batched call, and score the latent entries by C2ST against the
references. Rows (one per conditional) go to ``OUT.csv``; ``OUT.md`` is rebuilt from it with
the mean and standard deviation per (task, policy, simulations), beside the Simformer paper's
numbers at 1e4 simulations (Tree dense .563 / undirected .541, HMM dense .566 / undirected
.541; random-forest C2ST).

``--references-only`` computes the references and stops, e.g. on a CPU with
``JAX_PLATFORMS=cpu`` before training elsewhere.
"""

import argparse
import csv
import dataclasses
import datetime
import io
import statistics
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gensbi_eqx as gs
from gensbi_eqx._atomic import atomic_writer
from gensbi_eqx.benchmark._runner import machine_description
from gensbi_eqx.tasks import HMM, Tree, conditional_reference, random_conditionals

TASKS = {"tree": Tree, "hmm": HMM}
# Each policy from the task's dependencies.
POLICIES = {
    "dense": lambda deps: gs.DenseAttention(),
    "undirected": gs.UndirectedAttention,
    "directed": gs.DirectedAttention,
}
# The samplers by their names in the table (and on the command line).
SAMPLER_NAMES = {gs.SDE: "sde", gs.ODE: "ode", gs.EDMSampler: "edm"}
CLASSIFIERS = ("jax", "sklearn")
PAPER = {("tree", "dense"): 0.563, ("tree", "undirected"): 0.541,
         ("hmm", "dense"): 0.566, ("hmm", "undirected"): 0.541}
COLUMNS = (
    "date", "task", "policy", "simulations", "conditional", "num_observed", "c2st", "classifier",
    "train_seconds", "train_steps", "sampler", "steps", "sample_seconds", "num_samples", "seed", "machine",
)


def references(task, name: str, args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, condition_masks, samples)``: ``(K, d)``, ``(K, d)``, ``(K, num_samples, d)``,
    read from the cache when it holds the same setting."""
    path = Path(args.references) / (
        f"{name}_k{args.conditionals}_n{args.reference_samples}_seed{args.seed}.npz"
    )
    if path.is_file():
        with np.load(path) as cached:
            return cached["values"], cached["condition_masks"], cached["samples"]
    values, masks = random_conditionals(jr.key(args.seed), task, args.conditionals)
    samples = []
    for i in range(args.conditionals):
        start = time.perf_counter()
        samples.append(
            np.asarray(
                conditional_reference(
                    jr.fold_in(jr.key(args.seed + 1), i), task, values[i], masks[i],
                    args.reference_samples,
                )
            )
        )
        print(f"{name}: reference {i + 1}/{args.conditionals} in {time.perf_counter() - start:.0f} s",
              flush=True)
    values, masks, samples = np.asarray(values), np.asarray(masks), np.stack(samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as f:
        np.savez_compressed(f, values=values, condition_masks=masks, samples=samples)
    return values, masks, samples


def make_sampler(name: str | None, steps: int | None, method) -> gs.samplers.AbstractSampler:
    """``--sampler``/``--steps`` as a sampler: ``ode`` with steps is fixed-step Heun, without
    them adaptive Tsit5; no ``--sampler`` is the method's default (with ``--steps`` if given)."""
    if name is None:
        sampler = gs.samplers.default_sampler(method)
        return sampler if steps is None else dataclasses.replace(sampler, steps=steps)
    if name == "sde":
        return gs.SDE() if steps is None else gs.SDE(steps=steps)
    if name == "edm":
        return gs.EDMSampler() if steps is None else gs.EDMSampler(steps=steps)
    return gs.ODE() if steps is None else gs.ODE(diffrax.Heun(), steps=steps)


def evaluate(task, name: str, policy: str, refs, args) -> list[dict]:
    values, masks, reference = refs
    theta, x = task.simulate(jr.key(args.seed + 2), args.simulations)
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(args.seed + 3))
    method = gs.VESDE()
    est = gs.fit(
        jr.key(args.seed + 4), model, data, method=method,
        attention=POLICIES[policy](task.dependencies),
        training=gs.Training(max_steps=args.max_steps), progress=not args.no_progress,
    )
    sampler = make_sampler(args.sampler, args.steps, method)
    given = np.where(masks, values, np.nan)
    d_theta = task.dim_theta
    condition = {"theta": given[:, :d_theta], "x": given[:, d_theta:]}
    start = time.perf_counter()
    out = est.sample(jr.key(args.seed + 5), condition, args.num_samples, sampler=sampler)
    out = {k: jax.block_until_ready(v) for k, v in out.items()}
    sample_seconds = time.perf_counter() - start
    # Nodes observed in every conditional are not returned; they are the given values.
    full = np.concatenate(
        [np.asarray(out.get(n, np.broadcast_to(condition[n], (args.num_samples,) + condition[n].shape)))
         for n in ("theta", "x")],
        axis=-1,
    )
    rows = []
    for i in range(args.conditionals):
        latent = ~masks[i]
        # Reference rows are shuffled, so the first ones are a fair subsample.
        p, q = reference[i][: args.num_samples, latent], full[:, i][:, latent]
        if args.classifier == "jax":
            score = gs.diagnostics.c2st_jax(jnp.asarray(p), jnp.asarray(q), key=jr.key(args.seed))
        else:
            score = gs.diagnostics.c2st(p, q, seed=args.seed)
        rows.append({
            "date": datetime.date.today().isoformat(), "task": name, "policy": policy,
            "simulations": args.simulations, "conditional": i + 1,
            "num_observed": int(masks[i].sum()), "c2st": f"{float(score):.4f}",
            "classifier": args.classifier, "train_seconds": f"{est.history.seconds:.1f}",
            "train_steps": len(est.history.train_loss),
            "sampler": SAMPLER_NAMES[type(sampler)],
            "steps": "" if sampler.steps is None else sampler.steps,
            "sample_seconds": f"{sample_seconds:.1f}", "num_samples": args.num_samples,
            "seed": args.seed, "machine": machine_description(),
        })
    print(f"{name} {policy}: C2ST {statistics.mean(float(r['c2st']) for r in rows):.3f}", flush=True)
    return rows


def write(out: Path, rows: list[dict]) -> None:
    csv_path = out.with_suffix(".csv")
    table = []
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            table = list(csv.DictReader(f))
    table += rows
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(table)
    with atomic_writer(csv_path) as f:
        f.write(buffer.getvalue().encode())
    groups = {}
    for row in table:
        groups.setdefault((row["task"], row["policy"], row["simulations"], row["train_steps"],
                           row["sampler"], row["steps"], row["num_samples"], row["classifier"],
                           row["machine"]), []).append(row)
    lines = [
        "| task | policy | simulations | train steps | sampler | samples | C2ST mean (sd) | "
        "conditionals | paper (RF C2ST) | train s | sample s | classifier | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, policy, sims, train_steps, sampler, steps, num_samples, classifier, machine), group in sorted(groups.items()):
        scores = [float(r["c2st"]) for r in group]
        paper = PAPER.get((task, policy)) if str(sims) == "10000" else None
        lines.append(
            f"| {task} | {policy} | {sims} | {train_steps} | {sampler} {steps} | {num_samples} | "
            f"{statistics.mean(scores):.3f} "
            f"({statistics.pstdev(scores):.3f}) | {len(scores)} | "
            f"{'' if paper is None else f'{paper:.3f}'} | {group[-1]['train_seconds']} | "
            f"{group[-1]['sample_seconds']} | {classifier} | {machine} |"
        )
    with atomic_writer(out.with_suffix(".md")) as f:
        f.write(("\n".join(lines) + "\n").encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--max-steps", type=int, default=10_000)
    parser.add_argument("--conditionals", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--reference-samples", type=int, default=10_000)
    parser.add_argument("--sampler", default=None, choices=list(SAMPLER_NAMES.values()),
                        help="default: the method's; ode with --steps is Heun, without adaptive")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--classifier", default="jax", choices=CLASSIFIERS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--references", default="benchmarks/results/references")
    parser.add_argument("--references-only", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/mask_policies")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    for name in args.tasks:
        task = TASKS[name]()
        refs = references(task, name, args)
        if args.references_only:
            continue
        for policy in args.policies:
            write(Path(args.out), evaluate(task, name, policy, refs, args))


if __name__ == "__main__":
    main()
