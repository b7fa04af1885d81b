"""Reverse-time samplers on diffrax and the denoisers that drive them."""

from ._denoiser import AbstractDenoiser as AbstractDenoiser
from ._denoiser import ModelDenoiser as ModelDenoiser
from ._denoiser import with_metadata as with_metadata
from ._edm import sample_edm as sample_edm
from ._guidance import AbstractGuidedDenoiser as AbstractGuidedDenoiser
from ._guidance import IntervalGuidance as IntervalGuidance
from ._guidance import LinearGuidance as LinearGuidance
from ._guidance import interval as interval
from ._guidance import linear as linear
from ._log_prob import log_prob as log_prob
from ._sample import sample_conditionals as sample_conditionals
from ._solve import sample_ode as sample_ode
from ._solve import sample_sde as sample_sde

__all__ = [
    "AbstractDenoiser",
    "AbstractGuidedDenoiser",
    "IntervalGuidance",
    "LinearGuidance",
    "ModelDenoiser",
    "interval",
    "linear",
    "log_prob",
    "sample_conditionals",
    "sample_edm",
    "sample_ode",
    "sample_sde",
    "with_metadata",
]
