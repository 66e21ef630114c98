"""Fixtures for generator tests: tiny diffusers pipelines saved once per session into a
temporary folder (no downloads; see tiny_pipelines.py) and loaded through create_generator."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

from previz.catalog import model_spec  # noqa: E402


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """tiny_weights(name) -> folder of a saved tiny pipeline, built on first use."""
    import importlib

    # Every tiny_*.py beside this file contributes its BUILDERS (one module per model family).
    builders = {}
    for module in sorted(Path(__file__).parent.glob("tiny_*.py")):
        builders.update(importlib.import_module(module.stem).BUILDERS)
    root = tmp_path_factory.mktemp("tiny-pipelines")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = builders[name](root / name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def loaded(tiny_weights):
    """loaded(model, weights_name) -> a generator made by create_generator and loaded on CPU,
    shared by the session (loading is the expensive part users pay once too)."""
    from previz.generate import create_generator

    generators = {}

    def get(model: str, weights: str, **options):
        key = (model, weights, tuple(sorted(options.items())))
        if key not in generators:
            generator = create_generator(
                model_spec(model), weights=str(tiny_weights(weights)),
                options={"allow_cpu": True, "max_sequence_length": 64, **options})
            generator.load("cpu")
            generators[key] = generator
        return generators[key]

    yield get
    for generator in generators.values():
        generator.release()
