"""When training is done: a rule over the validation losses, never over the clock, so a run
with the same key and data stops at the same step on any machine."""

import equinox as eqx
import numpy as np


def _positive_int(value, argument: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")


class EarlyStopping(eqx.Module):
    """Score the EMA weights on the validation set every ``every`` steps and stop once
    ``patience`` scores in a row have not improved on the best one; the best weights are kept.

    ``every=None`` scores 20 times over ``max_steps`` (at most every 200 steps).
    """

    every: int | None = eqx.field(static=True, default=None)
    patience: int = eqx.field(static=True, default=20)

    def __check_init__(self):
        if self.every is not None:
            _positive_int(self.every, "every")
        _positive_int(self.patience, "patience")

    def interval(self, max_steps: int) -> int:
        """Steps between validation scores."""
        return self.every if self.every is not None else max(1, min(200, max_steps // 20))

    def should_stop(self, losses: list[float]) -> bool:
        """Whether to stop after the validation ``losses`` scored so far (oldest first)."""
        return len(losses) - 1 - int(np.argmin(losses)) >= self.patience
