"""gensbi_eqx: simulation-based inference with transformer generative models on JAX/Equinox.

Quickstart::

    import jax.random as jr
    import gensbi_eqx as gs

    task = gs.tasks.TwoMoons()
    theta, x = task.simulate(jr.key(0), 10_000)
    data = {"theta": theta, "x": x}
    model = gs.Simformer.for_data(data, key=jr.key(1))
    est = gs.fit(jr.key(2), model, data)
    post = est.sample(jr.key(3), {"x": x_o}, num_samples=10_000)  # {"theta": (10000, 2)}
"""

from . import data as data
from . import diagnostics as diagnostics
from . import embeddings as embeddings
from . import guidance as guidance
from . import methods as methods
from . import models as models
from . import plotting as plotting
from . import samplers as samplers
from . import sampling as sampling
from . import tasks as tasks
from . import training as training
from ._version import __version__ as __version__
from .api import Box as Box
from .api import Estimator as Estimator
from .api import LinearInequality as LinearInequality
from .api import Samples as Samples
from .api import Trials as Trials
from .api import fit as fit
from .api import load as load
from .api import save as save
from .data import Dependencies as Dependencies
from .data import Node as Node
from .data import Series as Series
from .methods import EDM as EDM
from .methods import FlowMatching as FlowMatching
from .methods import LogitNormalTimes as LogitNormalTimes
from .methods import LogNormalNoise as LogNormalNoise
from .methods import UniformTimes as UniformTimes
from .methods import VESDE as VESDE
from .methods import VPSDE as VPSDE
from .models import DenseAttention as DenseAttention
from .models import DirectedAttention as DirectedAttention
from .models import FixedAttention as FixedAttention
from .models import Flux1 as Flux1
from .models import Flux1Joint as Flux1Joint
from .models import Simformer as Simformer
from .models import UndirectedAttention as UndirectedAttention
from .samplers import ODE as ODE
from .samplers import SDE as SDE
from .samplers import AdaptiveSDE as AdaptiveSDE
from .samplers import EDMSampler as EDMSampler
from .samplers import Rejection as Rejection
from .samplers import Resampled as Resampled
from .samplers import SMC as SMC
from .training import BernoulliMasks as BernoulliMasks
from .training import Checkpoint as Checkpoint
from .training import EarlyStopping as EarlyStopping
from .training import PlateauStopping as PlateauStopping
from .training import PosteriorMasks as PosteriorMasks
from .training import StructuredMasks as StructuredMasks
from .training import Training as Training

__all__ = [
    "AdaptiveSDE",
    "BernoulliMasks",
    "Box",
    "Checkpoint",
    "DenseAttention",
    "Dependencies",
    "DirectedAttention",
    "EDM",
    "EDMSampler",
    "EarlyStopping",
    "Estimator",
    "FixedAttention",
    "FlowMatching",
    "Flux1",
    "Flux1Joint",
    "LinearInequality",
    "LogNormalNoise",
    "LogitNormalTimes",
    "Node",
    "ODE",
    "PlateauStopping",
    "PosteriorMasks",
    "Rejection",
    "Resampled",
    "SDE",
    "SMC",
    "Samples",
    "Series",
    "Simformer",
    "StructuredMasks",
    "Training",
    "Trials",
    "UndirectedAttention",
    "UniformTimes",
    "VESDE",
    "VPSDE",
    "__version__",
    "data",
    "diagnostics",
    "embeddings",
    "fit",
    "guidance",
    "load",
    "methods",
    "models",
    "plotting",
    "samplers",
    "sampling",
    "save",
    "tasks",
    "training",
]
