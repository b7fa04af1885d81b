"""Posterior sampling time against ``chunk_size``: does drawing in chunks cost or save time?

    python benchmarks/sample_chunks.py [--num-samples 10000] [--chunks 250 500 1000 2000 4000]
        [--repeats 3] [--out benchmarks/results/sample_chunks.md]

Two moons, ``gs.FlowMatching()`` with its default sampler (20 Heun steps, 40 network
evaluations per draw), ``--num-samples`` draws at sbibm's observation 1, all at once and in
chunks of each ``--chunks`` size; each setting is timed after a warm-up call (median of
``--repeats``). Two Simformers: our default one and a wider one (token width 200 instead of
50). The models are untrained: a fixed-step sampler's cost does not depend on the weights.

The table also gives each model's largest intermediate array per draw (read off the jaxpr of
one network evaluation), so that a chunk's working set can be read as ``chunk x bytes``.
"""

import argparse
import datetime
import shlex
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gensbi_eqx as gs
from gensbi_eqx._atomic import atomic_writer
from gensbi_eqx.benchmark._runner import machine_description
from gensbi_eqx.data import NodeLayout, Standardiser

HERE = Path(__file__).resolve().parent
MODELS = {
    "default Simformer": {},
    "wide Simformer (dim_value 80, dim_id 80, dim_condition 40, depth 4)": {
        "dim_value": 80, "dim_id": 80, "dim_condition": 40, "depth": 4
    },
}


def largest_intermediate_bytes(jaxpr) -> int:
    """Bytes of the largest array any equation (nested ones included) of ``jaxpr`` makes."""
    largest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            aval = var.aval
            if hasattr(aval, "shape"):
                largest = max(largest, int(np.prod(aval.shape)) * aval.dtype.itemsize)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds a Jaxpr
                if hasattr(inner, "eqns"):
                    largest = max(largest, largest_intermediate_bytes(inner))
    return largest


def median_seconds(est, x_o, num_samples: int, chunk_size: int | None, repeats: int) -> float:
    """Median time of ``est.sample`` at ``x_o`` after a warm-up call that compiles it."""

    def draw():
        return est.sample(jr.key(3), {"x": x_o}, num_samples, chunk_size=chunk_size)["theta"]

    jax.block_until_ready(draw())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(draw())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--chunks", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sample_chunks.md")
    args = parser.parse_args()

    theta, x = gs.tasks.TwoMoons().simulate(jr.key(0), 1_000)
    data = {"theta": theta, "x": x}
    layout = NodeLayout.from_data(data)
    x_o = jnp.asarray(gs.tasks.load_reference("two_moons", 1).observation).reshape(-1)
    command = "python benchmarks/sample_chunks.py " + shlex.join(sys.argv[1:])
    lines = [
        (f"# Sampling time against `chunk_size` ({args.num_samples:,} draws, flow matching's "
         "default sampler)"),
        "",
        f"Measured {datetime.date.today()} on {machine_description()}, jax {jax.__version__}:",
        f"`{command.strip()}` (median of {args.repeats} after a warm-up call)",
        "",
    ]
    for name, hyperparameters in MODELS.items():
        model = gs.Simformer.for_data(data, key=jr.key(1), **hyperparameters)
        est = gs.Estimator(model, gs.FlowMatching(), layout, Standardiser.identity(4))
        mask = jnp.asarray([False, False, True, True])
        jaxpr = jax.make_jaxpr(model)(jnp.asarray(0.5), jnp.zeros(4), mask)
        per_draw = largest_intermediate_bytes(jaxpr.jaxpr)
        lines += [
            (f"## {name}: {est.num_parameters:,} parameters, largest intermediate "
             f"{per_draw:,} bytes per draw"),
            "",
            "| chunk_size | seconds | vs all at once | largest intermediate per chunk |",
            "|---|---|---|---|",
        ]
        whole = None
        for chunk in [None, *args.chunks]:
            seconds = median_seconds(est, x_o, args.num_samples, chunk, args.repeats)
            whole = seconds if chunk is None else whole
            size = args.num_samples if chunk is None else min(chunk, args.num_samples)
            lines.append(
                f"| {'all at once' if chunk is None else chunk} | {seconds:.2f} | "
                f"{seconds / whole:.2f}x | {size * per_draw / 2**20:.1f} MiB |"
            )
            print(lines[-1], flush=True)
        lines.append("")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(args.out) as f:
        f.write(text.encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
