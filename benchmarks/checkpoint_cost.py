"""What writing checkpoints costs: `gs.fit` on two moons (10,000 simulations, default Simformer,
2,000 steps, validation every 200) without a checkpoint and with one written at every validation
point (`every=200`, ten writes; the default `every=1000` writes three), alternating, several
repeats. Reports the median wall time of each, the cost per write and the file's size.

    python benchmarks/checkpoint_cost.py --repeats 3
"""

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np

import gensbi_eqx as gs

RESULTS = Path(__file__).parent / "results"


def run(data, checkpoint_dir: str | None, steps: int) -> float:
    checkpoint = None
    if checkpoint_dir is not None:
        path = Path(checkpoint_dir) / "run.ckpt"
        path.unlink(missing_ok=True)
        checkpoint = gs.Checkpoint(path, every=200)
    training = gs.Training(max_steps=steps, stopping=gs.EarlyStopping(every=200),
                           checkpoint=checkpoint)
    model = gs.Simformer.for_data(data, key=jr.key(1))
    start = time.perf_counter()
    est = gs.fit(jr.key(2), model, data, training=training, progress=False)
    jax.block_until_ready(est.model)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    theta, x = gs.tasks.TwoMoons().simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    times = {"none": [], "every 200": []}
    with tempfile.TemporaryDirectory() as tmp:
        run(data, None, 200)  # warm-up: imports and caches
        for _ in range(args.repeats):
            times["none"].append(run(data, None, args.steps))
            times["every 200"].append(run(data, tmp, args.steps))
        size = (Path(tmp) / "run.ckpt").stat().st_size
    writes = args.steps // 200
    row = {
        "steps": args.steps,
        "seconds_without": float(np.median(times["none"])),
        "seconds_with": float(np.median(times["every 200"])),
        "writes": writes,
        "ms_per_write": 1e3 * (np.median(times["every 200"]) - np.median(times["none"])) / writes,
        "file_bytes": size,
        "all_seconds": times,
        "date": str(datetime.date.today()),
        "machine": platform.processor() or platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "jax": jax.__version__,
    }
    print(json.dumps(row, indent=1))
    with open(RESULTS / "checkpoint_cost.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
