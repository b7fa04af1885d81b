"""The probability-flow ODE ``dy/dt = alpha' x0_hat + sigma' eps_hat``, solved with any diffrax
ODE solver, with fixed steps or adaptive ones."""

import diffrax
import equinox as eqx
import jax.numpy as jnp

from .._custom_types import ConditionMask, Flat, Key
from ..methods import AbstractDenoiser
from ._base import (
    AbstractSampler,
    check_positive,
    check_positive_int,
    initial_state,
    reverse_ode_field,
)


class ODE(AbstractSampler):
    """The probability-flow ODE with a diffrax ``solver``.

    ``steps=k``: ``k`` uniform steps in ``t`` (``ODE(diffrax.Heun(), steps=20)`` costs 40
    denoiser evaluations per draw). ``steps=None``: adaptive steps from a PID controller with
    ``rtol`` and ``atol`` (the solver needs an error estimate, as ``Tsit5``, ``Heun`` and
    ``Dopri5`` have), at most ``max_steps`` of them.
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    steps: int | None = eqx.field(static=True, default=None)
    rtol: float = eqx.field(static=True, default=1e-5)
    atol: float = eqx.field(static=True, default=1e-5)
    max_steps: int = eqx.field(static=True, default=4096)

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise TypeError(f"`solver` must be a diffrax solver, got {type(self.solver).__name__}.")
        if self.steps is not None:
            check_positive_int(self.steps, "steps")
        check_positive(self.rtol, "rtol")
        check_positive(self.atol, "atol")
        check_positive_int(self.max_steps, "max_steps")

    @property
    def evaluations(self) -> int | None:
        if self.steps is None:
            return None
        # Stages per step, counting first-same-as-last solvers' shared stage once.
        tableau = getattr(self.solver, "tableau", None)
        if tableau is None:
            return self.steps if isinstance(self.solver, diffrax.Euler) else None
        stages = len(tableau.c) + 1
        return stages * self.steps - (self.steps - 1) * bool(tableau.fsal)

    def solve(self, terms, y0, args, t0: float = 0.0, t1: float = 1.0):
        """``diffeqsolve`` from ``t0`` to ``t1`` with this sampler's solver and step sizes;
        `gensbi_eqx.sampling.log_prob` integrates its augmented ODE with it too."""
        if self.steps is None:
            controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
            dt0, max_steps = None, self.max_steps
        else:
            controller = diffrax.ConstantStepSize()
            dt0, max_steps = (t1 - t0) / self.steps, self.steps
        return diffrax.diffeqsolve(
            terms,
            self.solver,
            t0=t0,
            t1=t1,
            dt0=dt0,
            y0=y0,
            args=args,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=controller,
            max_steps=max_steps,
        )

    def __call__(
        self, key: Key, denoiser: AbstractDenoiser, y_cond: Flat, condition_mask: ConditionMask
    ) -> Flat:
        y0 = initial_state(key, denoiser, y_cond, condition_mask)
        solution = self.solve(diffrax.ODETerm(reverse_ode_field), y0, (denoiser, condition_mask))
        return jnp.where(condition_mask, y_cond, solution.ys[-1])
