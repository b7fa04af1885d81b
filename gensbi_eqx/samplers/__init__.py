"""Samplers: configured strategies that draw one example's latent scalars from a denoiser.

``gs.SDE(steps=500)``, ``gs.AdaptiveSDE()``, ``gs.ODE(diffrax.Heun(), steps=20)``,
``gs.ODE(diffrax.Tsit5(), rtol=1e-5, atol=1e-5)``, ``gs.EDMSampler(steps=18)``, and
``gs.Resampled(gs.SDE(), rounds=r)`` (RePaint) which wraps an SDE sampler.
"""

from ._base import AbstractSampler as AbstractSampler
from ._defaults import default_sampler as default_sampler
from ._edm import EDMSampler as EDMSampler
from ._ode import ODE as ODE
from ._rejection import Rejection as Rejection
from ._resampled import Resampled as Resampled
from ._sde import SDE as SDE
from ._smc import SMC as SMC
from ._sde import AdaptiveSDE as AdaptiveSDE

__all__ = [
    "AbstractSampler",
    "AdaptiveSDE",
    "EDMSampler",
    "ODE",
    "Rejection",
    "Resampled",
    "SDE",
    "SMC",
    "default_sampler",
]
