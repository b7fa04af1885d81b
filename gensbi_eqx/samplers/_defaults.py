"""Each method's default sampler, written in one place."""

import diffrax

from ..methods import EDM, VESDE, VPSDE, AbstractMethod, FlowMatching
from ._base import AbstractSampler
from ._edm import EDMSampler
from ._ode import ODE
from ._sde import SDE

_DEFAULTS: dict[type, AbstractSampler] = {
    # 100 Euler-Maruyama steps drew what 500 draw, at a fifth of the evaluations: on an exact
    # Gaussian denoiser (narrow posteriors, variance within 2%) and on trained two moons / Gaussian
    # mixture models (C2ST within the spread over observations); benchmarks/sampler_study.py.
    VESDE: SDE(steps=100),
    # The Simformer paper's 500 steps: at 100, VP's variance was 3% high on the exact Gaussian.
    VPSDE: SDE(steps=500),
    # 20 Heun steps scored the C2ST of adaptive Tsit5 at rtol 1e-5 on two moons with a tenth
    # of the evaluations (benchmarks/fm_ode_steps.py).
    FlowMatching: ODE(diffrax.Heun(), steps=20),
    EDM: EDMSampler(steps=18),
}


def default_sampler(method: AbstractMethod) -> AbstractSampler:
    """The sampler used for ``method`` when none is given; a method this table does not know
    gets the adaptive probability-flow ODE, ``ODE()``."""
    return _DEFAULTS.get(type(method), ODE())
