"""The reverse-time SDE ``dy = [f y - g^2 score] dt + g dW``, solved with diffrax: fixed-step
Euler-Maruyama (`SDE`) or an adaptive stochastic solver over a Brownian tree (`AdaptiveSDE`)."""

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import lineax as lx

from .._custom_types import ConditionMask, Flat, Key
from ..methods import AbstractDenoiser, AbstractMethod
from ._base import (
    AbstractSampler,
    check_positive,
    check_positive_int,
    data_vanishes_at_noise_end,
    initial_state,
    method_time,
)


def reverse_drift(s, y, args):
    denoiser, mask = args
    t, span = method_time(denoiser.method, s)
    f, g2 = denoiser.method.drift_diffusion(t)
    drift = f * y - g2 * denoiser.score(t, y, mask)
    return jnp.where(mask, 0.0, -span * drift)


def reverse_diffusion(s, y, args):
    denoiser, mask = args
    t, span = method_time(denoiser.method, s)
    _, g2 = denoiser.method.drift_diffusion(t)
    return lx.DiagonalLinearOperator(jnp.where(mask, 0.0, jnp.sqrt(span * g2)))


def reverse_terms(brownian: diffrax.AbstractBrownianPath) -> diffrax.MultiTerm:
    return diffrax.MultiTerm(
        diffrax.ODETerm(reverse_drift), diffrax.ControlTerm(reverse_diffusion, brownian)
    )


def solve_reverse_sde(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Flat,
    condition_mask: ConditionMask,
    brownian: Callable[[Key], diffrax.AbstractBrownianPath],
    solver: diffrax.AbstractSolver,
    **step_options: Any,
) -> Flat:
    """One draw ``(num_scalars,)``: `initial_state`, then the reverse SDE from ``s = 0`` to 1
    with ``solver`` along the path ``brownian(key)`` (``step_options``: ``dt0``, ``max_steps``
    and the step-size controller of ``diffeqsolve``); observed entries stay ``y_cond``."""
    k_init, k_path = jr.split(key)
    y0 = initial_state(k_init, denoiser, y_cond, condition_mask)
    solution = diffrax.diffeqsolve(
        reverse_terms(brownian(k_path)),
        solver,
        t0=0.0,
        t1=1.0,
        y0=y0,
        args=(denoiser, condition_mask),
        saveat=diffrax.SaveAt(t1=True),
        adjoint=diffrax.ForwardMode(),  # sampling is never differentiated in reverse mode
        **step_options,
    )
    return jnp.where(condition_mask, y_cond, solution.ys[-1])


def check_sde_method(method: AbstractMethod) -> None:
    if data_vanishes_at_noise_end(method):
        raise ValueError(
            f"{type(method).__name__} has no reverse SDE here (its SDE is singular where "
            "alpha = 0); use a probability-flow sampler such as gs.ODE()."
        )


class SDE(AbstractSampler):
    """The reverse SDE by Euler-Maruyama with ``steps`` uniform steps in ``t`` (``steps``
    denoiser evaluations per draw). ``SDE(steps=500)`` is the Simformer paper's sampler."""

    steps: int = eqx.field(static=True, default=500)

    def __check_init__(self):
        check_positive_int(self.steps, "steps")

    def check_method(self, method: AbstractMethod) -> None:
        check_sde_method(method)

    @property
    def evaluations(self) -> int:
        return self.steps

    def __call__(
        self, key: Key, denoiser: AbstractDenoiser, y_cond: Flat, condition_mask: ConditionMask
    ) -> Flat:
        return solve_reverse_sde(
            key,
            denoiser,
            y_cond,
            condition_mask,
            lambda k: diffrax.UnsafeBrownianPath(shape=y_cond.shape, key=k),
            diffrax.Euler(),
            dt0=1.0 / self.steps,
            max_steps=self.steps,
        )


class AdaptiveSDE(AbstractSampler):
    """The reverse SDE with an adaptive stochastic solver: step sizes from a PID controller
    (``rtol``, ``atol``) over a `diffrax.VirtualBrownianTree` (resolved to ``brownian_tol``), so
    rejected steps are retried on the same Brownian path.

    The diffusion ``g(t)`` does not depend on ``y`` (additive noise), so the default solver is
    diffrax's ``ShARK`` (a stochastic Runge-Kutta method for additive noise, with an error
    estimate; it reads the space-time Lévy area of the tree). Any diffrax SDE solver with an
    error estimate works, e.g. ``diffrax.Heun()`` (then ``levy_area=diffrax.BrownianIncrement``
    is enough, but ShARK's is kept for simplicity).
    """

    solver: diffrax.AbstractSolver = diffrax.ShARK()
    rtol: float = eqx.field(static=True, default=1e-3)
    atol: float = eqx.field(static=True, default=1e-3)
    brownian_tol: float = eqx.field(static=True, default=1e-4)
    dt0: float = eqx.field(static=True, default=0.01)
    max_steps: int = eqx.field(static=True, default=4096)

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise TypeError(f"`solver` must be a diffrax solver, got {type(self.solver).__name__}.")
        for name in ("rtol", "atol", "brownian_tol", "dt0"):
            check_positive(getattr(self, name), name)
        check_positive_int(self.max_steps, "max_steps")

    def check_method(self, method: AbstractMethod) -> None:
        check_sde_method(method)

    def __call__(
        self, key: Key, denoiser: AbstractDenoiser, y_cond: Flat, condition_mask: ConditionMask
    ) -> Flat:
        def brownian(k: Key) -> diffrax.VirtualBrownianTree:
            return diffrax.VirtualBrownianTree(
                0.0, 1.0, tol=self.brownian_tol, shape=y_cond.shape, key=k,
                levy_area=diffrax.SpaceTimeLevyArea,
            )

        return solve_reverse_sde(
            key,
            denoiser,
            y_cond,
            condition_mask,
            brownian,
            self.solver,
            dt0=self.dt0,
            stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
            max_steps=self.max_steps,
        )
