"""Rejection from the model's own draws: the exact constrained law when the constraints are
not improbable, and an estimate of their probability."""

import equinox as eqx

from ._base import AbstractSampler
from ._smc import SMC


class Rejection(eqx.Module):
    """Draw with ``sampler`` (the method's default when ``None``) without guidance and keep the
    draws inside the constraints, round after round of ``num_samples`` proposals per condition,
    until every condition has ``num_samples``. The draws then follow the model's conditional
    restricted to the constraints exactly.

    The first round estimates the acceptance rate. Where it is below ``min_acceptance`` for
    some condition, ``fallback`` (`SMC` by default) draws instead: at 20% rejection needs
    five rounds, about what the default SMC costs (four particles per draw, each about one
    unguided draw). With ``fallback=None`` rejection goes on regardless. Rejection also hands
    over to ``fallback`` after ``max_rounds`` rounds. ``samples.info`` reports the strategy that ran, the acceptance
    per condition and the number of proposals.

    ``Rejection()`` is what `Estimator.sample` runs when ``constraints`` are given without a
    sampler; pass ``sampler=gs.SDE(...)`` (or any plain sampler) for guided diffusion alone,
    ``sampler=gs.SMC()`` for sequential Monte Carlo alone.
    """

    sampler: AbstractSampler | None = None
    min_acceptance: float = eqx.field(static=True, default=0.2)
    max_rounds: int = eqx.field(static=True, default=100)
    fallback: SMC | None = SMC()

    def __check_init__(self):
        if self.sampler is not None and not isinstance(self.sampler, AbstractSampler):
            raise TypeError(
                "`sampler` must be a plain sampler such as gs.SDE() or gs.ODE() (or None), got "
                f"{self.sampler!r}."
            )
        value = self.min_acceptance
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"`min_acceptance` must be a number in [0, 1], got {value!r}.")
        rounds = self.max_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"`max_rounds` must be a positive integer, got {rounds!r}.")
        if self.fallback is not None and not isinstance(self.fallback, SMC):
            raise TypeError(f"`fallback` must be gs.SMC(...) or None, got {self.fallback!r}.")
