"""Speed and memory of Flux1 and Flux1Joint at their default (model-card) sizes.

    python benchmarks/flux_models.py [--models flux1,flux1joint]
        [--problems two_moons,oscillator,oscillator_channels] [--batch-size 256] [--steps 50]
        [--oscillator-steps N] [--train-steps 0] [--num-samples 10000]
        [--two-moons-num-samples N] [--oscillator-num-samples N] [--sample-steps 10]
        [--repeats 3] [--edm-problems two_moons] [--compile-only] [--quick]

For every (model, problem) it prints the number of parameters; the train step exactly as `fit`
builds it (`make_train_step` with `default_optimizer`, posterior masks for Flux1, structured
masks for Flux1Joint): its compile time and its median time over ``--steps`` steps after a warm-up;
the time to draw ``--num-samples`` posterior samples ``p(theta | x_o)`` with ``Estimator.sample``
(flow matching, ``gs.ODE(diffrax.Heun(), steps=--sample-steps)``, i.e. ``2 * steps`` network
evaluations; on the ``--edm-problems`` also EDM's 18-step Heun sampler, ``gs.EDMSampler()``, 35
evaluations), median
over ``--repeats`` calls after a first call that includes compilation; and memory: XLA's
``memory_analysis`` of the compiled train step and of the compiled sampler for
``--num-samples`` draws (temporaries + arguments + outputs, less aliased buffers) and the
process's maximum resident set size so far.

On a CPU the full counts are slow: ``--oscillator-steps`` times fewer train steps on the
oscillator, and ``--two-moons-num-samples`` / ``--oscillator-num-samples`` time fewer draws; the
table then also gives the sampling time scaled linearly to ``--num-samples`` (all draws run as
one batch, so the cost is close to linear once the batch fills the machine). Memory is always
measured for ``--num-samples``.

Fixed-step samplers cost the same whatever the network outputs, so the estimator need not be
trained (an untrained Flux model outputs zero, which would make an adaptive solver look
unrealistically fast); ``--train-steps`` fits it first anyway.

Problems: ``two_moons`` (theta 2, x 2); ``oscillator``, a noisy damped oscillator with
theta = (frequency, damping, amplitude) and x its position at 128 times, so 131 tokens; and
``oscillator_channels``, the same oscillator seen as 64 times of (position, velocity): for Flux1
that is 64 two-channel tokens (Flux1Joint has one token per scalar, so it is skipped there).

Finally it compiles the Flux1 train step on two moons with 4 blocks (2 double + 2 single) and
with 20 (7 + 13): the blocks are stacked and run under ``lax.scan``, so the ratio should stay
well under the 5x of the block counts.
"""

import argparse
import math
import os
import platform
import resource
import statistics
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gensbi_eqx as gs
from gensbi_eqx.data import NodeLayout, Standardiser
from gensbi_eqx.sampling import sample_conditionals
from gensbi_eqx.training import PosteriorMasks, StructuredMasks, default_optimizer, make_train_step

MIB = 2**20


class DampedOscillator(eqx.Module):
    """``x(t) = A exp(-d t) cos(2 pi f t)`` observed at ``num_times`` times in ``[0, 5]`` with
    Gaussian noise, for ``theta = (f, d, A) ~ U([0.2, 0.05, 0.5], [2, 1, 2])``.

    ``channels=1`` gives ``x`` of shape ``(n, num_times)``; ``channels=2`` gives
    ``(n, num_times, 2)``: position and velocity (scaled by ``1 / (2 pi)``) at each time.
    """

    prior: gs.tasks.Uniform
    num_times: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    noise: float = eqx.field(static=True)

    def __init__(self, num_times: int = 128, channels: int = 1, noise: float = 0.05):
        if channels not in (1, 2):
            raise ValueError(f"`channels` must be 1 or 2, got {channels!r}.")
        self.prior = gs.tasks.Uniform(
            np.array([0.2, 0.05, 0.5], np.float32), np.array([2.0, 1.0, 2.0], np.float32)
        )
        self.num_times = num_times
        self.channels = channels
        self.noise = noise

    @eqx.filter_jit
    def simulator(self, key, theta):
        """One noisy trajectory per row of ``theta`` (shape ``(n, 3)``)."""
        t = jnp.linspace(0.0, 5.0, self.num_times)
        f, d, a = (theta[:, i : i + 1] for i in range(3))
        omega = 2 * math.pi * f
        envelope = a * jnp.exp(-d * t)
        position = envelope * jnp.cos(omega * t)
        if self.channels == 1:
            clean = position
        else:
            velocity = -envelope * (d * jnp.cos(omega * t) + omega * jnp.sin(omega * t))
            clean = jnp.stack([position, velocity / (2 * math.pi)], axis=-1)
        return clean + self.noise * jr.normal(key, clean.shape, clean.dtype)

    @eqx.filter_jit
    def simulate(self, key, n: int):
        """``n`` joint draws ``(theta, x)``."""
        key_theta, key_x = jr.split(key)
        theta = self.prior.sample(key_theta, n)
        return theta, self.simulator(key_x, theta)


def simulate(problem: str, key, n: int, num_times: int) -> dict:
    if problem == "two_moons":
        theta, x = gs.tasks.TwoMoons().simulate(key, n)
    elif problem == "oscillator":
        theta, x = DampedOscillator(num_times).simulate(key, n)
    elif problem == "oscillator_channels":
        theta, x = DampedOscillator(num_times // 2, channels=2).simulate(key, n)
    else:
        raise ValueError(f"unknown problem {problem!r}")
    return {"theta": theta, "x": x}


def build_model(name: str, data: dict, key, **hyperparameters):
    if name == "flux1":
        return gs.Flux1.for_data(data, condition_on="x", key=key, **hyperparameters)
    if name == "flux1joint":
        return gs.Flux1Joint.for_data(data, key=key, **hyperparameters)
    raise ValueError(f"unknown model {name!r}")


def mask_sampler_for(model, layout: NodeLayout):
    """What `fit` uses: the model's own conditional for Flux1, the structured mixture for
    Flux1Joint."""
    fixed = model.fixed_condition_mask
    if fixed is not None:
        return PosteriorMasks(is_parameter=tuple(not c for c in fixed))
    return StructuredMasks().bind(layout)


def num_parameters(model) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))


def xla_bytes(compiled) -> int | None:
    """Temporaries + arguments + outputs of an equinox ``Compiled``, less aliased buffers."""
    analysis = compiled.compiled.memory_analysis()
    if analysis is None:
        return None
    return (
        analysis.temp_size_in_bytes
        + analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        - analysis.alias_size_in_bytes
    )


def max_rss_mib() -> float:
    # Linux reports kilobytes, macOS bytes.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def compile_train_step(model, method, x_train, mask_sampler, batch_size: int):
    """Lower and compile the train step `fit` runs; ``(seconds, compiled, opt_state)``."""
    optimizer = default_optimizer(10_000)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    step = make_train_step(method, mask_sampler, optimizer, batch_size, x_train.shape[1])
    start = time.perf_counter()
    compiled = step.lower(x_train, model, model, opt_state, jr.key(0), jnp.asarray(0)).compile()
    return time.perf_counter() - start, compiled, opt_state


def time_train_step(compiled, x_train, model, opt_state, steps: int, warmup: int) -> float:
    """Median seconds per step over ``steps`` steps after ``warmup`` steps."""
    state = (model, model, opt_state)
    for i in range(warmup):
        state = compiled(x_train, *state, jr.key(i), jnp.asarray(i))[:3]
    jax.block_until_ready(state)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        out = compiled(x_train, *state, jr.key(warmup + i), jnp.asarray(warmup + i))
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
        state = out[:3]
    return statistics.median(times)


def time_sampling(est, x_o, num_samples: int, repeats: int, sampler) -> tuple[float, float]:
    """(first call incl. compile, median of ``repeats`` later calls), in seconds."""

    def draw(key):
        return est.sample(key, {"x": x_o}, num_samples, sampler=sampler)["theta"]

    start = time.perf_counter()
    jax.block_until_ready(draw(jr.key(10)))
    first = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(draw(jr.key(11 + i)))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def sampler_memory(est, num_samples: int, sampler: gs.samplers.AbstractSampler):
    """(compile seconds, XLA bytes) of the compiled sampler `Estimator.sample` calls for
    ``p(theta | x)``: one condition, ``num_samples`` draws."""
    observed = jnp.asarray(~est.layout.node_mask(("theta",)))[None]
    y_cond = jnp.zeros(observed.shape)
    start = time.perf_counter()
    compiled = sample_conditionals.lower(
        jr.key(0), est.denoiser, y_cond, observed, num_samples, sampler
    ).compile()
    return time.perf_counter() - start, xla_bytes(compiled)


def make_estimator(key, model, method, data, train_steps: int, batch_size: int):
    if train_steps > 0:
        return gs.fit(
            key, model, data, method=method,
            training=gs.Training(max_steps=train_steps, batch_size=batch_size), progress=False,
        )
    layout = NodeLayout.from_data(data)
    return gs.Estimator(model, method, layout, Standardiser.fit(layout.flatten(data)))


def mib(num_bytes) -> str:
    return "n/a" if num_bytes is None else f"{num_bytes / MIB:,.0f}"


def run_row(model_name, problem, args, hyperparameters, edm_method) -> dict:
    data = simulate(problem, jr.key(0), args.simulations, args.num_times)
    layout = NodeLayout.from_data(data)
    x_train = Standardiser.fit(layout.flatten(data))(layout.flatten(data))
    model = build_model(model_name, data, jr.key(1), **hyperparameters)
    method = gs.FlowMatching()
    # Flux1 groups channels into tokens; Flux1Joint has one token per scalar.
    tokens = model.dim_obs + model.dim_cond if isinstance(model, gs.Flux1) else model.num_scalars
    row = {
        "model": model_name,
        "problem": problem,
        "tokens": tokens,
        "parameters": num_parameters(model),
    }
    print(f"\n## {model_name} on {problem}: data {({k: v.shape for k, v in data.items()})}, "
          f"{row['tokens']} tokens, {row['parameters']:,} parameters", flush=True)

    compile_s, compiled, opt_state = compile_train_step(
        model, method, x_train, mask_sampler_for(model, layout), args.batch_size
    )
    row["step_compile_s"] = compile_s
    row["step_bytes"] = xla_bytes(compiled)
    print(f"train step (batch {args.batch_size}): compile {compile_s:.1f} s, "
          f"XLA memory {mib(row['step_bytes'])} MiB", flush=True)
    if not args.compile_only:
        steps = args.steps if problem == "two_moons" else args.oscillator_steps
        row["step_s"] = time_train_step(compiled, x_train, model, opt_state, steps, args.warmup)
        print(f"train step: median {1e3 * row['step_s']:.1f} ms over {steps} steps", flush=True)
    del compiled

    num_samples = (
        args.two_moons_num_samples if problem == "two_moons" else args.oscillator_num_samples
    )
    row["num_samples"] = num_samples
    row["memory_samples"] = args.num_samples
    x_o = simulate(problem, jr.key(5), 1, args.num_times)["x"][0]
    samplers = [("fm", method, gs.ODE(diffrax.Heun(), steps=args.sample_steps),
                 f"flow matching, Heun {args.sample_steps} steps")]
    if edm_method is not None and problem in args.edm_problems.split(","):
        samplers.append(("edm", edm_method, gs.EDMSampler(steps=18), "EDM, Heun 18 steps"))
    for label, sampling_method, sampler, description in samplers:
        evaluations = sampler.evaluations
        start = time.perf_counter()
        est = make_estimator(
            jr.key(3), model, sampling_method, data, args.train_steps, args.batch_size
        )
        if args.train_steps > 0:
            print(f"{description}: fit {args.train_steps} steps in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        compile_s, num_bytes = sampler_memory(est, args.num_samples, sampler)
        row[f"{label}_bytes"] = num_bytes
        row[f"{label}_evaluations"] = evaluations
        print(f"{args.num_samples:,} samples, {description} ({evaluations} network evaluations): "
              f"compile {compile_s:.1f} s, XLA memory {mib(num_bytes)} MiB", flush=True)
        if not args.compile_only:
            first, median = time_sampling(est, x_o, num_samples, args.repeats, sampler)
            row[f"{label}_s"] = median
            print(f"{num_samples:,} samples, {description}: median {median:.2f} s "
                  f"(first call incl. compile {first:.1f} s)", flush=True)
    row["max_rss_mib"] = max_rss_mib()
    print(f"max RSS so far: {row['max_rss_mib']:,.0f} MiB", flush=True)
    return row


def compile_scaling(args, hyperparameters) -> list[tuple[int, float]]:
    """Flux1 train-step compile seconds (median of ``repeats`` fresh steps) by block count."""
    data = simulate("two_moons", jr.key(0), args.simulations, args.num_times)
    layout = NodeLayout.from_data(data)
    x_train = Standardiser.fit(layout.flatten(data))(layout.flatten(data))
    results = []
    for depth, depth_single in [(2, 2), (7, 13)]:
        times = []
        for r in range(args.repeats):
            model = build_model(
                "flux1", data, jr.key(r), **{**hyperparameters, "depth": depth,
                                             "depth_single_blocks": depth_single}
            )
            seconds, _, _ = compile_train_step(
                model, gs.FlowMatching(), x_train, mask_sampler_for(model, layout), args.batch_size
            )
            times.append(seconds)
        results.append((depth + depth_single, statistics.median(times)))
        print(f"Flux1 train step, {depth} double + {depth_single} single blocks: compile "
              f"{', '.join(f'{t:.1f}' for t in times)} s", flush=True)
    return results


def table(rows, edm: bool, compile_only: bool) -> str:
    header = ["model", "problem", "tokens", "params", "step compile (s)", "step (ms)",
              "step XLA (MiB)", "timed samples"]
    samplers = [("fm", "FM Heun")] + ([("edm", "EDM")] if edm else [])
    for _, name in samplers:
        header += [f"{name} NFE", f"{name} time (s)", f"{name} time, scaled to N (s)",
                   f"{name} sampler XLA at N (MiB)"]
    header += ["max RSS so far (MiB)"]

    def timing(row, key, scale=1.0, fmt=".2f"):
        return "-" if compile_only or key not in row else f"{scale * row[key]:{fmt}}"

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["model"], row["problem"], str(row["tokens"]), f"{row['parameters']:,}",
                 f"{row['step_compile_s']:.1f}", timing(row, "step_s", 1e3, ".1f"),
                 mib(row["step_bytes"]), "-" if compile_only else f"{row['num_samples']:,}"]
        for label, _ in samplers:
            if f"{label}_evaluations" not in row:
                cells += ["-"] * 4
                continue
            scale = row["memory_samples"] / row["num_samples"]
            scaled = timing(row, f"{label}_s", scale, ".1f")
            cells += [str(row[f"{label}_evaluations"]), timing(row, f"{label}_s"),
                      scaled if scale == 1 or scaled == "-" else f"~{scaled}",
                      mib(row[f"{label}_bytes"])]
        cells += [f"{row['max_rss_mib']:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="flux1,flux1joint")
    parser.add_argument("--problems", default="two_moons,oscillator")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="timed train steps")
    parser.add_argument("--oscillator-steps", type=int, default=None,
                        help="timed train steps on the oscillator problems (default: --steps)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed train steps first")
    parser.add_argument("--train-steps", type=int, default=0, help="fit this long before sampling")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--two-moons-num-samples", type=int, default=None,
                        help="draws to time on two moons (default: --num-samples)")
    parser.add_argument("--oscillator-num-samples", type=int, default=None,
                        help="draws to time on the oscillator problems (default: --num-samples)")
    parser.add_argument("--sample-steps", type=int, default=10, help="Heun steps (2x evaluations)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--num-times", type=int, default=128, help="oscillator series length")
    parser.add_argument("--edm-problems", default="",
                        help="problems on which to also time EDM's 18-step sampler")
    parser.add_argument("--compile-only", action="store_true",
                        help="compile and measure memory, time nothing")
    parser.add_argument("--no-scaling", action="store_true", help="skip the compile-scaling check")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: tiny models, batch, data and sample counts")
    args = parser.parse_args()
    hyperparameters = {}
    if args.quick:
        args.batch_size, args.steps, args.warmup = 8, 2, 1
        args.num_samples, args.sample_steps, args.repeats = 50, 2, 1
        args.oscillator_steps = None
        args.two_moons_num_samples, args.oscillator_num_samples = 50, 20
        args.simulations, args.num_times = 200, 16
        args.train_steps = min(args.train_steps, 2)
        hyperparameters = dict(num_heads=2, depth_single_blocks=2)
    if args.oscillator_steps is None:
        args.oscillator_steps = args.steps
    if args.two_moons_num_samples is None:
        args.two_moons_num_samples = args.num_samples
    if args.oscillator_num_samples is None:
        args.oscillator_num_samples = args.num_samples
    edm_method = getattr(gs.methods, "EDM", None)
    if args.edm_problems and edm_method is None:
        parser.error("--edm-problems: this version of gensbi_eqx has no gs.methods.EDM")
    edm_method = edm_method() if args.edm_problems else None

    device = jax.devices()[0]
    machine = (f"machine: {platform.machine()}, {jax.device_count()} x {device.device_kind} "
               f"({device.platform}), jax {jax.__version__}, {os.cpu_count()} CPUs")
    print(machine)
    overrides = f", model overrides {hyperparameters}" if hyperparameters else ""
    print(f"settings: {vars(args)}{overrides}")

    rows = []
    for problem in args.problems.split(","):
        for model_name in args.models.split(","):
            if model_name == "flux1joint" and problem == "oscillator_channels":
                print("\n(flux1joint on oscillator_channels skipped: one token per scalar, the "
                      "same model as on oscillator)")
                continue
            overrides = dict(hyperparameters)
            if args.quick and model_name == "flux1":
                overrides["depth"] = 1
            rows.append(run_row(model_name, problem, args, overrides, edm_method))

    scaling = None
    if not args.no_scaling:
        print("\n## compile scaling")
        scaling = compile_scaling(args, {k: v for k, v in hyperparameters.items()
                                         if k != "depth_single_blocks"})

    print("\n## summary\n")
    print(machine)
    trained = f"fitted {args.train_steps} steps" if args.train_steps else "untrained"
    print(f"train step: batch {args.batch_size}, median of {args.steps} steps "
          f"({args.oscillator_steps} on the oscillator) after {args.warmup} warm-up; sampling "
          f"p(theta | x_o) ({trained}): median of {args.repeats} calls after a first one; "
          f"N = {args.num_samples:,}")
    print(table(rows, edm_method is not None, args.compile_only))
    if scaling is not None:
        (small_blocks, small_s), (large_blocks, large_s) = scaling
        print(f"\nFlux1 train-step compile (two moons, median of {args.repeats}): "
              f"{small_blocks} blocks {small_s:.1f} s, {large_blocks} blocks {large_s:.1f} s, "
              f"ratio {large_s / small_s:.2f}x for {large_blocks / small_blocks:.0f}x the blocks")


if __name__ == "__main__":
    main()
