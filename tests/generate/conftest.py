"""Fixtures for generator tests: tiny diffusers pipelines (the session's `tiny_weights`, from
tests/conftest.py) loaded through create_generator."""

from __future__ import annotations

import pytest

from previz.catalog import model_spec


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
