"""Is the estimator right? Two-sample tests against reference samples (C2ST), calibration over
many simulations (SBC, TARP, expected coverage) and posterior predictive checks.

Array-level functions take samples sample-first, ``samples (num_samples, N, d)`` against
``truths (N, d)``; the estimator-level ones (:func:`sbc`, :func:`tarp_estimator`,
:func:`expected_coverage_estimator`) draw those samples from any conditional of an estimator
with :func:`conditional_samples`. Results are NumPy arrays in small frozen dataclasses with a
``summary()``.
"""

from ._c2st import c2st as c2st
from ._c2st import c2st_jax as c2st_jax
from ._coverage import CoverageResult as CoverageResult
from ._coverage import expected_coverage as expected_coverage
from ._coverage import expected_coverage_estimator as expected_coverage_estimator
from ._coverage import tarp as tarp
from ._coverage import tarp_estimator as tarp_estimator
from ._draws import ConditionalSamples as ConditionalSamples
from ._draws import conditional_samples as conditional_samples
from ._predictive import PredictiveResult as PredictiveResult
from ._predictive import posterior_predictive as posterior_predictive
from ._sbc import SBCResult as SBCResult
from ._sbc import sbc as sbc
from ._sbc import sbc_ranks as sbc_ranks

__all__ = [
    "ConditionalSamples",
    "CoverageResult",
    "PredictiveResult",
    "SBCResult",
    "c2st",
    "c2st_jax",
    "conditional_samples",
    "expected_coverage",
    "expected_coverage_estimator",
    "posterior_predictive",
    "sbc",
    "sbc_ranks",
    "tarp",
    "tarp_estimator",
]
