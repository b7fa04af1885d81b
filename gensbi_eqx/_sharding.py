"""Data parallelism over local devices: one mesh axis, ``"batch"``.

Parameters, optimizer state and training data are replicated on every device; batches (of
training examples or of draws) are split along the axis, and XLA inserts the gradient
all-reduce. Everything runs inside the same jitted functions as on one device.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "batch"


class DataParallel(eqx.Module):
    """Shardings over ``devices``: ``replicated`` (every device holds all of it) and
    ``split`` (leading axis divided among the devices)."""

    replicated: NamedSharding = eqx.field(static=True)
    split: NamedSharding = eqx.field(static=True)

    @property
    def num_devices(self) -> int:
        return self.split.mesh.size

    def replicate(self, tree):
        """Put every array of ``tree`` on all devices (other leaves untouched)."""
        arrays, static = eqx.partition(tree, eqx.is_array)
        return eqx.combine(jax.device_put(arrays, self.replicated), static)

    def gather(self, tree):
        """Every (replicated) array of ``tree`` as a single-device array on this process's
        first device of the mesh; other leaves untouched."""

        def local(a):
            if not isinstance(a, jax.Array):
                return a
            if not a.is_fully_replicated:
                a = jax.device_put(a, self.replicated)
            return a.addressable_shards[0].data

        return jax.tree.map(local, tree)

    def constrain(self, x):
        """Inside ``jit``: split ``x`` along its leading axis."""
        return jax.lax.with_sharding_constraint(x, self.split)


def data_parallel(devices: Sequence[jax.Device] | int | None, argument: str = "devices") -> DataParallel | None:
    """``DataParallel`` over ``devices`` (a list, a count of local devices, or ``None`` for
    all local devices); ``None`` when that is a single device, so one-device runs take the
    plain path."""
    local = jax.local_devices()
    if devices is None:
        chosen = local
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise ValueError(
                f"`{argument}` must be between 1 and the {len(local)} local device(s), got {devices}."
            )
        chosen = local[: int(devices)]
    elif isinstance(devices, Sequence) and devices and all(isinstance(d, jax.Device) for d in devices):
        chosen = list(devices)
    else:
        raise TypeError(
            f"`{argument}` must be None (all local devices), a device count or a list of "
            f"jax devices, got {devices!r}."
        )
    if len(chosen) == 1:
        return None
    mesh = Mesh(np.asarray(chosen), (AXIS,))
    return DataParallel(NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec(AXIS)))


def check_divisible(size: int, parallel: DataParallel | None, argument: str) -> None:
    """Batches split evenly over the devices."""
    if parallel is not None and size % parallel.num_devices:
        raise ValueError(
            f"`{argument}` ({size}) must be divisible by the number of devices "
            f"({parallel.num_devices}); pass `devices=` to use fewer."
        )
