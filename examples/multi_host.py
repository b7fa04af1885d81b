"""Data-parallel training over several processes (hosts) with ``jax.distributed``.

On a cluster, run the same command on every host, process ``i`` of ``n``:

    python examples/multi_host.py --coordinator HOST0:12345 --num-processes n --process-id i

Every process simulates the same data (same key) and calls ``gs.fit(..., devices=jax.devices())``:
each batch is split over the devices of all processes and XLA all-reduces the gradients, so
every process ends with the same weights. Process 0 then samples the posterior and writes
``posterior_samples.npy`` and ``estimator.eqx`` to ``--out``.

Without a cluster, ``--launch N`` starts N processes on this machine, each with two CPU
devices talking through gloo: the same code path, e.g.

    python examples/multi_host.py --launch 2 [--small] [--out outputs/multi_host]

``--small`` (which launches 2 processes) took 69 s on a 2-core CPU shared with other jobs.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", default="localhost:12355", help="host:port of process 0")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--launch", type=int, default=0, help="start this many local processes")
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1_000, help="training steps")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--small", action="store_true", help="tiny run, for a smoke test")
    parser.add_argument("--out", type=Path, default=Path("outputs/multi_host"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.small:
        args.simulations, args.steps, args.num_samples = 1_000, 20, 100
    if args.small and not args.launch and args.num_processes == 1:
        args.launch = 2
    return args


def launch(args) -> None:
    """Start ``args.launch`` copies of this script as processes 0..n-1 on this machine."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    shared = [
        "--simulations", str(args.simulations), "--steps", str(args.steps),
        "--num-samples", str(args.num_samples), "--out", str(args.out),
        "--num-processes", str(args.launch), "--coordinator", args.coordinator,
    ] + (["--no-progress"] if args.no_progress else [])
    processes = [
        subprocess.Popen([sys.executable, __file__, *shared, "--process-id", str(i)], env=env)
        for i in range(args.launch)
    ]
    codes = [p.wait() for p in processes]
    if any(codes):
        raise SystemExit(f"a process failed: exit codes {codes}")


def run(args) -> None:
    import jax

    if args.num_processes > 1:
        # CPU devices of different processes talk through gloo; GPUs use NCCL by themselves.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    import diffrax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import gensbi_eqx as gs

    me = jax.process_index()
    print(f"process {me} of {jax.process_count()}: {len(jax.local_devices())} local of "
          f"{len(jax.devices())} devices", flush=True)
    task = gs.tasks.TwoMoons()
    theta, x = task.simulate(jr.key(0), args.simulations)  # identical on every process
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(1))
    start = time.perf_counter()
    est = gs.fit(
        jr.key(2), model, data, method=gs.VESDE(), training=gs.Training(max_steps=args.steps),
        devices=jax.devices(), progress=not args.no_progress and me == 0,
    )
    print(f"process {me}: trained {len(est.history.train_loss)} steps in "
          f"{time.perf_counter() - start:.1f} s, last loss {est.history.train_loss[-1]:.4f}",
          flush=True)
    if me == 0:
        # Every process holds the same weights; one of them samples (on its own devices).
        post = est.sample(jr.key(3), {"x": jnp.zeros(2)}, args.num_samples,
                          sampler=gs.ODE(diffrax.Heun(), steps=50), devices=None)
        args.out.mkdir(parents=True, exist_ok=True)
        np.save(args.out / "posterior_samples.npy", np.asarray(post["theta"]))
        gs.save(args.out / "estimator.eqx", est)
        print(f"wrote {args.out / 'posterior_samples.npy'} and {args.out / 'estimator.eqx'}")
    if args.num_processes > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    arguments = parse()
    launch(arguments) if arguments.launch else run(arguments)
