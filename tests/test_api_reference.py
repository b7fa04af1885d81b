"""The API reference (``docs/api/*.md``) documents every public name.

Each page renders objects with mkdocstrings directives, ``::: gensbi_eqx.models.Simformer``.
For ``gensbi_eqx``, each subpackage in its ``__all__``, ``gensbi_eqx.api`` and
``gensbi_eqx.benchmark``, every name in the module's ``__all__`` must have such a directive,
either at the path it is exported from or where it is defined (a re-export may be documented at
its canonical location). A subpackage listed in ``gensbi_eqx.__all__`` is documented by its own
page, which renders the package itself (``::: gensbi_eqx.data``). Needs no mkdocs.
"""

import importlib
import re
import types
from pathlib import Path

import pytest

import gensbi_eqx


API_DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"
# A directive is a line of its own; the options that may follow it are indented below it.
DIRECTIVE = re.compile(r"^:::[ \t]+([\w.]+)[ \t]*$", re.MULTILINE)
NOT_DOCUMENTED = {"__version__"}


def _modules() -> list[str]:
    subpackages = [
        getattr(gensbi_eqx, name).__name__
        for name in gensbi_eqx.__all__
        if isinstance(getattr(gensbi_eqx, name), types.ModuleType)
    ]
    return ["gensbi_eqx", *subpackages, "gensbi_eqx.api", "gensbi_eqx.benchmark"]


MODULES = _modules()


def directives(text: str) -> set[str]:
    """The object paths of the ``::: path`` directives in a Markdown text."""
    return set(DIRECTIVE.findall(text))


def documented_paths() -> set[str]:
    pages = sorted(API_DOCS.rglob("*.md"))
    assert pages, f"no API reference pages under {API_DOCS}"
    return set().union(*(directives(page.read_text(encoding="utf-8")) for page in pages))


def _public_package(module_name: str) -> str:
    """``gensbi_eqx.sampling._guidance`` -> ``gensbi_eqx.sampling``."""
    parts = []
    for part in module_name.split("."):
        if part.startswith("_"):
            break
        parts.append(part)
    return ".".join(parts)


def accepted_paths(module: types.ModuleType, name: str) -> set[str]:
    """Directive paths that document ``module.name``: where it is exported from, where it is
    defined, and the public package that holds its defining module."""
    obj = getattr(module, name)
    if isinstance(obj, types.ModuleType):
        return {f"{module.__name__}.{name}", obj.__name__}
    paths = {f"{module.__name__}.{name}"}
    # Constants (tuples, dicts) have no __module__ of their own; classes and functions do.
    defined_in = getattr(obj, "__module__", None) if callable(obj) else None
    if isinstance(defined_in, str) and defined_in.startswith("gensbi_eqx"):
        paths.add(f"{defined_in}.{name}")
        paths.add(f"{_public_package(defined_in)}.{name}")
    return paths


def missing_names(module: types.ModuleType, documented: set[str]) -> list[str]:
    """Names of ``module.__all__`` (but ``__version__``) with no directive in ``documented``."""
    return [
        name
        for name in module.__all__
        if name not in NOT_DOCUMENTED and not accepted_paths(module, name) & documented
    ]


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_is_in_the_api_reference(module_name):
    module = importlib.import_module(module_name)
    assert module.__all__, f"{module_name}.__all__ is empty"
    missing = missing_names(module, documented_paths())
    assert not missing, (
        f"{module_name}: no `::: {module_name}.<name>` directive under docs/api/ for "
        f"{missing}; add one to the module's page."
    )


def test_every_directive_names_an_existing_object():
    """A renamed or removed object is caught here without building the site."""
    stale = []
    for path in sorted(documented_paths()):
        module_name, found = path, None
        while module_name:
            try:
                found = importlib.import_module(module_name)
                break
            except ModuleNotFoundError:
                module_name = module_name.rpartition(".")[0]
        for attribute in path[len(module_name) :].split(".")[1:]:
            found = getattr(found, attribute, None)
        if found is None:
            stale.append(path)
    assert not stale, f"directives under docs/api/ name objects that do not exist: {stale}"


def test_the_check_can_fail():
    """Against an empty reference every name is missing, and a directive documents its name
    under every accepted path."""
    api = importlib.import_module("gensbi_eqx.api")
    assert missing_names(api, set()) == list(api.__all__)
    assert missing_names(gensbi_eqx, {"gensbi_eqx.api.fit"}).count("fit") == 0
    assert "fit" in missing_names(gensbi_eqx, {"gensbi_eqx.api.load"})
    # Re-exports count under their canonical location and its public package.
    for path in (
        "gensbi_eqx.SDE",
        "gensbi_eqx.samplers.SDE",
        "gensbi_eqx.samplers._sde.SDE",
    ):
        assert "SDE" not in missing_names(gensbi_eqx, {path})
    assert "SDE" in missing_names(gensbi_eqx, {"gensbi_eqx.sampling.SDE"})
    # Constants have no defining module to resolve, so they count only where they are exported
    # (a stand-in module exports the models' registry, which no real `__all__` lists).
    models = types.ModuleType("gensbi_eqx.models")
    models.MODELS = importlib.import_module("gensbi_eqx.models").MODELS
    models.__all__ = ["MODELS"]
    assert "MODELS" not in missing_names(models, {"gensbi_eqx.models.MODELS"})
    assert "MODELS" in missing_names(models, {"gensbi_eqx.models._simformer.MODELS"})
    assert directives(":::   gensbi_eqx.data\n    options:\n      members: false\n") == {
        "gensbi_eqx.data"
    }
    assert directives("text ::: gensbi_eqx.data inline") == set()
