"""sbi's side of ``benchmarks/compare_sbi.py``: run with the Python of the separate sbi venv
(``benchmarks/.venv-sbi``, PyTorch on the CPU), never with ours; it imports nothing from
gensbi_eqx.

It answers JSON requests (see ``_workers.serve``): ``init`` reports versions and settings,
``run`` trains one sbi method on the simulations the driver saved and draws posterior samples at
each observation, saved as ``.npy`` for the driver to score. Everything uses sbi's defaults
(architectures, ``train()``, ``build_posterior()``, ``sample()``); only progress bars are
turned off. The driver starts a fresh worker for every run, so no run inherits another's state.
"""

import importlib.metadata
import inspect
import platform

import numpy as np
import torch
from sbi.inference import FMPE, NPE, NPSE
from sbi.utils import BoxUniform

from _workers import Stopwatch, max_rss_mib, serve

# sbi's trainers, as a user names them; every other argument keeps sbi's default.
METHODS = {
    "npe_nsf": lambda prior: NPE(prior=prior, density_estimator="nsf", show_progress_bars=False),
    "npe_maf": lambda prior: NPE(prior=prior, density_estimator="maf", show_progress_bars=False),
    "npse": lambda prior: NPSE(prior=prior, show_progress_bars=False),
    "fmpe": lambda prior: FMPE(prior=prior, show_progress_bars=False),
}


def build_prior(spec: dict) -> torch.distributions.Distribution:
    """The task's prior as a torch distribution, from the driver's description of ours."""
    if spec["kind"] == "box":
        return BoxUniform(low=torch.tensor(spec["low"]), high=torch.tensor(spec["high"]))
    if spec["kind"] == "normal":
        return torch.distributions.MultivariateNormal(
            torch.tensor(spec["loc"]), covariance_matrix=torch.tensor(spec["covariance"])
        )
    raise ValueError(f"unknown prior kind {spec['kind']!r}")


def train_defaults(method: str) -> dict:
    """The defaults of the method's ``train()``, for the report."""
    trainer = {"npe_nsf": NPE, "npe_maf": NPE, "npse": NPSE, "fmpe": FMPE}[method]
    keep = ("training_batch_size", "learning_rate", "validation_fraction", "stop_after_epochs",
            "max_num_epochs", "clip_max_norm")
    parameters = inspect.signature(trainer.train).parameters
    return {name: parameters[name].default for name in keep if name in parameters}


def estimator_of(posterior) -> torch.nn.Module:
    """The trained network behind a posterior: a density estimator (NPE) or a vector field
    (NPSE, FMPE)."""
    for name in ("posterior_estimator", "vector_field_estimator"):
        if hasattr(posterior, name):
            return getattr(posterior, name)
    raise TypeError(f"no estimator found in {type(posterior).__name__}")


class Worker:
    def init(self) -> dict:
        return {
            "versions": {name: importlib.metadata.version(name)
                         for name in ("sbi", "torch", "numpy", "nflows", "zuko")},
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "train_defaults": {name: train_defaults(name) for name in METHODS},
            "max_rss_mib": max_rss_mib(),
        }

    def run(self, method: str, data_path: str, prior: dict, seed: int, num_samples: int,
            save_prefix: str, max_num_epochs: int | None = None) -> dict:
        """Train ``method`` on the simulations, then ``num_samples`` draws per observation.

        Training time runs from building the trainer to ``build_posterior()``; each
        observation's sampling time is one ``posterior.sample`` call, as a tensor turned into
        a numpy array. ``max_num_epochs`` (for time-budget curves) replaces sbi's default cap;
        early stopping stays on as by default."""
        data = np.load(data_path)
        theta = torch.from_numpy(np.asarray(data["theta"], np.float32))
        x = torch.from_numpy(np.asarray(data["x"], np.float32))
        observations = np.asarray(data["observations"], np.float32)
        torch.manual_seed(seed)
        train_args = {} if max_num_epochs is None else {"max_num_epochs": max_num_epochs}

        with Stopwatch() as train:
            inference = METHODS[method](build_prior(prior))
            inference.append_simulations(theta, x).train(**train_args)
            posterior = inference.build_posterior()

        sample_s, sample_cpu_s, paths = [], [], []
        for i, x_o in enumerate(observations):
            with Stopwatch() as draw:
                samples = posterior.sample(
                    (num_samples,), x=torch.from_numpy(x_o), show_progress_bars=False
                ).numpy()
            sample_s.append(draw.wall)
            sample_cpu_s.append(draw.cpu)
            paths.append(f"{save_prefix}-{i}.npy")
            np.save(paths[-1], samples)
        summary = inference.summary
        return {
            "train_s": train.wall,
            "train_cpu_s": train.cpu,
            "sample_s": sample_s,
            "sample_cpu_s": sample_cpu_s,
            "sample_paths": paths,
            "epochs": int(summary["epochs_trained"][-1]),
            # sbi's own clock of its epochs; the rest of train_s is setup around them.
            "epochs_s": float(sum(summary["epoch_durations_sec"])),
            "best_validation_loss": float(summary["best_validation_loss"][-1]),
            "parameters": sum(p.numel() for p in estimator_of(posterior).parameters()),
            "posterior": type(posterior).__name__,
            "max_rss_mib": max_rss_mib(),
        }


if __name__ == "__main__":
    serve(Worker())
