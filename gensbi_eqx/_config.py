"""Settings objects as JSON and back: ``{"class": name, **constructor keyword arguments}``.

For Modules whose constructor is the dataclass one and whose fields are JSON values (numbers,
strings, bools, None, tuples of them) or other such Modules. Saved estimators store their
method and attention policy this way.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx


def to_config(module: eqx.Module) -> dict[str, Any]:
    """``{"class": type name, field: value, ...}``, nested Modules as their own configs."""

    def encode(value):
        if isinstance(value, eqx.Module):
            return to_config(value)
        if isinstance(value, tuple):
            return [encode(v) for v in value]
        return value

    fields = {f.name: encode(getattr(module, f.name)) for f in dataclasses.fields(module) if f.init}
    return {"class": type(module).__name__, **fields}


def from_config(config: Mapping[str, Any], classes: Mapping[str, type]) -> eqx.Module:
    """Rebuild what `to_config` wrote; ``classes`` maps the class names that may appear (at any
    depth) to the classes. Lists become tuples."""

    def decode(value):
        if isinstance(value, Mapping) and "class" in value:
            return from_config(value, classes)
        if isinstance(value, list):
            return tuple(decode(v) for v in value)
        return value

    name = config["class"]
    if name not in classes:
        raise ValueError(f"Unknown class {name!r} in a saved configuration; known: {sorted(classes)}.")
    return classes[name](**{k: decode(v) for k, v in config.items() if k != "class"})


def subclasses(*bases: type) -> dict[str, type]:
    """Every class derived from ``bases`` (at any depth), by name: what `from_config` may
    rebuild."""
    found = {}
    stack = list(bases)
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found[sub.__name__] = sub
            stack.append(sub)
    return found
