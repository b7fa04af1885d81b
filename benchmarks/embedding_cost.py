"""Train-step time of a Simformer on a 1,000-point series: one token per number against an
embedding network's summaries.

    python benchmarks/embedding_cost.py [--points 1000] [--batch-sizes 16 256] [--steps 5]
        [--out benchmarks/results/embedding_cost.md]

The data of examples/embedding_series.py (``theta`` 2 numbers, ``x`` a noisy series of
``--points``). Two models with the default Simformer widths: ``raw`` (one token per number,
``points + 2`` tokens) and ``embedded`` (``gs.embeddings.SeriesEmbedding(points, 8)``: 10
tokens). The steps are the ones `fit` runs (``make_fused_train_steps`` with ``gs.VESDE()``,
the default ``StructuredMasks`` with the embedded node always observed, ``default_optimizer``),
``--steps`` fused into one call, timed after one warm-up call (compilation) as the median of
three calls, with ``block_until_ready``, divided by ``--steps``. The raw model's attention is quadratic in the tokens, so its batch is
kept small; the table gives ms per step and per example at each batch size.
"""

import argparse
import datetime
import statistics
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import gensbi_eqx as gs
from gensbi_eqx._atomic import atomic_writer
from gensbi_eqx.benchmark._runner import machine_description
from gensbi_eqx.data import NodeLayout, Standardiser
from gensbi_eqx.training import (
    ObservedAlways,
    StructuredMasks,
    default_optimizer,
    make_fused_train_steps,
)

HERE = Path(__file__).resolve().parent


def series_data(points: int, n: int = 2_000):
    k_theta, k_noise = jr.split(jr.key(0))
    theta = jr.uniform(k_theta, (n, 2), minval=jnp.array([0.5, 1.0]), maxval=jnp.array([2.0, 3.0]))
    times = jnp.arange(points) / points
    x = theta[:, :1] * jnp.sin(2 * jnp.pi * theta[:, 1:] * times) + 4.0 * jr.normal(k_noise, (n, points))
    return {"theta": theta, "x": x}


def step_seconds(model, data, batch_size: int, steps: int) -> float:
    layout = NodeLayout.from_data(data)
    x = layout.flatten(data)
    x = Standardiser.fit(x)(x)
    masks = StructuredMasks().bind(layout)
    if model.observed_always is not None:
        masks = ObservedAlways(masks, model.observed_always)
    optimizer = default_optimizer(10_000)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    run = make_fused_train_steps(gs.VESDE(), masks, optimizer, batch_size, layout.num_scalars,
                                 steps)
    state = (model, model, opt_state)
    times = []
    for i in range(4):
        start = time.perf_counter()
        model_i, ema, opt_state_i, _ = jax.block_until_ready(
            run(x, *state, jr.key(i), jnp.asarray(i * steps), jnp.asarray(steps),
                jnp.asarray(1.0))
        )
        state = (model_i, ema, opt_state_i)
        if i:  # the first call compiles
            times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--raw-max-batch", type=int, default=16,
                        help="largest batch the raw-token model is timed at (it is slow)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed call")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "embedding_cost.md")
    args = parser.parse_args()
    data = series_data(args.points)
    models = {
        "raw": lambda: gs.Simformer.for_data(data, key=jr.key(1)),
        "embedded": lambda: gs.Simformer.for_data(
            data, embeddings={"x": gs.embeddings.SeriesEmbedding(args.points, 8, key=jr.key(2))},
            key=jr.key(1)),
    }
    rows = []
    for batch in args.batch_sizes:
        for name, build in models.items():
            if name == "raw" and batch > args.raw_max_batch:
                continue
            model = build()
            tokens = model.model.num_scalars if name == "embedded" else model.num_scalars
            seconds = step_seconds(model, data, batch, args.steps)
            rows.append((name, tokens, batch, seconds))
            print(f"{name}: {tokens} tokens, batch {batch}: {1e3 * seconds:.1f} ms per step",
                  flush=True)
    lines = [
        "# Embedding networks: train-step cost",
        "",
        f"`python benchmarks/embedding_cost.py --points {args.points} --batch-sizes "
        f"{' '.join(map(str, args.batch_sizes))} --steps {args.steps}` on "
        f"{machine_description()}, {datetime.date.today()} (`fit`'s fused steps, {args.steps} per "
        "call, median of three calls after a warm-up; default Simformer widths, VESDE, "
        "structured masks).",
        "",
        "| model | tokens | batch | ms per step | ms per example |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {tokens} | {batch} | {1e3 * s:.1f} | {1e3 * s / batch:.2f} |"
              for name, tokens, batch, s in rows]
    with atomic_writer(args.out) as f:
        f.write(("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
