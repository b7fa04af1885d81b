"""The training loop: ONE jitted step (loss, grad, Adam, EMA); the Python loop outside does
validation, early stopping and the progress bar."""

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from tqdm.auto import tqdm

from .._custom_types import Array, ConditionMask, Float, Key
from .._sharding import DataParallel, check_divisible, data_parallel
from ..methods import AbstractMethod
from ..models import AbstractAttention, AbstractModel
from ._checkpoint import RunState, digest, read_checkpoint, write_checkpoint
from ._history import History
from ._loss import batch_loss
from ._masks import never_all_observed
from ._settings import Training

MaskSampler = Callable[[Key, int], ConditionMask]
# Flat rows ``(n, num_scalars)``, or the pair (tokens, metadata) for models with metadata tokens.
TokenRows = Float[Array, "_n num_scalars"]
TrainingData = TokenRows | tuple[TokenRows, TokenRows]


def _masks(sampler: MaskSampler, key: Key, batch: int, num_scalars: int):
    keys = jr.split(key, batch)
    return jax.vmap(lambda k: never_all_observed(sampler(k, num_scalars)))(keys)


def _ema(decay, ema, model):
    ema_params, static = eqx.partition(ema, eqx.is_inexact_array)
    params = eqx.filter(model, eqx.is_inexact_array)
    mixed = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema_params, params)
    return eqx.combine(mixed, static)


def split_training_data(x):
    """Training data as ``(tokens, metadata)``: an array ``(n, num_scalars)`` has no metadata; a
    pair ``(tokens, metadata)`` of such arrays gives each token's coordinate."""
    if isinstance(x, tuple):
        if len(x) != 2 or x[0].shape != x[1].shape:
            raise ValueError(
                "Training data must be tokens (n, num_scalars) or a pair (tokens, metadata) of "
                f"the same shape, got {jax.tree.map(jnp.shape, x)}."
            )
        return x
    return x, None


def _update_fn(
    method: AbstractMethod,
    mask_sampler: MaskSampler,
    optimizer: optax.GradientTransformation,
    batch_size: int,
    num_scalars: int,
    attention: AbstractAttention | None,
    ema_decay: float,
    parallel: DataParallel | None = None,
    stratified: bool = False,
) -> Callable:
    """One optimizer and EMA step, not jitted: ``(x_train, model, ema, opt_state, key, i,
    lr_scale=None) -> (model, ema, opt_state, loss)``; ``x_train`` is ``(n, num_scalars)`` or a
    pair ``(tokens, metadata)`` (`split_training_data`); ``lr_scale`` multiplies the optimizer's
    updates. With ``parallel``, the batch is split over the devices."""

    def update(x_train, model, ema, opt_state, key, i, lr_scale=None):
        k_batch, k_mask, k_loss = jr.split(key, 3)
        tokens, metadata = split_training_data(x_train)
        rows = jr.randint(k_batch, (batch_size,), 0, tokens.shape[0])
        x0, metadata = tokens[rows], None if metadata is None else metadata[rows]
        masks = _masks(mask_sampler, k_mask, batch_size, num_scalars)
        if parallel is not None:
            x0, masks, metadata = parallel.constrain((x0, masks, metadata))
        loss, grads = eqx.filter_value_and_grad(batch_loss)(
            model, method, x0, masks, k_loss, attention, metadata, stratified
        )
        updates, opt_state = optimizer.update(
            grads, opt_state, eqx.filter(model, eqx.is_inexact_array)
        )
        if lr_scale is not None:
            updates = jax.tree.map(lambda u: lr_scale * u, updates)
        model = eqx.apply_updates(model, updates)
        decay = jnp.minimum(ema_decay, (1.0 + i) / (10.0 + i))
        return model, _ema(decay, ema, model), opt_state, loss

    return update


def make_train_step(
    method: AbstractMethod,
    mask_sampler: MaskSampler,
    optimizer: optax.GradientTransformation,
    batch_size: int,
    num_scalars: int,
    attention: AbstractAttention | None = None,
    ema_decay: float = 0.999,
) -> Callable:
    """The ONE jitted train step: ``(x_train, model, ema, opt_state, key, i) -> (model, ema,
    opt_state, loss)``. It draws a batch on the device, a condition mask per example, and takes
    one optimizer step and one EMA step (decay warmed up so short runs are not dominated by the
    initial weights). Tracing it a second time raises: it compiles once per run. No buffer
    donation, because the caller keeps the best EMA weights alive."""
    update = _update_fn(method, mask_sampler, optimizer, batch_size, num_scalars, attention, ema_decay)
    return eqx.filter_jit(eqx.debug.assert_max_traces(update, max_traces=1))


def make_fused_train_steps(
    method: AbstractMethod,
    mask_sampler: MaskSampler,
    optimizer: optax.GradientTransformation,
    batch_size: int,
    num_scalars: int,
    steps_per_call: int,
    attention: AbstractAttention | None = None,
    ema_decay: float = 0.999,
    parallel: DataParallel | None = None,
    stratified: bool = False,
) -> Callable:
    """Up to ``steps_per_call`` train steps in ONE dispatch: ``(x_train, model, ema, opt_state,
    key, start, count, lr_scale=None) -> (model, ema, opt_state, losses)``.

    Runs steps ``start, ..., start + count - 1`` (``count <= steps_per_call``, traced, so a
    short last call does not recompile) in a ``lax.fori_loop`` on the device; step ``i`` uses
    ``jr.fold_in(key, i)``, so a run is the same however it is cut into calls. ``losses`` is
    ``(steps_per_call,)``, valid in its first ``count`` entries. Small models are dominated by
    per-step dispatch; this pays it once per call. Compiles once per run.
    """
    update = _update_fn(
        method, mask_sampler, optimizer, batch_size, num_scalars, attention, ema_decay, parallel,
        stratified,
    )

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def steps(x_train, model, ema, opt_state, key, start, count, lr_scale=None):
        arrays, static = eqx.partition((model, ema), eqx.is_array)

        def body(j, carry):
            arrays, opt_state, losses = carry
            model, ema = eqx.combine(arrays, static)
            i = start + j
            model, ema, opt_state, loss = update(
                x_train, model, ema, opt_state, jr.fold_in(key, i), i, lr_scale
            )
            arrays = eqx.filter((model, ema), eqx.is_array)
            return arrays, opt_state, losses.at[j].set(loss)

        losses = jnp.full((steps_per_call,), jnp.nan, dtype=jnp.float32)
        arrays, opt_state, losses = jax.lax.fori_loop(0, count, body, (arrays, opt_state, losses))
        model, ema = eqx.combine(arrays, static)
        return model, ema, opt_state, losses

    return steps


def train(
    key: Key,
    model: AbstractModel,
    method: AbstractMethod,
    x_train: TrainingData,
    x_val: TrainingData | None,
    mask_sampler: MaskSampler,
    *,
    attention: AbstractAttention | None = None,
    training: Training = Training(),
    devices: Sequence[jax.Device] | int | None = None,
    progress: bool = True,
) -> tuple[AbstractModel, History]:
    """Train ``model`` on standardised tokens; return its best EMA weights and the history.

    ``x_train``/``x_val``: tokens ``(n, num_scalars)``, or pairs ``(tokens, metadata)`` for a
    model with metadata tokens (each token's coordinate, scaled as the model expects).

    Batches are drawn with replacement on the device; each example gets its own condition mask
    from ``mask_sampler``. Up to ``training.steps_per_call`` steps run per dispatch
    (`make_fused_train_steps`); the host only looks at the losses between calls. With
    ``x_val``, the EMA weights are scored on the whole validation set (with a fixed key, so
    scores are comparable) at the intervals of ``training.stopping``, which decides when to
    stop; the best weights are kept. With ``training.checkpoint``, the run's state is written at
    validation points and a matching checkpoint is resumed (see `Checkpoint`). With several
    ``devices`` (default: all local devices),
    every batch is split over them and the weights are replicated; the result lives on the
    first device.
    """
    start_time = time.perf_counter()
    num_scalars = split_training_data(x_train)[0].shape[1]
    max_steps, stopping = training.max_steps, training.stopping
    parallel = data_parallel(devices)
    check_divisible(training.batch_size, parallel, "batch_size")
    optimizer = training.resolved_optimizer()
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    checkpoint = training.checkpoint
    state, ema, best_ema = RunState(), model, model
    if checkpoint is not None:
        if not Path(checkpoint.path).parent.is_dir():
            raise ValueError(
                f"`checkpoint.path`: the directory {str(Path(checkpoint.path).parent)!r} does not "
                "exist."
            )
        fingerprint = {
            "key": digest(key),
            "data": digest((x_train, x_val)),
            "model": digest(model),
            "method": digest(method),
            "condition masks": digest(mask_sampler),
            "attention": digest(attention),
            # The optimizer cannot be compared (optax transformations are closures).
            "training": digest(dataclasses.replace(training, optimizer=None, checkpoint=None)),
            "devices": str(1 if parallel is None else parallel.num_devices),
        }
        resumed = read_checkpoint(checkpoint.path, fingerprint, (model, ema, opt_state, best_ema))
        if resumed is not None:
            state, (model, ema, opt_state, best_ema) = resumed
    if parallel is not None:
        model, ema, best_ema, opt_state, x_train, x_val = parallel.replicate(
            (model, ema, best_ema, opt_state, x_train, x_val)
        )

    def save_checkpoint():
        arrays = (model, ema, opt_state, best_ema)
        write_checkpoint(checkpoint.path, fingerprint, state,
                         arrays if parallel is None else parallel.gather(arrays))

    validation_every = stopping.interval(max_steps)
    steps_per_call = min(training.steps_per_call, validation_every, max_steps)
    run_steps = make_fused_train_steps(
        method, mask_sampler, optimizer, training.batch_size, num_scalars, steps_per_call,
        attention, training.ema_decay, parallel, training.stratified_times,
    )

    @eqx.filter_jit
    def validation_loss(ema, x_val, key):
        tokens, metadata = split_training_data(x_val)
        masks = _masks(mask_sampler, jr.fold_in(key, 1), tokens.shape[0], num_scalars)
        return batch_loss(ema, method, tokens, masks, key, attention, metadata)

    step_key, val_key = jr.split(key)
    pending = []
    bar = tqdm(total=max_steps, initial=state.done, disable=not progress, desc="training",
               unit="step")
    written = state.done
    while state.done < max_steps and not state.stopped_early:
        # Calls end at validation points, so validation sees the weights of exactly that step.
        done = state.done
        count = min(steps_per_call, validation_every - done % validation_every, max_steps - done)
        model, ema, opt_state, chunk = run_steps(
            x_train, model, ema, opt_state, step_key, jnp.asarray(done), jnp.asarray(count),
            jnp.asarray(state.lr_scale, dtype=jnp.float32),
        )
        pending.append((chunk, count))
        state.done = done = done + count
        if done % validation_every == 0 or done == max_steps:
            for chunk, count in pending:
                state.losses.extend(np.asarray(chunk)[:count].tolist())
            pending = []
            postfix = {"loss": f"{state.losses[-1]:.4f}"}
            if x_val is not None:
                val = float(validation_loss(ema, x_val, val_key))
                state.validation_steps.append(done)
                state.validation_losses.append(val)
                if val < state.best_loss:
                    state.best_loss, state.best_step, best_ema = val, done, ema
                postfix["val"] = f"{val:.4f}"
                postfix["best"] = f"{state.best_loss:.4f}"
                state.stopped_early, state.lr_scale = stopping.decide(state.validation_losses)
            bar.set_postfix(postfix, refresh=False)
            bar.update(done - bar.n)
            ends = done == max_steps or state.stopped_early
            if checkpoint is not None and (done - written >= checkpoint.every or ends):
                save_checkpoint()
                written = done
    bar.close()
    losses = state.losses
    if x_val is None:
        state.best_step, best_ema = len(losses), ema
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError(
            f"The training loss became non-finite at step {int(np.argmin(np.isfinite(losses)))}; "
            "try a smaller learning rate (gs.Training(optimizer=...)) or check the data's scale."
        )
    history = History(
        train_loss=np.asarray(losses, dtype=np.float32),
        validation_steps=np.asarray(state.validation_steps, dtype=np.int64),
        validation_loss=np.asarray(state.validation_losses, dtype=np.float32),
        best_step=state.best_step,
        stopped_early=state.stopped_early,
        seconds=time.perf_counter() - start_time,
    )
    trained = best_ema if parallel is None else parallel.gather(best_ema)
    return trained, history
