"""The generator registry: catalog `ModelSpec.generator` name -> factory.

The built-in generators register lazily (their modules are imported on first use), so importing
`previz.generate` costs nothing and never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from previz.errors import PrevizError

if TYPE_CHECKING:
    from previz.catalog import ModelSpec
    from previz.generate.types import Generator, GeneratorDeclaration, GeneratorFactory

__all__ = ["register_generator", "create_generator", "registered_generators",
           "generator_declaration", "declared_options", "pixel_neutral_options"]

_FACTORIES: dict[str, GeneratorFactory] = {}
_BUILTIN: dict[str, str] = {
    "draft": "previz.generate.draft:DraftGenerator",
    "synthetic": "previz.generate.synthetic:SyntheticGenerator",
    "diffusers": "previz.generate.diffusion:DiffusersGenerator",
}


def register_generator(name: str, factory: GeneratorFactory) -> None:
    """Make `factory(spec, *, weights=None, options=None)` the generator for `name`.

    The factory (a generator class, usually) carries the generator's `declaration`.
    Registering a name again replaces the earlier factory (tests use this for doubles).
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"generator name must be a non-empty string, got {name!r}")
    _FACTORIES[name] = factory


def registered_generators() -> list[str]:
    return sorted(set(_FACTORIES) | set(_BUILTIN))


def create_generator(spec: ModelSpec, *, weights: str | None = None,
                     options: dict[str, Any] | None = None) -> Generator:
    """A new, not yet loaded generator for a catalog entry (call `load(device)` next)."""
    factory = _factory(spec.generator, f"model {spec.name!r} uses generator")
    return factory(spec, weights=weights, options=dict(options or {}))


def generator_declaration(name: str) -> GeneratorDeclaration:
    """What the generator registered as `name` declares it is (imports its module, never
    torch)."""
    factory = _factory(name, "generator")
    declaration = getattr(factory, "declaration", None)
    if declaration is None:
        raise PrevizError(f"generator {name!r} declares nothing — give its class a "
                          "`declaration = GeneratorDeclaration(...)`")
    return declaration


def declared_options() -> frozenset[str]:
    """Every option some generator reads."""
    return frozenset().union(*(generator_declaration(n).options for n in registered_generators()))


def pixel_neutral_options() -> frozenset[str]:
    """Options some generator declares do not change pixels: left out of every take key (a
    generator that does not read one is not changed by it either)."""
    return frozenset().union(*(generator_declaration(n).pixel_neutral_options
                               for n in registered_generators()))


def _factory(name: str, what: str) -> GeneratorFactory:
    factory = _FACTORIES.get(name)
    if factory is None and name in _BUILTIN:
        module_name, _, attribute = _BUILTIN[name].partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        _FACTORIES.setdefault(name, factory)
    if factory is None:
        raise PrevizError(f"{what} {name!r}, which is not registered — known generators: "
                          f"{', '.join(registered_generators())}")
    return factory
