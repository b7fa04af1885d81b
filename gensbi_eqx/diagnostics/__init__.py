"""Is the estimator right? Two-sample tests against reference samples (C2ST), calibration over
many simulations (SBC, TARP, HPD coverage) and posterior predictive checks.

Each calibration test's short name takes an estimator, ``sbc(key, estimator, truths, ...)``;
``<name>_from_samples`` takes draws, ``samples (num_samples, N, d)`` against ``truths (N, d)``.

Both forms of a test return the same result; the short ones draw their samples from any
conditional of an estimator with :func:`conditional_samples`, which you can call once to feed
several ``_from_samples`` tests. Results are NumPy arrays in small frozen dataclasses with a
``summary()``.
"""

from ._c2st import c2st as c2st
from ._c2st import c2st_jax as c2st_jax
from ._coverage import CoverageResult as CoverageResult
from ._coverage import hpd_coverage as hpd_coverage
from ._coverage import hpd_coverage_from_samples as hpd_coverage_from_samples
from ._coverage import tarp as tarp
from ._coverage import tarp_from_samples as tarp_from_samples
from ._draws import ConditionalSamples as ConditionalSamples
from ._draws import conditional_samples as conditional_samples
from ._predictive import PredictiveResult as PredictiveResult
from ._predictive import posterior_predictive as posterior_predictive
from ._sbc import SBCResult as SBCResult
from ._sbc import sbc as sbc
from ._sbc import sbc_from_samples as sbc_from_samples

__all__ = [
    "ConditionalSamples",
    "CoverageResult",
    "PredictiveResult",
    "SBCResult",
    "c2st",
    "c2st_jax",
    "conditional_samples",
    "hpd_coverage",
    "hpd_coverage_from_samples",
    "posterior_predictive",
    "sbc",
    "sbc_from_samples",
    "tarp",
    "tarp_from_samples",
]
