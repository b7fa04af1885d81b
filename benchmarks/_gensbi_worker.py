"""GenSBI's side of ``benchmarks/compare_gensbi.py``: run with the Python of the separate GenSBI
venv (``benchmarks/.venv-gensbi``), never with ours; it imports nothing from gensbi_eqx.

It reads one JSON request per line on stdin, ``{"cmd": name, "args": {...}}``, and answers each
with one JSON line on stdout, ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error":
traceback}``. Anything GenSBI or its dependencies print goes to stderr. It keeps its models
between requests, so the driver can alternate it with our worker one measurement at a time.

Everything here calls GenSBI 0.3.4's own code the way its pipelines do: the Simformer from
``get_default_simformer_params``, ``SimformerFlowPipeline`` (flow matching, structured condition
masks), the pipeline's optimizer, loss, jitted train step and EMA step, and its default sampler.
"""

import dataclasses
import importlib.metadata
import inspect
import platform
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from gensbi.core import FlowMatchingMethod
from gensbi.recipes import SimformerFlowPipeline
from gensbi.recipes.pipeline import ema_step
from gensbi.recipes.simformer import get_default_simformer_params

from _workers import max_rss_mib, serve

DIM_OBS = 2  # theta
DIM_COND = 2  # x


def batches(rows: np.ndarray, batch_size: int, seed: int):
    """An endless iterator of batches drawn with replacement, shaped ``(batch, tokens, 1)`` as
    GenSBI's pipelines expect; what a user feeds them in place of a grain dataset."""
    rng = np.random.default_rng(seed)
    while True:
        yield jnp.asarray(rows[rng.integers(0, rows.shape[0], batch_size)])


def count_parameters(model) -> int:
    return int(sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))))


def xla_stats(compiled) -> dict:
    analysis = compiled.memory_analysis()
    stats = {}
    if analysis is not None:
        stats.update(
            temp_bytes=int(analysis.temp_size_in_bytes),
            argument_bytes=int(analysis.argument_size_in_bytes),
            output_bytes=int(analysis.output_size_in_bytes),
            alias_bytes=int(analysis.alias_size_in_bytes),
        )
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0] if cost else None
    if cost and "flops" in cost:
        stats["flops"] = float(cost["flops"])
    return stats


class Worker:
    def __init__(self):
        self.rows = None
        self.x_o = None
        self.params = None
        # The pipelines insist on a checkpoint directory; nothing is saved there.
        self._checkpoints = tempfile.TemporaryDirectory(prefix="gensbi-checkpoints-")
        self.checkpoints = self._checkpoints.name
        self.sampling = None
        self.sampler = None
        self.e2e = None

    # -- setup ----------------------------------------------------------------------------

    def init(self, data_path: str, overrides: dict | None = None) -> dict:
        """Load the shared simulations; build GenSBI's default Simformer parameters (with
        ``overrides`` for the smoke test) and report them."""
        data = np.load(data_path)
        theta = np.asarray(data["theta"], np.float32)
        x = np.asarray(data["x"], np.float32)
        self.rows = np.concatenate([theta, x], axis=1)[..., None]  # (N, 4, 1), theta first
        self.n_train = int(data["n_train"])
        self.x_o = jnp.asarray(np.asarray(data["x_o"], np.float32)[None])  # (1, 2)
        params = get_default_simformer_params(DIM_OBS + DIM_COND)
        if overrides:
            params = dataclasses.replace(params, **overrides)
        self.params = params
        config = {
            field.name: getattr(params, field.name)
            for field in dataclasses.fields(params)
            if field.name not in ("rngs", "param_dtype")
        }
        config["param_dtype"] = str(np.dtype(params.param_dtype))
        model = self._pipeline(seed=0).model
        return {
            "config": config,
            "parameters": count_parameters(model),
            "versions": {
                name: importlib.metadata.version(name)
                for name in ("gensbi", "jax", "jaxlib", "flax", "optax", "diffrax")
            },
            "python": platform.python_version(),
            "device": f"{jax.device_count()} x {jax.devices()[0].device_kind} "
            f"({jax.devices()[0].platform})",
            "max_rss_mib": max_rss_mib(),
        }

    def _pipeline(self, seed: int, batch_size: int = 256, nsteps: int | None = None):
        """``SimformerFlowPipeline`` with GenSBI's defaults: its default training configuration
        (``nsteps`` replaced if given), checkpoints in a temporary directory."""
        config = SimformerFlowPipeline.get_default_training_config()
        config["checkpoint_dir"] = self.checkpoints
        if nsteps is not None:
            config["nsteps"] = nsteps
        n = self.n_train
        return SimformerFlowPipeline(
            batches(self.rows[:n], batch_size, seed),
            batches(self.rows[n:], batch_size, seed + 1),
            dim_obs=DIM_OBS,
            dim_cond=DIM_COND,
            params=dataclasses.replace(self.params, rngs=nnx.Rngs(seed)),
            training_config=config,
        )

    def _training(self, pipeline):
        """The pieces of ``AbstractPipeline.train``: optimizer, EMA optimizer, jitted step."""
        optimizer = pipeline._get_optimizer()
        ema_optimizer = pipeline._get_ema_optimizer()
        train_step = pipeline.get_train_step_fn(pipeline.get_loss_fn())
        return optimizer, ema_optimizer, train_step

    # -- measure 1: train step ----------------------------------------------------------

    def train_step(self, seed: int, batch_size: int, steps: int, warmup: int) -> dict:
        """One iteration of ``AbstractPipeline.train``'s loop (next batch, jitted train step,
        jitted EMA step), timed with ``block_until_ready``: the first call (compiles both),
        then ``warmup`` untimed, then the median of ``steps``."""
        pipeline = self._pipeline(seed, batch_size)
        optimizer, ema_optimizer, train_step = self._training(pipeline)
        rngs = nnx.Rngs(seed)
        model, ema_model = pipeline.model, pipeline.ema_model

        def iteration():
            batch = next(pipeline.train_dataset_iter)
            loss = train_step(model, optimizer, batch, rngs.train_step())
            ema_step(ema_model, model, ema_optimizer)
            jax.block_until_ready((loss, nnx.state(ema_model, nnx.Param)))
            return loss

        start = time.perf_counter()
        iteration()
        first = time.perf_counter() - start
        for _ in range(warmup):
            iteration()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            loss = iteration()
            times.append(time.perf_counter() - start)
        if not np.isfinite(float(loss)):
            raise FloatingPointError("GenSBI's training loss is not finite.")
        median = statistics.median(times)
        return {
            "parameters": count_parameters(model),
            "first_s": first,
            "median_s": median,
            "compile_s": first - median,
            "min_s": min(times),
            "max_rss_mib": max_rss_mib(),
        }

    def step_analysis(self, batch_size: int) -> dict:
        """XLA's memory and cost analysis of the compiled train step and EMA step."""
        pipeline = self._pipeline(0, batch_size)
        optimizer, ema_optimizer, train_step = self._training(pipeline)
        batch = next(pipeline.train_dataset_iter)
        step = train_step.lower(pipeline.model, optimizer, batch, jax.random.key(0)).compile()
        ema = ema_step.lower(pipeline.ema_model, pipeline.model, ema_optimizer).compile()
        return {"train_step": xla_stats(step), "ema_step": xla_stats(ema),
                "max_rss_mib": max_rss_mib()}

    # -- measure 2: sampling --------------------------------------------------------------

    def sampler_defaults(self) -> dict:
        """GenSBI's default sampler for this pipeline, read from its signatures: fixed-step
        ``step_size`` on ``[0, 1]`` with ``method`` (Euler: one evaluation per step)."""
        step_size = inspect.signature(SimformerFlowPipeline.sample).parameters["step_size"].default
        method = inspect.signature(FlowMatchingMethod.build_sampler_fn).parameters["method"].default
        steps = round(1.0 / step_size)
        per_step = {"Euler": 1, "Heun": 2, "Midpoint": 2}.get(method)
        return {
            "sampler": f"flow-matching ODE, {method}, step_size {step_size} ({steps} steps)",
            "nfe": None if per_step is None else steps * per_step,
        }

    def prepare_sampling(self, seed: int, train_steps: int, batch_size: int) -> dict:
        """Train a default pipeline with its own ``train`` for ``train_steps`` steps."""
        pipeline = self._pipeline(seed, batch_size)
        start = time.perf_counter()
        pipeline.train(nnx.Rngs(seed), nsteps=train_steps, save_model=False)
        seconds = time.perf_counter() - start
        self.sampling = pipeline
        self.sampler = None
        return {"train_s": seconds, "parameters": count_parameters(pipeline.model),
                **self.sampler_defaults(), "max_rss_mib": max_rss_mib()}

    def sample(self, seed: int, num_samples: int, mode: str, save_path: str | None = None) -> dict:
        """Posterior draws at the observation with the default sampler, EMA weights.

        ``mode="pipeline"``: ``pipeline.sample(...)`` as its docs show (it builds and jits a new
        sampler on every call); ``mode="reuse"``: one ``pipeline.get_sampler(x_o)`` kept and
        called again (compiled once)."""
        pipeline = self.sampling
        key = jax.random.key(seed)
        start = time.perf_counter()
        if mode == "pipeline":
            samples = pipeline.sample(key, self.x_o, nsamples=num_samples)
        elif mode == "reuse":
            if self.sampler is None:
                # The pipeline's own sample() passes its edge mask the same way.
                self.sampler = pipeline.get_sampler(
                    self.x_o, model_extras={"edge_mask": pipeline.edge_mask}
                )
            samples = self.sampler(key, num_samples)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        samples = np.asarray(jax.block_until_ready(samples))
        seconds = time.perf_counter() - start
        if save_path:
            np.save(save_path, samples.reshape(num_samples, DIM_OBS))
        return {"seconds": seconds, "max_rss_mib": max_rss_mib()}

    # -- measure 4: end to end ------------------------------------------------------------

    def e2e_init(self, seed: int, batch_size: int, max_train_steps: int) -> dict:
        """A fresh default pipeline whose learning-rate schedule spans ``max_train_steps``."""
        pipeline = self._pipeline(seed, batch_size, nsteps=max_train_steps)
        optimizer, ema_optimizer, train_step = self._training(pipeline)
        pipeline.model.train()
        pipeline.ema_model.train()
        self.e2e = {
            "pipeline": pipeline,
            "optimizer": optimizer,
            "ema_optimizer": ema_optimizer,
            "train_step": train_step,
            "rngs": nnx.Rngs(seed),
            "done": 0,
        }
        return {"parameters": count_parameters(pipeline.model), "max_rss_mib": max_rss_mib()}

    def e2e_round(self, steps: int, num_samples: int, seed: int, save_path: str) -> dict:
        """``steps`` more iterations of the pipeline's training loop (no validation), then
        ``num_samples`` posterior draws with ``pipeline.sample`` and the EMA weights."""
        state = self.e2e
        pipeline = state["pipeline"]
        multistep = pipeline.training_config["multistep"]
        start = time.perf_counter()
        for _ in range(steps):
            batch = next(pipeline.train_dataset_iter)
            loss = state["train_step"](
                pipeline.model, state["optimizer"], batch, state["rngs"].train_step()
            )
            if state["done"] % multistep == 0:
                ema_step(pipeline.ema_model, pipeline.model, state["ema_optimizer"])
            state["done"] += 1
        jax.block_until_ready((loss, nnx.state(pipeline.ema_model, nnx.Param)))
        train_s = time.perf_counter() - start
        pipeline._wrap_model()
        start = time.perf_counter()
        samples = pipeline.sample(jax.random.key(seed), self.x_o, nsamples=num_samples)
        samples = np.asarray(jax.block_until_ready(samples))
        sample_s = time.perf_counter() - start
        np.save(save_path, samples.reshape(num_samples, DIM_OBS))
        return {"train_s": train_s, "sample_s": sample_s, "steps_done": state["done"],
                "loss": float(loss), "max_rss_mib": max_rss_mib()}

    def rss(self) -> dict:
        return {"max_rss_mib": max_rss_mib()}


if __name__ == "__main__":
    serve(Worker())
