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
    from previz.generate.types import Generator, GeneratorFactory

__all__ = ["register_generator", "create_generator", "registered_generators"]

_FACTORIES: dict[str, GeneratorFactory] = {}
_BUILTIN: dict[str, str] = {
    "draft": "previz.generate.draft:DraftGenerator",
    "synthetic": "previz.generate.synthetic:SyntheticGenerator",
    "diffusers": "previz.generate.diffusion:DiffusersGenerator",
}


def register_generator(name: str, factory: GeneratorFactory) -> None:
    """Make `factory(spec, *, weights=None, options=None)` the generator for `name`.

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
    factory = _FACTORIES.get(spec.generator)
    if factory is None and spec.generator in _BUILTIN:
        module_name, _, attribute = _BUILTIN[spec.generator].partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        _FACTORIES.setdefault(spec.generator, factory)
    if factory is None:
        raise PrevizError(f"model {spec.name!r} uses generator {spec.generator!r}, which is not "
                          f"registered — known generators: {', '.join(registered_generators())}")
    return factory(spec, weights=weights, options=dict(options or {}))
