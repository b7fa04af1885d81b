"""Guided diffusion as function transforms: ``interval(denoiser, lower, upper)`` and
``linear(denoiser, A, b)`` return a denoiser of the same kind, which every sampler drives
unchanged (Simformer, Gloeckler et al. 2024, Sec. 3.3). Through an estimator:
``est.sample(key, {"x": x_o}, n, constraints=gs.Box({"theta": (lower, upper)}))``."""

from ._guidance import AbstractGuidedDenoiser as AbstractGuidedDenoiser
from ._guidance import AbstractVariance as AbstractVariance
from ._guidance import IntervalGuidance as IntervalGuidance
from ._guidance import LinearGuidance as LinearGuidance
from ._guidance import SlabGuidance as SlabGuidance
from ._guidance import TweedieVariance as TweedieVariance
from ._guidance import UnitVariance as UnitVariance
from ._guidance import interval as interval
from ._guidance import linear as linear

__all__ = [
    "AbstractGuidedDenoiser",
    "AbstractVariance",
    "IntervalGuidance",
    "LinearGuidance",
    "SlabGuidance",
    "TweedieVariance",
    "UnitVariance",
    "interval",
    "linear",
]
