"""Flow matching's ODE sampler: accuracy (C2ST) and time against the number of solver steps.

    python benchmarks/fm_ode_steps.py [--train-steps 1000 4000] [--num-samples 10000]
        [--out benchmarks/results/fm_ode_steps.md]

Two moons (10,000 simulations), the default Simformer trained with ``gs.FlowMatching()`` for
each ``--train-steps``; then ``--num-samples`` posterior draws at sbibm's observation 1 with the
adaptive Tsit5 solve (rtol = atol = 1e-5, 1e-3, 1e-2) and fixed-step Heun (5, 10, 20 steps:
2 network evaluations per step), each timed after a warm-up call and scored by C2ST (sbibm's
MLP classifier) against the reference posterior. This is what chose flow matching's default
sampler (20 Heun steps).
"""

import argparse
import datetime
import platform
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gensbi_eqx as gs
from gensbi_eqx.diagnostics import c2st

SAMPLERS = [
    ("Tsit5, rtol = atol = 1e-5", gs.ODE(rtol=1e-5, atol=1e-5)),
    ("Tsit5, rtol = atol = 1e-3", gs.ODE(rtol=1e-3, atol=1e-3)),
    ("Tsit5, rtol = atol = 1e-2", gs.ODE(rtol=1e-2, atol=1e-2)),
    ("Heun, 5 steps", gs.ODE(diffrax.Heun(), steps=5)),
    ("Heun, 10 steps", gs.ODE(diffrax.Heun(), steps=10)),
    ("Heun, 20 steps", gs.ODE(diffrax.Heun(), steps=20)),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fm_ode_steps.md")
    args = parser.parse_args()

    reference = gs.tasks.load_reference("two_moons", 1)
    theta, x = gs.tasks.TwoMoons().simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(1))
    x_o = jnp.asarray(reference.observation).reshape(-1)
    rows = []
    for train_steps in args.train_steps:
        est = gs.fit(jr.key(2), model, data, method=gs.FlowMatching(),
                     training=gs.Training(max_steps=train_steps), progress=False)
        for name, sampler in SAMPLERS:
            def draw():
                return est.sample(jr.key(3), {"x": x_o}, args.num_samples,
                                  sampler=sampler)["theta"]

            jax.block_until_ready(draw())
            start = time.perf_counter()
            samples = jax.block_until_ready(draw())
            seconds = time.perf_counter() - start
            score = c2st(np.asarray(samples), reference.samples[: args.num_samples])
            rows.append((train_steps, name, seconds, score))
            print(f"{train_steps} train steps, {name}: {seconds:.2f} s, C2ST {score:.3f}", flush=True)

    lines = [
        f"Measured {datetime.date.today()} on {platform.machine()} ({jax.devices()[0].device_kind}),"
        f" jax {jax.__version__}: `python benchmarks/fm_ode_steps.py "
        f"--train-steps {' '.join(map(str, args.train_steps))} --num-samples {args.num_samples}`",
        "",
        "| train steps | sampler | network evaluations | time (s) | C2ST |",
        "|---|---|---|---|---|",
        *(
            f"| {t} | {n} | {dict(SAMPLERS)[n].evaluations or 'adaptive'} | {s:.2f} | {c:.3f} |"
            for t, n, s, c in rows
        ),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
