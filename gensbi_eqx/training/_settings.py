"""Every setting of a training run, in one object: what `gensbi_eqx.fit` takes as ``training``."""

import equinox as eqx
import optax

from ._checkpoint import Checkpoint
from ._optimizer import default_optimizer
from ._stopping import AbstractStopping, EarlyStopping, _positive_int


class Training(eqx.Module):
    """How `gensbi_eqx.fit` trains.

    **Arguments:**
    - `optimizer`: an optax ``GradientTransformation``; ``None`` is `default_optimizer`
      (``max_steps``): Adam at 1e-3 after global-norm clipping at 1, constant, then linear decay
      to 1% from half-way.
    - `batch_size`: examples per step, drawn with replacement; each gets its own time, noise and
      condition mask.
    - `max_steps`: the most steps a run takes.
    - `ema_decay`: decay of the exponential moving average of the weights; the returned weights
      are the EMA ones (the decay is warmed up over the first steps).
    - `validation_fraction`: share of the rows held out to score the EMA weights; ``0`` trains
      for ``max_steps`` without validation.
    - `stopping`: when to stop, and when to cut the learning rate, judged on the validation
      scores (`EarlyStopping`, `PlateauStopping`).
    - `stratified_times`: draw each batch's training times one per quantile stratum of the
      method's time distribution (less variance in the loss, same expectation).
    - `steps_per_call`: steps fused into one device call (``lax.fori_loop``); the host sees the
      losses only between calls.
    - `drop_invalid`: leave out simulations with NaN or inf in any node, with a warning, and
      list them in ``history.dropped_rows`` (as sbi does); ``False`` refuses such data. A joint
      model then learns the joint restricted to parameters whose simulations succeed.
    - `checkpoint`: a `Checkpoint(path, every)`: write the run's state as it trains, and resume
      from it when the same run is started again.
    """

    optimizer: optax.GradientTransformation | None = None
    batch_size: int = eqx.field(static=True, default=256)
    max_steps: int = eqx.field(static=True, default=10_000)
    ema_decay: float = eqx.field(static=True, default=0.999)
    validation_fraction: float = eqx.field(static=True, default=0.1)
    stopping: AbstractStopping = EarlyStopping()
    stratified_times: bool = eqx.field(static=True, default=False)
    steps_per_call: int = eqx.field(static=True, default=100)
    drop_invalid: bool = eqx.field(static=True, default=True)
    checkpoint: Checkpoint | None = None

    def __check_init__(self):
        _positive_int(self.batch_size, "batch_size")
        _positive_int(self.max_steps, "max_steps")
        _positive_int(self.steps_per_call, "steps_per_call")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"`ema_decay` must lie in [0, 1), got {self.ema_decay}.")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"`validation_fraction` must lie in [0, 1), got {self.validation_fraction}."
            )
        if self.optimizer is not None and not isinstance(
            self.optimizer, optax.GradientTransformation
        ):
            raise TypeError(
                "`optimizer` must be an optax GradientTransformation, e.g. optax.adam(1e-3), got "
                f"{type(self.optimizer).__name__}."
            )
        if not isinstance(self.drop_invalid, bool):
            raise TypeError(f"`drop_invalid` must be True or False, got {self.drop_invalid!r}.")
        if self.checkpoint is not None and not isinstance(self.checkpoint, Checkpoint):
            raise TypeError(
                "`checkpoint` must be a gs.Checkpoint(path, every=...), got "
                f"{type(self.checkpoint).__name__}."
            )
        if not isinstance(self.stopping, AbstractStopping):
            raise TypeError(
                "`stopping` must be a gs.EarlyStopping or gs.PlateauStopping, got "
                f"{type(self.stopping).__name__}."
            )

    def resolved_optimizer(self) -> optax.GradientTransformation:
        """``optimizer``, or the default one for ``max_steps``."""
        return default_optimizer(self.max_steps) if self.optimizer is None else self.optimizer
