"""Where the Simformer's train step spends its time, kernel by kernel.

    python benchmarks/profile_train_step.py [--model matched|default] [--batch-size 256]
        [--steps 20] [--out benchmarks/results/profile_train_step.md]

Two moons (10,000 simulations), the train step exactly as ``fit`` builds it
(``make_train_step`` with ``gs.FlowMatching()``, ``StructuredMasks`` and
``default_optimizer(10_000)``), for the Simformer that benchmarks/compare_gensbi.py
matches to GenSBI 0.3.4's default (``--model matched``: 605k parameters) or our default one.

The step is timed untraced (median of ``--steps`` after a warm-up), then run ``--steps`` more
times under ``jax.profiler.trace``. Each kernel in the trace is an instruction of the compiled
HLO; its time per step is classed by what the instruction computes (a ``dot`` inside it makes
it a matmul, else a ``reduce``, else a copy, transpose or slice, else elementwise), and every matmul's
FLOPs are read off its shapes (``2 x output size x contracted size``; a dot with batch
dimensions, attention's per-head products with their softmax, is classed apart), so the table gives each
class's share of the kernel time and the matmuls' achieved FLOP/s beside a plain
``1024 x 1024 x 1024`` float32 matmul's. Profiling slows the step (the traced kernel time is
reported next to the untraced step time); shares, not absolute times, are the point.

This is the evidence behind the "achieved FLOP/s" line of compare_gensbi: how far the step is
from the hardware, and where the rest of the time goes.
"""

import argparse
import collections
import datetime
import glob
import gzip
import json
import math
import re
import shlex
import statistics
import sys
import tempfile
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
from gensbi_eqx.training import StructuredMasks, default_optimizer, make_train_step

HERE = Path(__file__).resolve().parent
# GenSBI 0.3.4's default two-moons Simformer in our hyperparameter names (compare_gensbi.py).
MATCHED = dict(dim_value=40, dim_id=40, dim_condition=10, num_heads=4, head_dim=10, depth=8,
               widening=3, dim_time=128)
CLASSES = ("matmul", "batched matmul", "reduction", "elementwise", "data movement", "control")

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = (\(.*?\)|\S+?)(?:\{[^}]*\})? ([\w\-]+)\((.*)$")
_HEADER = re.compile(r"^(?:ENTRY )?%(\S+) \((.*)\) -> .*\{$")
_SHAPE = re.compile(r"^[a-z]+\d*\[([\d,]*)\]")


def dims(shape: str) -> tuple[int, ...] | None:
    """``f32[1024,90]{1,0}`` -> ``(1024, 90)``; None for tuples and tokens."""
    m = _SHAPE.match(shape)
    return None if m is None else tuple(int(d) for d in m.group(1).split(",") if d)


def parse_hlo(text: str) -> tuple[dict, dict]:
    """``(instructions, computations)``: every instruction's shape, opcode, called computation
    and line; every computation's instructions and the matmul FLOPs of its dots."""
    instructions, computations = {}, {}
    current, shapes = None, {}
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(1)
            computations[current] = {"lines": [], "flops": 0, "batched": False}
            shapes = {}
            for param in re.finditer(r"([\w.\-]+): ([a-z]+\d*\[[\d,]*\])", header.group(2)):
                shapes[param.group(1)] = dims(param.group(2))
            continue
        m = _INSTRUCTION.match(line)
        if not m or current is None:
            continue
        name, shape, opcode, rest = m.groups()
        shapes[name] = dims(shape)
        calls = re.search(r"calls=%([\w.\-]+)", rest)
        instructions[name] = {"shape": shape, "opcode": opcode, "line": line,
                              "calls": calls.group(1) if calls else None}
        computations[current]["lines"].append(line)
        if opcode == "dot":
            lhs = re.match(r"\s*%([\w.\-]+)", rest).group(1)
            contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest).group(1)
            size = math.prod(shapes[lhs][int(c)] for c in contracting.split(",") if c)
            flops = 2 * math.prod(dims(shape)) * size
            computations[current]["flops"] += flops
            computations[current]["batched"] |= "lhs_batch_dims" in rest
            instructions[name]["flops"] = flops
    return instructions, computations


def classify(instruction: dict, computations: dict) -> tuple[str, int]:
    """A kernel's class and matmul FLOPs per execution."""
    if instruction["opcode"] == "dot":
        batched = "lhs_batch_dims" in instruction["line"]
        return ("batched matmul" if batched else "matmul"), instruction["flops"]
    body = computations.get(instruction["calls"], {"lines": [], "flops": 0, "batched": False})
    text = "\n".join(body["lines"]) or instruction["line"]
    if body["flops"]:
        # Batched dots are attention's per-head scores and weighted sums, fused with their
        # softmax reductions.
        return ("batched matmul" if body["batched"] else "matmul"), body["flops"]
    if instruction["opcode"] in ("while", "conditional", "call"):
        return "control", 0
    if re.search(r" reduce\(", text) or instruction["opcode"] == "reduce":
        return "reduction", 0
    # Fusions are named after their leading ops: copy_bitcast_fusion, dynamic-slice_fusion...
    if re.match(r"\s*(?:ROOT )?%(copy|transpose|bitcast_dynamic|dynamic|slice|concatenate|pad)",
                instruction["line"]):
        return "data movement", 0
    return "elementwise", 0


def two_moons_step(model_kind: str, batch_size: int):
    """The compiled train step, its arguments, and the analytic (3 x forward) matmul FLOPs."""
    theta, x = gs.tasks.TwoMoons().simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    layout = NodeLayout.from_data(data)
    rows = layout.flatten(data)
    x_train = Standardiser.fit(rows)(rows)
    config = MATCHED if model_kind == "matched" else {}
    model = gs.Simformer.for_data(data, key=jr.key(1), **config)
    optimizer = default_optimizer(10_000)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    masks = StructuredMasks().bind(layout)
    step = make_train_step(gs.FlowMatching(), masks, optimizer, batch_size, layout.num_scalars)
    return step, x_train, (model, model, opt_state), model


def run_steps(step, x_train, state, start: int, count: int) -> tuple[tuple, list[float]]:
    times = []
    for i in range(start, start + count):
        begin = time.perf_counter()
        out = jax.block_until_ready(step(x_train, *state, jr.key(i), jnp.asarray(i)))
        times.append(time.perf_counter() - begin)
        state = out[:3]
    return state, times


def plain_matmul_flop_per_s(size: int = 1024, calls: int = 20) -> float:
    a = jr.normal(jr.key(0), (size, size))
    b = jr.normal(jr.key(1), (size, size))
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))
    times = []
    for _ in range(calls):
        begin = time.perf_counter()
        jax.block_until_ready(f(a, b))
        times.append(time.perf_counter() - begin)
    return 2 * size**3 / statistics.median(times)


def kernel_times(step, x_train, state, steps: int) -> tuple[dict, dict]:
    """Summed duration (s) and count of every named trace event over ``steps`` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            run_steps(step, x_train, state, 10_000, steps)
        (path,) = glob.glob(f"{tmp}/**/perfetto_trace.json.gz", recursive=True)
        with gzip.open(path) as f:
            events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    seconds, counts = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X":
            seconds[e["name"]] += e.get("dur", 0) * 1e-6
            counts[e["name"]] += 1
    return seconds, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("matched", "default"), default="matched")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=15, help="kernels listed one by one")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "profile_train_step.md")
    args = parser.parse_args()

    step, x_train, state, model = two_moons_step(args.model, args.batch_size)
    lowered = step.lower(x_train, *state, jr.key(0), jnp.asarray(0))
    instructions, computations = parse_hlo(lowered.compile().compiled.as_text())
    state, _ = run_steps(step, x_train, state, 0, 5)
    state, times = run_steps(step, x_train, state, 5, args.steps)
    untraced = statistics.median(times)
    seconds, counts = kernel_times(step, x_train, state, args.steps)
    peak = plain_matmul_flop_per_s()

    per_class = {c: {"s": 0.0, "flops": 0} for c in CLASSES}
    kernels = []
    for name, total in seconds.items():
        if name not in instructions:
            continue  # host-side and runtime events
        cls, flops = classify(instructions[name], computations)
        runs = counts[name] / args.steps
        per_class[cls]["s"] += total / args.steps
        per_class[cls]["flops"] += flops * runs
        kernels.append((total / args.steps, name, cls, flops, runs))
    kernel_s = sum(c["s"] for c in per_class.values())
    matmul_flops = per_class["matmul"]["flops"] + per_class["batched matmul"]["flops"]

    def op_of(name):
        m = re.search(r'op_name="([^"]+)"', instructions[name]["line"])
        return m.group(1).split("/")[-1] if m else ""

    command = "python benchmarks/profile_train_step.py " + shlex.join(sys.argv[1:])
    lines = [
        f"# Train-step profile: {args.model} Simformer, two moons, batch {args.batch_size}",
        "",
        f"Measured {datetime.date.today()} on {machine_description()}, jax {jax.__version__}:",
        f"`{command.strip()}`",
        "",
        f"- parameters: {sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))):,}",
        f"- untraced step: {untraced * 1e3:.1f} ms (median of {args.steps}); kernel time "
        f"under the profiler: {kernel_s * 1e3:.1f} ms per step (kernels on both cores summed)",
        f"- matmul FLOPs executed per step (forward, rematerialised forward, backward): "
        f"{matmul_flops / 1e9:.2f} G; at the untraced step time "
        f"{matmul_flops / untraced / 1e9:.1f} GFLOP/s = "
        f"{matmul_flops / untraced / peak:.0%} of a plain 1024^3 float32 matmul "
        f"({peak / 1e9:.1f} GFLOP/s)",
        "",
        "| kernel class | ms per step (traced) | share | matmul GFLOP per step | GFLOP/s inside the class |",
        "|---|---|---|---|---|",
    ]
    for cls in CLASSES:
        c = per_class[cls]
        rate = f"{c['flops'] / c['s'] / 1e9:.0f}" if c["flops"] and c["s"] else ""
        gflop = f"{c['flops'] / 1e9:.2f}" if c["flops"] else ""
        lines.append(f"| {cls} | {c['s'] * 1e3:.1f} | {c['s'] / kernel_s:.0%} | {gflop} | {rate} |")
    lines += [
        "",
        f"The {args.top} longest kernels:",
        "",
        "| kernel | class | output | runs per step | ms per step | GFLOP/s | from |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, name, cls, flops, runs in sorted(kernels, reverse=True)[: args.top]:
        rate = f"{flops * runs / s / 1e9:.0f}" if flops else ""
        shape = instructions[name]["shape"].split("{")[0]
        lines.append(f"| `{name}` | {cls} | `{shape}` | {runs:g} | {s * 1e3:.2f} | {rate} | "
                     f"`{op_of(name)}` |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(args.out) as f:
        f.write(text.encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
