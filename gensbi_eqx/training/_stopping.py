"""When training is done: rules over the validation losses, never over the clock, so a run with
the same key and data stops at the same step on any machine."""

import abc
from collections.abc import Sequence

import equinox as eqx
import numpy as np


def _positive_int(value, argument: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")


class AbstractStopping(eqx.Module):
    """Scores the EMA weights on the validation set every ``interval`` steps and decides, from
    the scores so far, whether to stop and by how much to scale the optimizer's steps (the
    learning rate) from then on. The training loop keeps the best-scoring weights."""

    every: eqx.AbstractVar[int | None]

    def interval(self, max_steps: int) -> int:
        """Steps between validation scores; ``every=None`` scores 20 times over ``max_steps``
        (at most every 200 steps)."""
        return self.every if self.every is not None else max(1, min(200, max_steps // 20))

    @abc.abstractmethod
    def decide(self, losses: Sequence[float]) -> tuple[bool, float]:
        """``(stop, learning-rate scale)`` after the validation ``losses`` so far (oldest
        first); a pure function of them."""


class EarlyStopping(AbstractStopping):
    """Stop once ``patience`` scores in a row have not improved on the best one."""

    every: int | None = eqx.field(static=True, default=None)
    patience: int = eqx.field(static=True, default=20)

    def __check_init__(self):
        if self.every is not None:
            _positive_int(self.every, "every")
        _positive_int(self.patience, "patience")

    def decide(self, losses: Sequence[float]) -> tuple[bool, float]:
        return len(losses) - 1 - int(np.argmin(losses)) >= self.patience, 1.0


class PlateauStopping(AbstractStopping):
    """Anneal on plateaus, then stop: when ``patience`` scores in a row have not improved on
    the best by more than ``tolerance`` (relative), the learning rate is multiplied by
    ``factor``; at the plateau after ``decays`` such cuts, training stops.

    The step count adapts to the problem and the data (no schedule tied to a step budget), and
    each cut gives the final annealing that a decaying schedule would.
    """

    every: int | None = eqx.field(static=True, default=200)
    patience: int = eqx.field(static=True, default=5)
    tolerance: float = eqx.field(static=True, default=1e-3)
    factor: float = eqx.field(static=True, default=0.5)
    decays: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        if self.every is not None:
            _positive_int(self.every, "every")
        _positive_int(self.patience, "patience")
        if not (isinstance(self.decays, int) and not isinstance(self.decays, bool) and self.decays >= 0):
            raise ValueError(f"`decays` must be a non-negative integer, got {self.decays!r}.")
        if not 0.0 <= self.tolerance < 1.0:
            raise ValueError(f"`tolerance` must lie in [0, 1), got {self.tolerance}.")
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"`factor` must lie in (0, 1), got {self.factor}.")

    def decide(self, losses: Sequence[float]) -> tuple[bool, float]:
        best, waited, cuts = np.inf, 0, 0
        for loss in losses:
            # inf - tolerance * inf is NaN: the first score always counts as an improvement.
            if not np.isfinite(best) or loss < best - self.tolerance * abs(best):
                best, waited = loss, 0
                continue
            best, waited = min(best, loss), waited + 1
            if waited >= self.patience:
                if cuts == self.decays:
                    return True, self.factor**cuts
                cuts, waited = cuts + 1, 0
        return False, self.factor**cuts
