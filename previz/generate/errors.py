"""Errors a generator raises. Each is a PrevizError (exit code 1) the engine can catch by type."""

from __future__ import annotations

from typing import Any

from previz.errors import PrevizError

__all__ = [
    "GeneratorError",
    "GeneratorLoadError",
    "GeneratorNeedsGpu",
    "GeneratorOutOfMemory",
    "InjectedFault",
]


class GeneratorError(PrevizError):
    """A generator could not do what a task asked (bad conditioning, wrong output shape ...)."""


class GeneratorLoadError(GeneratorError):
    """Weights are missing, are another model's, or cannot be loaded. Raised by `load()`."""


class GeneratorNeedsGpu(GeneratorLoadError):
    """The model needs a GPU and the worker has none (pass options={"allow_cpu": True} to force)."""


class GeneratorOutOfMemory(GeneratorError):
    """The accelerator (or the host) ran out of memory. Carries what was tried so the engine
    can retry lighter.

    `tried` holds the options, size and frame count of the failed attempt (and, from the
    diffusers generator, the device, dtype and which memory ran out: "gpu" or "cpu");
    `suggestion` is the next memory-saving option set to try (None when every saving is
    already on).
    """

    def __init__(self, message: str, *, model: str, tried: dict[str, Any],
                 suggestion: dict[str, Any] | None = None):
        super().__init__(message)
        self.model = model
        self.tried = dict(tried)
        self.suggestion = dict(suggestion) if suggestion is not None else None

    def __reduce__(self):  # survive pickling across processes (Ray) with the keyword fields
        return (_rebuild_oom, (str(self), self.model, self.tried, self.suggestion))


def _rebuild_oom(message, model, tried, suggestion) -> GeneratorOutOfMemory:
    return GeneratorOutOfMemory(message, model=model, tried=tried, suggestion=suggestion)


class InjectedFault(GeneratorError):
    """A fault the synthetic generator was told to raise (tests of retries and reporting)."""
