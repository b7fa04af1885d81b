"""Guided diffusion as function transforms: ``interval(denoiser, lower, upper)`` and
``linear(denoiser, A, b)`` return a denoiser of the same kind, which every sampler drives
unchanged (Simformer, Gloeckler et al. 2024, Sec. 3.3). Through an estimator:
``est.sample(key, {"x": x_o}, n, constraints={"theta": (lower, upper)})``."""

from ..sampling import AbstractGuidedDenoiser as AbstractGuidedDenoiser
from ..sampling import IntervalGuidance as IntervalGuidance
from ..sampling import LinearGuidance as LinearGuidance
from ..sampling import interval as interval
from ..sampling import linear as linear

__all__ = ["AbstractGuidedDenoiser", "IntervalGuidance", "LinearGuidance", "interval", "linear"]
